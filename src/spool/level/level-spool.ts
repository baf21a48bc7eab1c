import { EventEmitter } from 'node:events';
import type { Reply } from '../../delivery/types.js';
import { RelayError } from '../../errors.js';
import { KeyedMutex } from '../mutex.js';
import type {
  AcceptResult,
  AdminAction,
  AttemptUpdate,
  ClaimedDelivery,
  DeliveryRecord,
  Dispatcher,
  ListFilter,
  MessageRecord,
  MessageState,
  NewMessage,
  NodeRecord,
  Spool,
  SpoolEvents,
  SpoolStats,
  CheckReport,
  ForgetResult,
  TransferItem,
  GiveUpReporter,
} from '../types.js';
import { accept } from './accept.js';
import { act, giveUp } from './admin-actions.js';
import { completeAttempt, postpone } from './attempts.js';
import { checkSpool } from './check.js';
import { claimDue } from './claims.js';
import { decodeRecord } from './codec.js';
import type { Db, LevelContext, LevelSpoolOptions } from './context.js';
import { SpoolCounters, type CounterSnapshot } from './counters.js';
import { Janitor } from './janitor.js';
import { keys } from './keys.js';
import { openDb, recoverLeases } from './open.js';
import * as queries from './queries.js';
import { RecordCache } from './record-cache.js';
import * as transfer from './transfer.js';
import { SpoolWriter, type SpoolOp } from './writer.js';

export type { LevelSpoolOptions } from './context.js';

/** Hot records kept decoded; far above what is in flight at once (target concurrency). */
const RECORD_CACHE_ENTRIES = 10_000;
const JANITOR_INTERVAL_MS = 1000;

/**
 * The embedded LevelDB spool. One process owns the directory (LevelDB's lock); every
 * write goes through the group-commit SpoolWriter with `sync: true`, and every
 * read-modify-write of a message runs under that message's mutex. Each concern lives in
 * its own file beside this one; this class holds the shared state and composes them.
 */
