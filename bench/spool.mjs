#!/usr/bin/env node
// npm run bench:spool — does onward stay fast with a huge spool? Fills a spool with N
// deferred messages (default 1,000,000, through the real LevelSpool code paths: accept,
// claim, defer), then starts `onward serve` on it and measures `spool stats`,
// `spool list --limit 50`, the dashboard (load time and bytes transferred in Debian's
// chromium, a recipient filter that matches nothing, i.e. the worst case scan), RSS, and the
// end-to-end rate of newly sent messages to an HTTP sink — against the same measurement on an
// empty spool in the same invocation.
//   node bench/spool.mjs [--messages N] [--probe M]    (loopback only, bounded)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LevelSpool, newQueueId } from '../dist/spool/index.js';
import { browserUnavailableReason } from './lib/browser.mjs';
import { runLoad } from './lib/loadgen.mjs';
import { measurePageLoad } from './lib/page-load.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : def);
const N = Number(opt('messages', 1_000_000));
const PROBE = Number(opt('probe', 5000));
const PORTS = { relay: 2548, http: 8045, admin: 9145 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

async function fill(path, n) {
  const spool = await LevelSpool.open({ path, dedupWindowMs: 86_400_000, retainFinishedMs: 86_400_000 });
  const body = Buffer.from(`From: a@bench.test\r\nTo: b@parked.test\r\nSubject: parked\r\n\r\n${'x'.repeat(1000)}\r\n`);
  const t0 = Date.now();
  const BATCH = 2000;
  for (let done = 0; done < n; done += BATCH) {
    const k = Math.min(BATCH, n - done);
    await Promise.all(
      Array.from({ length: k }, () =>
        spool.accept({
          queueId: newQueueId(),
          sender: 'a@bench.test',
          recipients: ['b@parked.test'],
          messageId: null,
          body,
          client: { ip: '127.0.0.1', hostname: 'bench', helo: 'bench', user: null },
          deliveries: [{ targets: ['parked'], recipients: ['b@parked.test'] }],
          dedupKey: null,
          bounceOf: null,
        }),
      ),
    );
    // Defer them as a failed attempt would: next attempt in a day.
    const claimed = await spool.claimDue('parked', Date.now(), k);
    await Promise.all(
      claimed.map((c) =>
        spool.completeAttempt(c.delivery.id, {
          attempts: [{ at: Date.now(), target: 'parked', outcome: 'error', reply: 'HTTP 503 Service Unavailable', durationMs: 1 }],
          recipients: [{ address: 'b@parked.test', state: 'deferred', reply: { kind: 'http', code: 503, enhancedStatus: null, text: 'HTTP 503 Service Unavailable' } }],
          nextDueAt: Date.now() + 86_400_000,
        }),
      ),
    );
    if ((done / BATCH) % 25 === 0) process.stderr.write(`fill: ${done + k}/${n} deferred messages, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  await spool.close();
  return (Date.now() - t0) / 1000;
}

function startHttpSink() {
  const child = spawn(process.execPath, [join(ROOT, 'bench/lib/sink.mjs'), 'http', String(PORTS.http)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let count = 0;
  child.stdout.on('data', (d) => {
    const m = d.toString().match(/count (\d+)/g);
    if (m) count = Number(m[m.length - 1].slice(6));
  });
  return { count: () => count, child };
}

async function measure(dir, label) {
  const config = join(dir, 'bench.yaml');
  writeFileSync(
    config,
    `listen: [{ host: 127.0.0.1, port: ${PORTS.relay} }]
limits: { maxConnectionsPerIp: 200 }
spool: { path: ${join(dir, 'spool')}, minFreeDisk: 1GB, maxQueued: 5000000 }
retry: { schedule: [1d], jitter: 0 }
targets:
  sink: { type: http, url: "http://127.0.0.1:${PORTS.http}/hook", format: raw, concurrency: 32 }
  parked: { type: http, url: "http://127.0.0.1:9/closed", format: raw }
routes: [{ match: "*@parked.test", target: parked }, { match: "*", target: sink }]
admin: { host: 127.0.0.1, port: ${PORTS.admin} }
log: { level: warn }
`,
  );
  const sink = startHttpSink();
  const relay = spawn(process.execPath, [join(ROOT, 'bin/onward'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(relay);
  for (let i = 0; i < 300; i++) {
    const r = spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${PORTS.relay}`]);
    if (r.status === 0) break;
    await sleep(100);
  }
  const cli = (...a) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/onward'), 'spool', ...a, '--config', config], { encoding: 'utf8', maxBuffer: 1 << 26 });
    return { ms: performance.now() - t0, out: r.stdout, code: r.status };
  };
  const stats = cli('stats', '--json');
  const list = cli('list', '--limit', '50');
  const page = browserUnavailableReason() === null ? await dashboard() : null;
  const f0 = performance.now();
  const filtered = await fetch(`http://127.0.0.1:${PORTS.admin}/api/spool/messages?recipient=nobody@nowhere.test&limit=50`).then((r) => r.text());
  const filterMs = performance.now() - f0;
  if (filtered !== '') throw new Error('the no-match filter matched something');
  const t0 = performance.now();
  await runLoad({ port: PORTS.relay, messages: PROBE, size: 4096, sessions: 20, reuse: true, deadlineMs: 120_000 });
  while (sink.count() < PROBE && performance.now() - t0 < 180_000) await sleep(20);
  const e2e = (sink.count() / (performance.now() - t0)) * 1000;
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${relay.pid}/status`, 'utf8'))?.[1] ?? 0);
  relay.kill('SIGTERM');
  sink.child.kill('SIGTERM');
  await new Promise((r) => relay.once('exit', r));
  const parsed = JSON.parse(stats.out || '{}');
  const result = { label, statsMs: stats.ms, deferredInStats: parsed.states?.deferred, listLimit50Ms: list.ms, page, filterMs, listRows: list.out.split('\n').filter((l) => /^[0-9A-Z]{15} /.test(l)).length, e2eMsgS: e2e, rssMb: rssKb / 1024 };
  process.stderr.write(`${label}: ${JSON.stringify(result)}\n`);
  return result;
}

/** The dashboard loaded cold until the plot has its history and the list its first page. */
async function dashboard() {
  const ready = () =>
    window.onwardDashboard?.listLoads > 0 && window.onwardDashboard.plots !== null && document.getElementById('live')?.textContent === 'live';
  return measurePageLoad(`http://127.0.0.1:${PORTS.admin}/`, ready);
}

