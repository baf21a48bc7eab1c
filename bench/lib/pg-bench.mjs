// PostgreSQL for `npm run bench -- --backend postgres`: the throwaway server (bench/lib/postgres.mjs)
// and the database's own counters, read before and after a measured rep, per message.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgres } from './postgres.mjs';

/** The server, plus `kill()`: a synchronous best-effort stop for process exit (SIGQUIT = immediate shutdown). */
export async function startBenchPostgres() {
  const pg = await startPostgres({ database: 'onward_bench', settings: { max_connections: '100' } });
  return {
    ...pg,
    kill() {
      try {
        const pid = Number(readFileSync(join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
        if (pid > 0) process.kill(pid, 'SIGQUIT');
        rmSync(pg.dir, { recursive: true, force: true });
      } catch {
        /* already stopped */
      }
    },
  };
}

/** Cumulative counters: transactions committed in the database, WAL position (bytes), WAL fsyncs (cluster-wide). */
export async function dbCounters(pg, url) {
  const database = new URL(url).pathname.slice(1);
  const r = await pg.sql(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)::bigint AS xact,
            pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal,
            (SELECT wal_sync FROM pg_stat_wal)::bigint AS syncs`,
    [database],
  );
  const row = r.rows[0];
  return { xact: Number(row.xact), wal: Number(row.wal), syncs: Number(row.syncs) };
}

/** The deltas between two `dbCounters` readings, per message (the nodes' idle polling included). */
export function perMessage(before, after, messages) {
  const per = (k) => (messages > 0 ? (after[k] - before[k]) / messages : null);
  return { xactPerMsg: per('xact'), walBytesPerMsg: per('wal'), walSyncsPerMsg: per('syncs') };
}
