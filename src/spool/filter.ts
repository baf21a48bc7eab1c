import picomatch from 'picomatch';
import type { DeliveryRecord, ListFilter, MessageRecord } from './types.js';

export type MessagePredicate = (message: MessageRecord, deliveries: readonly DeliveryRecord[], now: number) => boolean;

/** The listing filter as one predicate (states and `after` are the caller's); globs compile once. Messages, or with `events` only events. */
export function compileFilter(filter: ListFilter): MessagePredicate {
  const glob = (pattern: string): ((s: string) => boolean) => picomatch(pattern, { nocase: true, dot: true });
  const sender = filter.sender === undefined ? null : glob(filter.sender);
  const recipient = filter.recipient === undefined ? null : glob(filter.recipient);
  const messageId = filter.messageId === undefined ? null : glob(filter.messageId);
  const { target, olderThanMs } = filter;
  const events = filter.events === true;
  return (message, deliveries, now) =>
    (message.eventOf !== null) === events &&
    (olderThanMs === undefined || now - message.receivedAt >= olderThanMs) &&
    (sender === null || sender(message.sender)) &&
    (recipient === null || message.recipients.some((r) => recipient(r))) &&
    (messageId === null || (message.messageId !== null && messageId(message.messageId))) &&
    (target === undefined || deliveries.some((d) => d.targets.includes(target)));
}
