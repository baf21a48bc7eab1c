/** Operator actions on one message: retry, hold, release, delete (act) and bounce (giveUp). */
import type { Reply } from '../../delivery/types.js';
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { afterAction, giveUpParts, isFinished, withDeliveryState } from '../records.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { AdminAction, GiveUpReporter, GivenUpDelivery, MessageRecord, RecipientRecord } from '../types.js';
import { stageMessage } from './accept.js';
import { EMPTY, finishIfDone, transaction, type LevelContext } from './context.js';
import { keys } from './keys.js';
import { getBody, getDeliveries, getMessage } from './queries.js';

export async function act(ctx: LevelContext, queueId: string, action: AdminAction): Promise<MessageRecord> {
  return ctx.locks.run(queueId, async () => {
    const message = await getMessage(ctx, queueId);
    if (!message) throw notFound(queueId);
    if (isFinished(message)) return message;
    const now = ctx.now();
    const txn = transaction(ctx);
    const dueLanes = new Set<string>();
    let msgUpdated = message;
    for (const delivery of await getDeliveries(ctx, queueId)) {
      if (FINAL_DELIVERY_STATES.has(delivery.state)) continue;
      const next = afterAction(action, delivery, now);
      if (!next) continue;
      const lane = laneOf(delivery.targets, delivery.domain);
      if (delivery.dueAt !== null) txn.del(keys.due(lane, delivery.dueAt, delivery.id));
      if (next.dueAt !== null) {
        txn.put(keys.due(lane, next.dueAt, delivery.id), EMPTY);
        dueLanes.add(lane);
      }
      txn.putRecord(keys.delivery(delivery.id), next);
      txn.countDelivery(delivery.targets[0] ?? '', delivery.state, action === 'delete' ? null : next.state);
      msgUpdated = withDeliveryState(msgUpdated, delivery.id, next.state);
    }
    if (action === 'delete') {
      msgUpdated = { ...msgUpdated, state: 'deleted', finishedAt: now };
      txn.del(keys.body(queueId)).del(keys.open(queueId)).put(keys.finished(now, queueId), EMPTY);
    }
    txn.countMessage(message, message.state, msgUpdated.state);
    txn.putRecord(keys.message(queueId), msgUpdated);
    await txn.commit(ctx.writer);
    for (const lane of dueLanes) ctx.due(lane);
    return msgUpdated;
  });
}

export async function giveUp(
  ctx: LevelContext,
  queueId: string,
  reason: Reply,
  report: GiveUpReporter,
): Promise<MessageRecord> {
  return ctx.locks.run(queueId, async () => {
    const message = await getMessage(ctx, queueId);
    if (!message) throw notFound(queueId);
    if (isFinished(message)) return message;
    const txn = transaction(ctx);
    const failed: RecipientRecord[] = [];
    const given: GivenUpDelivery[] = [];
    let msgUpdated = message;
    for (const delivery of await getDeliveries(ctx, queueId)) {
      if (FINAL_DELIVERY_STATES.has(delivery.state)) continue;
      const failedHere: RecipientRecord[] = [];
      const recipients = delivery.recipients.map((r): RecipientRecord => {
        if (r.state === 'delivered' || r.state === 'failed') return r;
        const next: RecipientRecord = { ...r, state: 'failed', lastReply: reason, lastError: reason.text, reported: true };
        failedHere.push({ ...next, lastReply: r.lastReply ?? reason });
        return next;
      });
      failed.push(...failedHere);
      if (failedHere.length > 0) given.push({ delivery, failed: failedHere });
      if (delivery.dueAt !== null) txn.del(keys.due(laneOf(delivery.targets, delivery.domain), delivery.dueAt, delivery.id));
      txn.putRecord(keys.delivery(delivery.id), { ...delivery, recipients, state: 'failed', dueAt: null });
      txn.countDelivery(delivery.targets[0] ?? '', delivery.state, 'failed');
      msgUpdated = withDeliveryState(msgUpdated, delivery.id, 'failed');
    }
    msgUpdated = finishIfDone(ctx, msgUpdated, txn);
    txn.putRecord(keys.message(queueId), msgUpdated);
    txn.countMessage(message, message.state, msgUpdated.state);
    const { dsn, events } = giveUpParts(failed.length > 0 ? await report(message, failed, await getBody(ctx, queueId), given) : null);
    const written = dsn ? [dsn, ...events] : events;
    for (const m of written) stageMessage(ctx, m, ctx.now(), txn);
    await txn.commit(ctx.writer);
    for (const m of written) for (const d of m.deliveries) ctx.due(laneOf(d.targets, d.domain));
    return msgUpdated;
  });
}

function notFound(queueId: string): RelayError {
  return new RelayError('ONWARD_ERR_NOT_FOUND', `no message with id ${queueId}`);
}
