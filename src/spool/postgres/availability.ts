/**
 * Whether the database answers (SPEC 9 "Database unavailable"): down after a query fails
 * with a connection error or a timeout, up again after the next query (or the periodic
 * ping while down) succeeds. Every change is reported once; nothing here waits or retries
 * on the caller's behalf, so accepts fail fast and claims pause while down.
 */

/** SQLSTATE classes and codes that say "the server is gone or not answering", not "your SQL is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57014', '53300', '08000', '08001', '08003', '08004', '08006', '08007', '08P01']);
/** Node socket errors and pg's own client-side timeouts / terminations. */
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection ended|the database system is (shutting down|starting up|in recovery)/i;

/** A failure meaning the database cannot be reached or did not answer in time. */
export function isUnavailableError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code))) return true;
    if (UNAVAILABLE_MESSAGES.test(e.message)) return true;
  }
  return false;
}

export const PING_INTERVAL_MS = 1000;

export class Availability {
  private up = true;
  private pingTimer: NodeJS.Timeout | null = null;
  private pinging = false;
  private stopped = false;

  constructor(
    /** One cheap query (`SELECT 1`); it must not go through `track` itself. */
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
      throw err;
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
