/**
 * What every part of the PostgreSQL spool shares: the pool, the quoted schema, this node's
 * identity and bounds, the leases it holds, and how it tells the rest of the relay (and
 * the other nodes) that work became due. `postgres-spool.ts` builds it; the files beside it
 * (accept, claims, attempts, leases, queries, admin actions, janitor, nodes, check) take it.
 */
import type pg from 'pg';
import type { Logger } from '../../log.js';
import type { SpoolEvents } from '../types.js';

export interface PgContext {
  readonly pool: pg.Pool;
  /** The schema as an SQL identifier (`"onward"`), from `quoteSchema`: interpolate as `${ctx.s}.messages`. */
  readonly s: string;
  /** The schema's plain name (NOTIFY payloads, advisory-lock keys). */
  readonly schemaName: string;
  /** `nodeId` (or `<hostname>-<pid>`): lease owner, `accepted_by`, attempts' `node`. */
  readonly nodeId: string;
  readonly leaseMs: number;
  readonly dedupWindowMs: number;
  readonly retainFinishedMs: number;
  /** The URL, only for `redactText` / `unavailable` (never log it as is). */
  readonly url: string;
  readonly logger: Logger | null;
  /**
   * Leases this node holds now: delivery id → the `lease_epoch` of its claim. Renewed by
   * the lease keeper; every outcome write is guarded by the epoch (`WHERE lease_epoch = $epoch`).
   */
  readonly leases: Map<string, number>;
  /** A COMMIT made work of this lane due now: tell this node's scheduler, and the other nodes (coalesced NOTIFY after the COMMIT). */
  due(lane: string): void;
  emit<K extends keyof SpoolEvents>(event: K, ...args: SpoolEvents[K]): void;
}

/**
 * Runs `fn` in one transaction on one pooled connection: COMMIT when it returns, ROLLBACK
 * when it throws (the error is rethrown). A connection that failed mid-transaction is
 * destroyed rather than returned to the pool. `begin` may carry `SET LOCAL` statements after
 * the BEGIN (one round trip: no parameters, so several statements may go in one query).
 */
export async function inTransaction<T>(ctx: Pick<PgContext, 'pool'>, fn: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await ctx.pool.connect();
  let broken: Error | undefined;
  // A checked-out client whose connection dies emits 'error' (the pool listens only while it
  // is idle): unheard, that would crash the process. The failing query rejects anyway.
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query(begin);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/** `$ms` milliseconds as an SQL interval expression on parameter `$n` (durations, never node timestamps). */
export function msInterval(n: number): string {
  return `($${n}::float8 * interval '1 millisecond')`;
}
