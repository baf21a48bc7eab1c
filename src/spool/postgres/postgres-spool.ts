import { EventEmitter } from 'node:events';
import os from 'node:os';
import type pg from 'pg';
import type { Reply } from '../../delivery/types.js';
import { RelayError } from '../../errors.js';
import type {
  AcceptResult,
  AdminAction,
  AttemptUpdate,
  CheckReport,
  ClaimedDelivery,
  ForgetResult,
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
  TargetReport,
  TransferItem,
  GiveUpReporter,
} from '../types.js';
import { AcceptBatcher } from './accept.js';
import { act, giveUp } from './admin-actions.js';
import { postpone } from './attempts.js';
import { Availability } from './availability.js';
import { checkSpool } from './check.js';
import { claimDue } from './claims.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, checkServer, createPool, pingServer, redactText } from './connection.js';
import type { PgContext } from './context.js';
import { PgJanitor } from './janitor.js';
import { LeaseKeeper, TAKEOVER_POLL_MS, releaseOwnLeases } from './leases.js';
import { migrate, quoteSchema, requireCurrentSchema } from './migrations.js';
import { HEARTBEAT_INTERVAL_MS, heartbeat, listNodes, registerNode } from './nodes.js';
import { NodeIdLock, packageVersion, type PostgresSpoolOptions } from './open.js';
import { OutcomeBatcher } from './outcomes.js';
import * as queries from './queries.js';
import * as transfer from './transfer.js';
import { DueListener, DueNotifier, DuePoller } from './wakeups.js';

export type { PostgresSpoolOptions } from './open.js';

const UNFINISHED_REFRESH_MS = 1000;
const JANITOR_INTERVAL_MS = 60_000;

/**
 * The shared PostgreSQL spool (SPEC 9, DESIGN.md beside this file). Every node of a cluster
 * opens one on the same schema; the database is the only shared state. Each concern lives
 * in its own file beside this one; this class holds the shared state and composes them.
 */
export class PostgresSpool extends EventEmitter<SpoolEvents> implements Spool {
  readonly backend = 'postgres' as const;
  private readonly ctx: PgContext;
  private readonly health: Availability;
  private readonly notifier: DueNotifier;
  private readonly batcher: AcceptBatcher;
  private readonly outcomes: OutcomeBatcher;
  private readonly leaseKeeper: LeaseKeeper;
  private readonly listener: DueListener;
  private readonly poller: DuePoller;
  private readonly janitor: PgJanitor;
  private readonly nodeLock: NodeIdLock | null;
  private dispatcher: Dispatcher | null = null;
  private nodeStatus: (() => Readonly<Record<string, TargetReport>>) | null = null;
  private unfinished = 0;
  private timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | null = null;

  private constructor(
    pool: pg.Pool,
    private readonly options: PostgresSpoolOptions,
  ) {
    super();
    const logger = options.logger ?? null;
    this.notifier = new DueNotifier({ pool, schemaName: options.schema, logger });
    this.ctx = {
      pool,
      s: quoteSchema(options.schema),
      schemaName: options.schema,
      nodeId: options.nodeId,
      leaseMs: options.leaseMs,
      dedupWindowMs: options.dedupWindowMs,
      retainFinishedMs: options.retainFinishedMs,
      url: options.url,
      logger,
      leases: new Map(),
      due: (lane) => {
        this.emit('due', lane);
        this.notifier.add(lane);
      },
      // EventEmitter's typing cannot relate a generic key to its tuple; the signature above does.
      emit: (event, ...args) => (this.emit as (e: keyof SpoolEvents, ...a: unknown[]) => boolean)(event, ...args),
    };
    this.health = new Availability(
      () => pingServer(options.url),
      (available) => {
        if (available) logger?.info({ node: options.nodeId }, 'spool database reachable again');
        else logger?.error({ node: options.nodeId }, 'spool database unreachable: accepts answer 451, deliveries pause');
        this.emit('availability', available);
        // Notifications may have been missed while down.
        if (available) void this.everyLaneDue();
      },
    );
    this.batcher = new AcceptBatcher(this.ctx, {
      groupCommit: options.groupCommit ?? true,
      dispatcher: () => this.dispatcher,
      refusal: (queued) => {
        if (this.closing && !queued) return new RelayError('ONWARD_ERR_SPOOL_WRITE', 'spool is closing');
        if (!this.health.available()) return new RelayError('ONWARD_ERR_SPOOL_WRITE', 'spool database unavailable');
        return null;
      },
      track: (fn) => this.health.track(fn),
    });
    this.outcomes = new OutcomeBatcher(this.ctx, {
      groupCommit: options.groupCommit ?? true,
      asyncCommit: options.asyncOutcomeCommit ?? true,
      track: (fn) => this.health.track(fn),
    });
    this.leaseKeeper = new LeaseKeeper(this.ctx, {
      track: (fn) => this.health.track(fn),
      available: () => this.health.available(),
      renewEveryMs: Math.max(50, Math.floor(options.leaseMs / 3)),
      takeoverEveryMs: TAKEOVER_POLL_MS,
    });
    this.listener = new DueListener(this.ctx, {
      url: options.url,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      applicationName: options.nodeId,
      due: (lane) => this.emit('due', lane),
      reconnected: () => void this.everyLaneDue(),
    });
    this.poller = new DuePoller({
      lanes: () => queries.lanes(this.ctx),
      nextDueIn: (lane) => queries.nextDueIn(this.ctx, lane),
      due: (lane) => this.emit('due', lane),
      available: () => this.health.available(),
      logger,
    });
    this.janitor = new PgJanitor(this.ctx, options.janitorIntervalMs ?? JANITOR_INTERVAL_MS);
    this.nodeLock = options.role === 'relay' && options.exclusiveNodeId ? new NodeIdLock(options) : null;
  }

