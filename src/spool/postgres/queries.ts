/**
 * Reads of the shared spool: records, listings, stats, due times and lanes. None of them
 * writes. Listings walk the tables by keyset in bounded batches (never the whole queue in
 * memory); times are the database's clock.
 */
import { compileFilter } from '../filter.js';
import { queueIdTime } from '../ids.js';
import { FINISHED_MESSAGE_STATES } from '../state.js';
import type { DeliveryRecord, ListFilter, MessageRecord, MessageState, SpoolStats } from '../types.js';
import type pg from 'pg';
import type { Queryable } from './connection.js';
import { msInterval, type PgContext } from './context.js';
import { attemptColumns, attemptRowsByDelivery, deliveryColumns, deliveryFromRow, messageColumns, messageFromRow, type AttemptRow, type DeliveryRow, type MessageRow } from './rows.js';

/** Messages per listing batch: one query for them, one for their deliveries, one for their attempts. */
export const LIST_BATCH = 500;

/** Deliveries waiting for an attempt, unleased: the rows of the `deliveries_due` index. */
export const WAITING = `state IN ('queued','deferred') AND lease_owner IS NULL`;

/** A delivery as stored, with whether a node holds it leased now (an attempt in flight). */
export interface StoredDelivery {
  readonly record: DeliveryRecord;
  readonly lane: string;
  readonly leaseOwner: string | null;
}

/**
 * A delivery as the level backend shows one in flight: `queued` with no due time (the
 * claim does not rewrite state or due time here; the lease is what marks it in flight).
 */
export function asSeen(d: StoredDelivery): DeliveryRecord {
  if (d.leaseOwner === null || (d.record.state !== 'queued' && d.record.state !== 'deferred')) return d.record;
  return { ...d.record, state: 'queued', dueAt: null };
}

/** The deliveries (with attempts) of the given messages, each list in index order. */
export async function deliveriesOf(db: Queryable, ctx: Pick<PgContext, 's'>, queueIds: readonly string[]): Promise<Map<string, StoredDelivery[]>> {
  const byMessage = new Map<string, StoredDelivery[]>(queueIds.map((id) => [id, []]));
  if (queueIds.length === 0) return byMessage;
  const { s } = ctx;
  // One after the other: `db` may be one client inside a transaction, which runs one query at a time.
  const deliveries = await db.query<DeliveryRow>(`SELECT ${deliveryColumns()} FROM ${s}.deliveries d WHERE d.queue_id = ANY($1::text[])`, [queueIds]);
  const attempts = await db.query<AttemptRow>(
    `SELECT ${attemptColumns()} FROM ${s}.attempts a JOIN ${s}.deliveries d ON d.id = a.delivery_id WHERE d.queue_id = ANY($1::text[])`,
    [queueIds],
  );
  const attemptsOf = attemptRowsByDelivery(attempts.rows);
  for (const row of deliveries.rows) {
    byMessage.get(row.queue_id)?.push({ record: deliveryFromRow(row, attemptsOf.get(row.id) ?? []), lane: row.lane, leaseOwner: row.lease_owner });
  }
  for (const list of byMessage.values()) list.sort((a, b) => deliveryIndex(a.record.id) - deliveryIndex(b.record.id));
  return byMessage;
}

function deliveryIndex(id: string): number {
  return Number(id.slice(id.lastIndexOf('.') + 1));
}

export async function getMessage(ctx: PgContext, queueId: string): Promise<MessageRecord | null> {
  const { rows } = await ctx.pool.query<MessageRow>(`SELECT ${messageColumns(ctx.s)} FROM ${ctx.s}.messages m WHERE m.id = $1`, [queueId]);
  return rows[0] ? messageFromRow(rows[0]) : null;
}

export async function getDeliveries(ctx: PgContext, queueId: string): Promise<DeliveryRecord[]> {
  return ((await deliveriesOf(ctx.pool, ctx, [queueId])).get(queueId) ?? []).map(asSeen);
}

/** The body while the message is unfinished; null once it is finished (or when there is none). */
export async function getBody(ctx: PgContext, queueId: string): Promise<Buffer | null> {
  const { rows } = await ctx.pool.query<{ body: Buffer }>(
    `SELECT b.body FROM ${ctx.s}.bodies b JOIN ${ctx.s}.messages m ON m.id = b.queue_id WHERE b.queue_id = $1 AND m.finished_at IS NULL`,
    [queueId],
  );
  return rows[0]?.body ?? null;
}

