/**
 * The end of an attempt (DESIGN.md "Outcome, guarded by the lease"): its outcome recorded
 * (completeAttempt) or the delivery handed back (postpone). Both lock the message row
 * first, then write the delivery only `WHERE lease_epoch = <this node's claim>`: when
 * another node claimed it since, nothing is written and the caller gets
 * ONWARD_ERR_LEASE_LOST. Both also raise the epoch, so a write repeated after its COMMIT's
 * answer was lost finds no row (LEASE_LOST: already recorded) instead of applying twice.
 * Caller-clock times become delays applied on the database's now().
 */
import type pg from 'pg';
import { RelayError } from '../../errors.js';
import { laneOf, queueIdOfDelivery } from '../ids.js';
import { afterAttempt } from '../records.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { AttemptUpdate, DeliveryRecord, MessageRecord, NewMessage } from '../types.js';
import { inTransaction, msInterval, type PgContext } from './context.js';
import { insertMessages } from './insert.js';
import { lockMessage, readDeliveries, writeMessageState } from './message-rows.js';
import { attemptColumns, attemptRowsByDelivery, deliveryColumns, deliveryFromRow, type AttemptRow, type DeliveryRow } from './rows.js';

function leaseLost(deliveryId: string): RelayError {
  return new RelayError('ONWARD_ERR_LEASE_LOST', `delivery ${deliveryId}: another node claimed it since this node's lease; its outcome is not recorded`);
}

function queueIdOf(deliveryId: string): string {
  const queueId = queueIdOfDelivery(deliveryId);
  if (queueId === null) throw new RelayError('ONWARD_ERR_NOT_FOUND', `not a delivery id: ${deliveryId}`);
  return queueId;
}

function epochOf(ctx: PgContext, deliveryId: string): number {
  const epoch = ctx.leases.get(deliveryId);
  if (epoch === undefined) throw leaseLost(deliveryId);
  return epoch;
}

/** The delivery row while this node's claim (epoch) still holds it, locked; null once the epoch moved on. */
async function leasedDelivery(db: pg.PoolClient, ctx: PgContext, deliveryId: string, epoch: number): Promise<DeliveryRecord | null> {
  const { rows } = await db.query<DeliveryRow>(`SELECT ${deliveryColumns()} FROM ${ctx.s}.deliveries d WHERE d.id = $1 AND d.lease_epoch = $2 FOR UPDATE`, [deliveryId, epoch]);
  const row = rows[0];
  if (!row) return null;
  const attempts = await db.query<AttemptRow>(`SELECT ${attemptColumns()} FROM ${ctx.s}.attempts a WHERE a.delivery_id = $1`, [deliveryId]);
  return deliveryFromRow(row, attemptRowsByDelivery(attempts.rows).get(deliveryId) ?? []);
}

export async function completeAttempt(ctx: PgContext, deliveryId: string, update: AttemptUpdate): Promise<{ message: MessageRecord; delivery: DeliveryRecord }> {
  const epoch = epochOf(ctx, deliveryId);
  const queueId = queueIdOf(deliveryId);
  let dueNow = false;
  let lane = '';
  let result: { message: MessageRecord; delivery: DeliveryRecord };
  let events: readonly NewMessage[] = [];
  try {
    result = await inTransaction(ctx, async (client) => {
      const message = await lockMessage(client, ctx, queueId);
      if (!message) throw new RelayError('ONWARD_ERR_NOT_FOUND', `delivery ${deliveryId} not found`);
      const delivery = await leasedDelivery(client, ctx, deliveryId, epoch);
      if (!delivery) throw leaseLost(deliveryId);
      lane = laneOf(delivery.targets, delivery.domain);
      const now = Date.now();
      const updated = afterAttempt(delivery, message.state === 'deleted', update, now);
      const delayMs = updated.dueAt === null ? null : updated.dueAt - now;
      dueNow = delayMs !== null && delayMs <= 0;
      await client.query(
        `UPDATE ${ctx.s}.deliveries
         SET state = $3, due_at = CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() + ${msInterval(4)} END,
             recipients = $5::jsonb, delay_warned = $6, lease_owner = NULL, lease_expires_at = NULL,
             lease_epoch = lease_epoch + 1
         WHERE id = $1 AND lease_epoch = $2`,
        [deliveryId, epoch, updated.state, delayMs === null ? null : Math.max(0, delayMs), JSON.stringify(updated.recipients), updated.delayWarned],
      );
      await appendAttempts(client, ctx, deliveryId, epoch, update);
      const messageAfter = await writeMessageState(client, ctx, queueId);
      // Events report an outcome: none when the delivery was already final (nothing changed).
      events = FINAL_DELIVERY_STATES.has(delivery.state) ? [] : (update.events ?? []);
      const written = update.dsn ? [update.dsn, ...events] : events;
      await insertMessages(client, ctx, written.map((msg) => ({ msg })));
      const deliveryAfter = (await readDeliveries(client, ctx, queueId)).find((d) => d.id === deliveryId);
      if (!deliveryAfter) throw new Error(`delivery ${deliveryId} vanished inside its own transaction`);
      return { message: messageAfter, delivery: deliveryAfter };
    });
  } catch (err) {
    if (err instanceof RelayError && err.code === 'ONWARD_ERR_LEASE_LOST') {
      ctx.leases.delete(deliveryId);
      ctx.logger?.warn({ delivery: deliveryId, epoch }, 'lease lost: another node took the delivery over; dropping this outcome');
    }
    throw err;
  }
  ctx.leases.delete(deliveryId);
  if (dueNow) ctx.due(lane);
  for (const written of update.dsn ? [update.dsn, ...events] : events) for (const d of written.deliveries) ctx.due(laneOf(d.targets, d.domain));
  return result;
}

