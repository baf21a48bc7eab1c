/**
 * A real, throwaway PostgreSQL for the postgres suites: `initdb` into a temp folder, `pg_ctl
 * start` on a free 127.0.0.1 port (its unix socket inside the folder), one database, removed
 * at teardown. Run as root (CI, containers), every server command runs as the `postgres` user
 * (`runuser`), because PostgreSQL refuses to run as root. The server keeps `fsync = on`: the
 * relay refuses a server without it, and crash tests need the real thing.
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
import { execFile } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, it } from '@jest/globals';
import pg from 'pg';
import { freePort, removeDir } from './common.js';

const run = promisify(execFile);

export const PG_MISSING_LINE = 'PostgreSQL not installed: apt-get install postgresql — skipping the postgres suites';

/**
 * The folder holding `initdb`, `pg_ctl` and `postgres` (≥ 15), or null when none is installed.
 * `PG_BIN` names it explicitly (and `PG_BIN=/nonexistent` shows a newcomer's machine).
 */
export function findPgBin(): string | null {
  const candidates: string[] = [];
  if (process.env.PG_BIN) return hasServer(process.env.PG_BIN) ? process.env.PG_BIN : null;
  // Debian/Ubuntu: the real binaries live per major version; `pg_ctl` on PATH is a wrapper
  // script (pg_ctlcluster's), so never trust PATH there. Highest version first.
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v) && Number(v) >= 15)
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(debian, v, 'bin')));
  }
  // Other systems (Homebrew, Fedora, a source build) put them on PATH.
  candidates.push(...(process.env.PATH ?? '').split(':').filter(Boolean));
  return candidates.find(hasServer) ?? null;
}

function hasServer(dir: string): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)));
}

const IS_ROOT = process.getuid?.() === 0;

/** Why the postgres suites cannot run here, or null when they can. */
export function pgUnavailableReason(): string | null {
  if (findPgBin() === null) return PG_MISSING_LINE;
  if (IS_ROOT && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) return 'running as root without runuser: cannot start PostgreSQL as the postgres user';
  return null;
}

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

export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (trust auth on loopback). */
  readonly url: string;
  /** The same server as a role with a password (scram-sha-256), for the auth paths. */
  readonly passwordUrl: string;
  readonly password: string;
  readonly port: number;
  readonly database: string;
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

const PASSWORD = 'pg-test-secret-9f2c';

export async function startPostgres(options: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  if (bin === null) throw new Error(PG_MISSING_LINE);
  const root = mkdtempSync(join(tmpdir(), 'onward-pg-'));
  const data = join(root, 'data');
  const sock = join(root, 'sock');
  mkdirSync(sock);
  if (IS_ROOT) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const uid = Number(stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(root, uid, gid);
    chownSync(sock, uid, gid);
  }
  const asPg = (cmd: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> =>
    IS_ROOT ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), [...args]);

  let port = 0;
  let stopped = false;
  const cleanup = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (existsSync(join(data, 'postmaster.pid'))) await asPg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    await removeDir(root);
  };
  try {
    // --no-sync: initdb skips flushing the fresh files to disk (halves start-up). It is about
    // initdb's own files only; the server below runs with fsync on.
    await asPg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync']);
    // Trust for the superuser on loopback; the password role goes through scram.
    await trustSuperuserOnLoopback(data);
    const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: sock, max_connections: '60', ...options.settings };
    const flags = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`);
    const start = async (): Promise<void> => {
      await asPg('pg_ctl', ['-D', data, '-l', join(root, 'server.log'), '-w', '-t', '30', '-o', [`-p ${String(port)}`, ...flags].join(' '), 'start']);
    };
    for (let tries = 0; ; tries++) {
      port = await freePort();
      try {
        await start();
        break;
      } catch (err) {
        if (tries >= 3) throw err; // the port was taken between freePort and the bind
      }
    }
    const admin = (database: string): pg.Client => new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database });
    const database = options.database ?? 'onward_test';
    const setup = admin('postgres');
    await setup.connect();
    try {
      await setup.query(`CREATE DATABASE ${database}`);
      await setup.query(`CREATE ROLE onward LOGIN PASSWORD '${PASSWORD}'`);
      await setup.query(`GRANT ALL ON DATABASE ${database} TO onward`);
      await setup.query(`ALTER DATABASE ${database} OWNER TO onward`);
    } finally {
      await setup.end();
    }
    const urlFor = (db: string): string => `postgres://postgres@127.0.0.1:${String(port)}/${db}`;
    return {
      url: urlFor(database),
      passwordUrl: `postgres://onward:${PASSWORD}@127.0.0.1:${String(port)}/${database}`,
      password: PASSWORD,
      port,
      database,
      urlFor,
      async createDatabase(name) {
        const c = admin('postgres');
        await c.connect();
        try {
          await c.query(`CREATE DATABASE ${name} OWNER onward`);
        } finally {
          await c.end();
        }
        return urlFor(name);
      },
      async sql(text, params = []) {
        const c = admin(database);
        await c.connect();
        try {
          return await c.query(text, [...params]);
        } finally {
          await c.end();
        }
      },
      async restartImmediate() {
        await asPg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        await start();
      },
      async stopServer() {
        await asPg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      },
      startServer: start,
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function trustSuperuserOnLoopback(data: string): Promise<void> {
  // initdb wrote `host all all 127.0.0.1/32 scram-sha-256`; a trust line for the superuser
  // goes before it (first match wins). Rewriting in place keeps the file's owner.
  const hba = join(data, 'pg_hba.conf');
  await writeFile(hba, `host all postgres 127.0.0.1/32 trust\n${await readFile(hba, 'utf8')}`);
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
