/**
 * The lease guard every end of an attempt goes through (DESIGN.md "Outcome, guarded by the
 * lease"), and postpone: a claimed delivery handed back without an outcome. Writes lock the
 * message row first, then touch the delivery only `WHERE lease_epoch = <this node's claim>`:
 * when another node claimed it since, nothing is written and the caller gets
 * ONWARD_ERR_LEASE_LOST. They also raise the epoch, so a write repeated after its COMMIT's
 * answer was lost finds no row instead of applying twice. Outcomes are written in batches
 * (outcomes.ts). Caller-clock times become delays applied on the database's now().
 */
import { RelayError } from '../../errors.js';
import { queueIdOfDelivery } from '../ids.js';
import { inTransaction, msInterval, type PgContext } from './context.js';
import { lockMessage, writeMessageState } from './message-rows.js';

export function leaseLost(deliveryId: string): RelayError {
  return new RelayError('ONWARD_ERR_LEASE_LOST', `delivery ${deliveryId}: another node claimed it since this node's lease; its outcome is not recorded`);
}

export function queueIdOf(deliveryId: string): string {
  const queueId = queueIdOfDelivery(deliveryId);
  if (queueId === null) throw new RelayError('ONWARD_ERR_NOT_FOUND', `not a delivery id: ${deliveryId}`);
  return queueId;
}

/** The epoch of this node's lease on the delivery; LEASE_LOST without a round trip when it holds none. */
export function epochOf(ctx: PgContext, deliveryId: string): number {
  const epoch = ctx.leases.get(deliveryId);
  if (epoch === undefined) throw leaseLost(deliveryId);
  return epoch;
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
