/** Claiming due deliveries: due-index entry out, lease in, records cached for the attempt. */
import { FINAL_DELIVERY_STATES } from '../state.js';
import { withDeliveryState } from '../records.js';
import type { ClaimedDelivery, DeliveryRecord } from '../types.js';
import { EMPTY, queueIdOf, readDeliveryAndMessage, transaction, type LevelContext } from './context.js';
import { keys, parseDueKey } from './keys.js';

export async function claimDue(ctx: LevelContext, lane: string, now: number, limit: number): Promise<ClaimedDelivery[]> {
  if (limit <= 0) return [];
  return ctx.locks.run(`claim:${lane}`, async () => {
    const dueKeys = await ctx.db.keys({ ...keys.dueRange(lane, now), limit }).all();
    const claimed = await Promise.all(dueKeys.map((key) => claimOne(ctx, key)));
    return claimed.filter((c): c is ClaimedDelivery => c !== null);
  });
}

async function claimOne(ctx: LevelContext, dueKey: string): Promise<ClaimedDelivery | null> {
  const { dueAt, deliveryId } = parseDueKey(dueKey);
  const queueId = queueIdOf(deliveryId);
  return ctx.locks.run(queueId, async () => {
    const [delivery, message, body] = await readDeliveryAndMessage(ctx, deliveryId, queueId, true);
    if (!delivery || !message || !body || delivery.dueAt !== dueAt || FINAL_DELIVERY_STATES.has(delivery.state)) {
      await transaction(ctx).del(dueKey).commit(ctx.writer); // stale index entry
      return null;
    }
    const updated: DeliveryRecord = { ...delivery, state: 'queued', dueAt: null, attemptCount: delivery.attemptCount + 1 };
    const msgUpdated = withDeliveryState(message, deliveryId, 'queued');
    const txn = transaction(ctx);
    txn.del(dueKey).put(keys.lease(deliveryId), EMPTY).putRecord(keys.delivery(deliveryId), updated, true);
    // A first attempt leaves the message record as it was: no need to rewrite it.
    if (msgUpdated.state !== message.state || message.deliveries[deliveryId] !== 'queued') {
      txn.putRecord(keys.message(queueId), msgUpdated, true);
    } else {
      txn.admit(keys.message(queueId), message);
    }
    txn.countDelivery(delivery.targets[0] ?? '', delivery.state, 'queued');
    txn.countMessage(message, message.state, msgUpdated.state);
    await txn.commit(ctx.writer);
    ctx.leased.add(deliveryId);
    return { delivery: updated, message: msgUpdated, body };
  });
}
