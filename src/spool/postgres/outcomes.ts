/**
 * Recording attempt outcomes with group commit (DESIGN.md "Outcome, guarded by the lease",
 * "Outcome batches"): outcomes that arrive while a transaction is in flight go into the
 * next one, written with one statement per step for the whole batch. Each outcome is
 * guarded by its lease epoch as before: one whose epoch moved on is left out of the writes
 * and answered ONWARD_ERR_LEASE_LOST, the others are written. A batch that fails is tried
 * again one outcome per transaction, so one bad outcome cannot fail the others with it.
 */
import type pg from 'pg';
import { RelayError } from '../../errors.js';
import { laneOf } from '../ids.js';
import { afterAttempt } from '../records.js';
import { FINAL_DELIVERY_STATES } from '../state.js';
import type { AttemptUpdate, DeliveryRecord, MessageRecord, NewMessage } from '../types.js';
import { epochOf, leaseLost, queueIdOf } from './attempts.js';
import { BatchQueue } from './batch-queue.js';
import { inTransaction, type PgContext } from './context.js';
import { insertMessages } from './insert.js';
import { lockMessages, writeMessageStates } from './message-rows.js';
import { attemptColumns, attemptRowsByDelivery, deliveryColumns, deliveryFromRow, type AttemptRow, type DeliveryRow } from './rows.js';

/** Bounds one transaction (the attempts and DSNs of a burst of outcomes). */
const MAX_BATCH_OUTCOMES = 200;

export type Recorded = { message: MessageRecord; delivery: DeliveryRecord };

interface Pending {
  readonly deliveryId: string;
  readonly queueId: string;
  readonly epoch: number;
  readonly update: AttemptUpdate;
  resolve(result: Recorded): void;
  reject(err: unknown): void;
}

export interface OutcomeBatcherOptions {
  /** Off: one outcome per transaction (only to measure what grouping buys). */
  readonly groupCommit: boolean;
  /**
   * Commit batches that write no new message (no DSN, no event) without waiting for the WAL
   * flush (`SET LOCAL synchronous_commit = off`; DESIGN.md says why that loses nothing).
   */
  readonly asyncCommit: boolean;
  /** Runs a database call, tracking availability. */
  readonly track: <T>(fn: () => Promise<T>) => Promise<T>;
}

export class OutcomeBatcher {
  private readonly batches = new BatchQueue<Pending>(
    (queue) => queue.splice(0, this.options.groupCommit ? MAX_BATCH_OUTCOMES : 1),
    (batch) => this.write(batch),
  );

  constructor(
    private readonly ctx: PgContext,
    private readonly options: OutcomeBatcherOptions,
  ) {}

