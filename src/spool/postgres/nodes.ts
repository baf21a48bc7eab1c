/**
 * The nodes of a cluster (`onward spool nodes`, SPEC 9): each registers at start and beats
 * every HEARTBEAT_INTERVAL_MS; alive is judged by the database's clock, so a node whose own
 * clock is off is neither shown dead nor kept alive by it.
 */
import type { NodeRecord, TargetReport } from '../types.js';
import { msInterval, type PgContext } from './context.js';

/** A node is alive while its heartbeat is younger than this (three missed beats). */
export const NODE_ALIVE_MS = 15_000;
export const HEARTBEAT_INTERVAL_MS = 5000;

/** Inserts this node, or restarts its row (same `nodeId` after a restart): started and seen now. */
export async function registerNode(ctx: PgContext, facts: { host: string; pid: number; version: string }): Promise<void> {
  await ctx.pool.query(
    `INSERT INTO ${ctx.s}.nodes (id, host, pid, version) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version,
       started_at = now(), last_seen_at = now(), targets = '{}'`,
    [ctx.nodeId, facts.host, facts.pid, facts.version],
  );
}

export async function heartbeat(ctx: PgContext, targets: Readonly<Record<string, TargetReport>>): Promise<void> {
  await ctx.pool.query(`UPDATE ${ctx.s}.nodes SET last_seen_at = now(), targets = $2::jsonb WHERE id = $1`, [ctx.nodeId, JSON.stringify(targets)]);
}

interface NodeRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  started_at_ms: number;
  last_seen_at_ms: number;
  alive: boolean;
  in_flight: number;
  targets: Record<string, TargetReport>;
}

/** Every registered node, by id; `inFlight` counts the deliveries it holds leased (the `deliveries_leased` index). */
export async function listNodes(ctx: PgContext): Promise<NodeRecord[]> {
  const { s } = ctx;
  const { rows } = await ctx.pool.query<NodeRow>(
    `SELECT n.id, n.host, n.pid, n.version, n.targets,
            (extract(epoch FROM n.started_at) * 1000)::float8 AS started_at_ms,
            (extract(epoch FROM n.last_seen_at) * 1000)::float8 AS last_seen_at_ms,
            n.last_seen_at > now() - ${msInterval(1)} AS alive,
            (SELECT count(*)::int FROM ${s}.deliveries d WHERE d.lease_owner = n.id) AS in_flight
     FROM ${s}.nodes n ORDER BY n.id`,
    [NODE_ALIVE_MS],
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    version: r.version,
    startedAt: r.started_at_ms,
    lastSeenAt: r.last_seen_at_ms,
    alive: r.alive,
    inFlight: r.in_flight,
    targets: r.targets,
  }));
}
