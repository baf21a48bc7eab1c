/**
 * Reading and rewriting one message with its deliveries inside a transaction: the lock
 * every read-modify-write of a message takes first (the level backend's per-message mutex;
 * one lock order, message row before delivery rows, so writers never deadlock), and the
 * message state derived again from its deliveries afterwards (state.ts's rules).
 */
import { FINISHED_MESSAGE_STATES, messageStateOf } from '../state.js';
import type { DeliveryRecord, MessageRecord, MessageState } from '../types.js';
import type { Queryable } from './connection.js';
import type { PgContext } from './context.js';
import { attemptColumns, attemptRowsByDelivery, deliveryColumns, deliveryFromRow, messageColumns, messageFromRow, type AttemptRow, type DeliveryRow, type MessageRow } from './rows.js';

type Ctx = Pick<PgContext, 's'>;

/** The message row locked for the rest of the transaction (`FOR UPDATE`), or null when there is none. */
export async function lockMessage(db: Queryable, ctx: Ctx, queueId: string): Promise<MessageRecord | null> {
  const { rows } = await db.query<MessageRow>(`SELECT ${messageColumns(ctx.s)} FROM ${ctx.s}.messages m WHERE m.id = $1 FOR UPDATE OF m`, [queueId]);
  return rows[0] ? messageFromRow(rows[0]) : null;
}

/** A message's deliveries with their attempts, in id order (`<queueId>.0`, `.1`, ...). */
export async function readDeliveries(db: Queryable, ctx: Ctx, queueId: string): Promise<DeliveryRecord[]> {
  // One after the other: `db` may be one client inside a transaction, which runs one query at a time.
  const deliveries = await db.query<DeliveryRow>(`SELECT ${deliveryColumns()} FROM ${ctx.s}.deliveries d WHERE d.queue_id = $1`, [queueId]);
  const attempts = await db.query<AttemptRow>(`SELECT ${attemptColumns()} FROM ${ctx.s}.attempts a JOIN ${ctx.s}.deliveries d ON d.id = a.delivery_id WHERE d.queue_id = $1`, [queueId]);
  const byDelivery = attemptRowsByDelivery(attempts.rows);
  return deliveries.rows
    .map((row) => deliveryFromRow(row, byDelivery.get(row.id) ?? []))
    .sort((a, b) => deliveryIndex(a.id) - deliveryIndex(b.id));
}

function deliveryIndex(id: string): number {
  return Number(id.slice(id.lastIndexOf('.') + 1));
}

/**
 * Sets the message's state from its deliveries' states as they are now in this
 * transaction (or to `deleted`, which only an operator sets and nothing undoes), stamps
 * `finished_at` once it is finished and drops the body then. Returns the message as written.
 */
export async function writeMessageState(db: Queryable, ctx: Ctx, queueId: string, deleted = false): Promise<MessageRecord> {
  const { rows } = await db.query<{ id: string; state: DeliveryRecord['state']; message_state: MessageState }>(
    `SELECT d.id, d.state, m.state AS message_state FROM ${ctx.s}.messages m JOIN ${ctx.s}.deliveries d ON d.queue_id = m.id WHERE m.id = $1`,
    [queueId],
  );
  const wasDeleted = rows[0]?.message_state === 'deleted';
  const state: MessageState = deleted || wasDeleted ? 'deleted' : messageStateOf(Object.fromEntries(rows.map((r) => [r.id, r.state])));
  const finished = FINISHED_MESSAGE_STATES.has(state);
  const updated = await db.query<MessageRow>(
    `UPDATE ${ctx.s}.messages m SET state = $2, finished_at = CASE WHEN $3 THEN coalesce(m.finished_at, now()) END
     WHERE m.id = $1 RETURNING ${messageColumns(ctx.s)}`,
    [queueId, state, finished],
  );
  if (finished) await db.query(`DELETE FROM ${ctx.s}.bodies WHERE queue_id = $1`, [queueId]);
  const row = updated.rows[0];
  if (!row) throw new Error(`message ${queueId} vanished inside its own transaction`);
  return messageFromRow(row);
}
