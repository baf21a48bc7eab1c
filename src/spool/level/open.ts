/** Opening the LevelDB directory (waiting for its lock) and lease recovery at open and reopen. */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { DeliveryRecord } from '../types.js';
import { classicLevelMismatch, installedClassicLevel } from './classic-level-guard.js';
import { decodeRecord } from './codec.js';
import { EMPTY, queueIdOf, transaction, type Db, type LevelContext, type LevelSpoolOptions } from './context.js';
import { checkFormat } from './format.js';
import { keys, lastPart } from './keys.js';

const MEMTABLE_BYTES = 4 * 1024 * 1024;

/**
 * Opens (creating unless `create: false`) the database; a directory held by another process
 * is ONWARD_ERR_SPOOL_LOCKED. Refuses (ONWARD_ERR_SPOOL_UNAVAILABLE) a classic-level other
 * than the pinned one and a spool of an unknown format version.
 */
export async function openDb(options: LevelSpoolOptions): Promise<Db> {
  if (options.create === false && !existsSync(join(options.path, 'CURRENT'))) {
    throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `no spool at ${options.path}`);
  }
  // LevelDB's own 4 MB memtable: 16 MB and 64 MB were measured no faster (node bench/run.mjs
  // --quick --reps 3: the same msg/s and CPU per message), and each holds up to twice its
  // size in memory (the table being written and the one being flushed): 4 MB is ~10 MB less PSS.
  const db: Db = new ClassicLevel<string, Buffer>(options.path, {
    keyEncoding: 'utf8',
    valueEncoding: 'buffer',
    writeBufferSize: MEMTABLE_BYTES,
  });
  const mismatch = classicLevelMismatch({ ...installedClassicLevel(), db });
  if (mismatch) throw mismatch;
  mkdirSync(options.path, { recursive: true });
  const giveUpAt = Date.now() + (options.lockWaitMs ?? 0);
  let waited = false;
  for (;;) {
    try {
      await db.open();
      break;
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code !== 'LEVEL_LOCKED') {
        throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `cannot open spool ${options.path}: ${String(err)}`, { cause: err });
      }
      if (Date.now() >= giveUpAt) {
        throw new RelayError('ONWARD_ERR_SPOOL_LOCKED', `spool ${options.path} is in use by another process`, { cause: err });
      }
      if (!waited) options.onLockWait?.();
      waited = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    await checkFormat(db, options.path);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/**
 * Leases nobody in this process holds become due again (at-least-once): at open, those of
 * deliveries in flight when the process died; after a reopen, those of failed batches.
 */
export async function recoverLeases(ctx: LevelContext): Promise<void> {
  for (const key of await ctx.db.keys(keys.leases).all()) {
    const deliveryId = lastPart(key);
    if (ctx.leased.has(deliveryId)) continue;
    await ctx.locks.run(queueIdOf(deliveryId), async () => {
      if (ctx.leased.has(deliveryId) || (await ctx.db.get(key)) === undefined) return;
      const now = ctx.now();
      const delivery = decodeRecord<DeliveryRecord>(await ctx.db.get(keys.delivery(deliveryId)));
      const txn = transaction(ctx).del(key);
      const due = delivery && !FINAL_DELIVERY_STATES.has(delivery.state) && delivery.state !== 'held';
      if (due) txn.putRecord(keys.delivery(deliveryId), { ...delivery, dueAt: now }).put(keys.due(laneOf(delivery.targets, delivery.domain), now, deliveryId), EMPTY);
      await txn.commit(ctx.writer);
      if (due) ctx.due(laneOf(delivery.targets, delivery.domain));
    });
  }
}
