/**
 * Whether the database answers (SPEC 9 "Database unavailable"): down after a query fails
 * with a connection error or a timeout, up again after the next query (or the periodic
 * ping while down) succeeds. Every change is reported once; nothing here waits or retries
 * on the caller's behalf, so accepts fail fast and claims pause while down.
 */

/** SQLSTATE codes that say "the server is gone or not answering", not "your SQL is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08007', '08P01']);
/** Node socket errors and pg's own client-side terminations. */
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES = /Connection terminated|Client has encountered a connection error|Connection ended|the database system is (shutting down|starting up|in recovery)/i;
/**
 * Slowness that may be the server or may be this query (a lock wait, a big read) or a busy
 * pool: statement timeout, pg's client-side query timeout, no free pooled connection in time.
 * It marks the database down only when a ping of the server itself fails too.
 */
const SUSPECT_SQLSTATES = new Set(['57014']);
const SUSPECT_MESSAGES = /timeout exceeded when trying to connect|Query read timeout/i;

interface ErrorLike {
  readonly message: string;
  readonly code?: unknown;
  readonly cause?: unknown;
}

/**
 * Duck-typed, not `instanceof Error`: an error made in another realm (Node's own socket errors
 * seen from a `vm` context, as under jest) is no instance of this realm's Error.
 */
function isErrorLike(e: unknown): e is ErrorLike {
  return typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string';
}

function someCause(err: unknown, test: (e: ErrorLike) => boolean): boolean {
  for (let e: unknown = err, depth = 0; isErrorLike(e) && depth < 5; e = e.cause, depth++) if (test(e)) return true;
  return false;
}

/** A failure meaning the database cannot be reached. */
export function isUnavailableError(err: unknown): boolean {
  return someCause(err, (e) => (typeof e.code === 'string' && (UNAVAILABLE_SQLSTATES.has(e.code) || UNAVAILABLE_NODE_CODES.has(e.code))) || UNAVAILABLE_MESSAGES.test(e.message));
}

/** A timeout that could be the server's or only this query's (see SUSPECT_SQLSTATES). */
export function isSuspectError(err: unknown): boolean {
  return someCause(err, (e) => (typeof e.code === 'string' && SUSPECT_SQLSTATES.has(e.code)) || SUSPECT_MESSAGES.test(e.message));
}

export const PING_INTERVAL_MS = 1000;

export class Availability {
  private up = true;
  private pingTimer: NodeJS.Timeout | null = null;
  private pinging = false;
  private stopped = false;

  constructor(
    /** One cheap query (`SELECT 1`) on its own connection, not the pool's, bounded in time; it must not go through `track` itself. */
    private readonly ping: () => Promise<unknown>,
    private readonly changed: (available: boolean) => void,
  ) {}

  available(): boolean {
    return this.up;
  }

  /** Runs `fn`, marking the database up when it succeeds and down when it fails unreachable; rethrows. */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.markUp();
      return result;
    } catch (err) {
      if (isUnavailableError(err)) this.markDown();
      else if (isSuspectError(err) && this.up) void this.verify();
      throw err;
    }
  }

  /** After a suspect timeout: down only if the server itself does not answer a ping either. */
  private async verify(): Promise<void> {
    if (this.pinging) return;
    this.pinging = true;
    try {
      await this.ping();
    } catch {
      this.markDown();
    } finally {
      this.pinging = false;
    }
  }

  markDown(): void {
    if (this.stopped) return;
    if (this.up) {
      this.up = false;
      this.changed(false);
    }
    this.pingTimer ??= setInterval(() => void this.pingOnce(), PING_INTERVAL_MS);
  }

  markUp(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    if (!this.up && !this.stopped) {
      this.up = true;
      this.changed(true);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private async pingOnce(): Promise<void> {
    if (this.pinging) return;
    this.pinging = true;
    try {
      await this.ping();
      this.markUp();
    } catch {
      // still down: the next tick asks again
    } finally {
      this.pinging = false;
    }
  }
}
