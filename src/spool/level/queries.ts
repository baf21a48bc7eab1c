/** Reads: due times, lanes, records, listings and stats. None of them writes. */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compileFilter } from '../filter.js';
import { FINISHED_MESSAGE_STATES } from '../state.js';
import type { DeliveryRecord, ListFilter, MessageRecord, SpoolStats } from '../types.js';
import { decodeMessage, decodeRecord } from './codec.js';
import type { LevelContext } from './context.js';
import { keys, parseDueKey } from './keys.js';

export async function nextDueAt(ctx: LevelContext, lane: string): Promise<number | null> {
  const [first] = await ctx.db.keys({ ...keys.duePrefix(lane), limit: 1 }).all();
  return first === undefined ? null : parseDueKey(first).dueAt;
}

export async function lanes(ctx: LevelContext): Promise<string[]> {
  const found: string[] = [];
  // Skip-scan: one seek per distinct lane, never a walk over the deliveries.
  for (let from = 'q!'; ; ) {
    const [key] = await ctx.db.keys({ gt: from, lt: 'q!~', limit: 1 }).all();
    if (key === undefined) return found;
    const lane = key.split('!')[1] ?? '';
    found.push(lane);
    from = `q!${lane}!~`;
  }
}

export async function getMessage(ctx: LevelContext, queueId: string): Promise<MessageRecord | null> {
  return decodeMessage(await ctx.db.get(keys.message(queueId)));
}

export async function getDeliveries(ctx: LevelContext, queueId: string): Promise<DeliveryRecord[]> {
  const values = await ctx.db.values(keys.deliveriesOf(queueId)).all();
  return values.map((v) => decodeRecord<DeliveryRecord>(v) as DeliveryRecord);
}

export async function getBody(ctx: LevelContext, queueId: string): Promise<Buffer | null> {
  return (await ctx.db.get(keys.body(queueId))) ?? null;
}

export async function* list(ctx: LevelContext, filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const states = filter.states ?? ['queued', 'deferred', 'held'];
  const limit = filter.limit ?? Infinity;
  const matches = compileFilter(filter);
  // Only the target filter looks at deliveries: without it a message is judged alone, and its
  // deliveries are read for the messages listed only (a filter matching nothing reads none).
  const needsDeliveries = filter.target !== undefined;
  const onlyOpen = states.every((s) => !FINISHED_MESSAGE_STATES.has(s));
  let count = 0;
  for await (const message of onlyOpen ? openMessages(ctx, filter.after) : allMessages(ctx, filter.after)) {
    if (count >= limit) return;
    if (!states.includes(message.state)) continue;
    if (!needsDeliveries && !matches(message, [], ctx.now())) continue;
    const deliveries = await getDeliveries(ctx, message.id);
    if (needsDeliveries && !matches(message, deliveries, ctx.now())) continue;
    count += 1;
    yield { message, deliveries };
  }
}

/** Both listing orders are queue id order (ids sort by arrival): a page resumes after its last id. */
function rangeAfter(range: { gte: string; lt: string }, prefix: string, after: string | undefined): { gte: string; lt: string } | { gt: string; lt: string } {
  return after === undefined ? range : { gt: prefix + after, lt: range.lt };
}

async function* allMessages(ctx: LevelContext, after?: string): AsyncIterable<MessageRecord> {
  for await (const value of ctx.db.values(rangeAfter(keys.messages, 'm!', after))) yield decodeMessage(value) as MessageRecord;
}

/** Open-index keys read per step of a listing, their messages fetched in one multi-get. */
const OPEN_READ_BATCH = 256;

/** Unfinished messages in arrival order, via the open index (finished ones are never read). */
async function* openMessages(ctx: LevelContext, after?: string, batch = OPEN_READ_BATCH): AsyncIterable<MessageRecord> {
  const iterator = ctx.db.keys(rangeAfter(keys.opens, 'o!', after));
  try {
    for (;;) {
      const openKeys = await iterator.nextv(batch);
      if (openKeys.length === 0) return;
      const values = await ctx.db.getMany(openKeys.map((key) => keys.message(key.slice(2))));
      for (const value of values) {
        const message = decodeRecord<MessageRecord>(value);
        if (message) yield message;
      }
    }
  } finally {
    await iterator.close();
  }
}

export async function stats(ctx: LevelContext): Promise<SpoolStats> {
  const snapshot = ctx.counters.read();
  let oldestQueuedAt: number | null = null;
  // The open index is in arrival order; only held messages are skipped on the way.
  for await (const m of openMessages(ctx, undefined, 16)) {
    if (m.state === 'queued' || m.state === 'deferred') {
      oldestQueuedAt = m.receivedAt;
      break;
    }
  }
  return { ...snapshot, oldestQueuedAt, spoolBytes: await directoryBytes(ctx.options.path) };
}

async function directoryBytes(path: string): Promise<number> {
  const names = await readdir(path);
  const sizes = await Promise.all(names.map(async (n) => (await stat(join(path, n)).catch(() => null))?.size ?? 0));
  return sizes.reduce((a, b) => a + b, 0);
}
