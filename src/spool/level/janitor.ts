/** Housekeeping: expired dedup keys (`y!` index) and finished messages past retention (`r!` index). */
import { decodeRecord } from './codec.js';
import { transaction, type DedupEntry, type LevelContext } from './context.js';
import { keys, lastPart } from './keys.js';
import { getMessage } from './queries.js';

const JANITOR_BATCH = 500;

/** Removes expired dedup keys and finished messages past `retainFinished`. Bounded per run. */
export async function sweep(ctx: LevelContext): Promise<void> {
  const now = ctx.now();
  for (const key of await ctx.db.keys({ ...keys.dedupExpiryUpTo(now), limit: JANITOR_BATCH }).all()) {
    const hash = lastPart(key);
    const entry = decodeRecord<DedupEntry>(await ctx.db.get(keys.dedup(hash)));
    const txn = transaction(ctx).del(key);
    if (entry && entry.expiresAt <= now) txn.del(keys.dedup(hash));
    await txn.commit(ctx.writer);
  }
  const horizon = now - ctx.options.retainFinishedMs;
  for (const key of await ctx.db.keys({ ...keys.finishedUpTo(horizon), limit: JANITOR_BATCH }).all()) {
    const queueId = lastPart(key);
    await ctx.locks.run(queueId, async () => {
      const message = await getMessage(ctx, queueId);
      const txn = transaction(ctx).del(key).del(keys.message(queueId));
      for (const id of Object.keys(message?.deliveries ?? {})) txn.del(keys.delivery(id));
      if (message) txn.countMessage(message.state, null);
      await txn.commit(ctx.writer);
    });
  }
}
