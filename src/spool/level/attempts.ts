/** The end of an attempt: its outcome recorded (completeAttempt) or the delivery handed back (postpone). */
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { afterAttempt, withDeliveryState } from '../records.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { AttemptUpdate, DeliveryRecord, DeliveryState, MessageRecord } from '../types.js';
import { stageMessage } from './accept.js';
import { EMPTY, finishIfDone, queueIdOf, readDeliveryAndMessage, transaction, type LevelContext } from './context.js';
import { keys } from './keys.js';

export async function completeAttempt(
  ctx: LevelContext,
  deliveryId: string,
  update: AttemptUpdate,
): Promise<{ message: MessageRecord; delivery: DeliveryRecord }> {
  const queueId = queueIdOf(deliveryId);
  return ctx.locks.run(queueId, async () => {
    const [delivery, message] = await readDeliveryAndMessage(ctx, deliveryId, queueId, false);
    if (!delivery || !message) throw new RelayError('ONWARD_ERR_NOT_FOUND', `delivery ${deliveryId} not found`);
    const now = ctx.now();
    const deleted = message.state === 'deleted';
    const updated = afterAttempt(delivery, deleted, update, now);
    const lane = laneOf(delivery.targets, delivery.domain);
    const txn = transaction(ctx);
    // The attempt is over: both records go cold (a retry reads them back when it is due).
    txn.del(keys.lease(deliveryId)).putRecord(keys.delivery(deliveryId), updated).evict(keys.delivery(deliveryId));
    if (updated.dueAt !== null) txn.put(keys.due(lane, updated.dueAt, deliveryId), EMPTY);
    const msgUpdated = deleted ? message : finishIfDone(ctx, withDeliveryState(message, deliveryId, updated.state), txn);
    txn.putRecord(keys.message(queueId), msgUpdated).evict(keys.message(queueId));
    if (!deleted) txn.countDelivery(delivery.targets[0] ?? '', delivery.state, updated.state);
    txn.countMessage(message, message.state, msgUpdated.state);
    if (update.dsn) stageMessage(ctx, update.dsn, now, txn);
    // Events report an outcome: none when the delivery was already final (nothing changed).
    const events = FINAL_DELIVERY_STATES.has(delivery.state) ? [] : (update.events ?? []);
    for (const event of events) stageMessage(ctx, event, now, txn);
    await txn.commit(ctx.writer);
    ctx.leased.delete(deliveryId);
    if (updated.dueAt !== null && updated.dueAt <= now) ctx.due(lane);
    for (const written of update.dsn ? [update.dsn, ...events] : events) for (const d of written.deliveries) ctx.due(laneOf(d.targets, d.domain));
    return { message: msgUpdated, delivery: updated };
  });
}

export async function postpone(ctx: LevelContext, deliveryId: string, dueAt: number): Promise<void> {
  const queueId = queueIdOf(deliveryId);
  await ctx.locks.run(queueId, async () => {
    const [delivery, message] = await readDeliveryAndMessage(ctx, deliveryId, queueId, false);
    if (!delivery || !message) return;
    const target = delivery.targets[0] ?? '';
    // Back in the queue untouched: queued when due now (e.g. handed back at shutdown), else deferred.
    const waiting: DeliveryState = dueAt <= ctx.now() ? 'queued' : 'deferred';
    const state: DeliveryState = delivery.state === 'queued' ? waiting : delivery.state;
    const keepDue = (state === 'deferred' || state === 'queued') && message.state !== 'deleted';
    const updated: DeliveryRecord = {
      ...delivery,
      state,
      dueAt: keepDue ? dueAt : null,
      attemptCount: Math.max(0, delivery.attemptCount - 1),
    };
    const msgUpdated = withDeliveryState(message, deliveryId, state);
    const txn = transaction(ctx);
    txn.del(keys.lease(deliveryId)).putRecord(keys.delivery(deliveryId), updated).evict(keys.delivery(deliveryId));
    if (keepDue) txn.put(keys.due(laneOf(delivery.targets, delivery.domain), dueAt, deliveryId), EMPTY);
    txn.putRecord(keys.message(queueId), msgUpdated).evict(keys.message(queueId));
    txn.countDelivery(target, delivery.state, state);
    txn.countMessage(message, message.state, msgUpdated.state);
    await txn.commit(ctx.writer);
    ctx.leased.delete(deliveryId);
  });
}