/** The attempts as rows numbered after the delivery's last; `at` (caller clock) becomes an age on the database's clock. */
async function appendAttempts(client: pg.PoolClient, ctx: PgContext, deliveryId: string, epoch: number, update: AttemptUpdate): Promise<void> {
  if (update.attempts.length === 0) return;
  const now = Date.now();
  const a = update.attempts;
  await client.query(
    `INSERT INTO ${ctx.s}.attempts (delivery_id, n, lease_epoch, node, at, target, outcome, reply, duration_ms)
     SELECT $1, (SELECT coalesce(max(n), 0) FROM ${ctx.s}.attempts WHERE delivery_id = $1) + x.ord, $2, $3,
            now() - x.age_ms * interval '1 millisecond', x.target, x.outcome, x.reply, x.duration_ms
     FROM unnest($4::float8[], $5::text[], $6::text[], $7::text[], $8::int[]) WITH ORDINALITY AS x(age_ms, target, outcome, reply, duration_ms, ord)`,
    [
      deliveryId,
      epoch,
      ctx.nodeId,
      a.map((x) => Math.max(0, now - x.at)),
      a.map((x) => x.target),
      a.map((x) => x.outcome),
      a.map((x) => x.reply),
      a.map((x) => Math.round(x.durationMs)),
    ],
  );
}

/** Gives a claimed delivery back without counting the attempt: queued when due now, else deferred (level attempts.ts). */
export async function postpone(ctx: PgContext, deliveryId: string, dueAt: number): Promise<void> {
  const epoch = epochOf(ctx, deliveryId);
  const queueId = queueIdOf(deliveryId);
  const delayMs = dueAt - Date.now();
  let lane: string | null = null;
  try {
    await inTransaction(ctx, async (client) => {
      const message = await lockMessage(client, ctx, queueId);
      if (!message) return;
      const { rows } = await client.query<{ lane: string; state: string; due: boolean }>(
        `UPDATE ${ctx.s}.deliveries
         SET state = CASE WHEN state = 'queued' THEN (CASE WHEN $3::float8 <= 0 THEN 'queued' ELSE 'deferred' END) ELSE state END,
             due_at = CASE WHEN state IN ('queued','deferred') AND $4::boolean THEN now() + ${msInterval(3)} END,
             attempt_count = greatest(0, attempt_count - 1), lease_owner = NULL, lease_expires_at = NULL,
             lease_epoch = lease_epoch + 1
         WHERE id = $1 AND lease_epoch = $2
         RETURNING lane, state, due_at IS NOT NULL AS due`,
        [deliveryId, epoch, Math.max(0, delayMs), message.state !== 'deleted'],
      );
      const row = rows[0];
      if (!row) throw leaseLost(deliveryId);
      await writeMessageState(client, ctx, queueId);
      if (row.due && delayMs <= 0) lane = row.lane;
    });
  } catch (err) {
    // A transient failure keeps the lease: the caller retries the hand-back under it.
    if (err instanceof RelayError && err.code === 'ONWARD_ERR_LEASE_LOST') ctx.leases.delete(deliveryId);
    throw err;
  }
  ctx.leases.delete(deliveryId);
  if (lane !== null) ctx.due(lane);
}
