// A real, throwaway PostgreSQL for the postgres test suites, the chaos harness and the bench
// (one starter for all three): `initdb` into a temp folder, `pg_ctl start` on a free 127.0.0.1
// port (its unix socket inside the folder), one database owned by the role `onward`, removed
// by `stop()`. Run as root (CI, containers), every server command runs as the `postgres` user
// (`runuser`), because PostgreSQL refuses to run as root. The server keeps `fsync = on`: the
// relay refuses a server without it, and crash tests need the real thing.
// Types: postgres.d.mts (the TypeScript suites import this file through it).
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.mjs';

const run = promisify(execFile);

export const PG_MISSING_LINE = 'PostgreSQL not installed: apt-get install postgresql — skipping the postgres suites';

/**
 * The folder holding `initdb`, `pg_ctl` and `postgres` (≥ 15), or null when none is installed.
 * `PG_BIN` names it explicitly (and `PG_BIN=/nonexistent` shows a newcomer's machine).
 */
export function findPgBin() {
  if (process.env.PG_BIN) return hasServer(process.env.PG_BIN) ? process.env.PG_BIN : null;
  const candidates = [];
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

function hasServer(dir) {
  return ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)));
}

const IS_ROOT = process.getuid?.() === 0;

/** Why a throwaway PostgreSQL cannot start here, or null when it can. */
export function pgUnavailableReason() {
  if (findPgBin() === null) return PG_MISSING_LINE;
  if (IS_ROOT && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) return 'running as root without runuser: cannot start PostgreSQL as the postgres user';
  return null;
}

const PASSWORD = 'pg-test-secret-9f2c';

/** Starts the server; see postgres.d.mts for the returned handle. */
export async function startPostgres(options = {}) {
  const bin = findPgBin();
  if (bin === null) throw new Error(PG_MISSING_LINE);
  const root = mkdtempSync(join(tmpdir(), 'onward-pg-'));
  const data = join(root, 'data');
  const sock = join(root, 'sock');
  mkdirSync(sock);
  if (IS_ROOT) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(root, uid, gid);
    chownSync(sock, uid, gid);
  }
  const asPg = (cmd, args) => (IS_ROOT ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), [...args]));

  let port = 0;
  let stopped = false;
  const cleanup = async () => {
    if (stopped) return;
    stopped = true;
    if (existsSync(join(data, 'postmaster.pid'))) await asPg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    await rm(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  };
  try {
    // --no-sync: initdb skips flushing the fresh files to disk (halves start-up). It is about
    // initdb's own files only; the server below runs with fsync on.
    await asPg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync']);
    // Trust for the superuser on loopback; the password role goes through scram.
    await trustSuperuserOnLoopback(data);
    const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: sock, max_connections: '60', ...options.settings };
    const flags = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`);
    const start = async () => {
      await asPg('pg_ctl', ['-D', data, '-l', join(root, 'server.log'), '-w', '-t', '30', '-o', [`-p ${String(port)}`, ...flags].join(' '), 'start']);
    };
    const stopImmediate = async () => {
      await asPg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
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
    const admin = (database) => new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database });
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
    const urlFor = (db) => `postgres://postgres@127.0.0.1:${String(port)}/${db}`;
    return {
      url: urlFor(database),
      passwordUrl: `postgres://onward:${PASSWORD}@127.0.0.1:${String(port)}/${database}`,
      password: PASSWORD,
      port,
      database,
      dir: root,
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
        await stopImmediate();
        await start();
      },
      stopServer: stopImmediate,
      startServer: start,
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function trustSuperuserOnLoopback(data) {
  // initdb wrote `host all all 127.0.0.1/32 scram-sha-256`; a trust line for the superuser
  // goes before it (first match wins). Rewriting in place keeps the file's owner.
  const hba = join(data, 'pg_hba.conf');
  await writeFile(hba, `host all postgres 127.0.0.1/32 trust\n${await readFile(hba, 'utf8')}`);
}
