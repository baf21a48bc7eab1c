/**
 * Leases (DESIGN.md "Lease renewal", "Takeover"): this node renews every lease it holds in
 * one statement every `lease / 3`; every node, every poll, frees the expired leases of any
 * node (due now, epoch kept: the next claim raises it, which fences the old holder). A
 * renewal that fails (database down) is retried at the next tick: a lease allows `lease` of silence.
 */
import { msInterval, type PgContext } from './context.js';
import { SingleFlight } from './single-flight.js';

export const TAKEOVER_POLL_MS = 1000;

/** Renews the given leases; returns the ids no longer held (another node claimed them since). */
export async function renewLeases(ctx: PgContext, leases: ReadonlyMap<string, number>): Promise<string[]> {
  if (leases.size === 0) return [];
  const ids = [...leases.keys()];
  const { rows } = await ctx.pool.query<{ id: string }>(
    `UPDATE ${ctx.s}.deliveries d SET lease_expires_at = now() + ${msInterval(4)}
     FROM unnest($1::text[], $2::bigint[]) AS h(id, epoch)
     WHERE d.id = h.id AND d.lease_epoch = h.epoch AND d.lease_owner = $3
     RETURNING d.id`,
    [ids, ids.map((id) => String(leases.get(id))), ctx.nodeId, ctx.leaseMs],
  );
  const kept = new Set(rows.map((r) => r.id));
  return ids.filter((id) => !kept.has(id));
}

/**
 * A freed lease's due time: now while the delivery still waits for an attempt; none when an
 * operator held it, it became final, or its message was deleted while the attempt ran (the
 * lease outlived its holder, so nothing else would clear it).
 */
function dueAgain(ctx: PgContext): string {
  return `CASE WHEN d.state IN ('queued','deferred') AND EXISTS (SELECT 1 FROM ${ctx.s}.messages m WHERE m.id = d.queue_id AND m.finished_at IS NULL) THEN now() END`;
}

/** Frees expired leases of any node (due now); returns their lanes. */
export async function takeOverExpired(ctx: PgContext): Promise<string[]> {
  const { rows } = await ctx.pool.query<{ lane: string }>(
    `UPDATE ${ctx.s}.deliveries d SET lease_owner = NULL, lease_expires_at = NULL, due_at = ${dueAgain(ctx)}
     WHERE lease_owner IS NOT NULL AND lease_expires_at < now()
     RETURNING lane`,
  );
  return [...new Set(rows.map((r) => r.lane))];
}

/** At start: what this node id's previous incarnation held leased becomes due now (this process holds none yet). */
export async function releaseOwnLeases(ctx: PgContext): Promise<string[]> {
  const { rows } = await ctx.pool.query<{ lane: string }>(
    `UPDATE ${ctx.s}.deliveries d SET lease_owner = NULL, lease_expires_at = NULL, due_at = ${dueAgain(ctx)}
     WHERE lease_owner = $1
     RETURNING lane`,
    [ctx.nodeId],
  );
  return [...new Set(rows.map((r) => r.lane))];
}

export interface LeaseKeeperOptions {
  readonly track: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly available: () => boolean;
  readonly renewEveryMs: number;
  readonly takeoverEveryMs: number;
}

/** The timers: renewal of this node's leases, takeover of expired ones. */
export class LeaseKeeper {
  private renewTimer: NodeJS.Timeout | null = null;
  private takeoverTimer: NodeJS.Timeout | null = null;
  private readonly renewing = new SingleFlight();
  private readonly takingOver = new SingleFlight();

  constructor(
    private readonly ctx: PgContext,
    private readonly options: LeaseKeeperOptions,
  ) {}

  start(): void {
    this.renewTimer ??= setInterval(() => void this.renewOnce(), this.options.renewEveryMs);
    this.takeoverTimer ??= setInterval(() => void this.takeoverOnce(), this.options.takeoverEveryMs);
  }

  /** Stops renewing (tests pause a node with this; close() too). */
  async stop(): Promise<void> {
    if (this.renewTimer) clearInterval(this.renewTimer);
    if (this.takeoverTimer) clearInterval(this.takeoverTimer);
    this.renewTimer = null;
    this.takeoverTimer = null;
    await Promise.all([this.renewing.inProgress, this.takingOver.inProgress]);
  }

  renewOnce(): Promise<void> {
    return this.renewing.run(async () => {
      try {
        if (!this.options.available() || this.ctx.leases.size === 0) return;
        const snapshot = new Map(this.ctx.leases);
        const lost = await this.options.track(() => renewLeases(this.ctx, snapshot));
        for (const id of lost) {
          // Only if it was not completed meanwhile (then it left ctx.leases already) and not re-claimed.
          if (this.ctx.leases.get(id) !== snapshot.get(id)) continue;
          this.ctx.logger?.warn({ delivery: id, epoch: snapshot.get(id) }, 'lease lost: another node took this delivery over; its outcome will not be recorded');
        }
      } catch (err) {
        this.ctx.logger?.warn({ err }, 'lease renewal failed; retrying at the next tick');
      }
    });
  }

  takeoverOnce(): Promise<void> {
    return this.takingOver.run(async () => {
      try {
        if (!this.options.available()) return;
        const lanes = await this.options.track(() => takeOverExpired(this.ctx));
        for (const lane of lanes) this.ctx.due(lane);
      } catch (err) {
        this.ctx.logger?.warn({ err }, 'takeover of expired leases failed; retrying at the next poll');
      }
    });
  }

}
