#!/usr/bin/env node
// npm run bench — durable acceptance and end-to-end throughput of onward, side by side with
// Postfix (and Haraka) when asked. Everything on 127.0.0.1; every loop bounded in count and
// time; only processes started here are signalled.
//
//   node bench/run.mjs [--quick] [--reps N] [--rows 4k-conn,4k-reuse,4k-mx,http-submit,100k,4k-http,latency]
//                      [--compare postfix[,haraka]] [--json FILE] [--no-group-commit]
//                      [--cpu-prof DIR]   (relay runs under node --cpu-prof; summarise with
//                                          node bench/profile-summary.mjs DIR/*.cpuprofile)
//                      [--backend postgres [--nodes N] [--ab-root DIR]] [--port-offset N]
//
// --backend postgres: the same rows on a throwaway PostgreSQL (bench/lib/postgres.mjs) with one
// node, and with N nodes (clients spread over them) when --nodes N > 1, beside the LevelDB
// baseline measured in the same invocation; prints postgres ÷ level ratios and, per message,
// what the database paid: transactions committed (pg_stat_database.xact_commit), WAL bytes
// (pg_current_wal_lsn), WAL fsyncs (pg_stat_wal.wal_sync) and the server's CPU time (its
// processes in /proc: what the database spends per message). Default rows then:
// 4k-reuse,http-submit,4k-http,latency. Nodes, PostgreSQL and the load share the machine's cores.
// --ab-root DIR adds a "postgres ×1 (DIR)" variant whose relay is DIR's bin/onward (another
// commit, built), so a change is measured against its base in one invocation.
//
// Load: smtp-source / smtp-sink (Debian package postfix) when installed, else the Node load
// generator and sink in bench/lib with the same semantics. Acceptance latency (end of DATA →
// 250) always comes from the Node generator (smtp-source does not report it).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runHttpLoad } from './lib/http-loadgen.mjs';
import { startDnsServer } from './lib/dns-server.mjs';
import { runLoad } from './lib/loadgen.mjs';
import { dbCounters, perMessage, startBenchPostgres } from './lib/pg-bench.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const quick = args.includes('--quick');
const REPS = Number(opt('reps', quick ? 1 : 3));
const BACKEND = opt('backend', 'level');
if (BACKEND !== 'level' && BACKEND !== 'postgres') throw new Error('--backend must be level or postgres');
const NODES = Number(opt('nodes', 1));
if (!(Number.isInteger(NODES) && NODES >= 1 && NODES <= 5)) throw new Error('--nodes must be an integer in 1..5');
if (NODES > 1 && BACKEND !== 'postgres') throw new Error('--nodes needs --backend postgres (one LevelDB belongs to one process)');
const ROWS = opt('rows', BACKEND === 'postgres' ? '4k-reuse,http-submit,4k-http,latency' : '4k-conn,4k-reuse,4k-mx,http-submit,100k,4k-http,latency').split(',');
const COMPARE = (opt('compare', '') || '').split(',').filter(Boolean);
const GROUP_COMMIT = !args.includes('--no-group-commit');
const CPU_PROF_DIR = opt('cpu-prof', null);
const AB_ROOT = opt('ab-root', null);
if (AB_ROOT !== null && BACKEND !== 'postgres') throw new Error('--ab-root needs --backend postgres');
const SCALE = quick ? 0.25 : 1;
const MAX_REP_SECONDS = 300;
// --port-offset N moves every fixed port by N (another run on the machine holds the defaults).
const PORT_OFFSET = Number(opt('port-offset', 0));
const PORTS = Object.fromEntries(Object.entries({ relay: 2538, sink: 2536, http: 8035, admin: 9135, submit: 8045 }).map(([k, p]) => [k, p + PORT_OFFSET]));
const HAVE_POSTFIX_TOOLS = existsSync('/usr/sbin/smtp-source') && existsSync('/usr/sbin/smtp-sink');
const SHARED = join(ROOT, '..', 'shared', 'bench');