export class LevelSpool extends EventEmitter<SpoolEvents> implements Spool {
  readonly backend = 'level' as const;
  private readonly ctx: LevelContext;
  private dispatcher: Dispatcher | null = null;
  private readonly janitor: Janitor;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly db: Db,
    options: LevelSpoolOptions,
  ) {
    super();
    const counters = new SpoolCounters();
    const cache = new RecordCache(RECORD_CACHE_ENTRIES);
    const writer = new SpoolWriter(
      db,
      (): SpoolOp[] => [{ type: 'put', key: keys.counters, value: counters.encode() }],
      async () => {
        if (this.closing) throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', 'spool is closing');
        await db.close();
        await db.open();
        // A batch reported as failed may still have reached the log and come back with
        // recovery: drop cached records, and make due any lease nobody here holds (an
        // accept reported as failed whose deliveries were written leased).
        cache.clear();
        void recoverLeases(this.ctx).catch(() => undefined);
      },
      (seconds, writes) => this.emit('batch', { seconds, writes }),
      options.groupCommit ?? true,
    );
    this.ctx = {
      db,
      writer,
      counters,
      locks: new KeyedMutex(),
      cache,
      leased: new Set<string>(),
      options,
      now: options.now ?? Date.now,
      dispatcher: () => this.dispatcher,
      due: (lane) => this.emit('due', lane),
    };
    this.janitor = new Janitor(
      this.ctx,
      {
        removed: (kind, removed) => {
          if (removed > 0) this.emit('janitor', { kind, removed });
        },
        failed: (err) => {
          options.logger?.error({ err, spool: options.path }, 'spool housekeeping failed');
          this.emit('janitorError', err);
        },
      },
      options.janitorIntervalMs ?? JANITOR_INTERVAL_MS,
    );
  }

  /** Opens (creating) the spool; a directory held by another process is ONWARD_ERR_SPOOL_LOCKED. */
  static async open(options: LevelSpoolOptions): Promise<LevelSpool> {
    const db = await openDb(options);
    const spool = new LevelSpool(db, options);
    spool.ctx.counters.load(decodeRecord<CounterSnapshot>(await db.get(keys.counters)));
    await recoverLeases(spool.ctx);
    spool.janitor.start();
    return spool;
  }

  onDue(listener: (lane: string) => void): void {
    this.on('due', listener);
  }

  setDispatcher(dispatcher: Dispatcher | null): void {
    this.dispatcher = dispatcher;
  }

  /** Messages by state, from the counters (no I/O). */
  countsByState(): Promise<Record<MessageState, number>> {
    return Promise.resolve(this.ctx.counters.read().states);
  }

  /** A local directory: it answers while open (a failing disk shows as failed writes). */
  available(): boolean {
    return this.closing === null;
  }

  /** One process owns a LevelDB spool: there are no nodes to list. */
  nodes(): Promise<NodeRecord[] | null> {
    return Promise.resolve(null);
  }

  /** Nothing to report to: the relay's own stats read its scheduler directly. */
  setNodeStatus(): void {}

  unfinishedCount(): number {
    return this.ctx.counters.unfinished();
  }

  accept(msg: NewMessage): Promise<AcceptResult> {
    return accept(this.ctx, msg);
  }

  claimDue(lane: string, now: number, limit: number): Promise<ClaimedDelivery[]> {
    return claimDue(this.ctx, lane, now, limit);
  }

  completeAttempt(deliveryId: string, update: AttemptUpdate): Promise<{ message: MessageRecord; delivery: DeliveryRecord }> {
    return completeAttempt(this.ctx, deliveryId, update);
  }

  postpone(deliveryId: string, dueAt: number): Promise<void> {
    return postpone(this.ctx, deliveryId, dueAt);
  }

  nextDueAt(lane: string): Promise<number | null> {
    return queries.nextDueAt(this.ctx, lane);
  }

  lanes(): Promise<string[]> {
    return queries.lanes(this.ctx);
  }

  getMessage(queueId: string): Promise<MessageRecord | null> {
    return queries.getMessage(this.ctx, queueId);
  }

  getDeliveries(queueId: string): Promise<DeliveryRecord[]> {
    return queries.getDeliveries(this.ctx, queueId);
  }

  getBody(queueId: string): Promise<Buffer | null> {
    return queries.getBody(this.ctx, queueId);
  }

  list(filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
    return queries.list(this.ctx, filter);
  }

  stats(): Promise<SpoolStats> {
    return queries.stats(this.ctx);
  }

  act(queueId: string, action: AdminAction): Promise<MessageRecord> {
    return act(this.ctx, queueId, action);
  }

  giveUp(
    queueId: string,
    reason: Reply,
    report: GiveUpReporter,
  ): Promise<MessageRecord> {
    return giveUp(this.ctx, queueId, reason, report);
  }

  exportUnfinished(): AsyncIterable<TransferItem> {
    return transfer.exportUnfinished(this.ctx);
  }

  importMessage(item: TransferItem): Promise<'imported' | 'present'> {
    return transfer.importMessage(this.ctx, item);
  }

  forget(queueId: string, asExported?: TransferItem): Promise<ForgetResult> {
    return transfer.forget(this.ctx, queueId, asExported);
  }

  sweep(): Promise<void> {
    return this.janitor.sweep();
  }

  /**
   * Verifies the spool's invariants (see check.ts). Repairs only when asked; counters are
   * recomputed from the records then. Meant for a spool no relay is writing to.
   */
  async check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport> {
    const { counters, writer, cache } = this.ctx;
    await this.janitor.stop(); // records vanishing mid-walk would read as problems
    try {
      const { report, recounted } = await checkSpool(this.db, (ops) => writer.write(ops), counters.read(), repair, this.ctx.now(), onProgress);
      cache.clear(); // a repair writes around the transactions
      if (repair && report.counts['counters-mismatch']) {
        counters.load(recounted);
        await writer.write([]); // the trailer persists the recounted snapshot
      }
      return report;
    } finally {
      if (!this.closing) this.janitor.start();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.janitor.stop();
      await this.ctx.writer.write([]); // flush whatever is queued
      await this.db.close();
    })();
    return this.closing;
  }
}
