/**
 * Pure record transitions: new records for an accepted message, a delivery after an
 * attempt or an operator action. No I/O; the LevelDB adapter writes what these return.
 */
import { deliveryId as makeDeliveryId } from './ids.js';
import { FINAL_DELIVERY_STATES, FINISHED_MESSAGE_STATES, finalDeliveryState, messageStateOf } from './state.js';
import type { AdminAction, AttemptUpdate, DeliveryRecord, DeliveryState, GiveUpReport, MessageRecord, NewMessage, RecipientRecord } from './types.js';

export function newRecords(msg: NewMessage, now: number): { message: MessageRecord; deliveries: DeliveryRecord[] } {
  const deliveries = msg.deliveries.map(
    (group, index): DeliveryRecord => ({
      id: makeDeliveryId(msg.queueId, index),
      queueId: msg.queueId,
      targets: group.targets,
      domain: group.domain ?? null,
      recipients: group.recipients.map((address) => ({ address, state: 'queued', lastError: null, lastReply: null, reported: false })),
      state: 'queued',
      attempts: [],
      attemptCount: 0,
      dueAt: now,
      createdAt: now,
      delayWarned: false,
    }),
  );
  const message: MessageRecord = {
    id: msg.queueId,
    sender: msg.sender,
    recipients: msg.recipients,
    messageId: msg.messageId,
    size: msg.body.length,
    receivedAt: now,
    client: msg.client,
    state: 'queued',
    deliveries: Object.fromEntries(deliveries.map((d) => [d.id, 'queued' as const])),
    finishedAt: null,
    dedupKey: msg.dedupKey,
    bounceOf: msg.bounceOf,
    eventOf: msg.eventOf ?? null,
  };
  return { message, deliveries };
}

/** The message after one of its deliveries changed state (deleted stays deleted). */
export function withDeliveryState(message: MessageRecord, deliveryId: string, state: DeliveryState): MessageRecord {
  const deliveries = { ...message.deliveries, [deliveryId]: state };
  return { ...message, deliveries, state: message.state === 'deleted' ? 'deleted' : messageStateOf(deliveries) };
}

export function isFinished(message: MessageRecord): boolean {
  return FINISHED_MESSAGE_STATES.has(message.state);
}

/**
 * The delivery after an attempt: recipient outcomes applied; final when every recipient
 * is; otherwise deferred to `nextDueAt` (held and deleted deliveries stay as they are). A
 * delivery that became final while the attempt ran (an operator `bounce`) stays final:
 * the attempt is only recorded.
 */
export function afterAttempt(delivery: DeliveryRecord, messageDeleted: boolean, update: AttemptUpdate, now: number): DeliveryRecord {
  if (FINAL_DELIVERY_STATES.has(delivery.state)) {
    return { ...delivery, attempts: [...delivery.attempts, ...update.attempts] };
  }
  const byAddress = new Map(update.recipients.map((r) => [r.address, r]));
  const reported = new Set(update.reported ?? []);
  const recipients: RecipientRecord[] = delivery.recipients.map((r) => {
    const u = byAddress.get(r.address);
    const next = u ? { ...r, state: u.state, lastReply: u.reply, lastError: u.reply?.text ?? r.lastError } : r;
    return reported.has(r.address) ? { ...next, reported: true } : next;
  });
  const final = finalDeliveryState(recipients);
  let state: DeliveryState;
  if (final) state = final;
  else if (delivery.state === 'held' || messageDeleted) state = delivery.state;
  else state = 'deferred';
  return {
    ...delivery,
    recipients: recipients.map((r) => (state === 'deferred' && r.state === 'queued' ? { ...r, state: 'deferred' } : r)),
    state,
    dueAt: state === 'deferred' ? (update.nextDueAt ?? now) : null,
    attempts: [...delivery.attempts, ...update.attempts],
    delayWarned: delivery.delayWarned || (update.delayWarned ?? false),
  };
}

/** The delivery after an operator action, or null when the action does not apply to it. */
export function afterAction(action: AdminAction, d: DeliveryRecord, now: number): DeliveryRecord | null {
  const inFlight = d.state === 'queued' && d.dueAt === null;
  switch (action) {
    case 'hold':
      return d.state === 'held' ? null : { ...d, state: 'held', dueAt: null, recipients: setPending(d, 'held') };
    case 'release':
      return d.state === 'held' ? { ...d, state: 'queued', dueAt: now, recipients: setPending(d, 'queued') } : null;
    case 'retry':
      return d.state === 'held' || inFlight ? null : { ...d, state: 'queued', dueAt: now, recipients: setPending(d, 'queued') };
    case 'delete':
      return { ...d, dueAt: null };
  }
}

function setPending(d: DeliveryRecord, state: 'held' | 'queued'): RecipientRecord[] {
  return d.recipients.map((r) => (r.state === 'delivered' || r.state === 'failed' ? r : { ...r, state }));
}

/** A giveUp report's DSN and events, whichever form it returned (a DSN alone, or both). */
export function giveUpParts(report: NewMessage | GiveUpReport | null): GiveUpReport {
  if (report === null) return { dsn: null, events: [] };
  if ('events' in report) return report;
  return { dsn: report, events: [] };
}

/** Old records (written before delivery events) have no `eventOf`: they are messages. */
export function withEventOf(message: MessageRecord): MessageRecord {
  return message.eventOf === undefined ? { ...message, eventOf: null } : message;
}
