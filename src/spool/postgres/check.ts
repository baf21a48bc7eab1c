/**
 * `onward spool check [--repair]` on the shared spool: walks the messages by primary key in
 * bounded batches (three queries per batch, at any queue size) and verifies what the schema
 * cannot enforce by itself. A message that looks wrong is read again in a transaction
 * holding its row lock (the lock every writer takes first), so a change in flight on a live
 * cluster is not reported as a problem; repairs run in that same transaction.
 *
 * The schema's CHECK constraints already keep `finished_at` consistent with the message
 * state and a lease's owner with its expiry, and foreign keys forbid bodies or deliveries
 * without a message, so none of those are checked here.
 */
import { FINAL_DELIVERY_STATES, FINISHED_MESSAGE_STATES, messageStateOf } from '../state.js';
import type { CheckProblem, CheckReport, DeliveryState, MessageState } from '../types.js';
import type { Queryable } from './connection.js';
import { inTransaction, msInterval, type PgContext } from './context.js';
import { writeMessageState } from './message-rows.js';

export type ProblemKind =
  /** Unfinished message without its body: cannot be delivered, cannot be repaired. */
  | 'lost-body'
  /** Finished message still holding its body (repair: delete it). */
  | 'orphan-body'
  /** Message without any delivery: nothing will ever finish it (not repairable). */
  | 'no-deliveries'
  /** Message state is not the one its deliveries make (repair: derive it again). */
  | 'state-mismatch'
  /** Waiting, unleased delivery of an unfinished message without a due time: never claimed (repair: due now). */
  | 'missing-due-time'
  /** Due time on a delivery that must not be claimed (final, held, or of a finished message) (repair: clear it). */
  | 'stale-due-time'
  /** Lease expired long ago and nobody took it over (repair: free it; due now when it waits). */
  | 'stale-lease';

/** Messages per batch. */
export const CHECK_BATCH = 500;
/** A lease expired for longer than this is no takeover lagging behind (every node takes over every poll) but stuck. */
export const STALE_LEASE_MARGIN_MS = 60_000;
/** Only the first problems are listed in full; counts cover all. */
const MAX_LISTED = 1000;

interface DeliveryFacts {
  readonly id: string;
  readonly lane: string;
  readonly state: DeliveryState;
  readonly hasDue: boolean;
  readonly leased: boolean;
  readonly staleLease: boolean;
}

interface MessageFacts {
  readonly id: string;
  readonly state: MessageState;
  readonly hasBody: boolean;
  readonly deliveries: readonly DeliveryFacts[];
}

interface Found {
  readonly kind: ProblemKind;
  readonly key: string;
  readonly detail: string;
  /** The repair, run inside the message's locked transaction; null: not repairable. */
  readonly fix: ((db: Queryable) => Promise<void>) | null;
  /** A lane whose work the repair makes due now. */
  readonly dueLane?: string;
}

export async function checkSpool(ctx: PgContext, repair: boolean, onProgress: (scanned: number) => void = () => undefined): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  const counts: Record<string, number> = {};
  let messages = 0;
  let deliveries = 0;
  let after: string | null = null;
  for (;;) {
    const batch = await readFacts(ctx.pool, ctx, { after, limit: CHECK_BATCH });
    const last = batch[batch.length - 1];
    if (!last) break;
    after = last.id;
    for (const facts of batch) {
      messages += 1;
      deliveries += facts.deliveries.length;
      if (problemsOf(ctx, facts).length === 0) continue;
      for (const p of await confirmAndRepair(ctx, facts.id, repair)) {
        counts[p.kind] = (counts[p.kind] ?? 0) + 1;
        if (problems.length < MAX_LISTED) problems.push(p);
      }
    }
    onProgress(messages);
    if (batch.length < CHECK_BATCH) break;
  }
  return { messages, deliveries, problems, counts, repaired: repair };
}

/** The problems of one message as they are under its row lock, repaired there when asked. */
async function confirmAndRepair(ctx: PgContext, queueId: string, repair: boolean): Promise<CheckProblem[]> {
  const { listed, dueLanes } = await inTransaction(ctx, async (db) => {
    // Lock first, read after, in two statements: a read that waits inside its own FOR UPDATE
    // gets the writer's newest message row beside the bodies and deliveries of the snapshot it
    // started with (READ COMMITTED), and a message being finished looks broken.
    await db.query(`SELECT 1 FROM ${ctx.s}.messages WHERE id = $1 FOR UPDATE`, [queueId]);
    const [facts] = await readFacts(db, ctx, { ids: [queueId] });
    if (!facts) return { listed: [], dueLanes: [] }; // removed since the batch was read
    const found = problemsOf(ctx, facts);
    const dueLanes: string[] = [];
    for (const f of found) {
      if (!repair || f.fix === null) continue;
      await f.fix(db);
      if (f.dueLane !== undefined) dueLanes.push(f.dueLane);
    }
    const listed = found.map((f): CheckProblem => ({ kind: f.kind, key: f.key, detail: f.detail, repaired: repair && f.fix !== null }));
    return { listed, dueLanes };
  });
  for (const lane of new Set(dueLanes)) ctx.due(lane);
  return listed;
}