const emptyDir = mkdtempSync(join(tmpdir(), 'onward-spool-empty-'));
const fullDir = mkdtempSync(join(tmpdir(), 'onward-spool-full-'));
try {
  const empty = await measure(emptyDir, 'empty spool');
  const fillSeconds = await fill(join(fullDir, 'spool'), N);
  const full = await measure(fullDir, `${N} deferred`);
  console.log(`\nspool scale (fill of ${N} deferred messages took ${fillSeconds.toFixed(0)} s)\n`);
  console.log('| spool | spool stats (CLI, ms) | list --limit 50 (CLI, ms) | dashboard load (ms) | dashboard bytes | recipient filter, no match (API, ms) | e2e msg/s (new messages, HTTP sink) | relay RSS MB |\n|---|---|---|---|---|---|---|---|');
  const pageCells = (p) => (p === null ? 'no chromium | —' : `${p.loadMs.toFixed(0)} | ${(p.transferredBytes / 1024).toFixed(1)} KiB in ${p.requests} requests`);
  for (const r of [empty, full]) {
    console.log(`| ${r.label} | ${r.statsMs.toFixed(0)} | ${r.listLimit50Ms.toFixed(0)} | ${pageCells(r.page)} | ${r.filterMs.toFixed(0)} | ${r.e2eMsgS.toFixed(0)} | ${r.rssMb.toFixed(0)} |`);
  }
  console.log(`\nfull/empty e2e ratio: ${(full.e2eMsgS / empty.e2eMsgS).toFixed(2)}`);
} finally {
  rmSync(emptyDir, { recursive: true, force: true });
  rmSync(fullDir, { recursive: true, force: true });
}