const ROW_DEFS = {
  '4k-conn': { label: '4 KiB, one message per connection', msgs: 20000, size: 4096, reuse: false, target: 'smtp' },
  '4k-reuse': { label: '4 KiB, connections reused', msgs: 20000, size: 4096, reuse: true, target: 'smtp' },
  // The HTTP front door (SPEC 10) next to the SMTP accept row: same size, same 20 clients, connections kept alive.
  'http-submit': { label: 'HTTP submission accept msg/s (20 concurrent clients, 4 KiB, keep-alive)', msgs: 20000, size: 4096, reuse: true, target: 'smtp', via: 'http' },
  // mx target: recipients spread over 50 domains, each resolved by a test DNS server (MX → 127.0.0.1 sink).
  '4k-mx': { label: '4 KiB over 50 domains, mx target (test DNS server)', msgs: 20000, size: 4096, reuse: true, target: 'mx', domains: 50 },
  '100k': { label: '100 KiB', msgs: 2000, size: 102400, reuse: false, target: 'smtp' },
  '4k-http': { label: '4 KiB → HTTP sink (raw), one per connection', msgs: 20000, size: 4096, reuse: false, target: 'http' },
  latency: { label: '4 KiB reused, Node client: accept latency', msgs: 10000, size: 4096, reuse: true, target: 'smtp', latency: true },
};

const started = [];
function track(child) {
  started.push(child);
  return child;
}
function stopAll() {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Progress: a rewritten status line on a terminal, a plain line every 5 s otherwise.
let lastProgressAt = 0;
const progress = (text) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else if (text && Date.now() - lastProgressAt >= 5000) {
    lastProgressAt = Date.now();
    process.stderr.write(`${text}\n`);
  }
};

function waitForPort(port, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  return new Promise((resolve, reject) => {
    const tryOnce = async () => {
      const { createConnection } = await import('node:net');
      const s = createConnection(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => (Date.now() > deadline ? reject(new Error(`port ${port} never opened`)) : setTimeout(tryOnce, 100)));
    };
    void tryOnce();
  });
}

