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
import { afterAll, beforeAll } from '@jest/globals';
// The throwaway cluster itself lives in bench/ (one starter for the suites, chaos and bench).
import { pgUnavailableReason, startPostgres, type PgCluster, type PgClusterOptions } from '../../bench/lib/postgres.mjs';
import { describeRequiring } from './requirements.js';

export { findPgBin, PG_MISSING_LINE, pgUnavailableReason, startPostgres, type PgCluster, type PgClusterOptions } from '../../bench/lib/postgres.mjs';

/** `describe` for suites that need PostgreSQL (see requirements.ts: skipped once-said, failing under CI). */
export function describePg(name: string, body: () => void): void {
  describeRequiring('PostgreSQL', pgUnavailableReason(), name, body);
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
