/**
 * Connections to the shared spool's database: a bounded pool (no session waits longer than
 * the bounds below: SPEC 9 "no session waits more than 5 s"), the start-up check that
 * refuses a server that can lose acknowledged commits, and the database clock. Passwords
 * never reach a message: every URL we print goes through `redactUrl`.
 */
import pg from 'pg';
import { RelayError } from '../../errors.js';

export interface PgConnectionOptions {
  /** `postgres://user:password@host:port/db` (`spool.url`). */
  readonly url: string;
  /** Connections per node (`spool.pool`). */
  readonly pool: number;
  /** Shown in `pg_stat_activity.application_name` (the node id). */
  readonly applicationName?: string;
  /** TCP connect plus authentication, and the wait for a free pooled connection. @defaultValue 5000 */
  readonly connectTimeoutMs?: number;
  /** Server-side bound on one statement; the client gives up 1 s later if the server cannot say so. @defaultValue 5000 */
  readonly statementTimeoutMs?: number;
  /** The server ends a session left in an open transaction this long (a stuck node frees its row locks). @defaultValue 10000 */
  readonly idleInTransactionTimeoutMs?: number;
  /** Errors of idle pooled connections (a server restart); without a listener they would crash the process. */
  readonly onIdleError?: (err: Error) => void;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 5000;
export const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;
/** SPEC 9 supports PostgreSQL 15 and later (the oldest release still maintained when written). */
export const MIN_SERVER_VERSION_NUM = 150000;

export function createPool(options: PgConnectionOptions): pg.Pool {
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.pool,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeoutMs,
    // The server cannot report a timeout over a dead link: the client bounds the wait itself.
    query_timeout: statementTimeoutMs + 1000,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    application_name: options.applicationName ?? 'onward',
    // Finds a silently dropped connection (partition, failover) instead of keeping it forever.
    keepAlive: true,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (err) => (options.onIdleError ?? (() => undefined))(err));
  return pool;
}

/** The URL with its password replaced by `***` (and unparsable input not echoed at all). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return '<unparsable spool.url>';
  }
}

/** Removes the password, if it appears, from any text (a driver's error message). */
export function redactText(text: string, url: string): string {
  let secrets: string[];
  try {
    const u = new URL(url);
    secrets = [decodeURIComponent(u.password), u.searchParams.get('password') ?? ''].filter((p) => p !== '');
  } catch {
    return text;
  }
  return secrets.reduce((out, secret) => out.split(secret).join('***'), text);
}

/** The database answers, but acknowledging messages on it would break the promise: a configuration error (exit 1), not an outage. */
export function refused(url: string, what: string): RelayError {
  return new RelayError('ONWARD_ERR_SPOOL_REFUSED', `PostgreSQL spool at ${redactUrl(url)}: ${what}`);
}

/** The spool cannot use the database: unreachable, or failing. */
export function unavailable(url: string, what: string, cause?: unknown): RelayError {
  const detail = cause instanceof Error ? `: ${redactText(cause.message, url)}` : '';
  return new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `PostgreSQL spool at ${redactUrl(url)}: ${what}${detail}`);
}

export interface ServerFacts {
  readonly versionNum: number;
  readonly fsync: string;
  readonly synchronousCommit: string;
  /** The database's clock at the check, epoch ms. */
  readonly nowMs: number;
}

/**
 * Connects once and refuses a server we must not acknowledge messages on: a version older
 * than 15, `fsync = off` (a crash can lose or corrupt committed data), or
 * `synchronous_commit = off` for this role and database (COMMIT returns before the WAL is
 * flushed: a crash loses recent 250s). Throws a RelayError naming the setting.
 */
export async function checkServer(pool: pg.Pool, url: string): Promise<ServerFacts> {
  let row: { version_num: string; fsync: string; synchronous_commit: string; now_ms: number } | undefined;
  try {
    const result = await pool.query<{ version_num: string; fsync: string; synchronous_commit: string; now_ms: number }>(
      `SELECT current_setting('server_version_num') AS version_num,
              current_setting('fsync') AS fsync,
              current_setting('synchronous_commit') AS synchronous_commit,
              (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms`,
    );
    row = result.rows[0];
  } catch (err) {
    throw unavailable(url, 'cannot connect', err);
  }
  if (row === undefined) throw unavailable(url, 'the settings query returned nothing');
  const facts: ServerFacts = { versionNum: Number(row.version_num), fsync: row.fsync, synchronousCommit: row.synchronous_commit, nowMs: row.now_ms };
  if (facts.versionNum < MIN_SERVER_VERSION_NUM) {
    throw refused(url, `server version ${String(facts.versionNum)} is older than PostgreSQL 15, which the postgres spool needs`);
  }
  if (facts.fsync === 'off') {
    throw refused(url, 'the server runs with fsync = off, so a crash can lose acknowledged messages; refusing to start (set fsync = on)');
  }
  if (facts.synchronousCommit === 'off') {
    throw refused(
      url,
      'synchronous_commit = off for this role and database, so COMMIT can return before the message is durable; refusing to start (set synchronous_commit = on)',
    );
  }
  return facts;
}

/** How long a liveness ping may take: connect and `SELECT 1` on a connection of its own. */
export const PING_TIMEOUT_MS = 2000;

/** Whether the server answers at all, on a fresh connection (a busy pool cannot make it fail). */
export async function pingServer(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PING_TIMEOUT_MS, query_timeout: PING_TIMEOUT_MS, application_name: 'onward ping' });
  client.on('error', () => undefined); // a failure is the answer, reported by connect/query
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Anything that runs a query: the pool or one checked-out client (inside a transaction). */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/**
 * The database's clock, epoch ms. Due times and leases are judged by it (SPEC 9), so a node
 * whose clock is off neither steals live leases nor delays due work; this is for what a
 * node must show or compare in memory (e.g. `spool nodes` ages), not for SQL, which uses `now()`.
 */
export async function databaseNow(db: Queryable): Promise<number> {
  const result = await db.query<{ now_ms: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms`);
  const ms = result.rows[0]?.now_ms;
  if (ms === undefined) throw new Error('SELECT clock_timestamp() returned no row');
  return ms;
}