  complete(deliveryId: string, update: AttemptUpdate): Promise<Recorded> {
    try {
      const epoch = epochOf(this.ctx, deliveryId);
      const queueId = queueIdOf(deliveryId);
      return new Promise<Recorded>((resolve, reject) => {
        this.batches.push({ deliveryId, queueId, epoch, update, resolve, reject });
      });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Resolves once everything queued so far is written (or failed). */
  drain(): Promise<void> {
    return this.batches.drain();
  }

  private async write(batch: readonly Pending[]): Promise<void> {
    try {
      await this.writeOnce(batch);
    } catch (err) {
      if (batch.length === 1) {
        batch[0]?.reject(err);
        return;
      }
      // One at a time: an outage fails each quickly; one outcome the database refuses fails alone.
      for (const p of batch) await this.writeOnce([p]).catch((e: unknown) => p.reject(e));
    }
  }

  private async writeOnce(batch: readonly Pending[]): Promise<void> {
    const sync = !this.options.asyncCommit || batch.some((p) => p.update.dsn !== undefined || (p.update.events?.length ?? 0) > 0);
    const begin = sync ? 'BEGIN' : 'BEGIN; SET LOCAL synchronous_commit = off';
    const results = await this.options.track(() => inTransaction(this.ctx, (client) => writeOutcomes(client, this.ctx, batch), begin));
    batch.forEach((p, i) => {
      const r = results[i] as WriteResult;
      if ('error' in r) {
        if (r.error.code === 'ONWARD_ERR_LEASE_LOST') {
          this.ctx.leases.delete(p.deliveryId);
          this.ctx.logger?.warn({ delivery: p.deliveryId, epoch: p.epoch }, 'lease lost: another node took the delivery over; dropping this outcome');
        }
        p.reject(r.error);
        return;
      }
      this.ctx.leases.delete(p.deliveryId);
      if (r.dueNow) this.ctx.due(r.lane);
      for (const written of r.written) for (const d of written.deliveries) this.ctx.due(laneOf(d.targets, d.domain));
      p.resolve(r.recorded);
    });
  }
}

type WriteResult = { error: RelayError } | { recorded: Recorded; dueNow: boolean; lane: string; written: readonly NewMessage[] };

interface Planned {
  readonly p: Pending;
  readonly index: number;
  readonly before: DeliveryRecord;
  readonly updated: DeliveryRecord;
  /** Until the delivery is due again (null: not due); due now when ≤ 0. */
  readonly delayMs: number | null;
  readonly lane: string;
  readonly written: readonly NewMessage[];
}

/**
 * The batch in one transaction: messages locked (id order), then the guarded deliveries
 * (`lease_epoch` = this node's claim) with their attempts; new states computed here
 * (records.ts's afterAttempt); then one UPDATE of the deliveries, one INSERT of the
 * attempts, the messages' states, and the DSNs and events of all outcomes together.
 */
async function writeOutcomes(client: pg.PoolClient, ctx: PgContext, batch: readonly Pending[]): Promise<WriteResult[]> {
  const { s } = ctx;
  const results: (WriteResult | null)[] = batch.map(() => null);
  const messages = await lockMessages(client, ctx, batch.map((p) => p.queueId));
  const ids = batch.map((p) => p.deliveryId);
  const epochs = batch.map((p) => String(p.epoch));
  const guarded = await client.query<DeliveryRow>(
    `SELECT ${deliveryColumns()} FROM ${s}.deliveries d JOIN unnest($1::text[], $2::bigint[]) AS h(id, epoch) ON d.id = h.id AND d.lease_epoch = h.epoch
     ORDER BY d.id FOR UPDATE OF d`,
    [ids, epochs],
  );
  const held = new Map(guarded.rows.map((r) => [r.id, r]));
  const attemptRows = held.size === 0 ? [] : (await client.query<AttemptRow>(`SELECT ${attemptColumns()} FROM ${s}.attempts a WHERE a.delivery_id = ANY($1::text[])`, [[...held.keys()]])).rows;
  const attemptsOf = attemptRowsByDelivery(attemptRows);
  const now = Date.now();
  const planned: Planned[] = [];
  const seen = new Set<string>();
  batch.forEach((p, index) => {
    const message = messages.get(p.queueId);
    const row = held.get(p.deliveryId);
    if (!message) results[index] = { error: new RelayError('ONWARD_ERR_NOT_FOUND', `delivery ${p.deliveryId} not found`) };
    // The same delivery twice in a batch (a repeated write): the second finds the epoch moved on.
    else if (!row || seen.has(p.deliveryId)) results[index] = { error: leaseLost(p.deliveryId) };
    else {
      seen.add(p.deliveryId);
      const before = deliveryFromRow(row, attemptsOf.get(p.deliveryId) ?? []);
      const updated = afterAttempt(before, message.state === 'deleted', p.update, now);
      // Events report an outcome: none when the delivery was already final (nothing changed).
      const events = FINAL_DELIVERY_STATES.has(before.state) ? [] : (p.update.events ?? []);
      const written = p.update.dsn ? [p.update.dsn, ...events] : events;
      planned.push({ p, index, before, updated, delayMs: updated.dueAt === null ? null : updated.dueAt - now, lane: laneOf(before.targets, before.domain), written });
    }
  });
  if (planned.length === 0) return results as WriteResult[];
  const after = await client.query<DeliveryRow>(
    `UPDATE ${s}.deliveries d
     SET state = u.state, due_at = CASE WHEN u.delay_ms IS NULL THEN NULL ELSE now() + u.delay_ms * interval '1 millisecond' END,
         recipients = u.recipients, delay_warned = u.delay_warned, lease_owner = NULL, lease_expires_at = NULL,
         lease_epoch = d.lease_epoch + 1
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[], $5::jsonb[], $6::bool[]) AS u(id, epoch, state, delay_ms, recipients, delay_warned)
     WHERE d.id = u.id AND d.lease_epoch = u.epoch
     RETURNING ${deliveryColumns()}`,
    [
      planned.map((x) => x.p.deliveryId),
      planned.map((x) => String(x.p.epoch)),
      planned.map((x) => x.updated.state),
      planned.map((x) => (x.delayMs === null ? null : Math.max(0, x.delayMs))),
      planned.map((x) => JSON.stringify(x.updated.recipients)),
      planned.map((x) => x.updated.delayWarned),
    ],
  );
  const newAttempts = await appendAttempts(client, ctx, planned, now);
  const messagesAfter = await writeMessageStates(client, ctx, planned.map((x) => x.p.queueId));
  await insertMessages(client, ctx, planned.flatMap((x) => x.written.map((msg) => ({ msg }))));
  const afterById = new Map(after.rows.map((r) => [r.id, r]));
  const newAttemptsOf = attemptRowsByDelivery(newAttempts);
  for (const x of planned) {
    const row = afterById.get(x.p.deliveryId);
    const message = messagesAfter.get(x.p.queueId);
    if (!row || !message) throw new Error(`delivery ${x.p.deliveryId} vanished inside its own transaction`);
    const attempts = [...(attemptsOf.get(x.p.deliveryId) ?? []), ...(newAttemptsOf.get(x.p.deliveryId) ?? [])];
    results[x.index] = { recorded: { message, delivery: deliveryFromRow(row, attempts) }, dueNow: x.delayMs !== null && x.delayMs <= 0, lane: x.lane, written: x.written };
  }
  return results as WriteResult[];
}

/** The attempts as rows numbered after each delivery's last; `at` (caller clock) becomes an age on the database's clock. */
async function appendAttempts(client: pg.PoolClient, ctx: PgContext, planned: readonly Planned[], now: number): Promise<AttemptRow[]> {
  const rows = planned.flatMap((x) => x.p.update.attempts.map((a, i) => ({ id: x.p.deliveryId, epoch: String(x.p.epoch), ord: i + 1, a })));
  if (rows.length === 0) return [];
  const { rows: inserted } = await client.query<AttemptRow>(
    `INSERT INTO ${ctx.s}.attempts AS a (delivery_id, n, lease_epoch, node, at, target, outcome, reply, duration_ms)
     SELECT x.id, (SELECT coalesce(max(p.n), 0) FROM ${ctx.s}.attempts p WHERE p.delivery_id = x.id) + x.ord, x.epoch, $3,
            now() - x.age_ms * interval '1 millisecond', x.target, x.outcome, x.reply, x.duration_ms
     FROM unnest($1::text[], $2::bigint[], $4::int[], $5::float8[], $6::text[], $7::text[], $8::text[], $9::int[])
       AS x(id, epoch, ord, age_ms, target, outcome, reply, duration_ms)
     RETURNING ${attemptColumns()}`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.epoch),
      ctx.nodeId,
      rows.map((r) => r.ord),
      rows.map((r) => Math.max(0, now - r.a.at)),
      rows.map((r) => r.a.target),
      rows.map((r) => r.a.outcome),
      rows.map((r) => r.a.reply),
      rows.map((r) => Math.round(r.a.durationMs)),
    ],
  );
  return inserted;
}
