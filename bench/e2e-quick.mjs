#!/usr/bin/env node
/**
 * Quick end-to-end throughput measurement (not a test): the built relay (`dist/`, run
 * `npm run build` first) as a child process, a sink on loopback as its only target, and
 * nodemailer pushing N × 4 KiB messages over 20 pooled connections. Prints msgs/s from the
 * first connect until the sink has accepted every message (each counted once).
 *
 *   node bench/e2e-quick.mjs http                 # HTTP sink answering 200
 *   node bench/e2e-quick.mjs smtp --fail 0.3      # SMTP sink answering 451 to 30% of DATA
 *   node bench/e2e-quick.mjs http --fail 0.3 --count 2000 --format raw
 *
 * Options: --count N (default 5000, max 100000), --fail F (fraction 0..1 answered 500 / 451),
 * --connections C (default 20), --size BYTES (default 4096), --format json|raw (HTTP, default json),
 * --concurrency N (target bound; default the relay's: http 16, smtp pool 8), --timeout S (default/max 120).
 * Loopback only; the relay gets a 100ms retry step (no jitter) so that retries fit in the run;
 * it kills only the child it started.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import smtpServer from 'smtp-server';
import { stringify } from 'yaml';
import { freePort } from './lib/net.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const opts = { kind: 'http', count: 5000, fail: 0, connections: 20, size: 4096, format: 'json', concurrency: null, timeout: 120 };
  const rest = [...argv];
  while (rest.length > 0) {
    const arg = rest.shift();
    const value = () => {
      const v = rest.shift();
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === 'http' || arg === 'smtp') opts.kind = arg;
    else if (arg === '--count') opts.count = Number(value());
    else if (arg === '--fail') opts.fail = Number(value());
    else if (arg === '--connections') opts.connections = Number(value());
    else if (arg === '--size') opts.size = Number(value());
    else if (arg === '--format') opts.format = value();
    else if (arg === '--concurrency') opts.concurrency = Number(value());
    else if (arg === '--timeout') opts.timeout = Number(value());
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > 100_000) usage('--count must be 1..100000');
  if (!(opts.fail >= 0 && opts.fail < 1)) usage('--fail must be in [0, 1)');
  if (!Number.isInteger(opts.connections) || opts.connections < 1 || opts.connections > 100) usage('--connections must be 1..100');
  if (!Number.isInteger(opts.size) || opts.size < 512 || opts.size > 10 * 1024 * 1024) usage('--size must be 512..10485760');
  if (!['json', 'raw'].includes(opts.format)) usage('--format must be json or raw');
  if (!(opts.timeout > 0)) usage('--timeout must be > 0');
  opts.timeout = Math.min(opts.timeout, 120);
  return opts;
}

function usage(problem) {
  console.error(`e2e-quick: ${problem}\nusage: node bench/e2e-quick.mjs http|smtp [--count N] [--fail F] [--connections C] [--size B] [--format json|raw] [--concurrency N] [--timeout S]`);
  process.exit(1);
}


/** Counts distinct messages the sink accepted, keyed by `key`. */
class Tally {
  constructor(total) {
    this.total = total;
    this.accepted = new Set();
    this.requests = 0;
    this.refused = 0;
    this.waiters = [];
    this.doneAt = null;
  }
  ok(key) {
    this.accepted.add(key);
    if (this.accepted.size >= this.total && this.doneAt === null) {
      this.doneAt = performance.now();
      for (const w of this.waiters.splice(0)) w();
    }
  }
  done() {
    return this.doneAt !== null ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
}

async function startHttpSink(tally, fail) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      tally.requests += 1;
      if (Math.random() < fail) {
        tally.refused += 1;
        res.writeHead(500).end();
        return;
      }
      tally.ok(String(req.headers['idempotency-key']));
      res.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function startSmtpSink(tally, fail) {
  const server = new smtpServer.SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    hideSTARTTLS: true,
    closeTimeout: 100,
    onData(stream, _session, callback) {
      let head = '';
      stream.on('data', (chunk) => {
        if (head.length < 4096) head += chunk.toString('latin1');
      });
      stream.on('end', () => {
        tally.requests += 1;
        if (Math.random() < fail) {
          tally.refused += 1;
          callback(Object.assign(new Error('4.3.0 try again later'), { responseCode: 451 }));
          return;
        }
        const id = /^Message-ID:\s*(\S+)/im.exec(head)?.[1] ?? `unknown-${String(tally.requests)}`;
        tally.ok(id);
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.server.address().port, close: () => new Promise((r) => server.close(() => r())) };
}

function message(i, size, runId) {
  const head = [
    'From: Bench <bench@client.test>',
    `To: rcpt${String(i % 50)}@sink.test`,
    `Subject: e2e-quick ${String(i)}`,
    `Message-ID: <${runId}.${String(i)}@client.test>`,
    'Date: Fri, 27 Nov 2026 11:15:01 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  const line = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstuvwxyz\r\n';
  let body = '';
  while (head.length + body.length + line.length <= size) body += line;
  body += 'x'.repeat(Math.max(0, size - head.length - body.length - 2)) + '\r\n';
  return head + body;
}

async function waitForPort(port, child, deadline) {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`relay exited early with code ${String(child.exitCode)}`);
    const ok = await new Promise((r) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('relay did not start listening in time');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'index.js'))) usage('dist/ is missing: run `npm run build` first');
  const hardDeadline = Date.now() + opts.timeout * 1000;
  const tally = new Tally(opts.count);
  const sink = opts.kind === 'http' ? await startHttpSink(tally, opts.fail) : await startSmtpSink(tally, opts.fail);
  const dir = await mkdtemp(join(tmpdir(), 'onward-e2e-quick-'));
  const port = await freePort();
  const target =
    opts.kind === 'http'
      ? { type: 'http', url: `http://127.0.0.1:${String(sink.port)}/hook`, format: opts.format, timeout: '10s' }
      : { type: 'smtp', host: '127.0.0.1', port: sink.port, secure: 'none', timeout: '10s' };
  if (opts.concurrency !== null) {
    target.concurrency = opts.concurrency;
    if (opts.kind === 'smtp') target.pool = { maxConnections: opts.concurrency };
  }
  // A failing fraction makes runs of consecutive ERRORs likely; keep the circuit's pause short.
  target.circuit = { failures: 5, probe: '500ms' };
  const config = {
    listen: [{ host: '127.0.0.1', port }],
    hostname: 'relay.bench',
    limits: { maxMessageSize: '25MB', maxRecipients: 100, maxConnections: 200, maxConnectionsPerIp: 100 },
    relay: { allowNetworks: ['127.0.0.0/8'] },
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    retry: { schedule: ['100ms'], jitter: 0 },
    targets: { sink: target, outbox: { type: 'file', path: join(dir, 'outbox') } },
    routes: [{ match: '*', target: 'sink' }],
    bounces: { from: 'MAILER-DAEMON@relay.bench', via: 'outbox' },
    admin: { host: '127.0.0.1', port: 0 },
    shutdownGrace: '2s',
    log: { level: 'warn' },
  };
  const configPath = join(dir, 'onward.yaml');
  await writeFile(configPath, stringify(config));

  const child = spawn(process.execPath, [join(ROOT, 'bin', 'onward'), 'serve', '--config', configPath], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => {
    if (stderr.length < 10_000) stderr += c.toString();
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const stopChild = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }, 5000);
    await exited;
    clearTimeout(timer);
  };
  const guard = setTimeout(() => {
    console.error(`e2e-quick: time limit of ${String(opts.timeout)} s reached`);
  }, Math.max(0, hardDeadline - Date.now()));
  guard.unref();

