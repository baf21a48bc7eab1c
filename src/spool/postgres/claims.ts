/**
 * Claiming due deliveries (DESIGN.md "Claim"): one statement per lane takes up to `limit`
 * due rows (`FOR UPDATE SKIP LOCKED`: rows another node is claiming are skipped, never
 * waited for), leases them to this node with the next epoch and counts the attempt; a
 * second reads their messages, bodies and attempts. Due is judged by the database's now().
 */
import type pg from 'pg';
import type { ClaimedDelivery } from '../types.js';
import { msInterval, type PgContext } from './context.js';
import { attemptColumns, attemptRowsByDelivery, deliveryColumns, deliveryFromRow, messageColumns, messageFromRow, type AttemptRow, type DeliveryRow, type MessageRow } from './rows.js';

export async function claimDue(ctx: PgContext, lane: string, limit: number): Promise<ClaimedDelivery[]> {
  if (limit <= 0) return [];
  const { s } = ctx;
  // The message goes deferred -> queued in the same statement when a retry of one of its
  // deliveries starts (a data-modifying CTE runs even though the SELECT does not read it).
  const claimed = await ctx.pool.query<DeliveryRow>(
    `WITH picked AS (
       SELECT id FROM ${s}.deliveries
       WHERE lane = $1 AND state IN ('queued','deferred') AND lease_owner IS NULL AND due_at <= now()
       ORDER BY due_at
       LIMIT $2
       FOR UPDATE SKIP LOCKED
     ), leased AS (
       UPDATE ${s}.deliveries d
       SET state = 'queued', due_at = NULL, lease_owner = $3, lease_epoch = d.lease_epoch + 1,
           lease_expires_at = now() + ${msInterval(4)}, attempt_count = d.attempt_count + 1
       FROM picked WHERE d.id = picked.id
       RETURNING d.*
     ), requeued AS (
       UPDATE ${s}.messages m SET state = 'queued'
       WHERE m.id IN (SELECT queue_id FROM leased) AND m.state = 'deferred'
       RETURNING m.id
     )
     SELECT ${deliveryColumns('d')} FROM leased d`,
    [lane, limit, ctx.nodeId, ctx.leaseMs],
  );
  if (claimed.rows.length === 0) return [];
  const ids = claimed.rows.map((r) => r.id);
  const queueIds = [...new Set(claimed.rows.map((r) => r.queue_id))];
  let messages: pg.QueryResult<MessageRow & { body: Buffer | null }>;
  let attempts: pg.QueryResult<AttemptRow>;
  try {
    // One after the other: a claim holds one pooled connection at a time.
    messages = await ctx.pool.query<MessageRow & { body: Buffer | null }>(
      `SELECT ${messageColumns(s)}, b.body FROM ${s}.messages m LEFT JOIN ${s}.bodies b ON b.queue_id = m.id WHERE m.id = ANY($1::text[])`,
      [queueIds],
    );
    attempts = await ctx.pool.query<AttemptRow>(`SELECT ${attemptColumns()} FROM ${s}.attempts a WHERE a.delivery_id = ANY($1::text[])`, [ids]);
  } catch (err) {
    // Nobody will run these: give them back due now, uncounted, or they would sit leased
    // (and renewed) for as long as this node lives. If this fails too, takeover frees them
    // after the lease, since they never entered ctx.leases.
    await releaseUnstarted(ctx, claimed.rows).catch((releaseErr: unknown) => ctx.logger?.warn({ err: releaseErr }, 'could not give back a failed claim; takeover frees it after the lease'));
    throw err;
  }
  for (const row of claimed.rows) ctx.leases.set(row.id, Number(row.lease_epoch));
  const byQueueId = new Map(messages.rows.map((r) => [r.id, r]));
  const attemptsOf = attemptRowsByDelivery(attempts.rows);
  const result: ClaimedDelivery[] = [];
  for (const row of claimed.rows) {
    const m = byQueueId.get(row.queue_id);
    if (!m?.body) {
      // Finished or removed meanwhile (an operator delete): nothing to send; give the lease back, not due.
      ctx.logger?.warn({ delivery: row.id }, 'claimed a delivery whose message has no body; releasing it');
      await ctx.pool.query(`UPDATE ${s}.deliveries SET lease_owner = NULL, lease_expires_at = NULL, due_at = NULL WHERE id = $1 AND lease_epoch = $2`, [row.id, row.lease_epoch]);
      ctx.leases.delete(row.id);
      continue;
    }
    result.push({ delivery: deliveryFromRow(row, attemptsOf.get(row.id) ?? []), message: messageFromRow(m), body: m.body });
  }
  return result;
}

/** Claimed rows that no attempt will run: due again now, the attempt the claim counted taken back. */
async function releaseUnstarted(ctx: PgContext, rows: readonly DeliveryRow[]): Promise<void> {
  await ctx.pool.query(
    `UPDATE ${ctx.s}.deliveries d
     SET lease_owner = NULL, lease_expires_at = NULL, due_at = now(), attempt_count = greatest(d.attempt_count - 1, 0)
     FROM unnest($1::text[], $2::bigint[]) AS r(id, epoch)
     WHERE d.id = r.id AND d.lease_epoch = r.epoch AND d.lease_owner = $3`,
    [rows.map((r) => r.id), rows.map((r) => r.lease_epoch), ctx.nodeId],
  );
  for (const lane of new Set(rows.map((r) => r.lane))) ctx.due(lane);
}
