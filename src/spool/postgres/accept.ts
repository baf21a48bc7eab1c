/**
 * Accepting messages with group commit (the level SpoolWriter pattern, DESIGN.md "Accept"):
 * accepts that arrive while a statement is in flight go into the next one. One batch is one
 * statement in autocommit, so one round trip and one transaction: dedup keys first (in-batch
 * duplicates dropped, then INSERT ... ON CONFLICT ... RETURNING tells which keys won), then
 * only the winners' rows (insert.ts). Callers are answered only after COMMIT; a batch that
 * fails (COMMIT outcome unknown included) answers every caller in it with ONWARD_ERR_SPOOL_WRITE.
 */
import { RelayError } from '../../errors.js';
import { deliveryId, laneOf } from '../ids.js';
import type { AcceptResult, ClaimedDelivery, DispatchSlot, Dispatcher, NewMessage, RecipientRecord } from '../types.js';
import { BatchQueue } from './batch-queue.js';
import { redactText } from './connection.js';
import type { PgContext } from './context.js';
import { Params, insertCtes } from './insert.js';

interface Pending {
  readonly msg: NewMessage;
  readonly slots: readonly (DispatchSlot | null)[];
  /** Answered already: by its deadline (then its slots were given back) or by its batch. */
  answered: boolean;
  resolve(result: AcceptResult): void;
  reject(err: RelayError): void;
}

/**
 * No accept waits longer than this (SPEC 9): a batch stalled behind a slow or vanished
 * database answers 451 at the deadline, whatever its COMMIT does later (a client retry
 * then meets the dedup key; a dispatched delivery written leased is taken over after its
 * lease, since nobody here holds it).
 */
export const ACCEPT_DEADLINE_MS = 5000;

/** Bounds one transaction so a burst of large bodies does not become one huge write. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
const MAX_BATCH_MESSAGES = 500;

export interface AcceptBatcherOptions {
  /** Off: one message per transaction, one after another (only to measure what grouping buys). */
  readonly groupCommit: boolean;
  readonly dispatcher: () => Dispatcher | null;
  /**
   * Refuse at once (database down; spool closing, for a new accept only: what is queued at
   * close is still written): the error to answer with, or null to go on.
   */
  readonly refusal: (queued: boolean) => RelayError | null;
  /** Runs a database call, tracking availability. */
  readonly track: <T>(fn: () => Promise<T>) => Promise<T>;
}

export class AcceptBatcher {
  private readonly batches = new BatchQueue<Pending>(
    (queue) => this.take(queue),
    (batch) => this.write(batch),
  );

  constructor(
    private readonly ctx: PgContext,
    private readonly options: AcceptBatcherOptions,
  ) {}

  accept(msg: NewMessage): Promise<AcceptResult> {
    const refused = this.options.refusal(false);
    if (refused) return Promise.reject(refused);
    const dispatcher = this.options.dispatcher();
    const slots = msg.deliveries.map((d) => dispatcher?.(laneOf(d.targets, d.domain)) ?? null);
    return new Promise<AcceptResult>((resolve, reject) => {
      const pending: Pending = {
        msg,
        slots,
        answered: false,
        resolve: (result) => {
          clearTimeout(deadline);
          pending.answered = true;
          resolve(result);
        },
        reject: (err) => {
          clearTimeout(deadline);
          pending.answered = true;
          reject(err);
        },
      };
      const deadline = setTimeout(() => {
        for (const slot of slots) slot?.cancel();
        pending.reject(new RelayError('ONWARD_ERR_SPOOL_WRITE', `spool write failed: no answer from the database within ${String(ACCEPT_DEADLINE_MS)} ms`));
      }, ACCEPT_DEADLINE_MS);
      this.batches.push(pending);
    });
  }

  /** Resolves once everything queued so far is written (or failed). */
  drain(): Promise<void> {
    return this.batches.drain();
  }

  private take(queue: Pending[]): Pending[] {
    const batch: Pending[] = [];
    let bytes = 0;
    while (queue.length > 0 && (batch.length === 0 || (this.options.groupCommit && bytes < MAX_BATCH_BYTES && batch.length < MAX_BATCH_MESSAGES))) {
      const next = queue.shift() as Pending;
      // Already answered 451 at its deadline while it waited: the client retries, so writing
      // it now could queue it twice (a message without a Message-ID has no dedup key).
      if (next.answered) continue;
      batch.push(next);
      bytes += next.msg.body.length;
    }
    return batch;
  }