/**
 * The level backend's listing: states (default the unfinished ones), target, age and limit
 * filtered in SQL; the sender and recipient globs (picomatch's, as on level) in the process.
 * Arrival order: unfinished-only listings walk `messages_unfinished` by (received_at, id),
 * the database's arrival order; listings that include finished states walk the primary key
 * (queue ids sort by arrival too, by the accepting node's clock): the only index over every
 * message. Each batch resumes after the last row seen, so concurrent changes never repeat
 * or skip a message that stays in the listing.
 */
export async function* list(ctx: PgContext, filter: ListFilter, batch = LIST_BATCH): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const states = filter.states ?? ['queued', 'deferred', 'held'];
  const limit = filter.limit ?? Infinity;
  if (states.length === 0 || limit <= 0) return;
  const onlyOpen = states.every((st) => !FINISHED_MESSAGE_STATES.has(st));
  const globs = compileFilter({ sender: filter.sender, recipient: filter.recipient, messageId: filter.messageId, events: filter.events === true });
  const { s } = ctx;
  const where = [`m.state = ANY($1::text[])`];
  const params: unknown[] = [states];
  if (onlyOpen) where.push('m.finished_at IS NULL');
  // Messages, or delivery events (spool messages of their own) with `events`.
  where.push(filter.events === true ? 'm.event_of IS NOT NULL' : 'm.event_of IS NULL');
  if (filter.olderThanMs !== undefined) {
    params.push(filter.olderThanMs);
    where.push(`m.received_at <= now() - ${msInterval(params.length)}`);
  }
  if (filter.target !== undefined) {
    params.push(filter.target);
    where.push(`EXISTS (SELECT 1 FROM ${s}.deliveries t WHERE t.queue_id = m.id AND $${String(params.length)} = ANY(t.targets))`);
  }
  // The keyset cursor leaves as exact text (microseconds; an epoch-ms float would round them).
  const cursorAt = `to_char(m.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`;
  const order = onlyOpen ? 'm.received_at, m.id' : 'm.id';
  const n = params.length;
  const after = onlyOpen ? `(m.received_at, m.id) > ($${String(n + 1)}::timestamptz, $${String(n + 2)})` : `m.id > $${String(n + 1)}`;
  const sql = (first: boolean): string =>
    `SELECT ${messageColumns(s)}, ${cursorAt} FROM ${s}.messages m
     WHERE ${[...where, ...(first ? [] : [after])].join(' AND ')} ORDER BY ${order} LIMIT ${String(batch)}`;
  let cursor: { at: string; id: string } | null = filter.after === undefined ? null : await cursorOf(ctx, filter.after);
  let count = 0;
  for (;;) {
    const keyset: unknown[] = cursor === null ? [] : onlyOpen ? [cursor.at, cursor.id] : [cursor.id];
    const result: pg.QueryResult<MessageRow & { cursor_at: string }> = await ctx.pool.query(sql(cursor === null), [...params, ...keyset]);
    const rows = result.rows;
    const last = rows[rows.length - 1];
    if (!last) return;
    cursor = { at: last.cursor_at, id: last.id };
    const messages = rows.map(messageFromRow).filter((m) => globs(m, [], 0));
    const deliveries = await deliveriesOf(ctx.pool, ctx, messages.map((m) => m.id));
    for (const message of messages) {
      yield { message, deliveries: (deliveries.get(message.id) ?? []).map(asSeen) };
      count += 1;
      if (count >= limit) return;
    }
    if (rows.length < batch) return;
  }
}

/**
 * The keyset position of a queue id given as `after`: its row's received_at, or, when the row is
 * gone (swept, transferred), the arrival time its id encodes (ids.ts) — the page still resumes there.
 */
async function cursorOf(ctx: PgContext, queueId: string): Promise<{ at: string; id: string }> {
  const { rows } = await ctx.pool.query<{ at: string }>(
    `SELECT to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at FROM ${ctx.s}.messages WHERE id = $1`,
    [queueId],
  );
  return { at: rows[0]?.at ?? new Date(queueIdTime(queueId)).toISOString(), id: queueId };
}

const ZERO_STATES = (): Record<MessageState, number> => ({ queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 });

