/**
 * New messages as rows: the message, its body and its deliveries, for any number of
 * messages in three statements (accept batches, and a DSN written in the same transaction
 * as the outcome or operator bounce that caused it). Dedup keys are the accept's business
 * (accept.ts), not this file's. Every time is the database's `now()`.
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

export async function insertMessages(db: Queryable, ctx: Pick<PgContext, 's' | 'nodeId' | 'leaseMs'>, items: readonly MessageToInsert[]): Promise<void> {
  if (items.length === 0) return;
  const { s } = ctx;
  const m = items.map(({ msg }) => msg);
  await db.query(
    `INSERT INTO ${s}.messages (id, sender, recipients, message_id, size, client, state, dedup_key, bounce_of, event_of, accepted_by)
     SELECT id, sender, (SELECT array_agg(r) FROM jsonb_array_elements_text(rcpts) AS r), message_id, size, client, 'queued', dedup_key, bounce_of, event_of, $9
     FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::int[], $6::jsonb[], $7::text[], $8::text[], $10::text[])
       AS t(id, sender, rcpts, message_id, size, client, dedup_key, bounce_of, event_of)`,
    [
      m.map((x) => x.queueId),
      m.map((x) => x.sender),
      m.map((x) => JSON.stringify(x.recipients)),
      m.map((x) => x.messageId),
      m.map((x) => x.body.length),
      m.map((x) => JSON.stringify(x.client)),
      m.map((x) => x.dedupKey),
      m.map((x) => x.bounceOf),
      ctx.nodeId,
      m.map((x) => x.eventOf ?? null),
    ],
  );
  await db.query(`INSERT INTO ${s}.bodies (queue_id, body) SELECT * FROM unnest($1::text[], $2::bytea[])`, [m.map((x) => x.queueId), m.map((x) => x.body)]);
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
  await db.query(
    `INSERT INTO ${s}.deliveries (id, queue_id, lane, targets, state, due_at, attempt_count, recipients, lease_owner, lease_epoch, lease_expires_at)
     SELECT id, queue_id, lane, (SELECT array_agg(t) FROM jsonb_array_elements_text(targets) AS t), 'queued',
            CASE WHEN mine THEN NULL ELSE now() END, CASE WHEN mine THEN 1 ELSE 0 END, recipients,
            CASE WHEN mine THEN $7 END, CASE WHEN mine THEN 1 ELSE 0 END,
            CASE WHEN mine THEN now() + $8::float8 * interval '1 millisecond' END
     FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bool[]) AS t(id, queue_id, lane, targets, recipients, mine)`,
    [rows.map((r) => r.id), rows.map((r) => r.queueId), rows.map((r) => r.lane), rows.map((r) => r.targets), rows.map((r) => r.recipients), rows.map((r) => r.mine), ctx.nodeId, ctx.leaseMs],
  );
}
