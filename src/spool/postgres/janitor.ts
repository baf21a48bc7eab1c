/**
 * Housekeeping of the shared tables (SPEC 7, 9): expired dedup keys, finished messages past
 * `retainFinished` (their bodies, deliveries and attempts go by ON DELETE CASCADE) and nodes
 * not seen for a week. One node of the cluster at a time: each slice is one transaction
 * that first takes a transaction-scoped advisory lock on the schema's janitor key, and a
 * node that does not get it leaves the run to the one that has it. Slices are small (no
 * transaction holds many row locks or much WAL); a run repeats them until caught up.
 */
import type pg from 'pg';
import type { JanitorKind } from '../types.js';
import { inTransaction, msInterval, type PgContext } from './context.js';
import { SweepSchedule } from '../sweep-schedule.js';
import { janitorLockKey } from './migrations.js';

/** Rows per slice and kind. */
export const JANITOR_SLICE = { dedup: 5000, finished: 1000 } as const;
/** Nodes whose heartbeat is older than this are forgotten. */
export const FORGET_NODES_MS = 7 * 24 * 3600 * 1000;

/** What one slice removed, or null when another node holds the janitor lock. */
type SliceResult = Record<JanitorKind, number> | null;

export class PgJanitor {
  private readonly runs: SweepSchedule;

  constructor(
    private readonly ctx: PgContext,
    intervalMs: number,
  ) {
    this.runs = new SweepSchedule(
      () => this.sweep(),
      (err) => {
        this.ctx.logger?.warn({ err }, 'spool housekeeping failed; retried at the next interval');
        this.ctx.emit('janitorError', err);
      },
      intervalMs,
    );
  }

  start(): void {
    this.runs.start();
  }

  /** Stops scheduling and waits for a run in progress to finish its current slice. */
  stop(): Promise<void> {
    return this.runs.stop();
  }

  /**
   * One run: slices until neither kind fills one (or another node is on it, or this janitor
   * is stopped). Throws what a query throws.
   */
  async sweep(): Promise<void> {
    for (;;) {
      const removed = await this.slice();
      if (removed === null) return;
      const full = removed.dedup >= JANITOR_SLICE.dedup || removed.finished >= JANITOR_SLICE.finished;
      if (!full || this.runs.stopped) return;
    }
  }

  /** One transaction under the janitor lock; the events go out after its COMMIT. */
  private async slice(): Promise<SliceResult> {
    const result = await inTransaction(this.ctx, async (db): Promise<SliceResult> => {
      const { rows } = await db.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [janitorLockKey(this.ctx.schemaName).toString()]);
      if (rows[0]?.locked !== true) return null;
      const dedup = await this.expiredDedupKeys(db);
      const finished = await this.retainedFinished(db);
      const nodes = await db.query(`DELETE FROM ${this.ctx.s}.nodes WHERE last_seen_at < now() - ${msInterval(1)}`, [FORGET_NODES_MS]);
      if ((nodes.rowCount ?? 0) > 0) this.ctx.logger?.info({ removed: nodes.rowCount }, 'forgot nodes not seen for 7 days');
      return { dedup, finished };
    });
    if (result) {
      for (const kind of ['dedup', 'finished'] as const) if (result[kind] > 0) this.ctx.emit('janitor', { kind, removed: result[kind] });
    }
    return result;
  }

  private async expiredDedupKeys(db: pg.PoolClient): Promise<number> {
    const { s } = this.ctx;
    // The outer condition is checked again on the row as it is when locked: a key an accept
    // took over meanwhile (new expiry, committed) is not deleted. SKIP LOCKED: an accept
    // holding one now is left for the next run.
    const res = await db.query(
      `DELETE FROM ${s}.dedup_keys WHERE expires_at <= now()
       AND key IN (SELECT key FROM ${s}.dedup_keys WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`,
      [JANITOR_SLICE.dedup],
    );
    return res.rowCount ?? 0;
  }

  private async retainedFinished(db: pg.PoolClient): Promise<number> {
    const { s } = this.ctx;
    // Finished messages never become unfinished again, so the horizon alone decides; the
    // messages_finished index gives the oldest first.
    const res = await db.query(
      `DELETE FROM ${s}.messages WHERE id IN (
         SELECT id FROM ${s}.messages WHERE finished_at IS NOT NULL AND finished_at < now() - ${msInterval(1)}
         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [this.ctx.retainFinishedMs, JANITOR_SLICE.finished],
    );
    return res.rowCount ?? 0;
  }
}
