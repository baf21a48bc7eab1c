import { randomBytes } from 'node:crypto';

/**
 * Queue ids sort by arrival: 9 base-36 chars of epoch ms, then 6 random base-36 chars,
 * upper case (like Postfix's long queue ids): `MI3Q5ZK7A4F9K2X`.
 */
export function newQueueId(now: number = Date.now()): string {
  const time = now.toString(36).padStart(9, '0');
  return (time + randomPart()).toUpperCase();
}

/** Random bytes drawn in blocks: one syscall-backed fill per 1024 ids, not one per message. */
let pool = Buffer.alloc(0);
let offset = 0;
function randomPart(): string {
  if (offset + 4 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const n = pool.readUInt32BE(offset);
  offset += 4;
  // 6 base-36 digits hold 36^6 ≈ 2.2e9 values; 32 random bits fill them evenly enough.
  return (n % 2_176_782_336).toString(36).padStart(6, '0');
}

/** The arrival time (epoch ms) a queue id encodes. */
export function queueIdTime(queueId: string): number {
  return parseInt(queueId.slice(0, 9), 36);
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

/**
 * A lane is a delivery's failover list (`primary+backup`), and for deliveries to an `mx`
 * target the recipient domain too (`internet@example.com`): deliveries that share it are
 * scheduled together, so a busy or down target — or one dead domain — never blocks another
 * lane's due work. Target names cannot contain `+`, `@` or `!` (config schema); a `!` or `%`
 * in a domain (possible only in an address literal) is %-escaped, since `!` separates the
 * parts of a due-index key.
 */
export function laneOf(targets: readonly string[], domain?: string | null): string {
  const list = targets.join('+');
  return domain === undefined || domain === null ? list : `${list}@${domain.replace(/[!%]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}`;
}

/** The parts of a lane name: its failover list and its domain (null: not split by domain). */
export function parseLane(lane: string): { targets: string[]; domain: string | null } {
  const at = lane.indexOf('@');
  const list = at < 0 ? lane : lane.slice(0, at);
  const domain = at < 0 ? null : lane.slice(at + 1).replace(/%(21|25)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return { targets: list.split('+'), domain };
}

/** A recipient's domain as an mx delivery groups it: lower case, no trailing dot. */
export function recipientDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return (at < 0 ? '' : address.slice(at + 1)).trim().replace(/\.$/, '').toLowerCase();
}
