/**
 * Pure state rules: how recipient outcomes make a delivery's state, and how deliveries
 * make a message's state. Kept apart from storage so they can be table-tested.
 */
import type { DeliveryState, MessageState, RecipientRecord } from './types.js';

export const FINAL_DELIVERY_STATES: ReadonlySet<DeliveryState> = new Set(['delivered', 'failed']);
export const FINISHED_MESSAGE_STATES: ReadonlySet<MessageState> = new Set(['delivered', 'bounced', 'deleted']);

export function isFinalRecipient(r: Pick<RecipientRecord, 'state'>): boolean {
  return r.state === 'delivered' || r.state === 'failed';
}

/** The state a delivery has once its recipients are all final, or null while some are not. */
export function finalDeliveryState(recipients: readonly Pick<RecipientRecord, 'state'>[]): DeliveryState | null {
  if (!recipients.every(isFinalRecipient)) return null;
  return recipients.some((r) => r.state === 'failed') ? 'failed' : 'delivered';
}

/**
 * A message is queued while any delivery is due or in flight, else deferred while any
 * waits for a retry, else held; once every delivery is final it is bounced if any
 * recipient failed, else delivered.
 */
export function messageStateOf(deliveries: Readonly<Record<string, DeliveryState>>): MessageState {
  const states = Object.values(deliveries);
  if (states.includes('queued')) return 'queued';
  if (states.includes('deferred')) return 'deferred';
  if (states.includes('held')) return 'held';
  return states.includes('failed') ? 'bounced' : 'delivered';
}
