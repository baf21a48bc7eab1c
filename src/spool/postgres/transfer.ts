/**
 * `spool transfer` on the PostgreSQL spool (SPEC 9): export every unfinished message with all
 * of it, import one as it was (one transaction), forget one as if it had never been here.
 * An item's times are another backend's clock: each becomes a delay from this process's
 * `Date.now()` applied to the database's `now()`, as every caller time is (types.ts).
 */
import { laneOf } from '../ids.js';
import { unchangedSinceExport } from '../transfer.js';
import type { DeliveryRecord, ForgetResult, TransferItem } from '../types.js';
import { inTransaction, msInterval, type PgContext } from './context.js';
import { lockMessage, readDeliveries } from './message-rows.js';
import {
  attemptColumns,
  attemptRowsByDelivery,
  deliveryColumns,
  deliveryFromRow,
  messageColumns,
  messageFromRow,
  type AttemptRow,
  type DeliveryRow,
  type MessageRow,
} from './rows.js';

type Ctx = Pick<PgContext, 'pool' | 's' | 'nodeId' | 'due'>;

/** Messages read per round trip while exporting. */
const EXPORT_PAGE = 100;

/** A lease that a node holds now (not one left behind by a node that died). */
const liveLease = (d: string): string => `(${d}.lease_owner IS NOT NULL AND ${d}.lease_expires_at > now())`;

function waiting(d: DeliveryRecord): boolean {
  return d.state === 'queued' || d.state === 'deferred';
}

/** Unfinished messages in queue-id (arrival) order, a page at a time, each read whole. */
export async function* exportUnfinished(ctx: Ctx): AsyncIterable<TransferItem> {
  const { s } = ctx;
  for (let after = ''; ; ) {
    const page = await ctx.pool.query<MessageRow>(
      `SELECT ${messageColumns(s)} FROM ${s}.messages m WHERE m.finished_at IS NULL AND m.id > $1 ORDER BY m.id LIMIT $2`,
      [after, EXPORT_PAGE],
    );
    if (page.rows.length === 0) return;
    const messages = page.rows.map(messageFromRow);
    const ids = messages.map((m) => m.id);
    const [deliveries, attempts, bodies, dedup] = await Promise.all([
      ctx.pool.query<DeliveryRow & { in_flight: boolean }>(
        `SELECT ${deliveryColumns()}, ${liveLease('d')} AS in_flight FROM ${s}.deliveries d WHERE d.queue_id = ANY($1)`,
        [ids],
      ),
      ctx.pool.query<AttemptRow>(`SELECT ${attemptColumns()} FROM ${s}.attempts a JOIN ${s}.deliveries d ON d.id = a.delivery_id WHERE d.queue_id = ANY($1)`, [ids]),
      ctx.pool.query<{ queue_id: string; body: Buffer }>(`SELECT queue_id, body FROM ${s}.bodies WHERE queue_id = ANY($1)`, [ids]),
      ctx.pool.query<{ key: string; queue_id: string; expires_at_ms: number }>(
        `SELECT key, queue_id, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at_ms
         FROM ${s}.dedup_keys WHERE key = ANY($1) AND expires_at > now()`,
        [messages.flatMap((m) => (m.dedupKey ? [m.dedupKey] : []))],
      ),
    ]);
    const attemptsOf = attemptRowsByDelivery(attempts.rows);
    const bodyOf = new Map(bodies.rows.map((r) => [r.queue_id, r.body]));
    const dedupOf = new Map(dedup.rows.map((r) => [r.key, r]));
    for (const message of messages) {
      const rows = deliveries.rows.filter((r) => r.queue_id === message.id).sort((a, b) => indexOf(a.id) - indexOf(b.id));
      const entry = message.dedupKey ? dedupOf.get(message.dedupKey) : undefined;
      yield {
        message,
        deliveries: rows.map((r) => deliveryFromRow(r, attemptsOf.get(r.id) ?? [])),
        body: bodyOf.get(message.id) ?? Buffer.alloc(0),
        dedup: entry?.queue_id === message.id ? { key: entry.key, expiresAt: entry.expires_at_ms } : null,
        inFlight: rows.some((r) => r.in_flight),
      };
    }
    after = ids[ids.length - 1] ?? after;
  }
}

function indexOf(deliveryId: string): number {
  return Number(deliveryId.slice(deliveryId.lastIndexOf('.') + 1));
}

