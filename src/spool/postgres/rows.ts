/**
 * Rows of schema v1 and v2 (schema-v1.ts, schema-v2.ts) as the spool's records (types.ts), and the column lists
 * that produce them. Times leave the database as epoch ms (`float8`), so records carry the
 * database's clock; `lease_epoch` (bigint) arrives as a string and becomes a number.
 */
import type { Outcome } from '../../delivery/types.js';
import { parseLane } from '../ids.js';
import type { AttemptRecord, ClientInfo, DeliveryRecord, DeliveryState, MessageRecord, MessageState, RecipientRecord } from '../types.js';

/** `timestamptz` column `c` as epoch ms, named `c_ms`. */
const ms = (c: string, table: string): string => `(extract(epoch FROM ${table}.${c}) * 1000)::float8 AS ${c}_ms`;

/**
 * The columns of a message row, `m` being the `messages` alias, plus `delivery_states` (the
 * message's deliveries and their states, which `MessageRecord.deliveries` carries).
 */
export function messageColumns(s: string, m = 'm'): string {
  return [
    `${m}.id`, `${m}.sender`, `${m}.recipients`, `${m}.message_id`, `${m}.size`, `${m}.client`, `${m}.state`,
    `${m}.dedup_key`, `${m}.bounce_of`, `${m}.event_of`, ms('received_at', m), ms('finished_at', m),
    `(SELECT coalesce(jsonb_object_agg(x.id, x.state), '{}'::jsonb) FROM ${s}.deliveries x WHERE x.queue_id = ${m}.id) AS delivery_states`,
  ].join(', ');
}

/** The columns of a delivery row, `d` being the `deliveries` alias (attempts come from their own table). */
export function deliveryColumns(d = 'd'): string {
  return [
    `${d}.id`, `${d}.queue_id`, `${d}.lane`, `${d}.targets`, `${d}.state`, ms('due_at', d), `${d}.attempt_count`,
    `${d}.lease_owner`, `${d}.lease_epoch`, ms('lease_expires_at', d), `${d}.recipients`, `${d}.delay_warned`, ms('created_at', d),
  ].join(', ');
}

/** The columns of an attempt row, `a` being the `attempts` alias. */
export function attemptColumns(a = 'a'): string {
  return [`${a}.delivery_id`, `${a}.n`, `${a}.lease_epoch`, `${a}.node`, ms('at', a), `${a}.target`, `${a}.outcome`, `${a}.reply`, `${a}.duration_ms`].join(', ');
}

export interface MessageRow {
  id: string;
  sender: string;
  recipients: string[];
  message_id: string | null;
  size: number;
  client: ClientInfo;
  state: MessageState;
  dedup_key: string | null;
  bounce_of: string | null;
  event_of: string | null;
  received_at_ms: number;
  finished_at_ms: number | null;
  delivery_states: Record<string, DeliveryState>;
}

export interface DeliveryRow {
  id: string;
  queue_id: string;
  lane: string;
  targets: string[];
  state: DeliveryState;
  due_at_ms: number | null;
  attempt_count: number;
  lease_owner: string | null;
  lease_epoch: string;
  lease_expires_at_ms: number | null;
  recipients: RecipientRecord[];
  delay_warned: boolean;
  created_at_ms: number;
}

export interface AttemptRow {
  delivery_id: string;
  n: number;
  lease_epoch: string;
  node: string;
  at_ms: number;
  target: string;
  outcome: Outcome;
  reply: string;
  duration_ms: number;
}

export function messageFromRow(row: MessageRow): MessageRecord {
  return {
    id: row.id,
    sender: row.sender,
    recipients: row.recipients,
    messageId: row.message_id,
    size: row.size,
    receivedAt: row.received_at_ms,
    client: row.client,
    state: row.state,
    deliveries: row.delivery_states,
    finishedAt: row.finished_at_ms,
    dedupKey: row.dedup_key,
    bounceOf: row.bounce_of,
    eventOf: row.event_of,
  };
}

export function attemptFromRow(row: AttemptRow): AttemptRecord {
  return { at: row.at_ms, target: row.target, outcome: row.outcome, reply: row.reply, durationMs: row.duration_ms };
}

/** `attempts` in `n` order, as `attemptRowsByDelivery` groups them. */
export function deliveryFromRow(row: DeliveryRow, attempts: readonly AttemptRow[]): DeliveryRecord {
  return {
    id: row.id,
    queueId: row.queue_id,
    targets: row.targets,
    // The domain of an mx delivery is part of its lane (no column of its own).
    domain: parseLane(row.lane).domain,
    recipients: row.recipients,
    state: row.state,
    attempts: attempts.map(attemptFromRow),
    attemptCount: row.attempt_count,
    dueAt: row.due_at_ms,
    createdAt: row.created_at_ms,
    delayWarned: row.delay_warned,
  };
}

/** Attempt rows grouped by delivery id, each group in `n` order (rows may arrive in any order). */
export function attemptRowsByDelivery(rows: readonly AttemptRow[]): Map<string, AttemptRow[]> {
  const byDelivery = new Map<string, AttemptRow[]>();
  for (const row of rows) {
    const list = byDelivery.get(row.delivery_id) ?? [];
    list.push(row);
    byDelivery.set(row.delivery_id, list);
  }
  for (const list of byDelivery.values()) list.sort((a, b) => a.n - b.n);
  return byDelivery;
}