  let exitCode = 0;
  try {
    await waitForPort(port, child, Math.min(hardDeadline, Date.now() + 15_000));
    const runId = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`;
    const transport = nodemailer.createTransport({
      pool: true,
      maxConnections: opts.connections,
      maxMessages: Infinity,
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      name: 'bench.client.test',
    });
    const started = performance.now();
    let next = 0;
    let accepted = 0;
    let refusedBySmtp = 0;
    let acceptedAt = null;
    // Bounded: at most 2 messages outstanding per connection.
    const worker = async () => {
      while (next < opts.count && Date.now() < hardDeadline) {
        const i = next++;
        try {
          await transport.sendMail({ envelope: { from: 'bench@client.test', to: [`rcpt${String(i % 50)}@sink.test`] }, raw: message(i, opts.size, runId) });
          accepted += 1;
        } catch (err) {
          refusedBySmtp += 1;
          if (refusedBySmtp <= 3) console.error(`e2e-quick: relay refused message ${String(i)}: ${err.response ?? err.message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: opts.connections * 2 }, worker));
    acceptedAt = performance.now();
    transport.close();
    tally.total = accepted;
    if (tally.accepted.size >= accepted && tally.doneAt === null) tally.doneAt = performance.now();
    const timedOut = await Promise.race([
      tally.done().then(() => false),
      new Promise((r) => setTimeout(() => r(true), Math.max(0, hardDeadline - Date.now())).unref()),
    ]);
    const end = tally.doneAt ?? performance.now();
    const seconds = (end - started) / 1000;
    const ingressSeconds = (acceptedAt - started) / 1000;
    const result = {
      target: opts.kind,
      format: opts.kind === 'http' ? opts.format : undefined,
      fail: opts.fail,
      messages: opts.count,
      sizeBytes: opts.size,
      connections: opts.connections,
      acceptedByRelay: accepted,
      refusedByRelay: refusedBySmtp,
      deliveredDistinct: tally.accepted.size,
      sinkRequests: tally.requests,
      sinkRefused: tally.refused,
      ingressMsgsPerSec: Math.round(accepted / ingressSeconds),
      e2eSeconds: Number(seconds.toFixed(2)),
      e2eMsgsPerSec: Math.round(tally.accepted.size / seconds),
      timedOut,
    };
    console.log(
      `${opts.kind}${opts.kind === 'http' ? `/${opts.format}` : ''} fail=${String(opts.fail)}: ` +
        `${String(result.deliveredDistinct)}/${String(accepted)} delivered in ${result.e2eSeconds.toFixed(2)} s ` +
        `= ${String(result.e2eMsgsPerSec)} msgs/s end to end ` +
        `(ingress ${String(result.ingressMsgsPerSec)} msgs/s; sink saw ${String(result.sinkRequests)} attempts, refused ${String(result.sinkRefused)})`,
    );
    console.log(JSON.stringify(result));
    if (timedOut || refusedBySmtp > 0) exitCode = 1;
  } catch (err) {
    console.error(`e2e-quick: ${err.message}\n${stderr}`);
    exitCode = 1;
  } finally {
    clearTimeout(guard);
    await stopChild();
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  }
  process.exit(exitCode);
}

await main();