  private async write(batch: readonly Pending[]): Promise<void> {
    const started = process.hrtime.bigint();
    let outcome: BatchOutcome;
    try {
      const refused = this.options.refusal(true);
      if (refused) throw refused;
      outcome = await this.options.track(() => writeBatch(this.ctx, batch));
    } catch (err) {
      const failure =
        err instanceof RelayError && err.code === 'ONWARD_ERR_SPOOL_WRITE'
          ? err
          : new RelayError('ONWARD_ERR_SPOOL_WRITE', `spool write failed: ${redactText(err instanceof Error ? err.message : String(err), this.ctx.url)}`, { cause: err });
      for (const p of batch) {
        if (p.answered) continue;
        for (const slot of p.slots) slot?.cancel();
        p.reject(failure);
      }
      return;
    }
    this.ctx.emit('batch', { seconds: Number(process.hrtime.bigint() - started) / 1e9, writes: batch.length });
    batch.forEach((p, i) => {
      const result = outcome.results[i] as AcceptResult | RelayError;
      if (result instanceof RelayError) {
        // Not written (its key lost, and the original could not be read): the client retries.
        for (const slot of p.slots) slot?.cancel();
        p.reject(result);
      } else if (p.answered) {
        // Answered 451 at its deadline, yet written: its dispatched deliveries wait for the
        // takeover (nobody here holds them), the others are due as usual.
        if (result.status === 'queued') p.msg.deliveries.forEach((d, j) => (p.slots[j] ? undefined : this.ctx.due(laneOf(d.targets, d.domain))));
      } else if (result.status === 'duplicate') {
        for (const slot of p.slots) slot?.cancel();
      } else {
        this.started(p, outcome.nowMs);
      }
      if (!(result instanceof RelayError)) p.resolve(result);
    });
  }

  /** After COMMIT: dispatched deliveries start, the others are due now. */
  private started(p: Pending, nowMs: number | null): void {
    const { msg } = p;
    const recordsOf = nowMs === null ? null : claimedRecords(msg, nowMs);
    msg.deliveries.forEach((d, i) => {
      const slot = p.slots[i] ?? null;
      if (slot && recordsOf) {
        this.ctx.leases.set(deliveryId(msg.queueId, i), 1);
        slot.start(recordsOf(i));
      } else {
        this.ctx.due(laneOf(d.targets, d.domain));
      }
    });
  }
}

interface BatchOutcome {
  /** One per pending message, in batch order; an error for one that was not written. */
  readonly results: readonly (AcceptResult | RelayError)[];
  /** The transaction's `now()` (the rows' times), for the records of dispatched deliveries. */
  readonly nowMs: number | null;
}

/**
 * The batch as one statement, so one round trip and one implicit transaction (autocommit:
 * the answer comes after COMMIT): the dedup keys (CTE `k`), then only the winners' message,
 * body and delivery rows (insert.ts), and the transaction's `now()` (the time the rows carry).
 * Keys go in sorted order, so two nodes' batches sharing keys wait on each other instead of
 * deadlocking; an expired key not yet swept is taken over.
 */
