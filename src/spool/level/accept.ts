/** Accepting a message: dedup lookup, records and index entries in one batch, dispatch-at-accept. */
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { newRecords } from '../records.js';
import type { AcceptResult, DeliveryRecord, DispatchSlot, MessageRecord, NewMessage } from '../types.js';
import { decodeRecord } from './codec.js';
import { EMPTY, transaction, type DedupEntry, type LevelContext } from './context.js';
import { keys } from './keys.js';
import type { SpoolTransaction } from './transaction.js';

export async function accept(ctx: LevelContext, msg: NewMessage): Promise<AcceptResult> {
  const work = async (): Promise<AcceptResult> => {
    const now = ctx.now();
    if (msg.dedupKey) {
      // Synchronous: a miss (nearly every lookup) is answered from the memtable and the tables'
      // bloom filters in memory, without the thread-pool round trip of get() (issue 17 profile:
      // ~6 % of the main thread). While the database is being reopened (after a failed batch)
      // get() waits for it where getSync() would throw.
      const key = keys.dedup(msg.dedupKey);
      const hit = decodeRecord<DedupEntry>(ctx.db.status === 'open' ? ctx.db.getSync(key) : await ctx.db.get(key));
      if (hit && hit.expiresAt > now) return { status: 'duplicate', queueId: hit.queueId };
    }
    const dispatcher = ctx.dispatcher();
    const slots = msg.deliveries.map((d) => dispatcher?.(laneOf(d.targets, d.domain)) ?? null);
    const txn = transaction(ctx);
    const { message, deliveries } = stageMessage(ctx, msg, now, txn, slots);
    try {
      await txn.commit(ctx.writer);
    } catch (err) {
      for (const slot of slots) slot?.cancel();
      throw new RelayError('ONWARD_ERR_SPOOL_WRITE', `spool write failed: ${String(err)}`, { cause: err });
    }
    deliveries.forEach((delivery, i) => {
      const slot = slots[i];
      if (slot) {
        ctx.leased.add(delivery.id);
        slot.start({ delivery, message, body: msg.body });
      } else ctx.due(laneOf(delivery.targets, delivery.domain));
    });
    return { status: 'queued', queueId: msg.queueId };
  };
  // Identical submissions racing each other must see each other's dedup key.
  return msg.dedupKey ? ctx.locks.run(`x:${msg.dedupKey}`, work) : work();
}

/**
 * Adds a new message's records, index entries and counts to `txn` (an accept, or a DSN
 * written with the outcome that caused it). A delivery with a dispatch slot is written
 * leased (its first attempt starts after the commit), the others due now.
 */
export function stageMessage(
  ctx: LevelContext,
  msg: NewMessage,
  now: number,
  txn: SpoolTransaction,
  slots: readonly (DispatchSlot | null)[] = [],
): { message: MessageRecord; deliveries: DeliveryRecord[] } {
  const fresh = newRecords(msg, now);
  const deliveries = fresh.deliveries.map((d, i): DeliveryRecord => {
    const leased = (slots[i] ?? null) !== null;
    const record: DeliveryRecord = leased ? { ...d, dueAt: null, attemptCount: 1 } : d;
    txn.putRecord(keys.delivery(d.id), record, leased);
    if (leased) txn.put(keys.lease(d.id), EMPTY);
    else txn.put(keys.due(laneOf(d.targets, d.domain), now, d.id), EMPTY);
    txn.countDelivery(d.targets[0] ?? '', null, 'queued');
    return record;
  });
  const { message } = fresh;
  txn.putRecord(keys.message(msg.queueId), message, slots.some((slot) => slot !== null));
  txn.put(keys.body(msg.queueId), msg.body).put(keys.open(msg.queueId), EMPTY);
  if (msg.dedupKey) {
    const expiresAt = now + ctx.options.dedupWindowMs;
    const entry: DedupEntry = { queueId: msg.queueId, expiresAt };
    txn.putRecord(keys.dedup(msg.dedupKey), entry).put(keys.dedupExpiry(expiresAt, msg.dedupKey), EMPTY);
  }
  txn.countMessage(message, null, 'queued');
  return { message, deliveries };
}
