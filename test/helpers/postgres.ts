/**
 * A real, throwaway PostgreSQL for the postgres suites (started by bench/lib/postgres.mjs, which
 * the chaos harness and the bench share): `initdb` into a temp folder, `pg_ctl start` on a free
 * 127.0.0.1 port, one database, removed at teardown; `fsync = on`.
 *
 * ```ts
 * describePg('the postgres spool schema', () => {
 *   const pg = usePostgres();                 // one cluster for the describe, stopped afterAll
 *   it('...', async () => { const pool = new pg.Pool({ connectionString: pg().url }); ... });
 * });
 * ```
 *
 * Without PostgreSQL installed the suites skip, saying so in one line; under `CI=true` a
 * missing PostgreSQL fails them instead (CI installs it: `.ci/run`).
 */
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from '@jest/globals';
// The throwaway cluster itself lives in bench/ (one starter for the suites, chaos and bench).
import { pgUnavailableReason, startPostgres, type PgCluster, type PgClusterOptions } from '../../bench/lib/postgres.mjs';

export { findPgBin, PG_MISSING_LINE, pgUnavailableReason, startPostgres, type PgCluster, type PgClusterOptions } from '../../bench/lib/postgres.mjs';

/**
 * `describe` for suites that need PostgreSQL. Missing: skipped, with one line for the whole
 * run (jest workers share a marker file); under CI, a failing test instead.
 */
export function describePg(name: string, body: () => void): void {
  const reason = pgUnavailableReason();
  if (reason === null) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has PostgreSQL installed (required under CI)', () => {
        throw new Error(reason);
      });
    });
  } else {
    sayOnce(reason);
    describe.skip(name, body);
  }
}

function sayOnce(line: string): void {
  // Workers are children of the jest process; in-band, jest is this process.
  const runId = process.env.JEST_WORKER_ID ? process.ppid : process.pid;
  try {
    closeSync(openSync(join(tmpdir(), `onward-pg-missing-${String(runId)}`), 'wx'));
  } catch {
    return; // another suite of this run said it already
  }
  process.stderr.write(`${line}\n`);
}

/** One cluster for the enclosing describe: started beforeAll, stopped afterAll. */
export function usePostgres(options: PgClusterOptions = {}): () => PgCluster {
  let cluster: PgCluster | null = null;
  beforeAll(async () => {
    cluster = await startPostgres(options);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (cluster === null) throw new Error('the PostgreSQL cluster is not started (used outside a test?)');
    return cluster;
  };
}