async function writeBatch(ctx: PgContext, batch: readonly Pending[]): Promise<BatchOutcome> {
  const results: (AcceptResult | RelayError | null)[] = batch.map(() => null);
  // In-batch duplicates: the later copy answers as its first occurrence does.
  const firstOfKey = new Map<string, number>();
  const copyOf = new Map<number, number>();
  batch.forEach((p, i) => {
    const key = p.msg.dedupKey;
    if (!key) return;
    const first = firstOfKey.get(key);
    if (first === undefined) firstOfKey.set(key, i);
    else copyOf.set(i, first);
  });
  const candidates = batch.filter((_, i) => !copyOf.has(i));
  const keys = [...firstOfKey].map(([key, i]) => ({ key, queueId: batch[i]?.msg.queueId ?? '' })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const params = new Params();
  const sql = `WITH k AS (
      INSERT INTO ${ctx.s}.dedup_keys (key, queue_id, expires_at)
      SELECT key, queue_id, now() + ${params.p(ctx.dedupWindowMs)}::float8 * interval '1 millisecond'
      FROM unnest(${params.p(keys.map((k) => k.key))}::text[], ${params.p(keys.map((k) => k.queueId))}::text[]) WITH ORDINALITY AS k(key, queue_id, ord) ORDER BY ord
      ON CONFLICT (key) DO UPDATE SET queue_id = EXCLUDED.queue_id, expires_at = EXCLUDED.expires_at
        WHERE dedup_keys.expires_at <= now()
      RETURNING key
    ), ${insertCtes(ctx, candidates.map((p) => ({ msg: p.msg, leased: p.slots.map((slot) => slot !== null) })), params, 't.dedup_key IS NULL OR t.dedup_key IN (SELECT key FROM k)')}
    SELECT (extract(epoch FROM now()) * 1000)::float8 AS now_ms, (SELECT coalesce(array_agg(key), '{}') FROM k) AS won`;
  const { rows } = await ctx.pool.query<{ now_ms: number; won: string[] }>(sql, params.values);
  const won = new Set(rows[0]?.won ?? []);
  const losers = keys.filter((k) => !won.has(k.key)).map((k) => k.key);
  const lost = losers.length === 0 ? new Map<string, string>() : await originals(ctx, losers).catch((err: unknown) => err instanceof Error ? err : new Error(String(err)));
  for (const key of losers) {
    const i = firstOfKey.get(key) as number;
    // The winners are committed and answered; only the losers, not written, answer 451.
    const original = lost instanceof Error ? undefined : lost.get(key);
    results[i] = original !== undefined ? { status: 'duplicate', queueId: original } : new RelayError('ONWARD_ERR_SPOOL_WRITE', `spool write failed: the original of dedup key ${key} could not be read`, lost instanceof Error ? { cause: lost } : {});
  }
  batch.forEach((p, i) => {
    const first = copyOf.get(i);
    if (first !== undefined) {
      const firstResult = results[first];
      results[i] = firstResult instanceof RelayError ? firstResult : { status: 'duplicate', queueId: firstResult?.queueId ?? batch[first]?.msg.queueId ?? p.msg.queueId };
    } else {
      results[i] ??= { status: 'queued', queueId: p.msg.queueId };
    }
  });
  return { results: results as (AcceptResult | RelayError)[], nowMs: rows[0]?.now_ms ?? null };
}

/**
 * The original queue ids of keys that lost to a live key (committed before our statement
 * finished, or we would have won): read after the COMMIT, in a statement of its own.
 */
async function originals(ctx: PgContext, losers: readonly string[]): Promise<Map<string, string>> {
  const lost = new Map<string, string>();
  const { rows } = await ctx.pool.query<{ key: string; queue_id: string }>(`SELECT key, queue_id FROM ${ctx.s}.dedup_keys WHERE key = ANY($1::text[])`, [losers]);
  for (const r of rows) lost.set(r.key, r.queue_id);
  return lost;
}

/** The records of a just-written message as a dispatched delivery's attempt needs them (times: the transaction's now()). */
function claimedRecords(msg: NewMessage, nowMs: number): (index: number) => ClaimedDelivery {
  const ids = msg.deliveries.map((_, i) => deliveryId(msg.queueId, i));
  const message = {
    id: msg.queueId,
    sender: msg.sender,
    recipients: msg.recipients,
    messageId: msg.messageId,
    size: msg.body.length,
    receivedAt: nowMs,
    client: msg.client,
    state: 'queued' as const,
    deliveries: Object.fromEntries(ids.map((id) => [id, 'queued' as const])),
    finishedAt: null,
    dedupKey: msg.dedupKey,
    bounceOf: msg.bounceOf,
    eventOf: msg.eventOf ?? null,
  };
  return (index) => {
    const d = msg.deliveries[index] ?? { targets: [], recipients: [] };
    const recipients: RecipientRecord[] = d.recipients.map((address) => ({ address, state: 'queued', lastError: null, lastReply: null, reported: false }));
    return {
      delivery: { id: ids[index] ?? '', queueId: msg.queueId, targets: d.targets, recipients, state: 'queued', attempts: [], attemptCount: 1, dueAt: null, createdAt: nowMs, delayWarned: false },
      message,
      body: msg.body,
    };
  };
}
