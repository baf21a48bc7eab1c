/**
 * `onward spool check`: walks the spool and verifies its invariants with point lookups
 * (bounded memory at any size). With `repair`, fixes what can be fixed safely: stale or
 * missing index entries, orphaned bodies, counters. A missing body of an unfinished
 * message cannot be repaired and is reported as lost.
 */
import type { ClassicLevel } from 'classic-level';
import { decodeMessage, decodeRecord, encodeRecord } from './codec.js';
import type { CounterSnapshot } from './counters.js';
import { laneOf } from '../ids.js';
import { keys, parseDueKey } from './keys.js';
import { FINAL_DELIVERY_STATES, FINISHED_MESSAGE_STATES } from '../state.js';
import type { CheckProblem, CheckReport, DeliveryRecord, MessageRecord, MessageState } from '../types.js';
import type { SpoolOp } from './writer.js';

export type ProblemKind =
  | 'lost-body'
  | 'missing-delivery'
  | 'missing-due-entry'
  | 'stale-due-entry'
  | 'orphan-body'
  | 'missing-open-entry'
  | 'stale-open-entry'
  | 'counters-mismatch';


/** Only the first problems are listed in full; counts cover all. */
const MAX_LISTED = 1000;
const put = (key: string, value: Buffer): SpoolOp => ({ type: 'put', key, value });
const del = (key: string): SpoolOp => ({ type: 'del', key });

export async function checkSpool(
  db: ClassicLevel<string, Buffer>,
  write: (ops: readonly SpoolOp[]) => Promise<void>,
  counters: CounterSnapshot,
  repair: boolean,
  now: number,
  onProgress: (scanned: number) => void = () => undefined,
): Promise<{ report: CheckReport; recounted: CounterSnapshot }> {
  const problems: CheckProblem[] = [];
  const counts: Partial<Record<ProblemKind, number>> = {};
  const found = async (kind: ProblemKind, key: string, detail: string, fix: readonly SpoolOp[] | null): Promise<void> => {
    const repaired = repair && fix !== null;
    if (repaired) await write(fix);
    counts[kind] = (counts[kind] ?? 0) + 1;
    if (problems.length < MAX_LISTED) problems.push({ kind, key, detail, repaired });
  };
  const states: Record<MessageState, number> = { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 };
  const events: Record<MessageState, number> = { ...states };
  const targets: CounterSnapshot['targets'] = {};
  let messages = 0;
  let deliveries = 0;

  for await (const [key, value] of db.iterator(keys.messages)) {
    const m = decodeMessage(value) as MessageRecord;
    messages += 1;
    if (messages % 10_000 === 0) onProgress(messages);
    (m.eventOf === null ? states : events)[m.state] += 1;
    const open = !FINISHED_MESSAGE_STATES.has(m.state);
    const [body, openEntry] = await db.getMany([keys.body(m.id), keys.open(m.id)]);
    if (open && body === undefined) await found('lost-body', key, `unfinished message ${m.id} has no body`, null);
    if (open && openEntry === undefined) await found('missing-open-entry', key, `message ${m.id} missing from the queue index`, [put(keys.open(m.id), Buffer.alloc(0))]);
    if (!open && openEntry !== undefined) await found('stale-open-entry', keys.open(m.id), `finished message ${m.id} still in the queue index`, [del(keys.open(m.id))]);
    if (!open && body !== undefined) await found('orphan-body', keys.body(m.id), `finished message ${m.id} still has its body`, [del(keys.body(m.id))]);
    const ids = Object.keys(m.deliveries);
    const records = await db.getMany(ids.map((id) => keys.delivery(id)));
    for (const [i, raw] of records.entries()) {
      const id = ids[i] ?? '';
      const d = decodeRecord<DeliveryRecord>(raw);
      if (!d) {
        await found('missing-delivery', keys.delivery(id), `message ${m.id} lists delivery ${id}, which does not exist`, null);
        continue;
      }
      deliveries += 1;
      const target = d.targets[0] ?? '';
      if (open && (d.state === 'queued' || d.state === 'deferred')) {
        const t = (targets[target] ??= { queued: 0, deferred: 0 });
        t[d.state] += 1;
      }
      if (!open || FINAL_DELIVERY_STATES.has(d.state) || d.state === 'held') continue;
      const leased = (await db.get(keys.lease(d.id))) !== undefined;
      if (leased) continue; // in flight (or due again at the next start)
      const dueKey = d.dueAt === null ? null : keys.due(laneOf(d.targets, d.domain), d.dueAt, d.id);
      if (dueKey === null || (await db.get(dueKey)) === undefined) {
        const fixed: DeliveryRecord = { ...d, dueAt: now };
        await found('missing-due-entry', keys.delivery(d.id), `waiting delivery ${d.id} has no due-index entry`, [
          put(keys.delivery(d.id), encodeRecord(fixed)),
          put(keys.due(laneOf(d.targets, d.domain), now, d.id), Buffer.alloc(0)),
        ]);
      }
    }
  }

  for await (const key of db.keys({ gte: 'b!', lt: 'b!~' })) {
    const id = key.slice(2);
    if ((await db.get(keys.message(id))) === undefined) await found('orphan-body', key, `body without a message ${id}`, [del(key)]);
  }
  for await (const key of db.keys({ gte: 'q!', lt: 'q!~' })) {
    const { dueAt, deliveryId } = parseDueKey(key);
    const d = decodeRecord<DeliveryRecord>(await db.get(keys.delivery(deliveryId)));
    if (!d || d.dueAt !== dueAt || FINAL_DELIVERY_STATES.has(d.state) || d.state === 'held') {
      await found('stale-due-entry', key, `due entry for ${d ? `${d.state} delivery` : 'missing delivery'} ${deliveryId}`, [del(key)]);
    }
  }
  for await (const key of db.keys(keys.opens)) {
    const m = decodeMessage(await db.get(keys.message(key.slice(2))));
    if (!m) await found('stale-open-entry', key, `queue index entry without a message ${key.slice(2)}`, [del(key)]);
  }

  const recounted: CounterSnapshot = { states, events, targets };
  if (!sameCounters(counters, recounted)) {
    await found('counters-mismatch', keys.counters, `stored ${JSON.stringify({ messages: counters.states, events: counters.events })}, records say ${JSON.stringify({ messages: states, events })}`, []);
  }
  return { report: { messages, deliveries, problems, counts, repaired: repair }, recounted };
}

function sameCounters(a: CounterSnapshot, b: CounterSnapshot): boolean {
  if (JSON.stringify(a.states) !== JSON.stringify(b.states) || JSON.stringify(a.events) !== JSON.stringify(b.events)) return false;
  const names = new Set([...Object.keys(a.targets), ...Object.keys(b.targets)]);
  for (const n of names) {
    const x = a.targets[n] ?? { queued: 0, deferred: 0 };
    const y = b.targets[n] ?? { queued: 0, deferred: 0 };
    if (x.queued !== y.queued || x.deferred !== y.deferred) return false;
  }
  return true;
}