  /**
   * Connects and checks the server (refusing fsync or synchronous_commit off). Relay role:
   * migrates, takes the node id, registers the node and starts the background work; CLI
   * role: only requires the schema to be the one this code knows.
   */
  static async open(options: PostgresSpoolOptions): Promise<PostgresSpool> {
    let spool: PostgresSpool | null = null;
    const pool = createPool({
      url: options.url,
      pool: options.pool,
      applicationName: options.nodeId,
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(options.statementTimeoutMs !== undefined ? { statementTimeoutMs: options.statementTimeoutMs } : {}),
      onIdleError: (err) => {
        // A server restart ends idle connections: note it, never crash.
        options.logger?.debug({ err: redactText(err.message, options.url) }, 'idle spool database connection failed');
        spool?.health.markDown();
      },
    });
    try {
      await checkServer(pool, options.url);
      if (options.role === 'cli') {
        await requireCurrentSchema(pool, options.schema);
        spool = new PostgresSpool(pool, options);
        await spool.refreshUnfinished();
        return spool;
      }
      await migrate(pool, options.schema);
      spool = new PostgresSpool(pool, options);
      await spool.startRelay();
      return spool;
    } catch (err) {
      if (spool) await spool.close().catch(() => undefined);
      else await pool.end().catch(() => undefined);
      throw err;
    }
  }

  private async startRelay(): Promise<void> {
    const { ctx, options } = this;
    if (this.nodeLock) {
      await this.nodeLock.acquire();
      // This process holds nothing yet: whatever this node id holds leased is its previous incarnation's.
      for (const lane of await releaseOwnLeases(ctx)) ctx.due(lane);
    }
    await registerNode(ctx, { host: os.hostname(), pid: process.pid, version: options.version ?? packageVersion() });
    await this.refreshUnfinished();
    await this.listener.start();
    this.leaseKeeper.start();
    this.poller.start();
    this.janitor.start();
    this.every(HEARTBEAT_INTERVAL_MS, () => this.health.track(() => heartbeat(ctx, this.nodeStatus?.() ?? {})), 'heartbeat');
    this.every(UNFINISHED_REFRESH_MS, () => this.refreshUnfinished(), 'counting unfinished messages');
  }

  private every(ms: number, fn: () => Promise<unknown>, what: string): void {
    let running = false;
    const timer = setInterval(() => {
      if (running || !this.health.available()) return;
      running = true;
      fn()
        .catch((err: unknown) => this.ctx.logger?.warn({ err }, `${what} failed; trying again at the next interval`))
        .finally(() => {
          running = false;
        });
    }, ms);
    this.timers.push(timer);
  }

  /** `maxQueued`'s measure, from the database; the last value stays on error. */
  private async refreshUnfinished(): Promise<void> {
    try {
      this.unfinished = await this.health.track(() => queries.countUnfinished(this.ctx));
    } catch (err) {
      this.ctx.logger?.debug({ err }, 'counting unfinished messages failed; keeping the last count');
    }
  }