/** One transaction: the message row, its body, deliveries, attempts and dedup key; `present` when the id is taken. */
export async function importMessage(ctx: Ctx, item: TransferItem): Promise<'imported' | 'present'> {
  const { s } = ctx;
  const { message } = item;
  const clock = Date.now();
  const delay = (at: number | null): number | null => (at === null ? null : at - clock);
  const deliveries = item.deliveries.map((d) => ({ ...d, dueAt: waiting(d) && d.dueAt === null ? clock : d.dueAt }));
  const imported = await inTransaction(ctx, async (db) => {
    const inserted = await db.query(
      `INSERT INTO ${s}.messages (id, sender, recipients, message_id, size, client, state, dedup_key, bounce_of, accepted_by, received_at, finished_at, event_of)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + ${msInterval(11)}, now() + ${msInterval(12)}, $13)
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      [
        message.id, message.sender, message.recipients, message.messageId, message.size, JSON.stringify(message.client), message.state,
        message.dedupKey, message.bounceOf, ctx.nodeId, delay(message.receivedAt), delay(message.finishedAt), message.eventOf ?? null,
      ],
    );
    if (inserted.rowCount === 0) return false;
    await db.query(`INSERT INTO ${s}.bodies (queue_id, body) VALUES ($1, $2)`, [message.id, item.body]);
    await db.query(
      `INSERT INTO ${s}.deliveries (id, queue_id, lane, targets, state, due_at, attempt_count, recipients, delay_warned, created_at)
       SELECT id, $1, lane, (SELECT array_agg(t) FROM jsonb_array_elements_text(targets) AS t), state,
              now() + due_delay * interval '1 millisecond', attempt_count, recipients, delay_warned, now() + created_delay * interval '1 millisecond'
       FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::text[], $6::float8[], $7::int[], $8::jsonb[], $9::bool[], $10::float8[])
         AS t(id, lane, targets, state, due_delay, attempt_count, recipients, delay_warned, created_delay)`,
      [
        message.id,
        deliveries.map((d) => d.id),
        deliveries.map((d) => laneOf(d.targets, d.domain)),
        deliveries.map((d) => JSON.stringify(d.targets)),
        deliveries.map((d) => d.state),
        deliveries.map((d) => delay(d.dueAt)),
        deliveries.map((d) => d.attemptCount),
        deliveries.map((d) => JSON.stringify(d.recipients)),
        deliveries.map((d) => d.delayWarned),
        deliveries.map((d) => delay(d.createdAt)),
      ],
    );
    const attempts = deliveries.flatMap((d) => d.attempts.map((a, i) => ({ deliveryId: d.id, n: i + 1, ...a })));
    await db.query(
      `INSERT INTO ${s}.attempts (delivery_id, n, lease_epoch, node, at, target, outcome, reply, duration_ms)
       SELECT delivery_id, n, 0, $1, now() + at_delay * interval '1 millisecond', target, outcome, reply, duration_ms
       FROM unnest($2::text[], $3::int[], $4::float8[], $5::text[], $6::text[], $7::text[], $8::int[])
         AS t(delivery_id, n, at_delay, target, outcome, reply, duration_ms)`,
      [
        ctx.nodeId,
        attempts.map((a) => a.deliveryId),
        attempts.map((a) => a.n),
        attempts.map((a) => a.at - clock),
        attempts.map((a) => a.target),
        attempts.map((a) => a.outcome),
        attempts.map((a) => a.reply),
        attempts.map((a) => Math.round(a.durationMs)),
      ],
    );
    if (item.dedup) {
      // A live key of another message wins (it was accepted here first); an expired one is replaced.
      const kept = await db.query(
        `INSERT INTO ${s}.dedup_keys (key, queue_id, expires_at) VALUES ($1, $2, now() + ${msInterval(3)})
         ON CONFLICT (key) DO UPDATE SET queue_id = EXCLUDED.queue_id, expires_at = EXCLUDED.expires_at WHERE ${s}.dedup_keys.expires_at <= now()
         RETURNING key`,
        [item.dedup.key, message.id, item.dedup.expiresAt - clock],
      );
      if (kept.rowCount === 0) await db.query(`UPDATE ${s}.messages SET dedup_key = NULL WHERE id = $1`, [message.id]);
    } else if (message.dedupKey) {
      await db.query(`UPDATE ${s}.messages SET dedup_key = NULL WHERE id = $1`, [message.id]);
    }
    return true;
  });
  if (!imported) return 'present';
  for (const lane of new Set(deliveries.filter((d) => waiting(d) && d.dueAt !== null && d.dueAt <= clock).map((d) => laneOf(d.targets, d.domain)))) ctx.due(lane);
  return 'imported';
}

/** Deletes the message (deliveries, attempts and body cascade) and its dedup key when that points at it. */
export async function forget(ctx: Ctx, queueId: string, asExported?: TransferItem): Promise<ForgetResult> {
  const { s } = ctx;
  return inTransaction(ctx, async (db) => {
    const message = await lockMessage(db, ctx, queueId);
    if (!message) return 'absent';
    if (asExported) {
      // Lock the delivery rows too: a claim locks only those (and skips locked ones), so
      // without this a node could claim one between the check and the DELETE and deliver
      // from the source while the target delivers the copy. Any lease at all, even an
      // expired one nobody has taken over, means an attempt may be running.
      const leased = await db.query<{ leased: boolean }>(`SELECT lease_owner IS NOT NULL AS leased FROM ${s}.deliveries WHERE queue_id = $1 FOR UPDATE`, [queueId]);
      const deliveries = await readDeliveries(db, ctx, queueId);
      if (leased.rows.some((r) => r.leased) || !unchangedSinceExport(asExported, message, deliveries)) return 'changed';
    }
    if (message.dedupKey) await db.query(`DELETE FROM ${s}.dedup_keys WHERE key = $1 AND queue_id = $2`, [message.dedupKey, queueId]);
    await db.query(`DELETE FROM ${s}.messages WHERE id = $1`, [queueId]);
    return 'forgotten';
  });
}
