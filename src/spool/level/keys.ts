/**
 * LevelDB key layout. Keys are UTF-8 strings; `!` separates parts and sorts before
 * every character used in ids, names and digits, so a prefix range never spills into
 * a neighbour. Times are zero-padded epoch ms so that lexical order is time order.
 * See src/spool/README.md for the whole layout.
 */
const TIME_WIDTH = 15;

export function padTime(ms: number): string {
  return Math.max(0, Math.floor(ms)).toString().padStart(TIME_WIDTH, '0');
}

export const keys = {
  message: (queueId: string): string => `m!${queueId}`,
  body: (queueId: string): string => `b!${queueId}`,
  delivery: (deliveryId: string): string => `d!${deliveryId}`,
  /** Due index, per lane (see laneOf): the scheduler reads each lane in time order. */
  due: (lane: string, dueAt: number, deliveryId: string): string => `q!${lane}!${padTime(dueAt)}!${deliveryId}`,
  dueRange: (lane: string, upTo: number): { gte: string; lt: string } => ({
    gte: `q!${lane}!`,
    lt: `q!${lane}!${padTime(upTo + 1)}`,
  }),
  duePrefix: (lane: string): { gte: string; lt: string } => ({ gte: `q!${lane}!`, lt: `q!${lane}!~` }),
  /** A delivery taken by the scheduler; present only while an attempt runs. */
  lease: (deliveryId: string): string => `l!${deliveryId}`,
  leases: { gte: 'l!', lt: 'l!~' },
  dedup: (hash: string): string => `x!${hash}`,
  /** Expiry index of dedup keys, swept by the janitor. */
  dedupExpiry: (expiresAt: number, hash: string): string => `y!${padTime(expiresAt)}!${hash}`,
  dedupExpiryUpTo: (upTo: number): { gte: string; lt: string } => ({ gte: 'y!', lt: `y!${padTime(upTo + 1)}` }),
  /** Retention index of finished messages, swept by the janitor. */
  finished: (finishedAt: number, queueId: string): string => `r!${padTime(finishedAt)}!${queueId}`,
  finishedUpTo: (upTo: number): { gte: string; lt: string } => ({ gte: 'r!', lt: `r!${padTime(upTo + 1)}` }),
  messages: { gte: 'm!', lt: 'm!~' },
  /** Unfinished messages (queued, deferred, held) in arrival order: the queue listing and its oldest entry. */
  open: (queueId: string): string => `o!${queueId}`,
  opens: { gte: 'o!', lt: 'o!~' },
  deliveriesOf: (queueId: string): { gte: string; lt: string } => ({ gte: `d!${queueId}.`, lt: `d!${queueId}.~` }),
  counters: 'c!counters',
  /** Spool format version (format.ts). */
  formatVersion: 'v!format',
} as const;

/** Splits a due-index key into its time and delivery id. */
export function parseDueKey(key: string): { dueAt: number; deliveryId: string } {
  const parts = key.split('!');
  return { dueAt: Number(parts[2]), deliveryId: parts[3] ?? '' };
}

/** The last part of a `prefix!time!id` key. */
export function lastPart(key: string): string {
  return key.slice(key.lastIndexOf('!') + 1);
}
