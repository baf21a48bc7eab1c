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
  return (await lockMessages(db, ctx, [queueId])).get(queueId) ?? null;
}

/**
 * Several message rows locked in id order (two writers locking overlapping sets wait on each
 * other instead of deadlocking); the ones that exist, by id.
 */
export async function lockMessages(db: Queryable, ctx: Ctx, queueIds: readonly string[]): Promise<Map<string, MessageRecord>> {
  const { rows } = await db.query<MessageRow>(`SELECT ${messageColumns(ctx.s)} FROM ${ctx.s}.messages m WHERE m.id = ANY($1::text[]) ORDER BY m.id FOR UPDATE OF m`, [[...new Set(queueIds)]]);
  return new Map(rows.map((row) => [row.id, messageFromRow(row)]));
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
  const row = (await writeMessageStates(db, ctx, [queueId], deleted)).get(queueId);
  if (!row) throw new Error(`message ${queueId} vanished inside its own transaction`);
  return row;
}

/** writeMessageState for several messages in three statements (outcome batches); the messages as written, by id. */
export async function writeMessageStates(db: Queryable, ctx: Ctx, queueIds: readonly string[], deleted = false): Promise<Map<string, MessageRecord>> {
  const ids = [...new Set(queueIds)];
  const { rows } = await db.query<{ queue_id: string; id: string; state: DeliveryRecord['state']; message_state: MessageState }>(
    `SELECT m.id AS queue_id, d.id, d.state, m.state AS message_state FROM ${ctx.s}.messages m JOIN ${ctx.s}.deliveries d ON d.queue_id = m.id WHERE m.id = ANY($1::text[])`,
    [ids],
  );
  const byMessage = new Map<string, { wasDeleted: boolean; states: Record<string, DeliveryRecord['state']> }>();
  for (const r of rows) {
    const entry = byMessage.get(r.queue_id) ?? { wasDeleted: r.message_state === 'deleted', states: {} };
    entry.states[r.id] = r.state;
    byMessage.set(r.queue_id, entry);
  }
  const states = ids.map((id): MessageState => {
    const entry = byMessage.get(id);
    return deleted || entry?.wasDeleted === true ? 'deleted' : messageStateOf(entry?.states ?? {});
  });
  const finished = states.map((state) => FINISHED_MESSAGE_STATES.has(state));
  // The finished messages' bodies go in the same statement (a CTE: one round trip).
  const updated = await db.query<MessageRow>(
    `WITH w AS (
       UPDATE ${ctx.s}.messages m SET state = u.state, finished_at = CASE WHEN u.finished THEN coalesce(m.finished_at, now()) END
       FROM unnest($1::text[], $2::text[], $3::bool[]) AS u(id, state, finished)
       WHERE m.id = u.id RETURNING ${messageColumns(ctx.s)}
     ), gone AS (
       DELETE FROM ${ctx.s}.bodies WHERE queue_id = ANY($4::text[])
     )
     SELECT * FROM w`,
    [ids, states, finished, ids.filter((_, i) => finished[i])],
  );
  return new Map(updated.rows.map((row) => [row.id, messageFromRow(row)]));
}
