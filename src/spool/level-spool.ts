import { EventEmitter } from 'node:events';
import type { Reply } from '../delivery/types.js';
import { existsSync, mkdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { RelayError } from '../errors.js';
import { decodeRecord } from './codec.js';
import { SpoolCounters, type CounterSnapshot } from './counters.js';
import { keys, laneOf, lastPart, parseDueKey } from './keys.js';
import { KeyedMutex } from './mutex.js';
import { checkSpool, type CheckReport } from './check.js';
import { compileFilter } from './filter.js';
import { afterAction, afterAttempt, isFinished, newRecords, withDeliveryState } from './records.js';
import { FINAL_DELIVERY_STATES, FINISHED_MESSAGE_STATES } from './state.js';
import { RecordCache } from './record-cache.js';
import { SpoolTransaction } from './transaction.js';
import { SpoolWriter, type SpoolOp } from './writer.js';
import type {
  AcceptResult,
  AdminAction,
  AttemptUpdate,
  ClaimedDelivery,
  DeliveryRecord,
  DispatchSlot,
  Dispatcher,
  DeliveryState,
  ListFilter,
  MessageRecord,
  MessageState,
  NewMessage,
  RecipientRecord,
  Spool,
  SpoolStats,
} from './types.js';

export interface LevelSpoolOptions {
  readonly path: string;
  readonly dedupWindowMs: number;
  readonly retainFinishedMs: number;
  readonly now?: () => number;
  /** Create the directory when missing (serve); the CLI opens only an existing spool. Default true. */
  readonly create?: boolean;
  /** How long to wait for another process to release the LevelDB lock. Default 0. */
  readonly lockWaitMs?: number;
  /** Called once when the lock is busy and open() starts waiting. */
  readonly onLockWait?: () => void;
  /** See SpoolConfig.groupCommit; default on. */
  readonly groupCommit?: boolean;
}

interface DedupEntry {
  readonly queueId: string;
  readonly expiresAt: number;
}

type Db = ClassicLevel<string, Buffer>;

const EMPTY = Buffer.alloc(0);
const JANITOR_BATCH = 500;
const MEMTABLE_BYTES = 16 * 1024 * 1024;
/** Hot records kept decoded; far above what is in flight at once (target concurrency). */
const RECORD_CACHE_ENTRIES = 10_000;

/**
 * The embedded LevelDB spool. One process owns the directory (LevelDB's lock); every
 * write goes through the group-commit SpoolWriter with `sync: true`, and every
 * read-modify-write of a message runs under that message's mutex.
 * Emits `due` (target name) when a delivery becomes due now.
 */
export interface LevelSpoolEvents {
  due: [lane: string];
  /** One synced LevelDB batch (one fsync) carrying `writes` callers' changes. */
  batch: [{ seconds: number; writes: number }];
}

export class LevelSpool extends EventEmitter<LevelSpoolEvents> implements Spool {
  private readonly counters = new SpoolCounters();
  private readonly locks = new KeyedMutex();
  private readonly cache = new RecordCache(RECORD_CACHE_ENTRIES);
  private dispatcher: Dispatcher | null = null;
  /** Deliveries this process has leased and not yet completed or given back. */
  private readonly leased = new Set<string>();
  private readonly writer: SpoolWriter;
  private readonly now: () => number;
  private janitorTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly db: Db,
    private readonly options: LevelSpoolOptions,
  ) {
    super();
    this.now = options.now ?? Date.now;
    this.writer = new SpoolWriter(
      db,
      (): SpoolOp[] => [{ type: 'put', key: keys.counters, value: this.counters.encode() }],
      async () => {
        if (this.closing) throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', 'spool is closing');
        await db.close();
        await db.open();
        // A batch reported as failed may still have reached the log and come back with
        // recovery: drop cached records, and make due any lease nobody here holds (an
        // accept reported as failed whose deliveries were written leased).
        this.cache.clear();
        void this.recoverLeases().catch(() => undefined);
      },
      (seconds, writes) => this.emit('batch', { seconds, writes }),
      options.groupCommit ?? true,
    );
  }

  /** Opens (creating) the spool; a directory held by another process is ONWARD_ERR_SPOOL_LOCKED. */
  static async open(options: LevelSpoolOptions): Promise<LevelSpool> {
    if (options.create === false && !existsSync(join(options.path, 'CURRENT'))) {
      throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `no spool at ${options.path}`);
    }
    mkdirSync(options.path, { recursive: true });
    // A larger memtable than LevelDB's 4 MB default: fewer flushes of short-lived bodies.
    // 16 MB measured as fast as 64 MB (node bench/run.mjs --quick) at ~60 MB less memory.
    const db: Db = new ClassicLevel<string, Buffer>(options.path, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
      writeBufferSize: MEMTABLE_BYTES,
    });
    const giveUpAt = Date.now() + (options.lockWaitMs ?? 0);
    let waited = false;
    for (;;) {
      try {
        await db.open();
        break;
      } catch (err) {
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code !== 'LEVEL_LOCKED') {
          throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `cannot open spool ${options.path}: ${String(err)}`, { cause: err });
        }
        if (Date.now() >= giveUpAt) {
          throw new RelayError('ONWARD_ERR_SPOOL_LOCKED', `spool ${options.path} is in use by another process`, { cause: err });
        }
        if (!waited) options.onLockWait?.();
        waited = true;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const spool = new LevelSpool(db, options);
    spool.counters.load(decodeRecord<CounterSnapshot>(await db.get(keys.counters)));
    await spool.recoverLeases();
    spool.janitorTimer = setInterval(() => void spool.sweep().catch(() => undefined), 60_000);
    spool.janitorTimer.unref();
    return spool;
  }

  onDue(listener: (lane: string) => void): void {
    this.on('due', listener);
  }

  setDispatcher(dispatcher: Dispatcher | null): void {
    this.dispatcher = dispatcher;
  }

  /** Messages by state, from the counters (no I/O). */
  countsByState(): Record<MessageState, number> {
    return this.counters.read().states;
  }

  unfinishedCount(): number {
    return this.counters.unfinished();
  }

  async accept(msg: NewMessage): Promise<AcceptResult> {
    const work = async (): Promise<AcceptResult> => {
      const now = this.now();
      if (msg.dedupKey) {
        const hit = decodeRecord<DedupEntry>(await this.db.get(keys.dedup(msg.dedupKey)));
        if (hit && hit.expiresAt > now) return { status: 'duplicate', queueId: hit.queueId };
      }
      const slots = msg.deliveries.map((d) => this.dispatcher?.(laneOf(d.targets)) ?? null);
      const txn = this.transaction();
      const { message, deliveries } = this.stageMessage(msg, now, txn, slots);
      try {
        await txn.commit(this.writer);
      } catch (err) {
        for (const slot of slots) slot?.cancel();
        throw new RelayError('ONWARD_ERR_SPOOL_WRITE', `spool write failed: ${String(err)}`, { cause: err });
      }
      deliveries.forEach((delivery, i) => {
        const slot = slots[i];
        if (slot) {
          this.leased.add(delivery.id);
          slot.start({ delivery, message, body: msg.body });
        } else this.emit('due', laneOf(delivery.targets));
      });
      return { status: 'queued', queueId: msg.queueId };
    };
    // Identical submissions racing each other must see each other's dedup key.
    return msg.dedupKey ? this.locks.run(`x:${msg.dedupKey}`, work) : work();
  }

  /**
   * Adds a new message's records, index entries and counts to `txn`. A delivery with a
   * dispatch slot is written leased (its first attempt starts after the commit), the
   * others due now.
   */
  private stageMessage(
    msg: NewMessage,
    now: number,
    txn: SpoolTransaction,
    slots: readonly (DispatchSlot | null)[] = [],
  ): { message: MessageRecord; deliveries: DeliveryRecord[] } {
    const fresh = newRecords(msg, now);
    const deliveries = fresh.deliveries.map((d, i): DeliveryRecord => {
      const leased = (slots[i] ?? null) !== null;
      const record: DeliveryRecord = leased ? { ...d, dueAt: null, attemptCount: 1 } : d;
      txn.putRecord(keys.delivery(d.id), record, leased);
      if (leased) txn.put(keys.lease(d.id), EMPTY);
      else txn.put(keys.due(laneOf(d.targets), now, d.id), EMPTY);
      txn.countDelivery(d.targets[0] ?? '', null, 'queued');
      return record;
    });
    const { message } = fresh;
    txn.putRecord(keys.message(msg.queueId), message, slots.some((slot) => slot !== null));
    txn.put(keys.body(msg.queueId), msg.body).put(keys.open(msg.queueId), EMPTY);
    if (msg.dedupKey) {
      const expiresAt = now + this.options.dedupWindowMs;
      const entry: DedupEntry = { queueId: msg.queueId, expiresAt };
      txn.putRecord(keys.dedup(msg.dedupKey), entry).put(keys.dedupExpiry(expiresAt, msg.dedupKey), EMPTY);
    }
    txn.countMessage(null, 'queued');
    return { message, deliveries };
  }

  async claimDue(lane: string, now: number, limit: number): Promise<ClaimedDelivery[]> {
    if (limit <= 0) return [];
    return this.locks.run(`claim:${lane}`, async () => {
      const dueKeys = await this.db.keys({ ...keys.dueRange(lane, now), limit }).all();
      const claimed = await Promise.all(dueKeys.map((key) => this.claimOne(key)));
      return claimed.filter((c): c is ClaimedDelivery => c !== null);
    });
  }

  private async claimOne(dueKey: string): Promise<ClaimedDelivery | null> {
    const { dueAt, deliveryId } = parseDueKey(dueKey);
    const queueId = deliveryId.slice(0, deliveryId.indexOf('.'));
    return this.locks.run(queueId, async () => {
      const [delivery, message, body] = await this.readDeliveryAndMessage(deliveryId, queueId, true);
      if (!delivery || !message || !body || delivery.dueAt !== dueAt || FINAL_DELIVERY_STATES.has(delivery.state)) {
        await this.transaction().del(dueKey).commit(this.writer); // stale index entry
        return null;
      }
      const updated: DeliveryRecord = { ...delivery, state: 'queued', dueAt: null, attemptCount: delivery.attemptCount + 1 };
      const msgUpdated = withDeliveryState(message, deliveryId, 'queued');
      const txn = this.transaction();
      txn.del(dueKey).put(keys.lease(deliveryId), EMPTY).putRecord(keys.delivery(deliveryId), updated, true);
      // A first attempt leaves the message record as it was: no need to rewrite it.
      if (msgUpdated.state !== message.state || message.deliveries[deliveryId] !== 'queued') {
        txn.putRecord(keys.message(queueId), msgUpdated, true);
      } else {
        txn.admit(keys.message(queueId), message);
      }
      txn.countDelivery(delivery.targets[0] ?? '', delivery.state, 'queued');
      txn.countMessage(message.state, msgUpdated.state);
      await txn.commit(this.writer);
      this.leased.add(deliveryId);
      return { delivery: updated, message: msgUpdated, body };
    });
  }

  async completeAttempt(deliveryId: string, update: AttemptUpdate): Promise<{ message: MessageRecord; delivery: DeliveryRecord }> {
    const queueId = deliveryId.slice(0, deliveryId.indexOf('.'));
    return this.locks.run(queueId, async () => {
      const [delivery, message] = await this.readDeliveryAndMessage(deliveryId, queueId, false);
      if (!delivery || !message) throw new RelayError('ONWARD_ERR_NOT_FOUND', `delivery ${deliveryId} not found`);
      const now = this.now();
      const deleted = message.state === 'deleted';
      const updated = afterAttempt(delivery, deleted, update, now);
      const lane = laneOf(delivery.targets);
      const txn = this.transaction();
      // The attempt is over: both records go cold (a retry reads them back when it is due).
      txn.del(keys.lease(deliveryId)).putRecord(keys.delivery(deliveryId), updated).evict(keys.delivery(deliveryId));
      if (updated.dueAt !== null) txn.put(keys.due(lane, updated.dueAt, deliveryId), EMPTY);
      const msgUpdated = deleted ? message : this.finishIfDone(withDeliveryState(message, deliveryId, updated.state), txn);
      txn.putRecord(keys.message(queueId), msgUpdated).evict(keys.message(queueId));
      if (!deleted) txn.countDelivery(delivery.targets[0] ?? '', delivery.state, updated.state);
      txn.countMessage(message.state, msgUpdated.state);
      if (update.dsn) this.stageMessage(update.dsn, now, txn);
      await txn.commit(this.writer);
      this.leased.delete(deliveryId);
      if (updated.dueAt !== null && updated.dueAt <= now) this.emit('due', lane);
      if (update.dsn) for (const d of update.dsn.deliveries) this.emit('due', laneOf(d.targets));
      return { message: msgUpdated, delivery: updated };
    });
  }

  async postpone(deliveryId: string, dueAt: number): Promise<void> {
    const queueId = deliveryId.slice(0, deliveryId.indexOf('.'));
    await this.locks.run(queueId, async () => {
      const [delivery, message] = await this.readDeliveryAndMessage(deliveryId, queueId, false);
      if (!delivery || !message) return;
      const target = delivery.targets[0] ?? '';
      // Back in the queue untouched: queued when due now (e.g. handed back at shutdown), else deferred.
      const waiting: DeliveryState = dueAt <= this.now() ? 'queued' : 'deferred';
      const state: DeliveryState = delivery.state === 'queued' ? waiting : delivery.state;
      const keepDue = (state === 'deferred' || state === 'queued') && message.state !== 'deleted';
      const updated: DeliveryRecord = {
        ...delivery,
        state,
        dueAt: keepDue ? dueAt : null,
        attemptCount: Math.max(0, delivery.attemptCount - 1),
      };
      const msgUpdated = withDeliveryState(message, deliveryId, state);
      const txn = this.transaction();
      txn.del(keys.lease(deliveryId)).putRecord(keys.delivery(deliveryId), updated).evict(keys.delivery(deliveryId));
      if (keepDue) txn.put(keys.due(laneOf(delivery.targets), dueAt, deliveryId), EMPTY);
      txn.putRecord(keys.message(queueId), msgUpdated).evict(keys.message(queueId));
      txn.countDelivery(target, delivery.state, state);
      txn.countMessage(message.state, msgUpdated.state);
      await txn.commit(this.writer);
      this.leased.delete(deliveryId);
    });
  }

  async nextDueAt(lane: string): Promise<number | null> {
    const [first] = await this.db.keys({ ...keys.duePrefix(lane), limit: 1 }).all();
    return first === undefined ? null : parseDueKey(first).dueAt;
  }

  async lanes(): Promise<string[]> {
    const lanes: string[] = [];
    // Skip-scan: one seek per distinct lane, never a walk over the deliveries.
    for (let from = 'q!'; ; ) {
      const [key] = await this.db.keys({ gt: from, lt: 'q!~', limit: 1 }).all();
      if (key === undefined) return lanes;
      const lane = key.split('!')[1] ?? '';
      lanes.push(lane);
      from = `q!${lane}!~`;
    }
  }

  async getMessage(queueId: string): Promise<MessageRecord | null> {
    return decodeRecord<MessageRecord>(await this.db.get(keys.message(queueId)));
  }

  async getDeliveries(queueId: string): Promise<DeliveryRecord[]> {
    const values = await this.db.values(keys.deliveriesOf(queueId)).all();
    return values.map((v) => decodeRecord<DeliveryRecord>(v) as DeliveryRecord);
  }

  async getBody(queueId: string): Promise<Buffer | null> {
    return (await this.db.get(keys.body(queueId))) ?? null;
  }

  async *list(filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
    const states = filter.states ?? ['queued', 'deferred', 'held'];
    const limit = filter.limit ?? Infinity;
    const matches = compileFilter(filter);
    const onlyOpen = states.every((s) => !FINISHED_MESSAGE_STATES.has(s));
    let count = 0;
    for await (const message of onlyOpen ? this.openMessages() : this.allMessages()) {
      if (count >= limit) return;
      if (!states.includes(message.state)) continue;
      const deliveries = await this.getDeliveries(message.id);
      if (!matches(message, deliveries, this.now())) continue;
      count += 1;
      yield { message, deliveries };
    }
  }

  private async *allMessages(): AsyncIterable<MessageRecord> {
    for await (const value of this.db.values(keys.messages)) yield decodeRecord<MessageRecord>(value) as MessageRecord;
  }

  /** Unfinished messages in arrival order, via the open index (finished ones are never read). */
  private async *openMessages(): AsyncIterable<MessageRecord> {
    for await (const key of this.db.keys(keys.opens)) {
      const message = await this.getMessage(key.slice(2));
      if (message) yield message;
    }
  }

  async stats(): Promise<SpoolStats> {
    const snapshot = this.counters.read();
    let oldestQueuedAt: number | null = null;
    // The open index is in arrival order; only held messages are skipped on the way.
    for await (const m of this.openMessages()) {
      if (m.state === 'queued' || m.state === 'deferred') {
        oldestQueuedAt = m.receivedAt;
        break;
      }
    }
    return { ...snapshot, oldestQueuedAt, spoolBytes: await directoryBytes(this.options.path) };
  }

  async act(queueId: string, action: AdminAction): Promise<MessageRecord> {
    return this.locks.run(queueId, async () => {
      const message = await this.getMessage(queueId);
      if (!message) throw notFound(queueId);
      if (isFinished(message)) return message;
      const now = this.now();
      const txn = this.transaction();
      const dueLanes = new Set<string>();
      let msgUpdated = message;
      for (const delivery of await this.getDeliveries(queueId)) {
        if (FINAL_DELIVERY_STATES.has(delivery.state)) continue;
        const next = afterAction(action, delivery, now);
        if (!next) continue;
        const lane = laneOf(delivery.targets);
        if (delivery.dueAt !== null) txn.del(keys.due(lane, delivery.dueAt, delivery.id));
        if (next.dueAt !== null) {
          txn.put(keys.due(lane, next.dueAt, delivery.id), EMPTY);
          dueLanes.add(lane);
        }
        txn.putRecord(keys.delivery(delivery.id), next);
        txn.countDelivery(delivery.targets[0] ?? '', delivery.state, action === 'delete' ? null : next.state);
        msgUpdated = withDeliveryState(msgUpdated, delivery.id, next.state);
      }
      if (action === 'delete') {
        msgUpdated = { ...msgUpdated, state: 'deleted', finishedAt: now };
        txn.del(keys.body(queueId)).del(keys.open(queueId)).put(keys.finished(now, queueId), EMPTY);
      }
      txn.countMessage(message.state, msgUpdated.state);
      txn.putRecord(keys.message(queueId), msgUpdated);
      await txn.commit(this.writer);
      for (const lane of dueLanes) this.emit('due', lane);
      return msgUpdated;
    });
  }

  async giveUp(
    queueId: string,
    reason: Reply,
    report: (message: MessageRecord, failed: readonly RecipientRecord[], body: Buffer | null) => Promise<NewMessage | null>,
  ): Promise<MessageRecord> {
    return this.locks.run(queueId, async () => {
      const message = await this.getMessage(queueId);
      if (!message) throw notFound(queueId);
      if (isFinished(message)) return message;
      const txn = this.transaction();
      const failed: RecipientRecord[] = [];
      let msgUpdated = message;
      for (const delivery of await this.getDeliveries(queueId)) {
        if (FINAL_DELIVERY_STATES.has(delivery.state)) continue;
        const recipients = delivery.recipients.map((r): RecipientRecord => {
          if (r.state === 'delivered' || r.state === 'failed') return r;
          const next: RecipientRecord = { ...r, state: 'failed', lastReply: reason, lastError: reason.text, reported: true };
          failed.push({ ...next, lastReply: r.lastReply ?? reason });
          return next;
        });
        if (delivery.dueAt !== null) txn.del(keys.due(laneOf(delivery.targets), delivery.dueAt, delivery.id));
        txn.putRecord(keys.delivery(delivery.id), { ...delivery, recipients, state: 'failed', dueAt: null });
        txn.countDelivery(delivery.targets[0] ?? '', delivery.state, 'failed');
        msgUpdated = withDeliveryState(msgUpdated, delivery.id, 'failed');
      }
      msgUpdated = this.finishIfDone(msgUpdated, txn);
      txn.putRecord(keys.message(queueId), msgUpdated);
      txn.countMessage(message.state, msgUpdated.state);
      const dsn = failed.length > 0 ? await report(message, failed, await this.getBody(queueId)) : null;
      if (dsn) this.stageMessage(dsn, this.now(), txn);
      await txn.commit(this.writer);
      if (dsn) for (const d of dsn.deliveries) this.emit('due', laneOf(d.targets));
      return msgUpdated;
    });
  }

  /**
   * Verifies the spool's invariants (see check.ts). Repairs only when asked; counters are
   * recomputed from the records then. Meant for a spool no relay is writing to.
   */
  async check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport> {
    const { report, recounted } = await checkSpool(this.db, (ops) => this.writer.write(ops), this.counters.read(), repair, this.now(), onProgress);
    this.cache.clear(); // a repair writes around the transactions
    if (repair && report.counts['counters-mismatch']) {
      this.counters.load(recounted);
      await this.writer.write([]); // the trailer persists the recounted snapshot
    }
    return report;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.janitorTimer) clearInterval(this.janitorTimer);
      await this.writer.write([]); // flush whatever is queued
      await this.db.close();
    })();
    return this.closing;
  }

  /**
   * Leases nobody in this process holds become due again (at-least-once): at open, those of
   * deliveries in flight when the process died; after a reopen, those of failed batches.
   */
  private async recoverLeases(): Promise<void> {
    for (const key of await this.db.keys(keys.leases).all()) {
      const deliveryId = lastPart(key);
      if (this.leased.has(deliveryId)) continue;
      await this.locks.run(deliveryId.slice(0, deliveryId.indexOf('.')), async () => {
        if (this.leased.has(deliveryId) || (await this.db.get(key)) === undefined) return;
        const now = this.now();
        const delivery = decodeRecord<DeliveryRecord>(await this.db.get(keys.delivery(deliveryId)));
        const txn = this.transaction().del(key);
        const due = delivery && !FINAL_DELIVERY_STATES.has(delivery.state) && delivery.state !== 'held';
        if (due) txn.putRecord(keys.delivery(deliveryId), { ...delivery, dueAt: now }).put(keys.due(laneOf(delivery.targets), now, deliveryId), EMPTY);
        await txn.commit(this.writer);
        if (due) this.emit('due', laneOf(delivery.targets));
      });
    }
  }

  /** Removes expired dedup keys and finished messages past `retainFinished`. Bounded per run. */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const key of await this.db.keys({ ...keys.dedupExpiryUpTo(now), limit: JANITOR_BATCH }).all()) {
      const hash = lastPart(key);
      const entry = decodeRecord<DedupEntry>(await this.db.get(keys.dedup(hash)));
      const txn = this.transaction().del(key);
      if (entry && entry.expiresAt <= now) txn.del(keys.dedup(hash));
      await txn.commit(this.writer);
    }
    const horizon = now - this.options.retainFinishedMs;
    for (const key of await this.db.keys({ ...keys.finishedUpTo(horizon), limit: JANITOR_BATCH }).all()) {
      const queueId = lastPart(key);
      await this.locks.run(queueId, async () => {
        const message = await this.getMessage(queueId);
        const txn = this.transaction().del(key).del(keys.message(queueId));
        for (const id of Object.keys(message?.deliveries ?? {})) txn.del(keys.delivery(id));
        if (message) txn.countMessage(message.state, null);
        await txn.commit(this.writer);
      });
    }
  }

  private async readDeliveryAndMessage(
    deliveryId: string,
    queueId: string,
    withBody: boolean,
  ): Promise<[DeliveryRecord | null, MessageRecord | null, Buffer | null]> {
    const deliveryKey = keys.delivery(deliveryId);
    const messageKey = keys.message(queueId);
    const delivery = this.cache.get<DeliveryRecord>(deliveryKey);
    const message = this.cache.get<MessageRecord>(messageKey);
    if (delivery && message && !withBody) return [delivery, message, null];
    const wanted = [deliveryKey, messageKey];
    if (withBody) wanted.push(keys.body(queueId));
    const [d, m, b] = await this.db.getMany(wanted);
    return [delivery ?? decodeRecord<DeliveryRecord>(d), message ?? decodeRecord<MessageRecord>(m), b ?? null];
  }

  private transaction(): SpoolTransaction {
    return new SpoolTransaction(this.counters, this.cache);
  }

  /** When the message just finished: drop its body and queue entry, index it for retention. */
  private finishIfDone(message: MessageRecord, txn: SpoolTransaction): MessageRecord {
    if (!isFinished(message) || message.finishedAt !== null) return message;
    const now = this.now();
    txn.del(keys.body(message.id)).del(keys.open(message.id)).put(keys.finished(now, message.id), EMPTY);
    return { ...message, finishedAt: now };
  }
}

function notFound(queueId: string): RelayError {
  return new RelayError('ONWARD_ERR_NOT_FOUND', `no message with id ${queueId}`);
}

async function directoryBytes(path: string): Promise<number> {
  const names = await readdir(path);
  const sizes = await Promise.all(names.map(async (n) => (await stat(join(path, n)).catch(() => null))?.size ?? 0));
  return sizes.reduce((a, b) => a + b, 0);
}