/** What is wrong with one message; the fixes are ordered so the state is derived last. */
function problemsOf(ctx: PgContext, m: MessageFacts): Found[] {
  const { s } = ctx;
  const found: Found[] = [];
  const finished = FINISHED_MESSAGE_STATES.has(m.state);
  if (!finished && !m.hasBody) found.push({ kind: 'lost-body', key: `messages/${m.id}`, detail: `unfinished message ${m.id} has no body`, fix: null });
  if (finished && m.hasBody) {
    found.push({
      kind: 'orphan-body', key: `bodies/${m.id}`, detail: `finished message ${m.id} still has its body`,
      fix: async (db) => void (await db.query(`DELETE FROM ${s}.bodies WHERE queue_id = $1`, [m.id])),
    });
  }
  if (m.deliveries.length === 0) {
    found.push({ kind: 'no-deliveries', key: `messages/${m.id}`, detail: `message ${m.id} has no deliveries`, fix: null });
  }
  for (const d of m.deliveries) {
    const waiting = d.state === 'queued' || d.state === 'deferred';
    if (d.staleLease) {
      const dueNow = waiting && !finished;
      found.push({
        kind: 'stale-lease', key: `deliveries/${d.id}`, detail: `lease on delivery ${d.id} expired over ${String(STALE_LEASE_MARGIN_MS / 1000)} s ago and was not taken over`,
        fix: async (db) =>
          void (await db.query(`UPDATE ${s}.deliveries SET lease_owner = NULL, lease_expires_at = NULL, due_at = CASE WHEN $2 THEN now() END WHERE id = $1`, [d.id, dueNow])),
        ...(dueNow ? { dueLane: d.lane } : {}),
      });
    } else if (!finished && waiting && !d.leased && !d.hasDue) {
      found.push({
        kind: 'missing-due-time', key: `deliveries/${d.id}`, detail: `waiting delivery ${d.id} has no due time`,
        fix: async (db) => void (await db.query(`UPDATE ${s}.deliveries SET due_at = now() WHERE id = $1`, [d.id])),
        dueLane: d.lane,
      });
    } else if (d.hasDue && (finished || FINAL_DELIVERY_STATES.has(d.state) || d.state === 'held')) {
      found.push({
        kind: 'stale-due-time', key: `deliveries/${d.id}`, detail: `${finished ? `delivery of ${m.state} message` : `${d.state} delivery`} ${d.id} has a due time`,
        fix: async (db) => void (await db.query(`UPDATE ${s}.deliveries SET due_at = NULL WHERE id = $1`, [d.id])),
      });
    }
  }
  if (m.state !== 'deleted' && m.deliveries.length > 0) {
    const derived = messageStateOf(Object.fromEntries(m.deliveries.map((d) => [d.id, d.state])));
    if (derived !== m.state) {
      found.push({
        kind: 'state-mismatch', key: `messages/${m.id}`, detail: `message ${m.id} is ${m.state}, its deliveries make it ${derived}`,
        fix: async (db) => void (await writeMessageState(db, ctx, m.id)),
      });
    }
  }
  return found;
}

interface FactsRow {
  id: string;
  state: MessageState;
  has_body: boolean;
  deliveries: { id: string; lane: string; state: DeliveryState; has_due: boolean; leased: boolean; stale_lease: boolean }[];
}

/** A batch of messages after `after` in id order, or the given ones locked (FOR UPDATE), with their deliveries' facts. */
async function readFacts(db: Queryable, ctx: PgContext, which: { after: string | null; limit: number } | { ids: readonly string[] }): Promise<MessageFacts[]> {
  const { s } = ctx;
  const select = `SELECT m.id, m.state, EXISTS (SELECT 1 FROM ${s}.bodies b WHERE b.queue_id = m.id) AS has_body,
      (SELECT coalesce(jsonb_agg(jsonb_build_object(
         'id', d.id, 'lane', d.lane, 'state', d.state, 'has_due', d.due_at IS NOT NULL, 'leased', d.lease_owner IS NOT NULL,
         'stale_lease', coalesce(d.lease_expires_at < now() - ${msInterval(1)}, false)) ORDER BY d.id), '[]'::jsonb)
       FROM ${s}.deliveries d WHERE d.queue_id = m.id) AS deliveries
    FROM ${s}.messages m`;
  const { rows } =
    'ids' in which
      ? await db.query<FactsRow>(`${select} WHERE m.id = ANY($2::text[]) ORDER BY m.id FOR UPDATE OF m`, [STALE_LEASE_MARGIN_MS, which.ids])
      : await db.query<FactsRow>(`${select} WHERE m.id > $2 ORDER BY m.id LIMIT $3`, [STALE_LEASE_MARGIN_MS, which.after ?? '', which.limit]);
  return rows.map((r) => ({
    id: r.id,
    state: r.state,
    hasBody: r.has_body,
    deliveries: r.deliveries.map((d) => ({ id: d.id, lane: d.lane, state: d.state, hasDue: d.has_due, leased: d.leased, staleLease: d.stale_lease })),
  }));
}
