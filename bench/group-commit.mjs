// node bench/group-commit.mjs on|off — accepted msg/s, latency and fsyncs per message with group
// commit on or off: 20 sessions reusing connections, 4 KiB, ~10 s, the target parked (closed
// port) so every message costs an accept, a claim and a deferred outcome. Loopback only.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from './lib/loadgen.mjs';
const gc = process.argv[2] !== 'off';
const dir = mkdtempSync(join(tmpdir(), 'gc-'));
writeFileSync(join(dir, 'c.yaml'), `listen: [{ host: 127.0.0.1, port: 2558 }]
limits: { maxConnectionsPerIp: 200 }
spool: { path: ${dir}/spool, minFreeDisk: 1GB, groupCommit: ${gc} }
targets: { parked: { type: http, url: "http://127.0.0.1:9/x" } }
routes: [{ match: "*", target: parked }]
retry: { schedule: [1h] }
admin: { host: 127.0.0.1, port: 9158 }
log: { level: warn }
`);
const relay = spawn(process.execPath, [new URL('../bin/onward', import.meta.url).pathname, 'serve', '--config', join(dir, 'c.yaml')], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 1500));
// ~10 s of 20 concurrent nodemailer-like sessions (connections reused), bounded count.
const t0 = Date.now();
const r = await runLoad({ port: 2558, messages: 30000, size: 4096, sessions: 20, reuse: true, deadlineMs: 10_000 });
const secs = (Date.now() - t0) / 1000;
const m = await (await fetch('http://127.0.0.1:9158/metrics')).text();
const val = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(m)?.[1] ?? NaN);
const syncs = val('onward_spool_syncs_total');
const writes = val('onward_spool_synced_writes_total');
console.log(JSON.stringify({ groupCommit: gc, accepted: r.sent, seconds: secs.toFixed(1), msgPerS: (r.sent / secs).toFixed(0), p50: r.p50?.toFixed(1), p99: r.p99?.toFixed(1), syncs, writes, syncsPerMessage: (syncs / r.sent).toFixed(3) }));
relay.kill('SIGTERM');
await new Promise((res) => relay.once('exit', res));
rmSync(dir, { recursive: true, force: true });
