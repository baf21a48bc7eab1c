import { randomBytes } from 'node:crypto';

/**
 * Queue ids sort by arrival: 9 base-36 chars of epoch ms, then 6 random base-36 chars,
 * upper case (like Postfix's long queue ids): `MI3Q5ZK7A4F9K2X`.
 */
export function newQueueId(now: number = Date.now()): string {
  const time = now.toString(36).padStart(9, '0');
  const rand = randomBytes(8).readBigUInt64BE().toString(36).padStart(6, '0').slice(-6);
  return (time + rand).toUpperCase();
}

const QUEUE_ID = /^[0-9A-Z]{15}$/;
const DELIVERY_ID = /^([0-9A-Z]{15})\.(\d{1,4})$/;

export function isQueueId(id: string): boolean {
  return QUEUE_ID.test(id);
}

/** Delivery ids are `<queueId>.<n>`: stable, so they serve as idempotency keys. */
export function deliveryId(queueId: string, index: number): string {
  return `${queueId}.${index}`;
}

export function queueIdOfDelivery(id: string): string | null {
  return DELIVERY_ID.exec(id)?.[1] ?? null;
}
