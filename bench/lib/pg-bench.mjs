// PostgreSQL for `npm run bench -- --backend postgres`: the throwaway server (bench/lib/postgres.mjs)
// and the database's own counters, read before and after a measured rep, per message.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
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

/**
 * CPU time (ms, user + system) of the server: the postmaster and every process it started
 * (backends, WAL writer, checkpointer, autovacuum), from /proc. A backend that exits during
 * the rep takes its time with it; the relays keep their pooled connections, so that is rare.
 */
function serverCpuMs(pg) {
  try {
    const postmaster = Number(readFileSync(join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const tickMs = 10; // USER_HZ = 100 on Linux
    let ticks = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      if (Number(entry) === postmaster || Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
    }
    return ticks * tickMs;
  } catch {
    return null;
  }
}

/** Cumulative counters: transactions committed in the database, WAL position (bytes), WAL fsyncs (cluster-wide), server CPU ms. */
export async function dbCounters(pg, url) {
  const database = new URL(url).pathname.slice(1);
  const r = await pg.sql(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)::bigint AS xact,
            pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal,
            (SELECT wal_sync FROM pg_stat_wal)::bigint AS syncs`,
    [database],
  );
  const row = r.rows[0];
  return { xact: Number(row.xact), wal: Number(row.wal), syncs: Number(row.syncs), cpuMs: serverCpuMs(pg) };
}

/** The deltas between two `dbCounters` readings, per message (the nodes' idle polling included). */
export function perMessage(before, after, messages) {
  const per = (k) => (messages > 0 && before[k] !== null && after[k] !== null ? (after[k] - before[k]) / messages : null);
  return { xactPerMsg: per('xact'), walBytesPerMsg: per('wal'), walSyncsPerMsg: per('syncs'), cpuMsPerMsg: per('cpuMs') };
}