/** Sink as a child process; `count()` is the number of messages it has taken. */
async function startSink(kind) {
  let child;
  let count = 0;
  if (kind === 'smtp' && HAVE_POSTFIX_TOOLS) {
    child = track(spawn('smtp-sink', ['-c', '-u', 'nobody', `127.0.0.1:${PORTS.sink}`, '1024'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    let tail = '';
    child.stdout.on('data', (d) => {
      tail = (tail + d.toString()).slice(-300);
      const m = tail.match(/mesg=(\d+)/g);
      if (m) count = Number(m[m.length - 1].slice(5));
    });
  } else {
    child = track(spawn(process.execPath, [join(ROOT, 'bench/lib/sink.mjs'), kind, String(kind === 'http' ? PORTS.http : PORTS.sink)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    child.stdout.on('data', (d) => {
      const m = d.toString().match(/count (\d+)/g);
      if (m) count = Number(m[m.length - 1].slice(6));
    });
  }
  await waitForPort(kind === 'http' ? PORTS.http : PORTS.sink);
  return {
    count: () => count,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    },
  };
}

/** The spool section (and nodeId) of node `k` of `variant` (level: one node, its own LevelDB). */
function spoolYaml(dir, variant, k) {
  if (variant.backend === 'level') return `spool: { path: ${join(dir, 'spool')}, minFreeDisk: 1GB, groupCommit: ${GROUP_COMMIT} }`;
  return `nodeId: bench-${k + 1}\nspool: { backend: postgres, url: "${variant.url}", pool: 10 }`;
}

/** The bench's DNS server for mx rows (started by measureRow); null otherwise. */
let benchDns = null;

function relayConfig(dir, target, variant = { backend: 'level' }, k = 0, via = 'smtp') {
  const targetYaml =
    target === 'http'
      ? `{ type: http, url: "http://127.0.0.1:${PORTS.http}/hook", format: raw }`
      : target === 'mx'
        ? `{ type: mx, port: ${PORTS.sink}, resolver: ["${benchDns.address}"] }`
        : `{ type: smtp, host: 127.0.0.1, port: ${PORTS.sink} }`;
  const file = join(dir, k === 0 ? 'bench.yaml' : `bench-${k + 1}.yaml`);
  writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: ${PORTS.relay + k} }]
hostname: onward-bench.localdomain
limits: { maxConnectionsPerIp: 200, maxConnections: 400 }
${spoolYaml(dir, variant, k)}
retry: { schedule: [1s, 5s], jitter: 0.1 }
targets:
  sink: ${targetYaml}
routes: [{ match: "*", target: sink }]
admin: { host: 127.0.0.1, port: ${PORTS.admin + k} }
log: { level: info }
${via === 'http' ? `submission: { listen: { host: 127.0.0.1, port: ${PORTS.submit + k} } }\n` : ''}`,
  );
  return file;
}

/** /proc figures of one process: RSS and PSS (KiB), CPU ticks (user+system). */
function procSample(pid) {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    const pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { rss, pss, ticks: Number(stat[11]) + Number(stat[12]) };
  } catch {
    return null;
  }
}

async function startRelay(dir, target, variant, k = 0, via = 'smtp') {
  const config = relayConfig(dir, target, variant, k, via);
  const profile = CPU_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] : [];
  const child = track(spawn(process.execPath, [...profile, join(variant.root ?? ROOT, 'bin/onward'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] }));
  await waitForPort(PORTS.relay + k, 60);
  if (via === 'http') await waitForPort(PORTS.submit + k, 60);
  return child;
}

/** The relay ports of a variant's nodes. */
const relayPorts = (variant) => Array.from({ length: variant.nodes }, (_, k) => PORTS.relay + k);

async function sourceLoad({ msgs, size, reuse, ports = [PORTS.relay], via = 'smtp', domains = 0 }) {
  // Many recipient domains (mx rows): the Node generator (smtp-source sends to one address).
  if (domains > 0) return runLoad({ ports, messages: msgs, size, sessions: 20, reuse, deadlineMs: MAX_REP_SECONDS * 1000, rcptDomains: domains });
  if (via === 'http') return runHttpLoad({ ports: ports.map((p) => p - PORTS.relay + PORTS.submit), messages: msgs, size, clients: 20, deadlineMs: MAX_REP_SECONDS * 1000 });
  // smtp-source talks to one address: a cluster gets the Node generator, sessions spread over the nodes.
  if (!HAVE_POSTFIX_TOOLS || ports.length > 1) return runLoad({ ports, messages: msgs, size, sessions: 20, reuse, deadlineMs: MAX_REP_SECONDS * 1000 });
  const flags = ['-4', '-s', '20', '-l', String(size), '-f', 'sender@bench.test', '-t', 'rcpt@relay.test', '-M', 'bench-client', '-m', String(msgs)];
  if (reuse) flags.push('-d');
  // Asynchronous, so progress, the memory sampler and the sink counter keep running meanwhile.
  const child = track(spawn('smtp-source', [...flags, `127.0.0.1:${PORTS.relay}`], { stdio: 'ignore' }));
  const timer = setTimeout(() => child.kill('SIGTERM'), MAX_REP_SECONDS * 1000);
  const status = await new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  return { sent: status === 0 ? msgs : 0, failed: status === 0 ? 0 : 1 };
}

const LEVEL = { name: 'level', backend: 'level', nodes: 1 };

async function measureRow(name, variant = LEVEL) {
  const def = ROW_DEFS[name];
  const msgs = Math.max(200, Math.round(def.msgs * SCALE));
  const dir = mkdtempSync(join(tmpdir(), 'onward-bench-'));
  // postgres: a fresh database per row, so no row inherits another's tables and dead tuples.
  if (variant.backend === 'postgres') variant = { ...variant, url: await variant.pg.createDatabase(`bench_${name.replace(/\W/g, '_')}_${variant.nodes}${variant.root ? '_ab' : ''}`) };
  const ports = relayPorts(variant);
  if (def.target === 'mx') {
    const zone = { 'mx.bench.test': { A: ['127.0.0.1'] } };
    for (let d = 0; d < def.domains; d++) zone[`d${d}.bench.test`] = { MX: [{ preference: 10, exchange: 'mx.bench.test' }] };
    benchDns = await startDnsServer(zone);
  }
  const sinkKind = def.target === 'mx' ? 'smtp' : def.target;
  const relays = [];
  for (let k = 0; k < variant.nodes; k++) relays.push(await startRelay(dir, def.target, variant, k, def.via));
  const sampleAll = () => {
    const all = relays.map((r) => procSample(r.pid));
    return all.includes(null) ? null : all.reduce((a, b) => ({ rss: a.rss + b.rss, pss: a.pss + b.pss, ticks: a.ticks + b.ticks }));
  };
  const reps = [];
  try {
    // Warm-up (JIT, pools), not measured.
    let sink = await startSink(sinkKind);
    await sourceLoad({ msgs: 500, size: def.size, reuse: def.reuse, ports, via: def.via, domains: def.domains });
    for (let i = 0; i < 600 && sink.count() < 500; i++) await sleep(50);
    await sink.stop();
    for (let rep = 1; rep <= REPS; rep++) {
      sink = await startSink(sinkKind);
      await sleep(variant.backend === 'postgres' ? 1500 : 1000); // postgres: the warm-up's statistics are flushed
      const dbBefore = variant.backend === 'postgres' ? await dbCounters(variant.pg, variant.url) : null;
      const before = sampleAll();
      let peakRss = before?.rss ?? 0;
      let peakPss = before?.pss ?? 0;
      const sampler = setInterval(() => {
        const s = sampleAll();
        if (s) {
          peakRss = Math.max(peakRss, s.rss);
          peakPss = Math.max(peakPss, s.pss);
        }
      }, 250);
      const t0 = performance.now();
      const ticker = setInterval(() => progress(`${name} rep ${rep}/${REPS}: ${sink.count()}/${msgs} delivered, ${((performance.now() - t0) / 1000).toFixed(0)} s`), 500);
      const load = def.latency
        ? await runLoad({ ports, messages: msgs, size: def.size, sessions: 20, reuse: def.reuse, deadlineMs: MAX_REP_SECONDS * 1000 })
        : await sourceLoad({ msgs, size: def.size, reuse: def.reuse, ports, via: def.via, domains: def.domains });
      const t1 = performance.now();
      while (sink.count() < msgs && performance.now() - t0 < MAX_REP_SECONDS * 1000) await sleep(20);
      const t2 = performance.now();
      clearInterval(ticker);
      clearInterval(sampler);
      const after = sampleAll();
      const cpuPct = before && after ? (((after.ticks - before.ticks) / 100) * 100) / ((t2 - t0) / 1000) : null;
      // CPU time per delivered message (ticks are 10 ms): what a message costs, whatever else loads the machine.
      const cpuMsPerMsg = before && after && sink.count() > 0 ? ((after.ticks - before.ticks) * 10) / sink.count() : null;
      let db = null;
      if (dbBefore) {
        await sleep(1500); // backends flush their statistics at most once a second
        db = perMessage(dbBefore, await dbCounters(variant.pg, variant.url), sink.count());
      }
      await sink.stop();
      reps.push({
        rep,
        acceptMsgS: (msgs / (t1 - t0)) * 1000,
        e2eMsgS: (sink.count() / (t2 - t0)) * 1000,
        delivered: sink.count(),
        failed: load.failed,
        p50: load.p50 ?? null,
        p95: load.p95 ?? null,
        p99: load.p99 ?? null,
        peakRssMb: peakRss / 1024,
        peakPssMb: peakPss / 1024,
        relayCpuPct: cpuPct,
        relayCpuMsPerMsg: cpuMsPerMsg,
        ...(db ? { dbXactPerMsg: db.xactPerMsg, dbWalBytesPerMsg: db.walBytesPerMsg, dbWalSyncsPerMsg: db.walSyncsPerMsg, dbCpuMsPerMsg: db.cpuMsPerMsg } : {}),
      });
      progress('');
      await sleep(2000);
      // The low-water mark: RSS with the rep's work done and the queue empty (flat across reps, or it grows).
      reps.at(-1).idleRssMb = (sampleAll()?.rss ?? NaN) / 1024;
      process.stderr.write(`${name} rep ${rep}: accept ${reps.at(-1).acceptMsgS.toFixed(0)} msg/s, e2e ${reps.at(-1).e2eMsgS.toFixed(0)} msg/s, idle RSS ${reps.at(-1).idleRssMb.toFixed(0)} MB\n`);
    }
  } finally {
    for (const r of relays) r.kill('SIGTERM');
    await Promise.all(relays.map((r) => new Promise((done) => (r.exitCode !== null || r.signalCode !== null ? done() : r.once('exit', done)))));
    rmSync(dir, { recursive: true, force: true });
    if (benchDns) await benchDns.close();
    benchDns = null;
  }
  const med = (k) => {
    const v = reps.map((r) => r[k]).filter((x) => x !== null).sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)] : null;
  };
  const keys = ['acceptMsgS', 'e2eMsgS', 'p50', 'p95', 'p99', 'peakRssMb', 'peakPssMb', 'relayCpuPct', 'relayCpuMsPerMsg', ...(variant.backend === 'postgres' ? ['dbXactPerMsg', 'dbWalBytesPerMsg', 'dbWalSyncsPerMsg', 'dbCpuMsPerMsg'] : [])];
  return { name, variant: variant.name, label: def.label, msgs, size: def.size, sessions: 20, reuse: def.reuse, target: def.target, reps, median: Object.fromEntries(keys.map((k) => [k, med(k)])) };
}

function comparePeer(peer, row) {
  const def = ROW_DEFS[row];
  const script = join(SHARED, 'run-peer.sh');
  if (!existsSync(script)) return { error: `${script} not found` };
  if (!HAVE_POSTFIX_TOOLS) return { error: 'smtp-source/smtp-sink not installed (apt-get install postfix)' };
  const msgs = Math.max(200, Math.round(def.msgs * SCALE));
  progress(`${peer} ${row}: running ${REPS} reps of ${msgs} messages (../shared/bench/run-peer.sh)…`);
  const r = spawnSync('bash', [script, peer, String(msgs), String(def.size), '20', String(REPS)], {
    env: { ...process.env, REUSE: def.reuse ? '1' : '0' },
    encoding: 'utf8',
    timeout: REPS * (MAX_REP_SECONDS + 60) * 1000,
  });
  progress('');
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const num = (k) => Number(new RegExp(`${k}=([\\d.]+)`).exec(line)?.[1] ?? NaN);
  if (!line.includes('accept_msg_s_median')) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') };
  return { acceptMsgS: num('accept_msg_s_median'), e2eMsgS: num('e2e_msg_s_median'), peakPssMb: num('peak_pss_mb_median') };
}

const fmt = (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

const results = { startedAt: new Date().toISOString(), node: process.version, loadTools: HAVE_POSTFIX_TOOLS ? 'smtp-source/smtp-sink' : 'node', groupCommit: GROUP_COMMIT, reps: REPS, rows: [], peers: {} };
// --backend postgres: the same rows on PostgreSQL (1 node, and N nodes), beside the level baseline.
const pg = BACKEND === 'postgres' ? await startBenchPostgres() : null;
const PG_VARIANTS = pg === null ? [] : [1, ...(NODES > 1 ? [NODES] : [])].map((n) => ({ name: `postgres ×${n}`, backend: 'postgres', nodes: n, pg }));
if (pg !== null && AB_ROOT !== null) PG_VARIANTS.unshift({ name: `postgres ×1 (${AB_ROOT})`, backend: 'postgres', nodes: 1, pg, root: AB_ROOT });
if (pg !== null) process.on('exit', () => pg.kill());
if (pg !== null) results.postgres = { rows: [], nodes: NODES, cores: (await import('node:os')).availableParallelism() };
for (const row of ROWS) {
  if (!ROW_DEFS[row]) throw new Error(`unknown row ${row}`);
  results.rows.push(await measureRow(row));
  for (const variant of PG_VARIANTS) results.postgres.rows.push(await measureRow(row, variant));
  for (const peer of COMPARE) {
    if (ROW_DEFS[row].target !== 'smtp' || ROW_DEFS[row].latency || ROW_DEFS[row].via === 'http') continue;
    (results.peers[peer] ??= {})[row] = comparePeer(peer, row);
  }
}

const header = ['row', 'msgs', 'size', 'sess', 'accept msg/s', 'e2e msg/s', 'p50 ms', 'p95 ms', 'p99 ms', 'peak RSS MB', 'peak PSS MB', 'relay CPU %', 'CPU ms/msg', 'idle RSS MB per rep'];
const lines = [header.join(' | '), header.map(() => '---').join(' | ')];
for (const r of results.rows) {
  const m = r.median;
  lines.push([r.name, r.msgs, r.size, r.sessions, fmt(m.acceptMsgS), fmt(m.e2eMsgS), fmt(m.p50, 1), fmt(m.p95, 1), fmt(m.p99, 1), fmt(m.peakRssMb), fmt(m.peakPssMb), fmt(m.relayCpuPct), fmt(m.relayCpuMsPerMsg, 2), r.reps.map((x) => fmt(x.idleRssMb)).join(' / ')].join(' | '));
}
console.log(`\nonward bench (${results.loadTools}, ${REPS} rep(s), medians; group commit ${GROUP_COMMIT ? 'on' : 'off'})\n`);
console.log(lines.map((l) => `| ${l} |`).join('\n'));
for (const peer of COMPARE) {
  console.log(`\nvs ${peer} (same invocation, ../shared/bench/run-peer.sh ${peer})\n`);
  console.log('| row | peer accept | peer e2e | peer PSS MB | onward/peer accept | onward/peer e2e |\n|---|---|---|---|---|---|');
  for (const r of results.rows) {
    const p = results.peers[peer]?.[r.name];
    if (!p) continue;
    if (p.error) {
      console.log(`| ${r.name} | error: ${p.error} | | | | |`);
      continue;
    }
    console.log(`| ${r.name} | ${fmt(p.acceptMsgS)} | ${fmt(p.e2eMsgS)} | ${fmt(p.peakPssMb)} | ${fmt(r.median.acceptMsgS / p.acceptMsgS, 2)}× | ${fmt(r.median.e2eMsgS / p.e2eMsgS, 2)}× |`);
  }
}
if (pg !== null) {
  console.log(`\nonward on PostgreSQL vs LevelDB (same invocation; ${results.postgres.cores} cores shared by the nodes, PostgreSQL and the load: read the ratios)\n`);
  const h = ['row', 'spool', 'accept msg/s', 'e2e msg/s', 'p99 ms', 'accept ÷ level', 'e2e ÷ level', 'p99 ÷ level', 'relay CPU %', 'xact/msg', 'WAL bytes/msg', 'WAL fsyncs/msg', 'DB CPU ms/msg'];
  console.log(`| ${h.join(' | ')} |\n|${h.map(() => '---').join('|')}|`);
  for (const base of results.rows) {
    const b = base.median;
    console.log(`| ${base.name} | level | ${fmt(b.acceptMsgS)} | ${fmt(b.e2eMsgS)} | ${fmt(b.p99, 1)} | 1.00 | 1.00 | 1.00 | ${fmt(b.relayCpuPct)} | | | | |`);
    for (const r of results.postgres.rows.filter((x) => x.name === base.name)) {
      const m = r.median;
      console.log(
        `| ${r.name} | ${r.variant} | ${fmt(m.acceptMsgS)} | ${fmt(m.e2eMsgS)} | ${fmt(m.p99, 1)} | ${fmt(m.acceptMsgS / b.acceptMsgS, 2)} | ${fmt(m.e2eMsgS / b.e2eMsgS, 2)} | ${fmt(m.p99 / b.p99, 2)} | ${fmt(m.relayCpuPct)} | ${fmt(m.dbXactPerMsg, 2)} | ${fmt(m.dbWalBytesPerMsg)} | ${fmt(m.dbWalSyncsPerMsg, 2)} | ${fmt(m.dbCpuMsPerMsg, 2)} |`,
      );
    }
  }
  await pg.stop();
}
const out = opt('json', join(ROOT, 'bench', 'results', `bench-${results.startedAt.replace(/[:.]/g, '-')}.json`));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2));
console.log(`\nresults: ${out}`);
stopAll();
