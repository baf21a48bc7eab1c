/**
 * Wake-ups (DESIGN.md "Wake-ups"): lanes made due by a COMMIT are announced to the other
 * nodes with one coalesced NOTIFY (at most every 20 ms, an autocommit statement, never in
 * the accept transaction); every node LISTENs on a dedicated connection that reconnects
 * with backoff (and then treats every lane as due once); polling is the safety net.
 */
import pg from 'pg';
import type { PgContext } from './context.js';
import { SingleFlight } from './single-flight.js';

export const DUE_CHANNEL = 'onward_due';
export const NOTIFY_COALESCE_MS = 20;
export const DUE_POLL_MS = 1000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/** Collects lanes and sends them all in one `pg_notify` statement, at most every NOTIFY_COALESCE_MS. */
export class DueNotifier {
  private lanes = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly ctx: Pick<PgContext, 'pool' | 'schemaName' | 'logger'>) {}

  add(lane: string): void {
    if (this.stopped) return;
    this.lanes.add(lane);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.send();
    }, NOTIFY_COALESCE_MS);
  }

  private send(): Promise<void> {
    if (this.sending) {
      // One statement at a time; what arrived meanwhile goes with the next.
      this.timer ??= setTimeout(() => {
        this.timer = null;
        void this.send();
      }, NOTIFY_COALESCE_MS);
      return this.sending;
    }
    const lanes = [...this.lanes];
    this.lanes.clear();
    if (lanes.length === 0) return Promise.resolve();
    this.sending = (async () => {
      try {
        await this.ctx.pool.query(`SELECT pg_notify($1, $2 || ':' || lane) FROM unnest($3::text[]) AS lane`, [DUE_CHANNEL, this.ctx.schemaName, lanes]);
      } catch (err) {
        // Lost notifications are what the poll is for.
        this.ctx.logger?.debug({ err }, 'NOTIFY of due lanes failed; the other nodes find them by polling');
      } finally {
        this.sending = null;
      }
    })();
    return this.sending;
  }

  /** Sends what is pending now and stops. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sending;
    await this.send();
    this.stopped = true;
  }
}

export interface DueListenerOptions {
  readonly url: string;
  readonly connectTimeoutMs: number;
  readonly applicationName: string;
  /** A lane of this schema became due (another node's NOTIFY). */
  readonly due: (lane: string) => void;
  /** The connection came back after a loss: notifications may have been missed. */
  readonly reconnected: () => void;
}

/** `LISTEN onward_due` on one dedicated connection, reconnecting with backoff; its errors never escape. */
export class DueListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = RECONNECT_MIN_MS;
  private everConnected = false;

  constructor(
    private readonly ctx: Pick<PgContext, 'schemaName' | 'logger'>,
    private readonly options: DueListenerOptions,
  ) {}

  /** Connects once (a failure here is retried in the background, like any later loss). */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.options.url,
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      application_name: `${this.options.applicationName} listen`,
      keepAlive: true,
    });
    let lost = false;
    const onLoss = (err?: Error): void => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = null;
      void client.end().catch(() => undefined);
      if (this.stopped) return;
      this.ctx.logger?.warn({ err: err?.message }, 'LISTEN connection to the spool database lost; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', onLoss);
    client.on('end', () => onLoss());
    const prefix = `${this.ctx.schemaName}:`;
    client.on('notification', (n) => {
      if (n.channel === DUE_CHANNEL && n.payload?.startsWith(prefix)) this.options.due(n.payload.slice(prefix.length));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${DUE_CHANNEL}`);
    } catch (err) {
      onLoss(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.backoffMs = RECONNECT_MIN_MS;
    if (this.everConnected) this.options.reconnected();
    this.everConnected = true;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(RECONNECT_MAX_MS, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      // A first connection that never succeeded still counts as a reconnect once it does.
      this.everConnected = true;
      void this.connect();
    }, wait);
  }

  connected(): boolean {
    return this.client !== null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}

export interface DuePollerOptions {
  readonly lanes: () => Promise<string[]>;
  readonly nextDueIn: (lane: string) => Promise<number | null>;
  readonly due: (lane: string) => void;
  readonly available: () => boolean;
  readonly logger: PgContext['logger'];
}

/**
 * The safety net: every DUE_POLL_MS asks, per known lane, how long until its earliest due
 * delivery (the database's clock, as a delay) and arms a timer for it.
 */
export class DuePoller {
  private timer: NodeJS.Timeout | null = null;
  private readonly armed = new Map<string, NodeJS.Timeout>();
  private readonly polling = new SingleFlight();

  constructor(private readonly options: DuePollerOptions) {}

  start(): void {
    this.timer ??= setInterval(() => void this.pollOnce(), DUE_POLL_MS);
  }

  pollOnce(): Promise<void> {
    return this.polling.run(async () => {
      try {
        if (!this.options.available()) return;
        const lanes = await this.options.lanes();
        await Promise.all(lanes.map(async (lane) => this.arm(lane, await this.options.nextDueIn(lane))));
      } catch (err) {
        this.options.logger?.debug({ err }, 'polling the spool for due lanes failed; trying again at the next poll');
      }
    });
  }

  private arm(lane: string, inMs: number | null): void {
    if (inMs === null) return;
    if (inMs <= 0) {
      this.options.due(lane);
      return;
    }
    if (inMs > DUE_POLL_MS || this.armed.has(lane)) return; // the next poll looks again
    this.armed.set(
      lane,
      setTimeout(() => {
        this.armed.delete(lane);
        this.options.due(lane);
      }, inMs),
    );
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.armed.values()) clearTimeout(t);
    this.armed.clear();
    await this.polling.inProgress;
  }
}
