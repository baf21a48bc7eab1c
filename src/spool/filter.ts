import picomatch from 'picomatch';
import type { DeliveryRecord, ListFilter, MessageRecord } from './types.js';

function glob(pattern: string): (s: string) => boolean {
  return picomatch(pattern, { nocase: true, dot: true });
}

/** Whether a message matches the listing filter (states are checked by the caller). */
export function matchesFilter(message: MessageRecord, deliveries: readonly DeliveryRecord[], filter: ListFilter, now: number): boolean {
  if (filter.olderThanMs !== undefined && now - message.receivedAt < filter.olderThanMs) return false;
  if (filter.sender !== undefined && !glob(filter.sender)(message.sender)) return false;
  if (filter.recipient !== undefined) {
    const m = glob(filter.recipient);
    if (!message.recipients.some((r) => m(r))) return false;
  }
  if (filter.target !== undefined && !deliveries.some((d) => d.targets.includes(filter.target as string))) return false;
  return true;
}