  /** After a gap in notifications (reconnect, outage): every known lane is due once. */
  private async everyLaneDue(): Promise<void> {
    try {
      for (const lane of await queries.lanes(this.ctx)) this.emit('due', lane);
    } catch (err) {
      this.ctx.logger?.debug({ err }, 'listing lanes failed; the poll finds due work');
    }
  }

  /** Tests pause a node with this: its leases stop being renewed (and expire) while it lives. */
  pauseLeaseRenewal(): Promise<void> {
    return this.leaseKeeper.stop();
  }

  onDue(listener: (lane: string) => void): void {
    this.on('due', listener);
  }

  setDispatcher(dispatcher: Dispatcher | null): void {
    this.dispatcher = dispatcher;
  }

  setNodeStatus(provider: (() => Readonly<Record<string, TargetReport>>) | null): void {
    this.nodeStatus = provider;
  }

  available(): boolean {
    return this.health.available();
  }

  unfinishedCount(): number {
    return this.unfinished;
  }

  countsByState(): Promise<Record<MessageState, number>> {
    return this.health.track(() => queries.countsByState(this.ctx));
  }

  nodes(): Promise<NodeRecord[] | null> {
    return this.health.track(() => listNodes(this.ctx));
  }

  accept(msg: NewMessage): Promise<AcceptResult> {
    return this.batcher.accept(msg);
  }

  /** Due by the database's clock: the caller's `now` is not used (SPEC 9). While the database is down: nothing. */
  async claimDue(lane: string, _now: number, limit: number): Promise<ClaimedDelivery[]> {
    if (this.closing || !this.health.available()) return [];
    return this.health.track(() => claimDue(this.ctx, lane, limit));
  }

  completeAttempt(deliveryId: string, update: AttemptUpdate): Promise<{ message: MessageRecord; delivery: DeliveryRecord }> {
    return this.outcomes.complete(deliveryId, update);
  }

  postpone(deliveryId: string, dueAt: number): Promise<void> {
    return this.health.track(() => postpone(this.ctx, deliveryId, dueAt));
  }

  async nextDueAt(lane: string): Promise<number | null> {
    const inMs = await this.health.track(() => queries.nextDueIn(this.ctx, lane));
    return inMs === null ? null : Date.now() + inMs;
  }

  lanes(): Promise<string[]> {
    return this.health.track(() => queries.lanes(this.ctx));
  }

  getMessage(queueId: string): Promise<MessageRecord | null> {
    return this.health.track(() => queries.getMessage(this.ctx, queueId));
  }

  getDeliveries(queueId: string): Promise<DeliveryRecord[]> {
    return this.health.track(() => queries.getDeliveries(this.ctx, queueId));
  }

  getBody(queueId: string): Promise<Buffer | null> {
    return this.health.track(() => queries.getBody(this.ctx, queueId));
  }

  list(filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
    return queries.list(this.ctx, filter);
  }

  stats(): Promise<SpoolStats> {
    return this.health.track(() => queries.stats(this.ctx));
  }

  act(queueId: string, action: AdminAction): Promise<MessageRecord> {
    return this.health.track(() => act(this.ctx, queueId, action));
  }

  giveUp(
    queueId: string,
    reason: Reply,
    report: GiveUpReporter,
  ): Promise<MessageRecord> {
    return this.health.track(() => giveUp(this.ctx, queueId, reason, report));
  }

  sweep(): Promise<void> {
    return this.health.track(() => this.janitor.sweep());
  }

  check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport> {
    return this.health.track(() => checkSpool(this.ctx, repair, onProgress));
  }

  exportUnfinished(): AsyncIterable<TransferItem> {
    return transfer.exportUnfinished(this.ctx);
  }

  importMessage(item: TransferItem): Promise<'imported' | 'present'> {
    return this.health.track(() => transfer.importMessage(this.ctx, item));
  }

  forget(queueId: string, asExported?: TransferItem): Promise<ForgetResult> {
    return this.health.track(() => transfer.forget(this.ctx, queueId, asExported));
  }

  /**
   * Stops the background work, writes the accept batch in progress and disconnects.
   * Deliveries still leased stay leased: another node takes them over after the lease, or
   * this node id at its restart.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.timers = [];
      await Promise.all([this.batcher.drain(), this.outcomes.drain()]);
      await Promise.all([this.leaseKeeper.stop(), this.poller.stop(), this.janitor.stop(), this.listener.stop()]);
      await this.notifier.stop();
      this.health.stop();
      await this.nodeLock?.release();
      await this.ctx.pool.end();
    })();
    return this.closing;
  }
}
