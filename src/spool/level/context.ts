/**
 * What the LevelDB spool's concerns (accept, claims, attempts, queries, janitor, admin
 * actions) share: the open database, the writer, counters, locks and the record cache.
 * `LevelSpool` builds one and passes it to each concern's functions.
 */
import type { ClassicLevel } from 'classic-level';
import type { Logger } from '../../log.js';
import type { KeyedMutex } from '../mutex.js';
import { isFinished } from '../records.js';
import type { DeliveryRecord, Dispatcher, MessageRecord } from '../types.js';
import { decodeMessage, decodeRecord } from './codec.js';
import type { SpoolCounters } from './counters.js';
import { keys } from './keys.js';
import type { RecordCache } from './record-cache.js';
import { SpoolTransaction } from './transaction.js';
import type { SpoolWriter } from './writer.js';

export type Db = ClassicLevel<string, Buffer>;

export interface LevelSpoolOptions {
  readonly path: string;
  readonly dedupWindowMs: number;
  readonly retainFinishedMs: number;
  readonly now?: () => number;
  /** Create the directory when missing (serve); the CLI opens only an existing spool. Default true. */
  readonly create?: boolean;
  /** How long to wait for another process to release the LevelDB lock. Default 0. */
  readonly lockWaitMs?: number;
  /** Called once when the lock is busy and open() starts waiting. */
  readonly onLockWait?: () => void;
  /** See SpoolConfig.groupCommit; default on. */
  readonly groupCommit?: boolean;
  /** Pause between housekeeping runs (each sweeps until caught up). Default 1 s. */
  readonly janitorIntervalMs?: number;
  /** Where housekeeping failures are logged (they are also emitted as `janitorError`). */
  readonly logger?: Logger;
}

/** The value of an `x!` dedup key. */
export interface DedupEntry {
  readonly queueId: string;
  readonly expiresAt: number;
}

export interface LevelContext {
  readonly db: Db;
  readonly writer: SpoolWriter;
  readonly counters: SpoolCounters;
  readonly locks: KeyedMutex;
  readonly cache: RecordCache;
  /** Deliveries this process has leased and not yet completed or given back. */
  readonly leased: Set<string>;
  readonly options: LevelSpoolOptions;
  readonly now: () => number;
  readonly dispatcher: () => Dispatcher | null;
  /** A delivery of `lane` became due now. */
  readonly due: (lane: string) => void;
}

export const EMPTY = Buffer.alloc(0);

export function transaction(ctx: LevelContext): SpoolTransaction {
  return new SpoolTransaction(ctx.counters, ctx.cache);
}

export function queueIdOf(deliveryId: string): string {
  return deliveryId.slice(0, deliveryId.indexOf('.'));
}

/** A delivery and its message, from the record cache where hot, else in one multi-get. */
export async function readDeliveryAndMessage(
  ctx: LevelContext,
  deliveryId: string,
  queueId: string,
  withBody: boolean,
): Promise<[DeliveryRecord | null, MessageRecord | null, Buffer | null]> {
  const deliveryKey = keys.delivery(deliveryId);
  const messageKey = keys.message(queueId);
  const delivery = ctx.cache.get<DeliveryRecord>(deliveryKey);
  const message = ctx.cache.get<MessageRecord>(messageKey);
  if (delivery && message && !withBody) return [delivery, message, null];
  const wanted = [deliveryKey, messageKey];
  if (withBody) wanted.push(keys.body(queueId));
  const [d, m, b] = await ctx.db.getMany(wanted);
  return [delivery ?? decodeRecord<DeliveryRecord>(d), message ?? decodeMessage(m), b ?? null];
}

/** When the message just finished: drop its body and queue entry, index it for retention. */
export function finishIfDone(ctx: LevelContext, message: MessageRecord, txn: SpoolTransaction): MessageRecord {
  if (!isFinished(message) || message.finishedAt !== null) return message;
  const now = ctx.now();
  txn.del(keys.body(message.id)).del(keys.open(message.id)).put(keys.finished(now, message.id), EMPTY);
  return { ...message, finishedAt: now };
}
