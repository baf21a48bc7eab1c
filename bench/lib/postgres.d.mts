// Types of bench/lib/postgres.mjs, for the TypeScript suites (test/helpers/postgres.ts).
import type pg from 'pg';

export declare const PG_MISSING_LINE: string;

/** The folder holding `initdb`, `pg_ctl` and `postgres` (≥ 15), or null when none is installed. */
export declare function findPgBin(): string | null;

/** Why a throwaway PostgreSQL cannot start here, or null when it can. */
export declare function pgUnavailableReason(): string | null;

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (trust auth on loopback). */
  readonly url: string;
  /** The same server as a role with a password (scram-sha-256), for the auth paths. */
  readonly passwordUrl: string;
  readonly password: string;
  readonly port: number;
  readonly database: string;
  /** The temp folder holding the data directory, the socket and server.log. */
  readonly dir: string;
  /** A URL for another database on this server (created by `createDatabase`). */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<string>;
  /** Runs SQL as the superuser on the test database (setup and inspection only). */
  sql(text: string, params?: readonly unknown[]): Promise<pg.QueryResult>;
  /** Crash and recover: `pg_ctl stop -m immediate` (no checkpoint, like a kill), then start. */
  restartImmediate(): Promise<void>;
  /** An outage: the server stops (`-m immediate`, like a crash) and stays down until `startServer`. */
  stopServer(): Promise<void>;
  /** The server comes back on the same port after `stopServer`. */
  startServer(): Promise<void>;
  /** Stops the server and removes its folder (idempotent). */
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  /** Extra server settings (`-c name=value`), e.g. `{ fsync: 'off' }` to test the refusal. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly database?: string;
}

export declare function startPostgres(options?: PgClusterOptions): Promise<PgCluster>;
