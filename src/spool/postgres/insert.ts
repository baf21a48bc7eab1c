/**
 * New messages as rows: the message, its body and its deliveries, for any number of
 * messages in one statement (data-modifying CTEs: one round trip). Used by accept batches
 * (accept.ts puts its dedup-key CTE in front and keeps only the winners) and for a DSN or
 * delivery event written in the same transaction as the outcome or operator bounce that
 * caused it. Every time is the database's `now()`.
 */
import { deliveryId, laneOf } from '../ids.js';
import type { NewMessage } from '../types.js';
import type { Queryable } from './connection.js';
import type { PgContext } from './context.js';

export interface MessageToInsert {
  readonly msg: NewMessage;
  /**
   * Per delivery (index order): written leased to this node, its first attempt counted, to
   * be started after the COMMIT (DispatchSlot); the others are written due now.
   */
  readonly leased?: readonly boolean[];
}

/** Collects bind parameters: `p(value)` answers its placeholder (`$n`). */
export class Params {
  readonly values: unknown[] = [];

  p(value: unknown): string {
    this.values.push(value);
    return `$${String(this.values.length)}`;
  }
}

/**
 * The CTEs `m`, `b` and `dl` that insert the messages, bodies and deliveries of `items`.
 * `keep` is an SQL condition on `t.dedup_key` deciding which messages are written (accept:
 * the dedup keys this statement won); bodies and deliveries follow what `m` wrote.
 */
export function insertCtes(ctx: Pick<PgContext, 's' | 'nodeId' | 'leaseMs'>, items: readonly MessageToInsert[], params: Params, keep = 'true'): string {
  const { s } = ctx;
  const m = items.map(({ msg }) => msg);
  const p = (v: unknown): string => params.p(v);
  const rows = items.flatMap(({ msg, leased }) =>
    msg.deliveries.map((d, i) => ({
      id: deliveryId(msg.queueId, i),
      queueId: msg.queueId,
      lane: laneOf(d.targets, d.domain),
      targets: JSON.stringify(d.targets),
      recipients: JSON.stringify(d.recipients.map((address) => ({ address, state: 'queued', lastError: null, lastReply: null, reported: false }))),
      mine: leased?.[i] === true,
    })),
  );
  const node = p(ctx.nodeId);
  return `m AS (
    INSERT INTO ${s}.messages (id, sender, recipients, message_id, size, client, state, dedup_key, bounce_of, event_of, accepted_by)
    SELECT id, sender, (SELECT array_agg(r) FROM jsonb_array_elements_text(rcpts) AS r), message_id, size, client, 'queued', dedup_key, bounce_of, event_of, ${node}
    FROM unnest(${p(m.map((x) => x.queueId))}::text[], ${p(m.map((x) => x.sender))}::text[], ${p(m.map((x) => JSON.stringify(x.recipients)))}::jsonb[],
                ${p(m.map((x) => x.messageId))}::text[], ${p(m.map((x) => x.body.length))}::int[], ${p(m.map((x) => JSON.stringify(x.client)))}::jsonb[],
                ${p(m.map((x) => x.dedupKey))}::text[], ${p(m.map((x) => x.bounceOf))}::text[], ${p(m.map((x) => x.eventOf ?? null))}::text[])
      AS t(id, sender, rcpts, message_id, size, client, dedup_key, bounce_of, event_of)
    WHERE ${keep}
    RETURNING id
  ), b AS (
    INSERT INTO ${s}.bodies (queue_id, body)
    SELECT x.queue_id, x.body FROM unnest(${p(m.map((x) => x.queueId))}::text[], ${p(m.map((x) => x.body))}::bytea[]) AS x(queue_id, body)
    WHERE x.queue_id IN (SELECT id FROM m)
  ), dl AS (
    INSERT INTO ${s}.deliveries (id, queue_id, lane, targets, state, due_at, attempt_count, recipients, lease_owner, lease_epoch, lease_expires_at)
    SELECT id, queue_id, lane, (SELECT array_agg(x) FROM jsonb_array_elements_text(targets) AS x), 'queued',
           CASE WHEN mine THEN NULL ELSE now() END, CASE WHEN mine THEN 1 ELSE 0 END, recipients,
           CASE WHEN mine THEN ${node} END, CASE WHEN mine THEN 1 ELSE 0 END,
           CASE WHEN mine THEN now() + ${p(ctx.leaseMs)}::float8 * interval '1 millisecond' END
    FROM unnest(${p(rows.map((r) => r.id))}::text[], ${p(rows.map((r) => r.queueId))}::text[], ${p(rows.map((r) => r.lane))}::text[],
                ${p(rows.map((r) => r.targets))}::jsonb[], ${p(rows.map((r) => r.recipients))}::jsonb[], ${p(rows.map((r) => r.mine))}::bool[])
      AS t(id, queue_id, lane, targets, recipients, mine)
    WHERE t.queue_id IN (SELECT id FROM m)
  )`;
}

/** Writes the messages (no dedup keys: those are the accept's business) in one statement. */
export async function insertMessages(db: Queryable, ctx: Pick<PgContext, 's' | 'nodeId' | 'leaseMs'>, items: readonly MessageToInsert[]): Promise<void> {
  if (items.length === 0) return;
  const params = new Params();
  await db.query(`WITH ${insertCtes(ctx, items, params)} SELECT 1`, params.values);
}
