#!/usr/bin/env node
// Which PostgreSQL driver, and which group commit, for the shared spool's accept transaction.
//
//   npm run build && node bench/pg-driver.mjs [--messages 3000] [--clients 20]
//
// Starts a throwaway cluster (initdb into a temp dir, as the postgres user when root; fsync
// on), migrates schema v1 (from dist/), then runs the accept transaction (dedup key ON
// CONFLICT, message, 4 KiB bytea body, 1–2 deliveries, COMMIT) from `--clients` concurrent
// callers with each variant, and prints accepts/s, p50/p99 latency and WAL flushes
// (pg_stat_wal.wal_sync) and WAL bytes per message. The cluster is removed afterwards.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import postgres from 'postgres';
import { migrate } from '../dist/spool/postgres/migrations.js';

const run = promisify(execFile);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MESSAGES = arg('messages', 3000);
const CLIENTS = arg('clients', 20);
const BODY = randomBytes(4096);
const S = '"onward"';

// ---------------------------------------------------------------------------------------
// A throwaway cluster (the same steps as test/helpers/postgres.ts, which TypeScript-only
// test code cannot share with a plain .mjs script).

async function startCluster() {
  const base = '/usr/lib/postgresql';
  const bin =
    process.env.PG_BIN ??
    (existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)).map((v) => join(base, v, 'bin')).find((d) => existsSync(join(d, 'initdb'))) : undefined);
  if (!bin) throw new Error('PostgreSQL not installed: apt-get install postgresql');
  const root = mkdtempSync(join(tmpdir(), 'onward-pgbench-'));
  const sock = join(root, 'sock');
  mkdirSync(sock);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout);
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout);
    chownSync(root, uid, gid);
    chownSync(sock, uid, gid);
  }
  const asPg = (cmd, args) => (asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), args));
  const data = join(root, 'data');
  await asPg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await new Promise((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
  await asPg('pg_ctl', ['-D', data, '-l', join(root, 'log'), '-w', '-o', `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${sock}`, 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await asPg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------
// The accept transaction, as rows

let seq = 0;
function newMessage() {
  seq += 1;
  const id = `${Date.now().toString(36).toUpperCase().padStart(9, '0')}${seq.toString(36).toUpperCase().padStart(6, '0')}`;
  const rcpts = seq % 2 === 0 ? ['a@one.test', 'b@two.test'] : ['a@one.test'];
  const deliveries = rcpts.map((r, n) => ({
    id: `${id}.${n}`,
    lane: n === 0 ? 'primary' : 'primary+backup',
    targets: n === 0 ? ['primary'] : ['primary', 'backup'],
    recipients: JSON.stringify([{ address: r, state: 'queued', lastError: null, lastReply: null, reported: false }]),
  }));
  return { id, rcpts, deliveries, dedup: randomBytes(32).toString('hex'), client: JSON.stringify({ ip: '127.0.0.1', hostname: 'c.test', helo: 'c.test', user: null }) };
}

const SQL = {
  dedup: `INSERT INTO ${S}.dedup_keys (key, queue_id, expires_at) VALUES ($1, $2, now() + interval '1 day') ON CONFLICT (key) DO NOTHING RETURNING queue_id`,
  message: `INSERT INTO ${S}.messages (id, sender, recipients, message_id, size, client, state, dedup_key, accepted_by) VALUES ($1, 's@x.test', $2::text[], $3, $4, $5::jsonb, 'queued', $6, 'bench')`,
  body: `INSERT INTO ${S}.bodies (queue_id, body) VALUES ($1, $2)`,
  deliveries: `INSERT INTO ${S}.deliveries (id, queue_id, lane, targets, state, due_at, recipients)
    SELECT d.id, $1, d.lane, string_to_array(d.targets, '+'), 'queued', now(), d.recipients::jsonb
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS d(id, lane, targets, recipients)`,
};
const params = {
  dedup: (m) => [m.dedup, m.id],
  message: (m) => [m.id, m.rcpts, `${m.id}@bench.test`, BODY.length, m.client, m.dedup],
  body: (m) => [m.id, BODY],
  deliveries: (m) => [m.id, m.deliveries.map((d) => d.id), m.deliveries.map((d) => d.lane), m.deliveries.map((d) => d.targets.join('+')), m.deliveries.map((d) => d.recipients)],
};

// Batched: many messages in one transaction, each table in one statement.
const BATCH_SQL = {
  dedup: `INSERT INTO ${S}.dedup_keys (key, queue_id, expires_at) SELECT k, q, now() + interval '1 day' FROM unnest($1::text[], $2::text[]) AS t(k, q) ON CONFLICT (key) DO NOTHING RETURNING queue_id`,
  message: `INSERT INTO ${S}.messages (id, sender, recipients, message_id, size, client, state, dedup_key, accepted_by)
    SELECT id, 's@x.test', string_to_array(r, ','), id || '@bench.test', $3, c::jsonb, 'queued', k, 'bench' FROM unnest($1::text[], $2::text[], $4::text[], $5::text[]) AS t(id, r, c, k)`,
  body: `INSERT INTO ${S}.bodies (queue_id, body) SELECT * FROM unnest($1::text[], $2::bytea[])`,
  deliveries: `INSERT INTO ${S}.deliveries (id, queue_id, lane, targets, state, due_at, recipients)
    SELECT d.id, d.q, d.lane, string_to_array(d.targets, '+'), 'queued', now(), d.recipients::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS d(id, q, lane, targets, recipients)`,
};

// ---------------------------------------------------------------------------------------
// Variants: each returns accept(message) => Promise, and close()

function pgTx(url) {
  const pool = new pg.Pool({ connectionString: url, max: CLIENTS, application_name: 'bench' });
  return {
    async accept(m) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(SQL.dedup, params.dedup(m));
        await c.query(SQL.message, params.message(m));
        await c.query(SQL.body, params.body(m));
        await c.query(SQL.deliveries, params.deliveries(m));
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
}

function postgresJsTx(url, pipelined) {
  const sql = postgres(url, { max: CLIENTS, connection: { application_name: 'bench' }, onnotice: () => undefined });
  const q = (tx, name, m) => tx.unsafe(SQL[name], params[name](m), { prepare: true });
  return {
    // Pipelined: all four statements go out before the first answer (postgres.js's own
    // feature; the duplicate check then cannot stop the inserts, see DESIGN.md).
    accept: (m) =>
      pipelined
        ? sql.begin((tx) => [q(tx, 'dedup', m), q(tx, 'message', m), q(tx, 'body', m), q(tx, 'deliveries', m)])
        : sql.begin(async (tx) => {
            await q(tx, 'dedup', m);
            await q(tx, 'message', m);
            await q(tx, 'body', m);
            await q(tx, 'deliveries', m);
          }),
    close: () => sql.end(),
  };
}

/** The application's group commit: callers queue; `writers` transactions take all that waits (≤ 100). */
function pgBatched(url, writers) {
  const pool = new pg.Pool({ connectionString: url, max: writers, application_name: 'bench' });
  const waiting = [];
  let busy = 0;
  const batches = [];
  async function write(batch) {
    const ms = batch.map((w) => w.m);
    const ds = ms.flatMap((m) => m.deliveries.map((d) => ({ ...d, q: m.id })));
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(BATCH_SQL.dedup, [ms.map((m) => m.dedup), ms.map((m) => m.id)]);
      await c.query(BATCH_SQL.message, [ms.map((m) => m.id), ms.map((m) => m.rcpts.join(',')), BODY.length, ms.map((m) => m.client), ms.map((m) => m.dedup)]);
      await c.query(BATCH_SQL.body, [ms.map((m) => m.id), ms.map(() => BODY)]);
      await c.query(BATCH_SQL.deliveries, [ds.map((d) => d.id), ds.map((d) => d.q), ds.map((d) => d.lane), ds.map((d) => d.targets.join('+')), ds.map((d) => d.recipients)]);
      await c.query('COMMIT');
      batch.forEach((w) => w.resolve());
    } catch (err) {
      batch.forEach((w) => w.reject(err));
    } finally {
      c.release();
    }
  }
  function pump() {
    while (busy < writers && waiting.length > 0) {
      const batch = waiting.splice(0, 100);
      batches.push(batch.length);
      busy += 1;
      void write(batch).finally(() => {
        busy -= 1;
        pump();
      });
    }
  }
  return {
    accept: (m) =>
      new Promise((resolve, reject) => {
        waiting.push({ m, resolve, reject });
        pump();
      }),
    close: () => pool.end(),
    note: () => `avg batch ${(batches.reduce((a, b) => a + b, 0) / Math.max(1, batches.length)).toFixed(1)}`,
  };
}

// ---------------------------------------------------------------------------------------

async function measure(url, name, make) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`TRUNCATE ${S}.messages, ${S}.dedup_keys CASCADE`);
  await admin.query('CHECKPOINT');
  const variant = make();
  for (let i = 0; i < 100; i++) await variant.accept(newMessage()); // warm up connections and plans
  await admin.query(`SELECT pg_stat_reset_shared('wal')`);
  const latencies = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < MESSAGES) {
        next += 1;
        const t0 = process.hrtime.bigint();
        await variant.accept(newMessage());
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const n = latencies.length;
  await variant.close();
  // Backends flush their WAL statistics when they exit: wait until they have.
  while ((await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'bench'`)).rows[0].n > 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await admin.query('SELECT pg_stat_clear_snapshot()');
  const stored = (await admin.query(`SELECT (SELECT count(*) FROM ${S}.messages)::int AS m, (SELECT count(*) FROM ${S}.bodies)::int AS b`)).rows[0];
  if (stored.m !== n + 100 || stored.b !== n + 100) throw new Error(`${name}: ${stored.m} messages and ${stored.b} bodies stored, expected ${n + 100}`);
  const wal = (await admin.query('SELECT wal_sync::float8 AS sync, wal_bytes::float8 AS bytes FROM pg_stat_wal')).rows[0];
  await admin.end();
  latencies.sort((a, b) => a - b);
  const p = (q) => latencies[Math.min(n - 1, Math.floor(q * n))].toFixed(1);
  console.log(
    `${name.padEnd(44)} ${(n / seconds).toFixed(0).padStart(6)} msg/s  p50 ${p(0.5).padStart(6)} ms  p99 ${p(0.99).padStart(6)} ms  ` +
      `WAL flushes/msg ${(wal.sync / n).toFixed(3)}  WAL bytes/msg ${(wal.bytes / n).toFixed(0)}${variant.note ? `  (${variant.note()})` : ''}`,
  );
}

const cluster = await startCluster();
try {
  const setup = new pg.Pool({ connectionString: cluster.url, max: 1 });
  setup.on('error', () => undefined); // the cluster stopping under an idle connection
  await migrate(setup, 'onward');
  const setting = async (sql) => {
    await setup.query(sql);
    await setup.query('SELECT pg_reload_conf()');
  };
  const server = (await setup.query('SHOW server_version')).rows[0].server_version;
  console.log(`PostgreSQL ${server}, fsync on, synchronous_commit on; ${MESSAGES} accepts from ${CLIENTS} concurrent callers, 4 KiB body, 1–2 deliveries`);
  await measure(cluster.url, 'pg (node-postgres), one tx per message', () => pgTx(cluster.url));
  await measure(cluster.url, 'postgres.js, one tx per message', () => postgresJsTx(cluster.url, false));
  await measure(cluster.url, 'postgres.js, one tx per message, pipelined', () => postgresJsTx(cluster.url, true));
  await measure(cluster.url, 'pg, app batching (2 writers, ≤100 per tx)', () => pgBatched(cluster.url, 2));
  await measure(cluster.url, 'pg, app batching (1 writer, ≤100 per tx)', () => pgBatched(cluster.url, 1));
  await setting(`ALTER SYSTEM SET commit_delay = 1000`);
  await setting(`ALTER SYSTEM SET commit_siblings = 5`);
  await measure(cluster.url, 'pg, one tx per msg, commit_delay=1ms sib=5', () => pgTx(cluster.url));
  await setting(`ALTER SYSTEM RESET ALL`);
  await setup.end();
} finally {
  await cluster.stop();
}
