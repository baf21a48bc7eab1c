/**
 * Operator actions on one message of the shared spool: retry, hold, release, delete (act)
 * and bounce (giveUp), with the level backend's rules (records.ts). Each is one transaction
 * that locks the message row first (the lock order every writer keeps); a delivery leased
 * by a node is treated as level treats one in flight (retry leaves it to its holder, whose
 * outcome is guarded by the lease epoch).
 */
import type pg from 'pg';
import type { Reply } from '../../delivery/types.js';
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { afterAction, giveUpParts, isFinished } from '../records.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { AdminAction, GiveUpReporter, GivenUpDelivery, MessageRecord, RecipientRecord } from '../types.js';
import { inTransaction, type PgContext } from './context.js';
import { insertMessages } from './insert.js';
import { lockMessage, writeMessageState } from './message-rows.js';
import { asSeen, deliveriesOf, type StoredDelivery } from './queries.js';


export async function act(ctx: PgContext, queueId: string, action: AdminAction): Promise<MessageRecord> {
  const { message, dueLanes } = await inTransaction(ctx, async (db) => {
    const locked = await lockMessage(db, ctx, queueId);
    if (!locked) throw notFound(queueId);
    if (isFinished(locked)) return { message: locked, dueLanes: [] };
    const dueLanes = new Set<string>();
    for (const stored of await deliveriesOfMessage(db, ctx, queueId)) {
      const d = stored.record;
      if (FINAL_DELIVERY_STATES.has(d.state)) continue;
      // `now` only marks "due" here: the row gets the database's now() instead.
      const next = afterAction(action, asSeen(stored), 0);
      if (!next) continue;
      const dueNow = next.dueAt !== null;
      await db.query(
        `UPDATE ${ctx.s}.deliveries SET state = $2, recipients = $3::jsonb, due_at = CASE WHEN $4 THEN now() END WHERE id = $1`,
        // Delete keeps the delivery's own state (the message says deleted); an in-flight one is not rewritten as queued.
        [d.id, action === 'delete' ? d.state : next.state, JSON.stringify(next.recipients), dueNow],
      );
      if (dueNow && stored.leaseOwner === null) dueLanes.add(stored.lane);
    }
    return { message: await writeMessageState(db, ctx, queueId, action === 'delete'), dueLanes: [...dueLanes] };
  });
  for (const lane of dueLanes) ctx.due(lane);
  return message;
}

export async function giveUp(ctx: PgContext, queueId: string, reason: Reply, report: GiveUpReporter): Promise<MessageRecord> {
  const { message, written } = await inTransaction(ctx, async (db) => {
    const locked = await lockMessage(db, ctx, queueId);
    if (!locked) throw notFound(queueId);
    if (isFinished(locked)) return { message: locked, written: [] };
    const failed: RecipientRecord[] = [];
    const given: GivenUpDelivery[] = [];
    for (const stored of await deliveriesOfMessage(db, ctx, queueId)) {
      const d = stored.record;
      if (FINAL_DELIVERY_STATES.has(d.state)) continue;
      const failedHere: RecipientRecord[] = [];
      const recipients = d.recipients.map((r): RecipientRecord => {
        if (r.state === 'delivered' || r.state === 'failed') return r;
        const next: RecipientRecord = { ...r, state: 'failed', lastReply: reason, lastError: reason.text, reported: true };
        failedHere.push({ ...next, lastReply: r.lastReply ?? reason });
        return next;
      });
      failed.push(...failedHere);
      if (failedHere.length > 0) given.push({ delivery: asSeen(stored), failed: failedHere });
      // A lease stays with its holder: its outcome, when it comes, is only recorded (afterAttempt keeps final deliveries final).
      await db.query(`UPDATE ${ctx.s}.deliveries SET state = 'failed', recipients = $2::jsonb, due_at = NULL WHERE id = $1`, [d.id, JSON.stringify(recipients)]);
    }
    // The body is read before writeMessageState drops it: the DSN may quote it.
    const { dsn, events } = giveUpParts(failed.length > 0 ? await report(locked, failed, await bodyOf(db, ctx, queueId), given) : null);
    const message = await writeMessageState(db, ctx, queueId);
    const written = dsn ? [dsn, ...events] : [...events];
    await insertMessages(db, ctx, written.map((msg) => ({ msg })));
    return { message, written };
  });
  for (const m of written) for (const d of m.deliveries) ctx.due(laneOf(d.targets, d.domain));
  return message;
}

async function deliveriesOfMessage(db: pg.PoolClient, ctx: PgContext, queueId: string): Promise<StoredDelivery[]> {
  return (await deliveriesOf(db, ctx, [queueId])).get(queueId) ?? [];
}

async function bodyOf(db: pg.PoolClient, ctx: PgContext, queueId: string): Promise<Buffer | null> {
  const { rows } = await db.query<{ body: Buffer }>(`SELECT body FROM ${ctx.s}.bodies WHERE queue_id = $1`, [queueId]);
  return rows[0]?.body ?? null;
}

function notFound(queueId: string): RelayError {
  return new RelayError('ONWARD_ERR_NOT_FOUND', `no message with id ${queueId}`);
}