/** Messages by state, finished ones not yet swept included (as the level counters count them); delivery events apart. */
export async function countsByKind(ctx: PgContext): Promise<{ states: Record<MessageState, number>; events: Record<MessageState, number> }> {
  const { rows } = await ctx.pool.query<{ state: MessageState; event: boolean; n: number }>(
    `SELECT state, event_of IS NOT NULL AS event, count(*)::int AS n FROM ${ctx.s}.messages GROUP BY 1, 2`,
  );
  const states = ZERO_STATES();
  const events = ZERO_STATES();
  for (const r of rows) (r.event ? events : states)[r.state] = r.n;
  return { states, events };
}

/** Messages by state (delivery events not included). */
export async function countsByState(ctx: PgContext): Promise<Record<MessageState, number>> {
  return (await countsByKind(ctx)).states;
}

/**
 * `spool stats` as the level backend computes it. Per target: waiting deliveries of
 * unfinished messages by their first target, one in flight (leased) counting as queued as
 * on level. `spoolBytes` is what the spool's tables occupy on the server:
 * `pg_total_relation_size` (heap, TOAST, indexes) summed over the schema's tables, the
 * counterpart of the level directory's size (dead rows not yet vacuumed included, as
 * uncompacted files are there).
 */
export async function stats(ctx: PgContext): Promise<SpoolStats> {
  const { s } = ctx;
  const [counts, targets, oldest, bytes] = await Promise.all([
    countsByKind(ctx),
    ctx.pool.query<{ target: string | null; state: 'queued' | 'deferred'; n: number }>(
      `SELECT d.targets[1] AS target, CASE WHEN d.lease_owner IS NULL THEN d.state ELSE 'queued' END AS state, count(*)::int AS n
       FROM ${s}.deliveries d JOIN ${s}.messages m ON m.id = d.queue_id
       WHERE d.state IN ('queued','deferred') AND m.finished_at IS NULL GROUP BY 1, 2`,
    ),
    ctx.pool.query<{ at_ms: number }>(
      `SELECT (extract(epoch FROM m.received_at) * 1000)::float8 AS at_ms FROM ${s}.messages m
       WHERE m.finished_at IS NULL AND m.state IN ('queued','deferred') ORDER BY m.received_at, m.id LIMIT 1`,
    ),
    ctx.pool.query<{ bytes: string | null }>(
      `SELECT sum(pg_total_relation_size(c.oid))::text AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [ctx.schemaName],
    ),
  ]);
  const byTarget: SpoolStats['targets'] = {};
  for (const r of targets.rows) (byTarget[r.target ?? ''] ??= { queued: 0, deferred: 0 })[r.state] += r.n;
  return { ...counts, targets: byTarget, oldestQueuedAt: oldest.rows[0]?.at_ms ?? null, spoolBytes: Number(bytes.rows[0]?.bytes ?? 0) };
}

/** Messages not finished, counted in the database (index-only on messages_unfinished). */
export async function countUnfinished(ctx: PgContext): Promise<number> {
  const { rows } = await ctx.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ctx.s}.messages WHERE finished_at IS NULL`);
  return rows[0]?.n ?? 0;
}

/** Milliseconds from the database's now until the lane's earliest due delivery (<= 0: due), or null when none waits. */
export async function nextDueIn(ctx: PgContext, lane: string): Promise<number | null> {
  const { rows } = await ctx.pool.query<{ in_ms: number | null }>(
    `SELECT (extract(epoch FROM min(due_at) - now()) * 1000)::float8 AS in_ms FROM ${ctx.s}.deliveries WHERE lane = $1 AND ${WAITING}`,
    [lane],
  );
  return rows[0]?.in_ms ?? null;
}

/** Lanes with waiting deliveries: a skip scan of `deliveries_due`, one index probe per lane, never a walk over the rows. */
export async function lanes(ctx: PgContext): Promise<string[]> {
  const { s } = ctx;
  const next = (after: string): string =>
    `SELECT lane FROM ${s}.deliveries WHERE ${WAITING} AND due_at IS NOT NULL${after} ORDER BY lane LIMIT 1`;
  const { rows } = await ctx.pool.query<{ lane: string }>(
    `WITH RECURSIVE found(lane) AS (
       (${next('')})
       UNION ALL
       SELECT (${next(' AND lane > found.lane')}) FROM found WHERE found.lane IS NOT NULL
     ) SELECT lane FROM found WHERE lane IS NOT NULL`,
  );
  return rows.map((r) => r.lane);
}
