/**
 * `spool transfer` on the LevelDB spool: export every unfinished message with all of it,
 * import one as it was, forget one as if it had never been here. Each write is one synced
 * batch with its counter moves, under the message's mutex (and its dedup key's).
 */
import { laneOf } from '../ids.js';
import { unchangedSinceExport } from '../transfer.js';
import type { DeliveryRecord, ForgetResult, MessageRecord, TransferItem } from '../types.js';
import { decodeRecord } from './codec.js';
import { EMPTY, transaction, type DedupEntry, type LevelContext } from './context.js';
import { keys } from './keys.js';
import { getBody, getDeliveries, getMessage } from './queries.js';

/** Deliveries that sit in the due index: waiting for an attempt (held and final ones do not). */
function waiting(d: DeliveryRecord): boolean {
  return d.state === 'queued' || d.state === 'deferred';
}

async function liveDedup(ctx: LevelContext, key: string): Promise<DedupEntry | null> {
  const entry = decodeRecord<DedupEntry>(await ctx.db.get(keys.dedup(key)));
  return entry && entry.expiresAt > ctx.now() ? entry : null;
}

/** Unfinished messages in arrival order (the open index), each read whole. */
export async function* exportUnfinished(ctx: LevelContext): AsyncIterable<TransferItem> {
  for await (const key of ctx.db.keys(keys.opens)) {
    const queueId = key.slice(2);
    const message = await getMessage(ctx, queueId);
    if (!message) continue;
    const [deliveries, body] = await Promise.all([getDeliveries(ctx, queueId), getBody(ctx, queueId)]);
    const entry = message.dedupKey ? await liveDedup(ctx, message.dedupKey) : null;
    yield {
      message,
      deliveries,
      body: body ?? Buffer.alloc(0),
      dedup: message.dedupKey && entry?.queueId === queueId ? { key: message.dedupKey, expiresAt: entry.expiresAt } : null,
      inFlight: deliveries.some((d) => ctx.leased.has(d.id)),
    };
  }
}

export async function importMessage(ctx: LevelContext, item: TransferItem): Promise<'imported' | 'present'> {
  const queueId = item.message.id;
  const work = async (): Promise<'imported' | 'present'> => {
    if (await ctx.db.get(keys.message(queueId))) return 'present';
    const txn = transaction(ctx);
    const now = ctx.now();
    const lanes = new Set<string>();
    for (const exported of item.deliveries) {
      // A delivery exported while leased (a node died holding it) is due again now, as after a crash.
      const d: DeliveryRecord = waiting(exported) && exported.dueAt === null ? { ...exported, dueAt: now } : exported;
      txn.putRecord(keys.delivery(d.id), d);
      if (waiting(d) && d.dueAt !== null) {
        txn.put(keys.due(laneOf(d.targets, d.domain), d.dueAt, d.id), EMPTY);
        if (d.dueAt <= now) lanes.add(laneOf(d.targets, d.domain));
      }
      txn.countDelivery(d.targets[0] ?? '', null, d.state);
    }
    const keepsDedup = item.dedup !== null && (await liveDedup(ctx, item.dedup.key)) === null;
    const message: MessageRecord = { ...item.message, dedupKey: keepsDedup ? item.message.dedupKey : null };
    txn.putRecord(keys.message(queueId), message);
    txn.put(keys.body(queueId), item.body).put(keys.open(queueId), EMPTY);
    if (keepsDedup && item.dedup) {
      // A live key here of another message wins: that one was accepted here first.
      const entry: DedupEntry = { queueId, expiresAt: item.dedup.expiresAt };
      txn.putRecord(keys.dedup(item.dedup.key), entry).put(keys.dedupExpiry(entry.expiresAt, item.dedup.key), EMPTY);
    }
    txn.countMessage(message, null, message.state);
    await txn.commit(ctx.writer);
    for (const lane of lanes) ctx.due(lane);
    return 'imported';
  };
  const dedupKey = item.dedup?.key;
  return ctx.locks.run(queueId, () => (dedupKey ? ctx.locks.run(`x:${dedupKey}`, work) : work()));
}

export async function forget(ctx: LevelContext, queueId: string, asExported?: TransferItem): Promise<ForgetResult> {
  return ctx.locks.run(queueId, async () => {
    const message = await getMessage(ctx, queueId);
    if (!message) return 'absent';
    const deliveries = await getDeliveries(ctx, queueId);
    if (asExported && (deliveries.some((d) => ctx.leased.has(d.id)) || !unchangedSinceExport(asExported, message, deliveries))) return 'changed';
    const txn = transaction(ctx);
    for (const d of deliveries) {
      txn.del(keys.delivery(d.id)).del(keys.lease(d.id));
      if (waiting(d) && d.dueAt !== null) txn.del(keys.due(laneOf(d.targets, d.domain), d.dueAt, d.id));
      txn.countDelivery(d.targets[0] ?? '', d.state, null);
    }
    txn.del(keys.message(queueId)).del(keys.body(queueId)).del(keys.open(queueId));
    if (message.finishedAt !== null) txn.del(keys.finished(message.finishedAt, queueId));
    if (message.dedupKey) {
      const entry = decodeRecord<DedupEntry>(await ctx.db.get(keys.dedup(message.dedupKey)));
      if (entry?.queueId === queueId) txn.del(keys.dedup(message.dedupKey)).del(keys.dedupExpiry(entry.expiresAt, message.dedupKey));
    }
    txn.countMessage(message, message.state, null);
    await txn.commit(ctx.writer);
    return 'forgotten';
  });
}
