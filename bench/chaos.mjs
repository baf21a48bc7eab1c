#!/usr/bin/env node
/**
 * The reliability harness (issue 7): `npm run chaos` → `node bench/chaos.mjs`.
 *
 * Runs the built relay (`dist/`, `npm run build` first) as a child process against three sinks
 * that live in this process, on 127.0.0.1:
 *   - `hooks` (HTTP, format raw, timeout 1s) for `*@hooks.test`: a seeded share of requests is
 *     answered 500, left hanging past the timeout, or has its socket destroyed mid-request; a
 *     delivery naming a `reject-*` recipient is answered 422 (FAIL);
 *   - `mx` (SMTP, timeout 2s) for every other recipient: the same share gets 451 at DATA, a hang,
 *     or a dropped connection; `reject-*` recipients get 550 at RCPT TO;
 *   - `bounces` (SMTP, always accepts): `bounces.via`, where the DSNs arrive.
 * It submits a bounded load over raw SMTP connections (every message with a unique
 * `X-Chaos-Id` and Message-ID, 1–3 recipients over both domains, a few `reject-*` ones, a few
 * poison messages the relay must refuse, and resubmissions that must be answered
 * `already queued as <the same id>`), SIGKILLs the relay at random moments and runs
 * `onward spool check --json` on the dead relay's spool before restarting it, lets the queue
 * drain, stops the relay with SIGTERM and checks the ledger: nothing acknowledged is lost,
 * nothing refused shows up downstream, duplicates downstream are repeats of one delivery.
 *
 *   node bench/chaos.mjs                                  # 20,000 messages, 20 connections, 10 kills
 *   node bench/chaos.mjs --messages 1000 --connections 10 --kills 3 --seed 1
 *   node bench/chaos.mjs --minutes 10                     # soak: steady rate, RSS / fd samples
 *
 * Options: --messages N (default 20000) · --connections C (20) · --kills K (10; 0 in soak mode) ·
 * --seed S (random, printed) · --fail F (share of downstream requests that fail, 0.2) ·
 * --minutes M (soak mode: a steady --rate for M minutes instead of a fixed count) ·
 * --rate R (messages/s; soak default 50, count mode unthrottled) · --drain-timeout S (600) ·
 * --size B (message size, 1024) · --json FILE (write the results) · --keep (keep the temp dir) ·
 * --quiet (no progress lines).
 * Soak mode samples the relay's RSS (/proc/PID/status VmRSS) and open fds (/proc/PID/fd) every
 * 5 s and reports start / end / max and whether the floor of the series rises (a leak) or not.
 * On a failure the temp dir (spool, config, relay.log) is kept and named in the output.
 * Exit: 0 when nothing was lost and every spool check was clean; 1 on any failure; 2 when the
 * harness itself could not run (bad arguments, relay does not start).
 * Loopback only; every loop is bounded in count and time; it signals only the relays it spawned.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import smtpServer from 'smtp-server';
import { stringify } from 'yaml';
import { freePort, sleep } from './lib/net.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'onward');

// ---------------------------------------------------------------------------------------------
// Arguments

function usage(problem) {
  console.error(
    `chaos: ${problem}\n` +
      'usage: node bench/chaos.mjs [--messages N] [--connections C] [--kills K] [--seed S] [--fail F]\n' +
      '                            [--minutes M] [--rate R] [--drain-timeout S] [--size B] [--json FILE] [--keep] [--quiet]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    messages: 20_000,
    connections: 20,
    kills: null,
    seed: null,
    fail: 0.2,
    minutes: null,
    rate: null,
    drainTimeout: 600,
    size: 1024,
    json: null,
    keep: false,
    quiet: false,
  };
  const rest = [...argv];
  const num = (arg, v) => {
    const n = Number(v);
    if (v === undefined || v === '' || !Number.isFinite(n)) usage(`${arg} needs a number`);
    return n;
  };
  while (rest.length > 0) {
    const arg = rest.shift();
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? rest.shift();
    switch (flag) {
      case '--messages': opts.messages = num(flag, value()); break;
      case '--connections': opts.connections = num(flag, value()); break;
      case '--kills': opts.kills = num(flag, value()); break;
      case '--seed': opts.seed = num(flag, value()); break;
      case '--fail': opts.fail = num(flag, value()); break;
      case '--minutes': opts.minutes = num(flag, value()); break;
      case '--rate': opts.rate = num(flag, value()); break;
      case '--drain-timeout': opts.drainTimeout = num(flag, value()); break;
      case '--size': opts.size = num(flag, value()); break;
      case '--json': opts.json = value(); if (!opts.json) usage('--json needs a file name'); break;
      case '--keep': opts.keep = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--help': case '-h': usage('help');
      // falls through (usage exits)
      default: usage(`unknown argument ${arg}`);
    }
  }
  const int = (name, v, min, max) => {
    if (!Number.isInteger(v) || v < min || v > max) usage(`--${name} must be an integer in ${min}..${max}`);
  };
  int('messages', opts.messages, 1, 1_000_000);
  int('connections', opts.connections, 1, 100);
  if (opts.kills !== null) int('kills', opts.kills, 0, 1000);
  if (opts.seed === null) opts.seed = Math.floor(Math.random() * 2 ** 31);
  int('seed', opts.seed, 0, 2 ** 53);
  if (!(opts.fail >= 0 && opts.fail < 1)) usage('--fail must be in [0, 1)');
  if (opts.minutes !== null && !(opts.minutes > 0 && opts.minutes <= 24 * 60)) usage('--minutes must be in (0, 1440]');
  if (opts.rate !== null && !(opts.rate > 0 && opts.rate <= 100_000)) usage('--rate must be in (0, 100000]');
  if (!(opts.drainTimeout > 0 && opts.drainTimeout <= 24 * 3600)) usage('--drain-timeout must be in (0, 86400]');
  int('size', opts.size, 512, 60 * 1024);
  opts.soak = opts.minutes !== null;
  opts.kills ??= opts.soak ? 0 : 10;
  if (opts.soak) {
    opts.rate ??= 50;
    opts.messages = Math.ceil(opts.rate * opts.minutes * 60);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness: one independent stream per concern, so that e.g. the sinks' decisions do
// not shift the messages generated.

function splitmix32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return (t >>> 0) / 4294967296;
  };
}

function rngStream(seed, name) {
  let h = 2166136261 ^ (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  const r = splitmix32(h);
  for (let i = 0; i < 8; i++) r();
  return r;
}

const between = (rng, lo, hi) => lo + rng() * (hi - lo);

// ---------------------------------------------------------------------------------------------
// Small utilities

const now = () => Date.now();


function runNode(args, timeoutMs) {
  return new Promise((res) => {
    const started = now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: now() - started });
    });
  });
}

function httpGetJson(port, path, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (resp) => {
      let body = '';
      resp.setEncoding('utf8');
      resp.on('data', (c) => (body += c));
      resp.on('end', () => {
        if (resp.statusCode !== 200) return rej(new Error(`GET ${path}: HTTP ${resp.statusCode}`));
        try {
          res(JSON.parse(body));
        } catch (err) {
          rej(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', rej);
    req.end();
  });
}

function verdictText(grows) {
  return grows === null ? 'too few samples to judge' : grows ? 'GROWS' : 'flat';
}

function fmtBytes(n) {
  return n === null || n === undefined ? '-' : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// ---------------------------------------------------------------------------------------------
// The messages

const HOOKS = 'hooks.test';
const MX = 'mx.test';
const REJECT_SHARE = 0.03; // of recipients
const RESUBMIT_SHARE = 0.04; // of messages
const POISON_SHARE = 0.004; // of messages: the relay must refuse these (5xx)
const MAX_MESSAGE_SIZE = 64 * 1024;

/** Deterministic per-index message plans (the raw bytes are built on demand). */
class MessagePlans {
  constructor(seed, size) {
    this.seed = seed;
    this.size = size;
    this.rng = rngStream(seed, 'messages');
    this.list = [];
  }

  get(i) {
    while (this.list.length <= i) this.list.push(this.plan(this.list.length));
    return this.list[i];
  }

  plan(i) {
    const r = this.rng;
    const n = 1 + Math.floor(r() * 3);
    const rcpts = [];
    for (let j = 0; j < n; j++) {
      const domain = r() < 0.5 ? HOOKS : MX;
      const reject = r() < REJECT_SHARE;
      rcpts.push(`${reject ? 'reject-' : ''}r${j}.${i}@${domain}`);
    }
    const poisonRoll = r();
    const poison = poisonRoll < POISON_SHARE ? (poisonRoll < POISON_SHARE / 2 ? 'oversize' : 'bare-lf') : null;
    const resubmit = poison === null && r() < RESUBMIT_SHARE;
    return {
      i,
      marker: `chaos-${this.seed}-${i}`,
      messageId: `chaos.${this.seed}.${i}@client.test`,
      sender: `app${i % 7}@client.test`,
      rcpts,
      poison,
      resubmit,
      // ledger
      tries: 0,
      sent: false,
      state: 'pending', // pending | acked | refused | gaveup
      queueId: null,
      uncertain: 0, // tries whose outcome is unknown (connection lost after the final dot)
      definite: 0, // tries answered 4xx/5xx
      lastReply: null,
      resubmitted: false,
    };
  }

  raw(m) {
    const head = [
      'From: Chaos <chaos@client.test>',
      `To: ${m.rcpts.join(', ')}`,
      `Subject: chaos ${m.i}`,
      `Message-ID: <${m.messageId}>`,
      `X-Chaos-Id: ${m.marker}`,
      'Date: Fri, 27 Nov 2026 11:15:01 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '',
    ].join('\r\n');
    const line = `chaos ${m.marker}: the quick brown fox jumps over the lazy dog 0123456789\r\n`;
    const target = m.poison === 'oversize' ? MAX_MESSAGE_SIZE + 16 * 1024 : this.size;
    const parts = [head];
    let length = head.length;
    if (m.poison === 'bare-lf') {
      const bad = 'this line ends in a bare LF\nand this one too\r\n';
      parts.push(bad);
      length += bad.length;
    }
    while (length + line.length <= target) {
      parts.push(line);
      length += line.length;
    }
    return Buffer.from(parts.join(''), 'latin1');
  }
}

/** What the relay should do with each recipient of an accepted message: `delivered` at a sink, or `bounced`. */
function expectedOutcomes(m) {
  const hooksReject = m.rcpts.some((a) => a.endsWith(`@${HOOKS}`) && a.startsWith('reject-'));
  return m.rcpts.map((address) => {
    const hooks = address.endsWith(`@${HOOKS}`);
    // HTTP answers for the whole delivery: one reject- recipient makes the hooks delivery FAIL.
    const bounced = hooks ? hooksReject : address.startsWith('reject-');
    return { address, sink: hooks ? 'http' : 'smtp', outcome: bounced ? 'bounced' : 'delivered' };
  });
}

// ---------------------------------------------------------------------------------------------
// What arrived downstream

/** Per marker and recipient: copies processed, copies acknowledged, the delivery keys seen. */
class Downstream {
  constructor() {
    this.byMarker = new Map();
    this.processed = 0;
    this.acked = 0;
    this.requests = 0;
    this.faults = { error: 0, timeout: 0, drop: 0, reject: 0 };
    this.unmarked = 0;
  }

  entry(marker, address) {
    let m = this.byMarker.get(marker);
    if (!m) this.byMarker.set(marker, (m = new Map()));
    let e = m.get(address);
    if (!e) m.set(address, (e = { processed: 0, acked: 0, keys: new Set(), queueIds: new Set() }));
    return e;
  }

  process(marker, addresses, key, queueId) {
    if (!marker) {
      this.unmarked += 1;
      return [];
    }
    return addresses.map((address) => {
      const e = this.entry(marker, address);
      e.processed += 1;
      this.processed += 1;
      if (key) e.keys.add(key);
      if (queueId) e.queueIds.add(queueId);
      return e;
    });
  }

  ack(entries) {
    for (const e of entries) {
      e.acked += 1;
      this.acked += 1;
    }
  }

  distinctAcked() {
    let n = 0;
    for (const m of this.byMarker.values()) for (const e of m.values()) if (e.acked > 0) n += 1;
    return n;
  }
}

function headerOf(text, name) {
  const re = new RegExp(`^${name}:[ \\t]*([^\\r\\n]*)`, 'im');
  return re.exec(text)?.[1]?.trim() ?? null;
}

/** The fault for one downstream request: null (answer normally) or error | timeout | drop. */
function faultPicker(rng, fail) {
  return () => {
    const r = rng();
    if (r >= fail) return null;
    const share = r / fail;
    if (share < 0.55) return 'error';
    if (share < 0.7) return 'timeout';
    return 'drop';
  };
}

async function startHttpSink(rng, fail, hangMs) {
  const ds = new Downstream();
  const pick = faultPicker(rng, fail);
  const timers = new Set();
  const server = createServer((req, res) => {
    ds.requests += 1;
    const fault = pick();
    const early = fault !== null && rng() < 0.5; // half the drops and hangs happen before we process anything
    if (fault === 'drop' && early) {
      ds.faults.drop += 1;
      // Mid-request: as soon as the body starts arriving (or at once when it already has).
      req.once('data', () => req.socket.destroy());
      req.once('end', () => req.socket.destroy());
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const head = body.subarray(0, 8192).toString('latin1');
      const marker = headerOf(head, 'X-Chaos-Id');
      const to = String(req.headers['x-onward-envelope-to'] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const key = String(req.headers['idempotency-key'] ?? '');
      const queueId = String(req.headers['x-onward-queue-id'] ?? '');
      const reject = to.some((a) => a.startsWith('reject-'));
      if (fault === 'error') {
        ds.faults.error += 1;
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('chaos: internal error');
        return;
      }
      if (fault === 'timeout') {
        ds.faults.timeout += 1;
        // A slow server that may have done the work already: the relay gives up at 1s and retries.
        const entries = !early && !reject ? ds.process(marker, to, key, queueId) : [];
        const t = setTimeout(() => {
          timers.delete(t);
          if (res.destroyed || res.socket?.destroyed) return;
          // Still connected after all (it should not be): answer truthfully.
          if (early || reject) return void res.writeHead(503).end();
          res.once('finish', () => ds.ack(entries));
          res.writeHead(200).end();
        }, hangMs);
        timers.add(t);
        return;
      }
      if (fault === 'drop') {
        // Late drop: the work is done, the answer is lost.
        ds.faults.drop += 1;
        if (!reject) ds.process(marker, to, key, queueId);
        req.socket.destroy();
        return;
      }
      if (reject) {
        ds.faults.reject += 1;
        res.writeHead(422, { 'Content-Type': 'text/plain' }).end('chaos: recipient rejected');
        return;
      }
      const entries = ds.process(marker, to, key, queueId);
      res.once('finish', () => ds.ack(entries));
      res.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    ds,
    port: server.address().port,
    close: () =>
      new Promise((r) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function connectionOf(server, session) {
  for (const c of server.connections) if (c.session === session || c.id === session.id) return c;
  return null;
}

/** smtp-server options every chaos sink shares. */
const SINK_OPTIONS = { logger: false, disableReverseLookup: true, authOptional: true, hideSTARTTLS: true, closeTimeout: 100, size: 10 * 1024 * 1024 };

async function startSmtpSink(rng, fail, hangMs) {
  const ds = new Downstream();
  const pick = faultPicker(rng, fail);
  const server = new smtpServer.SMTPServer({
    ...SINK_OPTIONS,
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('reject-')) {
        ds.faults.reject += 1;
        return callback(Object.assign(new Error(`5.1.1 <${address.address}>: Recipient address rejected: chaos`), { responseCode: 550 }));
      }
      callback();
    },
    onData(stream, session, callback) {
      ds.requests += 1;
      const fault = pick();
      const early = fault !== null && rng() < 0.5;
      const chunks = [];
      let dropped = false;
      if (fault === 'drop' && early) {
        ds.faults.drop += 1;
        dropped = true;
        connectionOf(server, session)?._socket?.destroy();
      }
      stream.on('data', (c) => {
        if (!dropped) chunks.push(c);
      });
      stream.on('end', () => {
        if (dropped) return;
        const raw = Buffer.concat(chunks);
        const head = raw.subarray(0, 8192).toString('latin1');
        const marker = headerOf(head, 'X-Chaos-Id');
        const queueId = /\(onward\) with \S+ id ([0-9A-Z]+)/.exec(head)?.[1] ?? null;
        const to = session.envelope.rcptTo.map((r) => r.address);
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const key = queueId === null ? null : `${queueId}:${mailFrom}:${[...to].sort().join(',')}`;
        if (fault === 'error') {
          ds.faults.error += 1;
          return callback(Object.assign(new Error('4.3.0 chaos: try again later'), { responseCode: 451 }));
        }
        if (fault === 'timeout') {
          ds.faults.timeout += 1;
          const entries = early ? [] : ds.process(marker, to, key, queueId);
          setTimeout(() => {
            const c = connectionOf(server, session);
            if (!c || c._socket?.destroyed) return;
            try {
              // Still connected after all (it should not be): answer truthfully.
              if (early) return callback(Object.assign(new Error('4.3.0 chaos: too slow'), { responseCode: 451 }));
              callback();
              ds.ack(entries);
            } catch {
              /* the relay hung up meanwhile */
            }
          }, hangMs);
          return;
        }
        if (fault === 'drop') {
          ds.faults.drop += 1;
          ds.process(marker, to, key, queueId);
          connectionOf(server, session)?._socket?.destroy();
          return;
        }
        const entries = ds.process(marker, to, key, queueId);
        ds.ack(entries);
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { ds, port: server.server.address().port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Accepts every DSN and remembers which recipients of which marker it reported. */
async function startBounceSink() {
  const dsns = {
    count: 0,
    byMarker: new Map(), // marker → Map(address → Set(dsn Message-ID))
    problems: [],
    unmarked: 0,
  };
  const server = new smtpServer.SMTPServer({
    ...SINK_OPTIONS,
    onData(stream, session, callback) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        dsns.count += 1;
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        if (mailFrom !== '' && dsns.problems.length < 20) dsns.problems.push(`DSN with envelope sender <${mailFrom}> instead of <>`);
        const id = headerOf(text, 'Message-ID') ?? `dsn-${dsns.count}`;
        const marker = headerOf(text, 'X-Chaos-Id');
        const originalQueueId = headerOf(text, 'X-Onward-Queue-Id');
        const recipients = [...text.matchAll(/^Final-Recipient:\s*rfc822;\s*(\S+)\s*\r?\nAction:\s*(\S+)/gim)];
        if (!marker) {
          dsns.unmarked += 1;
        } else {
          let m = dsns.byMarker.get(marker);
          if (!m) dsns.byMarker.set(marker, (m = new Map()));
          for (const [, address, action] of recipients) {
            if (action.toLowerCase() !== 'failed') continue;
            let e = m.get(address);
            if (!e) m.set(address, (e = { ids: new Set(), copies: 0, queueIds: new Set() }));
            e.ids.add(id);
            e.copies += 1;
            if (originalQueueId) e.queueIds.add(originalQueueId);
          }
        }
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { dsns, port: server.server.address().port, close: () => new Promise((r) => server.close(() => r())) };
}

// ---------------------------------------------------------------------------------------------
// The relay under test: spawn, SIGKILL, spool check, restart, SIGTERM, RSS / fd samples

class Relay {
  constructor({ configPath, smtpPort, adminPort, logPath }) {
    this.configPath = configPath;
    this.smtpPort = smtpPort;
    this.adminPort = adminPort;
    this.log = createWriteStream(logPath, { flags: 'a' });
    this.child = null;
    this.planned = false; // the current child's exit is ours (SIGKILL / SIGTERM)
    this.crashes = [];
    this.starts = 0;
    this.upSince = 0;
    this.errorLines = 0;
    this.errorSamples = [];
    this.tail = '';
  }

  get pid() {
    return this.child && this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : null;
  }

  get alive() {
    return this.pid !== null;
  }

  async start(deadlineMs = 30_000) {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', this.configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.planned = false;
    this.starts += 1;
    const onData = (chunk) => {
      this.log.write(chunk);
      const text = chunk.toString();
      this.tail = (this.tail + text).slice(-4000);
      for (const line of text.split('\n')) {
        if (/"level":(50|60)\b/.test(line)) {
          this.errorLines += 1;
          if (this.errorSamples.length < 5) this.errorSamples.push(line.slice(0, 400));
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    child.exited.then(({ code, signal }) => {
      if (this.child === child && !this.planned) {
        this.crashes.push({ at: new Date().toISOString(), code, signal, tail: this.tail.slice(-1500) });
        if (this.onCrash) this.onCrash();
      }
    });
    const until = now() + deadlineMs;
    while (now() < until) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`relay exited while starting (code ${child.exitCode}, signal ${child.signalCode}):\n${this.tail}`);
      try {
        const ready = await httpGetJson(this.adminPort, '/readyz', 1000).then(
          () => true,
          () => false,
        );
        if (ready) {
          this.upSince = now();
          return;
        }
      } catch {
        /* not yet */
      }
      await sleep(50);
    }
    throw new Error(`relay did not become ready within ${deadlineMs} ms`);
  }

  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.planned = true;
    process.kill(child.pid, 'SIGKILL');
    await child.exited;
  }

  /** SIGTERM and wait (up to `graceMs`, then SIGKILL); returns the exit. */
  async stop(graceMs = 20_000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null, forced: false };
    this.planned = true;
    process.kill(child.pid, 'SIGTERM');
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }, graceMs);
    const exit = await child.exited;
    clearTimeout(timer);
    return { ...exit, forced };
  }

  async cli(args, timeoutMs = 120_000) {
    return runNode([BIN, ...args, '--config', this.configPath], timeoutMs);
  }

  /** `onward spool check --json` while the relay is down (the CLI opens the LevelDB itself). */
  async spoolCheck() {
    const r = await this.cli(['spool', 'check', '--json']);
    let report = null;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      /* reported below */
    }
    const problems = report?.problems ?? [];
    const counts = report?.counts ?? {};
    const ok = r.code === 0 && report !== null && problems.length === 0 && Object.keys(counts).length === 0;
    return {
      ok,
      exitCode: r.code,
      ms: r.ms,
      messages: report?.messages ?? null,
      counts,
      problems: problems.slice(0, 10),
      error: report === null ? (r.stderr || r.stdout).slice(0, 1000) : null,
    };
  }

  sample() {
    const pid = this.pid;
    if (pid === null) return null;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
      if (!Number.isFinite(rssKb)) return null; // exiting (zombie): no memory to speak of
      const fds = readdirSync(`/proc/${pid}/fd`).length;
      return { at: now(), pid, rss: rssKb * 1024, fds };
    } catch {
      return null;
    }
  }

  async stats() {
    return httpGetJson(this.adminPort, '/api/spool/stats', 3000);
  }

  close() {
    this.log.end();
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal SMTP client (raw socket): exact knowledge of what was answered, and when the
// connection broke, no hidden re-queueing.

class ConnError extends Error {
  constructor(message, afterDot = false) {
    super(message);
    this.afterDot = afterDot;
  }
}

class SmtpClient {
  static connect(port, timeoutMs = 5000) {
    return new Promise((res, rej) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const client = new SmtpClient(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        rej(new ConnError('connect timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        client
          .read(timeoutMs)
          .then(async (greeting) => {
            if (greeting.code !== 220) throw new ConnError(`greeting ${greeting.code} ${greeting.text}`);
            const ehlo = await client.command('EHLO chaos.client.test', timeoutMs);
            if (ehlo.code !== 250) throw new ConnError(`EHLO ${ehlo.code} ${ehlo.text}`);
            return client;
          })
          .then(res, (err) => {
            client.destroy();
            rej(err instanceof ConnError ? err : new ConnError(String(err?.message ?? err)));
          });
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        rej(new ConnError(err.code ?? err.message));
      });
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.lines = [];
    this.waiter = null;
    this.dead = false;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d) => this.onData(d));
    socket.on('error', () => this.fail('socket error'));
    socket.on('close', () => this.fail('connection closed'));
  }

  onData(d) {
    this.buffer += d;
    let i;
    while ((i = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const all = this.lines;
        this.lines = [];
        const w = this.waiter;
        this.waiter = null;
        if (w) w.resolve({ code: Number(line.slice(0, 3)), text: all.map((l) => l.slice(4)).join(' | '), line });
      }
    }
  }

  fail(why) {
    if (this.dead) return;
    this.dead = true;
    const w = this.waiter;
    this.waiter = null;
    if (w) w.reject(new ConnError(why));
    this.socket.destroy();
  }

  read(timeoutMs = 30_000) {
    if (this.dead) return Promise.reject(new ConnError('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(`no reply within ${timeoutMs} ms`);
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  command(line, timeoutMs = 30_000) {
    if (this.dead) return Promise.reject(new ConnError('connection closed'));
    const p = this.read(timeoutMs);
    this.socket.write(`${line}\r\n`);
    return p;
  }

  /** Sends the (dot-stuffed) message and the final dot; a broken connection now is an unknown outcome. */
  async data(raw, timeoutMs = 30_000) {
    if (this.dead) throw new ConnError('connection closed');
    let text = raw.toString('latin1');
    if (!text.endsWith('\r\n')) text += '\r\n';
    text = text.replace(/^\./, '..').replace(/\r\n\./g, '\r\n..');
    const p = this.read(timeoutMs);
    this.socket.write(text);
    this.socket.write('.\r\n');
    try {
      return await p;
    } catch (err) {
      throw new ConnError(err.message, true);
    }
  }

  destroy() {
    this.dead = true;
    this.socket.destroy();
  }
}

/** One mail transaction. Returns the reply, or throws ConnError. */
async function transact(client, plan, raw) {
  const mail = await client.command(`MAIL FROM:<${plan.sender}>`);
  if (mail.code !== 250) return { phase: 'mail', ...mail };
  for (const rcpt of plan.rcpts) {
    const r = await client.command(`RCPT TO:<${rcpt}>`);
    if (r.code !== 250) {
      await client.command('RSET').catch(() => undefined);
      return { phase: 'rcpt', ...r };
    }
  }
  const data = await client.command('DATA');
  if (data.code !== 354) {
    await client.command('RSET').catch(() => undefined);
    return { phase: 'data', ...data };
  }
  return { phase: 'dot', ...(await client.data(raw)) };
}

// ---------------------------------------------------------------------------------------------
// The load: a job queue shared by the workers (one SMTP connection each)

const MAX_TRIES = 30;

class Load {
  constructor(opts, plans, stats) {
    this.opts = opts;
    this.plans = plans;
    this.stats = stats;
    this.next = 0; // next fresh message
    this.retries = []; // { plan, at, kind }
    this.resubmits = []; // { plan, at }
    this.inFlight = 0;
    this.rng = rngStream(opts.seed, 'load');
    this.startedAt = 0;
    this.stopFresh = false;
    this.deadline = Infinity;
  }

  /** The next job, null to wait a little, or 'done'. */
  take() {
    const t = now();
    for (let k = 0; k < this.retries.length; k++) {
      if (this.retries[k].at <= t) return this.retries.splice(k, 1)[0];
    }
    for (let k = 0; k < this.resubmits.length; k++) {
      if (this.resubmits[k].at <= t) return { ...this.resubmits.splice(k, 1)[0], kind: 'resubmit' };
    }
    if (!this.stopFresh && this.next < this.opts.messages && t < this.deadline) {
      if (this.opts.rate === null || this.next < ((t - this.startedAt) / 1000) * this.opts.rate) {
        return { plan: this.plans.get(this.next++), kind: 'first' };
      }
      return null;
    }
    if (t >= this.deadline) return 'done';
    if (this.retries.length === 0 && this.resubmits.length === 0 && this.inFlight === 0) return 'done';
    return null;
  }

  retryLater(job, delayMs) {
    this.retries.push({ plan: job.plan, kind: job.kind === 'first' ? 'retry' : job.kind, at: now() + delayMs, afterUncertain: job.afterUncertain });
  }

  /** Records one answered transaction in the ledger. */
  record(job, reply) {
    const plan = job.plan;
    const s = this.stats;
    const code = reply.code;
    const queued = /\bqueued as ([0-9A-Z]+)/.exec(reply.text);
    const dup = /already queued as ([0-9A-Z]+)/.exec(reply.text);
    plan.lastReply = reply.line;
    if (job.kind === 'resubmit') {
      s.resubmits += 1;
      if (code === 250 && dup && dup[1] === plan.queueId) s.dedupHits += 1;
      else if (code === 250) s.failures.push(`resubmission of message ${plan.i} (acked as ${plan.queueId}) answered "${reply.line}": should be "already queued as ${plan.queueId}"`);
      else if (code >= 400 && code < 500) return this.retryLater(job, 200);
      else s.failures.push(`resubmission of message ${plan.i} (acked as ${plan.queueId}) answered "${reply.line}"`);
      return;
    }
    if (code === 250 && queued) {
      if (plan.state === 'acked') {
        s.failures.push(`message ${plan.i} answered again "${reply.line}" after being acked as ${plan.queueId}`);
        return;
      }
      plan.state = 'acked';
      plan.queueId = queued[1];
      s.acked += 1;
      if (plan.poison) s.failures.push(`poison message ${plan.i} (${plan.poison}) was accepted: "${reply.line}"`);
      if (job.afterUncertain) {
        if (dup) s.recoveredAfterError += 1; // the first try was queued; its 250 was lost
        else s.freshAfterError += 1; // the first try never made it to the spool
      } else if (dup) {
        s.unexpectedDup += 1;
        s.failures.push(`first submission of message ${plan.i} answered "${reply.line}"`);
      }
      if (plan.resubmit && !plan.resubmitted) {
        plan.resubmitted = true;
        this.resubmits.push({ plan, at: now() + between(this.rng, 100, 3000) });
      }
      return;
    }
    plan.definite += 1;
    if (code >= 400 && code < 500) {
      s.tempFailures += 1;
      if (plan.tries >= MAX_TRIES) {
        plan.state = 'gaveup';
        s.gaveUp += 1;
        return;
      }
      return this.retryLater({ ...job, kind: job.kind === 'first' ? 'retry' : job.kind }, between(this.rng, 100, 500));
    }
    plan.state = 'refused';
    s.refused += 1;
    if (!plan.poison) s.failures.push(`message ${plan.i} refused: "${reply.line}"`);
  }

  async worker(port) {
    let client = null;
    let backoff = 50;
    for (;;) {
      const job = this.take();
      if (job === 'done') break;
      if (job === null) {
        await sleep(this.opts.rate === null ? 10 : 5);
        continue;
      }
      this.inFlight += 1;
      try {
        if (!client || client.dead) {
          try {
            client = await SmtpClient.connect(port);
            backoff = 50;
          } catch {
            // Relay down (killed, restarting): nothing was sent; try again shortly.
            this.stats.connectFailures += 1;
            this.retries.push({ ...job, at: now() + backoff });
            client = null;
            backoff = Math.min(backoff * 2, 400);
            await sleep(backoff);
            continue;
          }
        }
        const plan = job.plan;
        plan.tries += 1;
        if (!plan.sent) {
          plan.sent = true;
          this.stats.sent += 1;
        }
        this.stats.transactions += 1;
        try {
          const reply = await transact(client, plan, this.plans.raw(plan));
          if (reply.code === 421) {
            client.destroy();
            client = null;
          }
          this.record(job, reply);
        } catch (err) {
          client?.destroy();
          client = null;
          if (!(err instanceof ConnError)) throw err;
          if (err.afterDot) {
            plan.uncertain += 1;
            this.stats.uncertainErrors += 1;
          } else {
            this.stats.earlyErrors += 1;
          }
          if (plan.tries >= MAX_TRIES) {
            plan.state = 'gaveup';
            this.stats.gaveUp += 1;
          } else {
            this.retryLater({ ...job, afterUncertain: job.afterUncertain || err.afterDot }, between(this.rng, 100, 400));
          }
        }
      } finally {
        this.inFlight -= 1;
      }
    }
    client?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

function verify(plans, count, http, smtp, dsns) {
  const v = {
    expectedDeliveries: 0,
    delivered: 0,
    expectedBounces: 0,
    bounced: 0,
    lost: 0,
    duplicates: 0, // extra processed copies at the HTTP / SMTP sinks
    duplicatesSameKey: 0,
    duplicatesNewKey: 0,
    duplicateDsnCopies: 0,
    doubleReported: 0,
    unexpectedDownstream: 0,
    uncertainSeen: 0,
    uncertainAbsent: 0,
    refusedSeen: 0,
    failures: [],
    lostSamples: [],
  };
  const fail = (text) => {
    if (v.failures.length < 50) v.failures.push(text);
  };
  const seenAnywhere = (plan) => http.byMarker.has(plan.marker) || smtp.byMarker.has(plan.marker) || dsns.byMarker.has(plan.marker);

  for (let i = 0; i < count; i++) {
    const plan = plans.get(i);
    if (!plan.sent) continue;
    let queueId = plan.state === 'acked' ? plan.queueId : null;
    if (queueId === null) {
      const seen = seenAnywhere(plan);
      if (plan.uncertain > 0) {
        if (!seen) {
          v.uncertainAbsent += 1;
          continue;
        }
        // Queued after all (the 250 was lost): it must then be complete like any acked message.
        v.uncertainSeen += 1;
        const ids = new Set();
        for (const ds of [http, smtp]) for (const e of ds.byMarker.get(plan.marker)?.values() ?? []) for (const q of e.queueIds) ids.add(q);
        for (const e of dsns.byMarker.get(plan.marker)?.values() ?? []) for (const q of e.queueIds) ids.add(q);
        if (ids.size !== 1) {
          fail(`message ${plan.i} (never acked, seen downstream) carries queue ids ${[...ids].join(', ') || 'none'}`);
          continue;
        }
        queueId = [...ids][0];
      } else {
        if (seen) {
          v.refusedSeen += 1;
          fail(`message ${plan.i} was never accepted (${plan.state}, last reply "${plan.lastReply}") but appears downstream`);
        }
        continue;
      }
    }
    for (const exp of expectedOutcomes(plan)) {
      const ds = exp.sink === 'http' ? http : smtp;
      const other = exp.sink === 'http' ? smtp : http;
      const e = ds.byMarker.get(plan.marker)?.get(exp.address);
      const d = dsns.byMarker.get(plan.marker)?.get(exp.address);
      if (other.byMarker.get(plan.marker)?.has(exp.address)) {
        v.unexpectedDownstream += 1;
        fail(`message ${plan.i}: <${exp.address}> arrived at the wrong sink`);
      }
      if (e) {
        const extra = Math.max(0, e.processed - 1);
        v.duplicates += extra;
        const foreign = [...e.queueIds].filter((q) => q !== queueId);
        if (foreign.length > 0 || e.keys.size > 1) {
          v.duplicatesNewKey += Math.max(1, extra);
          fail(`message ${plan.i} (queue id ${queueId}): <${exp.address}> arrived under delivery keys ${[...e.keys].join(', ')} (queue ids ${[...e.queueIds].join(', ')})`);
        } else {
          v.duplicatesSameKey += extra;
        }
      }
      if (d) {
        if (d.ids.size > 1) {
          v.doubleReported += 1;
          fail(`message ${plan.i}: <${exp.address}> reported in ${d.ids.size} different DSNs`);
        }
        v.duplicateDsnCopies += d.copies - 1;
        const foreign = [...d.queueIds].filter((q) => q !== queueId);
        if (foreign.length > 0) fail(`message ${plan.i}: DSN for <${exp.address}> names queue id ${foreign.join(', ')}, acked as ${queueId}`);
      }
      if (exp.outcome === 'delivered') {
        v.expectedDeliveries += 1;
        if (e && e.acked > 0) v.delivered += 1;
        else {
          v.lost += 1;
          if (v.lostSamples.length < 20) v.lostSamples.push(`message ${plan.i} (queue id ${queueId}) to <${exp.address}>: ${e ? `processed ${e.processed}x, never acknowledged` : 'never arrived'} at the ${exp.sink} sink`);
        }
        if (d) {
          v.unexpectedDownstream += 1;
          fail(`message ${plan.i}: <${exp.address}> should have been delivered but was bounced`);
        }
      } else {
        v.expectedBounces += 1;
        if (d) v.bounced += 1;
        else {
          v.lost += 1;
          if (v.lostSamples.length < 20) v.lostSamples.push(`message ${plan.i} (queue id ${queueId}) to <${exp.address}>: no DSN`);
        }
        if (e && e.processed > 0) {
          v.unexpectedDownstream += 1;
          fail(`message ${plan.i}: <${exp.address}> should have bounced but was processed at the ${exp.sink} sink`);
        }
      }
    }
  }
  // Anything downstream that no plan explains.
  for (const [name, ds] of [['http', http], ['smtp', smtp]]) {
    if (ds.unmarked > 0) fail(`${ds.unmarked} request(s) without an X-Chaos-Id at the ${name} sink`);
    for (const marker of ds.byMarker.keys()) {
      const i = Number(/-(\d+)$/.exec(marker)?.[1] ?? NaN);
      if (!(i >= 0 && i < count)) fail(`unknown marker ${marker} at the ${name} sink`);
    }
  }
  if (dsns.unmarked > 0) fail(`${dsns.unmarked} DSN(s) without the original X-Chaos-Id`);
  for (const p of dsns.problems) fail(p);
  return v;
}

/**
 * Start / end / max and a growth verdict for a series of samples of one process. Both series
 * are noisy (GC saw-tooth, connections coming and going), so the verdict compares the floor
 * (minimum) of the last third of the samples after the warm-up with the floor of the first
 * third: a leak raises the floor, load swings do not.
 */
function growth(samples, field, warmupMs) {
  if (samples.length === 0) return null;
  const first = samples[0].at;
  const usable = samples.filter((s) => s.at - first >= warmupMs);
  const series = usable.length >= 6 ? usable : samples;
  const values = series.map((s) => s[field]);
  const third = Math.max(1, Math.floor(values.length / 3));
  const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const earlyFloor = Math.min(...values.slice(0, third));
  const lateFloor = Math.min(...values.slice(-third));
  // Least-squares slope per minute.
  const xs = series.map((s) => (s.at - series[0].at) / 60_000);
  const mx = avg(xs);
  const my = avg(values);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const slope = den === 0 ? 0 : xs.reduce((a, x, k) => a + (x - mx) * (values[k] - my), 0) / den;
  // Too few samples after the warm-up (a short run, or a kill late in it): no verdict.
  const grows =
    usable.length < 6
      ? null
      : field === 'rss'
      ? lateFloor > earlyFloor * 1.2 && lateFloor - earlyFloor > 20 * 1024 * 1024
      : lateFloor - earlyFloor > 10;
  return {
    start: samples[0][field],
    end: samples.at(-1)[field],
    max: Math.max(...samples.map((s) => s[field])),
    earlyFloor,
    lateFloor,
    earlyAvg: Math.round(avg(values.slice(0, third))),
    lateAvg: Math.round(avg(values.slice(-third))),
    slopePerMinute: Math.round(slope),
    samples: samples.length,
    grows,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'index.js'))) usage('dist/ is missing: run `npm run build` first (npm run chaos does)');
  const startedAt = now();
  const log = (text) => {
    if (!opts.quiet) process.stderr.write(`chaos ${((now() - startedAt) / 1000).toFixed(0).padStart(5)}s  ${text}\n`);
  };
  log(
    `seed ${opts.seed}: ${opts.soak ? `soak ${opts.minutes} min at ${opts.rate} msgs/s (${opts.messages} messages)` : `${opts.messages} messages`}, ` +
      `${opts.connections} connections, ${opts.kills} kills, fail ${opts.fail}`,
  );

  // Hangs last longer than the targets' timeouts (hooks 1s, mx 2s).
  const http = await startHttpSink(rngStream(opts.seed, 'http'), opts.fail, 1800);
  const smtp = await startSmtpSink(rngStream(opts.seed, 'smtp'), opts.fail, 3000);
  const bounce = await startBounceSink();
  const dir = await mkdtemp(join(tmpdir(), 'onward-chaos-'));
  const [smtpPort, adminPort] = [await freePort(), await freePort()];
  const circuit = { failures: 5, probe: '1s' };
  const config = {
    listen: [{ host: '127.0.0.1', port: smtpPort }],
    hostname: 'relay.chaos',
    limits: { maxMessageSize: MAX_MESSAGE_SIZE, maxRecipients: 10, maxConnections: 500, maxConnectionsPerIp: 500 },
    relay: { allowNetworks: ['127.0.0.0/8'] },
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    retry: { schedule: ['200ms', '500ms', '1s'], jitter: 0.2, maxAge: '7d' },
    targets: {
      hooks: { type: 'http', url: `http://127.0.0.1:${http.port}/hook`, format: 'raw', timeout: '1s', circuit },
      mx: { type: 'smtp', host: '127.0.0.1', port: smtp.port, secure: 'none', timeout: '2s', pool: { maxConnections: 16 }, circuit },
      bounces: { type: 'smtp', host: '127.0.0.1', port: bounce.port, secure: 'none', timeout: '5s' },
    },
    routes: [
      { match: `*@${HOOKS}`, target: 'hooks' },
      { match: '*', target: 'mx' },
    ],
    bounces: { from: 'MAILER-DAEMON@relay.chaos', via: 'bounces' },
    admin: { host: '127.0.0.1', port: adminPort },
    shutdownGrace: '10s',
    log: { level: 'warn' },
  };
  const configPath = join(dir, 'onward.yaml');
  await writeFile(configPath, stringify(config));
  const relay = new Relay({ configPath, smtpPort, adminPort, logPath: join(dir, 'relay.log') });

  const plans = new MessagePlans(opts.seed, opts.size);
  const stats = {
    sent: 0,
    transactions: 0,
    acked: 0,
    refused: 0,
    tempFailures: 0,
    gaveUp: 0,
    resubmits: 0,
    dedupHits: 0,
    recoveredAfterError: 0,
    freshAfterError: 0,
    unexpectedDup: 0,
    uncertainErrors: 0,
    earlyErrors: 0,
    connectFailures: 0,
    failures: [],
  };
  const killRng = rngStream(opts.seed, 'kills');
  const kills = [];
  const spoolChecks = [];
  const samples = [];
  let lastStats = null;
  let exitCode = 0;
  let harnessError = null;
  let cycling = Promise.resolve();
  let fatal = null;
  let currentLoad = null;
  let stopping = false;

  // Every kill (and every unplanned exit) goes through here: spool check while dead, then restart.
  const cycle = (reason) => {
    cycling = cycling.then(async () => {
      if (stopping) return;
      const at = (now() - startedAt) / 1000;
      if (reason === 'kill') await relay.kill();
      const check = await relay.spoolCheck();
      spoolChecks.push({ after: reason, atSeconds: Number(at.toFixed(1)), ...check });
      if (reason === 'kill') kills.push({ atSeconds: Number(at.toFixed(1)), acked: stats.acked, checkOk: check.ok });
      log(
        `${reason === 'kill' ? `SIGKILL #${kills.length}` : 'relay died on its own'} at ${at.toFixed(1)}s; spool check: ` +
          (check.ok ? `clean (${check.messages} messages, ${check.ms} ms)` : `PROBLEMS ${JSON.stringify(check.counts)} ${check.error ?? ''}`),
      );
      await sleep(between(killRng, 0, 300)); // clients meet a closed port for a moment
      await relay.start();
    }).catch((err) => {
      // The relay does not come back: end the load (bounded) and report it as a harness error.
      fatal ??= err;
      stopping = true;
      if (currentLoad) currentLoad.deadline = 0;
    });
    return cycling;
  };
  relay.onCrash = () => void cycle('crash');

  const abort = () => {
    stopping = true;
    const pid = relay.pid;
    if (pid !== null) process.kill(pid, 'SIGKILL');
    process.exit(2);
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);

  // The whole run is bounded: load time + drain timeout + slack.
  const loadBudgetMs = opts.soak ? opts.minutes * 60_000 + 120_000 : Math.max(300_000, opts.messages * 30);
  const hardDeadline = startedAt + loadBudgetMs + opts.drainTimeout * 1000 + 120_000;
  const guard = setTimeout(() => {
    console.error('chaos: hard time limit reached; stopping the relay');
    abort();
  }, hardDeadline - now());
  guard.unref();

  let progressTimer = null;
  let sampleTimer = null;
  let drainSeconds = null;
  let loadSeconds = null;
  let finalStop = null;
  let finalCheck = null;
  let finalStats = null;
  let verdict = null;
  try {
    await relay.start();
    const load = new Load(opts, plans, stats);
    currentLoad = load;
    load.startedAt = now();
    load.deadline = load.startedAt + loadBudgetMs;

    sampleTimer = setInterval(() => {
      const s = relay.sample();
      if (s) samples.push(s);
    }, 5000);
    const s0 = relay.sample();
    if (s0) samples.push(s0);
    progressTimer = setInterval(async () => {
      if (relay.alive) lastStats = await relay.stats().catch(() => lastStats);
      const q = lastStats ? lastStats.states.queued + lastStats.states.deferred + lastStats.states.held : null;
      const rss = samples.at(-1);
      log(
        `sent ${stats.sent}/${opts.messages} acked ${stats.acked} refused ${stats.refused} · ` +
          `delivered ${http.ds.distinctAcked() + smtp.ds.distinctAcked()} rcpts (http ${http.ds.requests} req, smtp ${smtp.ds.requests} DATA) ` +
          `dsn ${bounce.dsns.count} · queue ${q ?? '-'} · kills ${kills.length}/${opts.kills}` +
          (rss ? ` · rss ${fmtBytes(rss.rss)} fds ${rss.fds}` : ''),
      );
    }, 3000);

    // Kill plan: most kills while the load runs (by progress, or by time in soak mode), the rest while draining.
    const drainKills = opts.soak ? 0 : Math.floor(opts.kills / 5);
    const loadKills = opts.kills - drainKills;
    const killPoints = Array.from({ length: loadKills }, () => between(killRng, 0.03, 0.97)).sort((a, b) => a - b);
    const killer = (async () => {
      for (const point of killPoints) {
        for (;;) {
          if (stopping || load.finished) return;
          const progress = opts.soak ? (now() - load.startedAt) / (opts.minutes * 60_000) : stats.acked / opts.messages;
          if (progress >= point && now() - relay.upSince > 700) break;
          await sleep(20);
        }
        await sleep(between(killRng, 0, 250));
        await cycle('kill');
      }
    })();

    const workers = Array.from({ length: opts.connections }, () => load.worker(smtpPort));
    if (opts.soak) {
      // Soak: stop new messages when the time is up.
      const t = setTimeout(() => (load.stopFresh = true), opts.minutes * 60_000);
      await Promise.all(workers);
      clearTimeout(t);
    } else {
      await Promise.all(workers);
    }
    load.finished = true;
    await killer;
    await cycling;
    if (fatal) throw fatal;
    loadSeconds = (now() - load.startedAt) / 1000;
    log(`load done in ${loadSeconds.toFixed(1)}s: ${stats.acked} acked, ${stats.refused} refused, ${stats.gaveUp} given up`);

    // Drain: until nothing is queued, deferred or held (bounded); the last kills land in here.
    const drainStarted = now();
    const drainDeadline = drainStarted + opts.drainTimeout * 1000;
    let drainKillAt = drainKills > 0 ? drainStarted + between(killRng, 300, 2000) : Infinity;
    let drainKillsDone = 0;
    for (;;) {
      if (now() >= drainDeadline) break;
      if (now() >= drainKillAt && drainKillsDone < drainKills) {
        await cycle('kill');
        drainKillsDone += 1;
        drainKillAt = drainKillsDone < drainKills ? now() + between(killRng, 700, 2500) : Infinity;
        continue;
      }
      await cycling;
      if (fatal) throw fatal;
      const st = await relay.stats().catch(() => null);
      if (st) {
        lastStats = st;
        const open = st.states.queued + st.states.deferred + st.states.held;
        if (open === 0 && drainKillsDone >= drainKills) break;
      }
      await sleep(200);
    }
    drainSeconds = (now() - drainStarted) / 1000;
    const open = lastStats ? lastStats.states.queued + lastStats.states.deferred + lastStats.states.held : null;
    if (open !== 0) {
      stats.failures.push(`queue did not drain within ${opts.drainTimeout}s (${open ?? 'unknown'} unfinished)`);
    }
    log(`drained in ${drainSeconds.toFixed(1)}s (unfinished ${open ?? '?'})`);
    clearInterval(sampleTimer);
    clearInterval(progressTimer);

    // Stop cleanly; then the spool must be clean and empty of due work.
    stopping = true;
    await sleep(300); // let the last acks reach the sinks' bookkeeping
    finalStop = await relay.stop(30_000);
    if (finalStop.code !== 0 || finalStop.forced) stats.failures.push(`relay did not stop cleanly on SIGTERM: ${JSON.stringify(finalStop)}`);
    finalCheck = await relay.spoolCheck();
    spoolChecks.push({ after: 'final stop', atSeconds: Number(((now() - startedAt) / 1000).toFixed(1)), ...finalCheck });
    const fs = await relay.cli(['spool', 'stats', '--json']);
    try {
      finalStats = JSON.parse(fs.stdout);
    } catch {
      stats.failures.push(`spool stats --json failed: ${fs.stderr.slice(0, 500)}`);
    }
    if (finalStats) {
      const left = finalStats.states.queued + finalStats.states.deferred + finalStats.states.held;
      if (left !== 0) stats.failures.push(`spool not empty of due work after the drain: ${JSON.stringify(finalStats.states)}`);
    }
    verdict = verify(plans, plans.list.length, http.ds, smtp.ds, bounce.dsns);
  } catch (err) {
    harnessError = err;
  } finally {
    clearInterval(sampleTimer);
    clearInterval(progressTimer);
    stopping = true;
    if (relay.alive) await relay.stop(10_000).catch(() => undefined);
    relay.close();
    await Promise.all([http.close(), smtp.close(), bounce.close()]);
    clearTimeout(guard);
  }

  if (harnessError) {
    console.error(`chaos: harness error: ${harnessError.stack ?? harnessError}\nrelay output tail:\n${relay.tail}\nkept ${dir}`);
    process.exit(2);
  }

  // Samples by process life: growth only means something within one.
  const lastPid = samples.at(-1)?.pid;
  const lifeSamples = samples.filter((s) => s.pid === lastPid);
  const memory = {
    rss: growth(lifeSamples, 'rss', opts.soak ? 60_000 : 0),
    fds: growth(lifeSamples, 'fds', opts.soak ? 60_000 : 0),
    maxRssAllLives: samples.length ? Math.max(...samples.map((s) => s.rss)) : null,
    maxFdsAllLives: samples.length ? Math.max(...samples.map((s) => s.fds)) : null,
    lives: new Set(samples.map((s) => s.pid)).size,
  };

  const badChecks = spoolChecks.filter((c) => !c.ok);
  const failures = [...stats.failures, ...verdict.failures];
  if (relay.crashes.length > 0) failures.push(`relay exited on its own ${relay.crashes.length} time(s): ${JSON.stringify(relay.crashes[0]).slice(0, 1500)}`);
  for (const c of badChecks) failures.push(`spool check after ${c.after} at ${c.atSeconds}s: ${JSON.stringify(c.counts)} ${JSON.stringify(c.problems.slice(0, 3))} ${c.error ?? ''}`);
  const pass = verdict.lost === 0 && failures.length === 0;
  exitCode = pass ? 0 : 1;
  const totalSeconds = (now() - startedAt) / 1000;

  const results = {
    pass,
    seed: opts.seed,
    mode: opts.soak ? 'soak' : 'count',
    options: { messages: opts.messages, connections: opts.connections, kills: opts.kills, fail: opts.fail, minutes: opts.minutes, rate: opts.rate, size: opts.size },
    sent: stats.sent,
    transactions: stats.transactions,
    acknowledged: stats.acked,
    refused: stats.refused,
    poison: plans.list.filter((p) => p.poison).length,
    temporaryFailures: stats.tempFailures,
    gaveUp: stats.gaveUp,
    resubmissions: stats.resubmits,
    dedupHits: stats.dedupHits,
    connectionErrorsAfterData: stats.uncertainErrors,
    connectionErrorsBeforeData: stats.earlyErrors,
    retriedAfterLost250: { alreadyQueued: stats.recoveredAfterError, freshId: stats.freshAfterError },
    uncertainNeverAcked: { seenDownstream: verdict.uncertainSeen, absent: verdict.uncertainAbsent },
    expectedDeliveries: verdict.expectedDeliveries,
    delivered: verdict.delivered,
    expectedBounces: verdict.expectedBounces,
    bounced: verdict.bounced,
    dsnMessages: bounce.dsns.count,
    duplicatesDownstream: verdict.duplicates,
    duplicatesSameKey: verdict.duplicatesSameKey,
    duplicatesNewKey: verdict.duplicatesNewKey,
    duplicateDsnCopies: verdict.duplicateDsnCopies,
    refusedButDelivered: verdict.refusedSeen,
    lost: verdict.lost,
    lostSamples: verdict.lostSamples,
    sinks: {
      http: { requests: http.ds.requests, processed: http.ds.processed, acked: http.ds.acked, faults: http.ds.faults },
      smtp: { requests: smtp.ds.requests, processed: smtp.ds.processed, acked: smtp.ds.acked, faults: smtp.ds.faults },
    },
    kills: kills.length,
    killTimes: kills,
    spoolChecks,
    spoolCheckProblems: badChecks.length,
    relayCrashes: relay.crashes,
    relayErrorLogLines: relay.errorLines,
    relayErrorLogSamples: relay.errorSamples,
    finalStop,
    finalSpoolStats: finalStats,
    loadSeconds: loadSeconds === null ? null : Number(loadSeconds.toFixed(1)),
    drainSeconds: drainSeconds === null ? null : Number(drainSeconds.toFixed(1)),
    totalSeconds: Number(totalSeconds.toFixed(1)),
    memory,
    samples,
    failures: failures.slice(0, 50),
    tempDir: pass && !opts.keep ? null : dir,
  };

  const rows = [
    ['seed', opts.seed],
    ['mode', opts.soak ? `soak ${opts.minutes} min @ ${opts.rate}/s` : 'count'],
    ['sent (messages)', stats.sent],
    ['SMTP transactions', stats.transactions],
    ['acknowledged (250)', stats.acked],
    ['refused (5xx, poison)', `${stats.refused} (${results.poison} poison planned)`],
    ['temporary failures (4xx)', stats.tempFailures],
    ['connection errors', `${stats.uncertainErrors} after the final dot, ${stats.earlyErrors} before`],
    ['  retried → already queued', stats.recoveredAfterError],
    ['  retried → fresh id', stats.freshAfterError],
    ['resubmissions', stats.resubmits],
    ['dedup hits', stats.dedupHits],
    ['delivered (recipients)', `${verdict.delivered}/${verdict.expectedDeliveries}`],
    ['bounced (recipients)', `${verdict.bounced}/${verdict.expectedBounces} in ${bounce.dsns.count} DSNs`],
    ['duplicates downstream', `${verdict.duplicates} (same key ${verdict.duplicatesSameKey}, new key ${verdict.duplicatesNewKey}); DSN repeats ${verdict.duplicateDsnCopies}`],
    ['refused but delivered', verdict.refusedSeen],
    ['lost', verdict.lost],
    ['kills', `${kills.length}/${opts.kills}`],
    ['spool checks', `${spoolChecks.length} run, ${badChecks.length} with problems`],
    ['relay crashes', relay.crashes.length],
    ['relay error log lines', relay.errorLines],
    ['load time', `${loadSeconds?.toFixed(1)} s`],
    ['drain time', `${drainSeconds?.toFixed(1)} s`],
    ['total time', `${totalSeconds.toFixed(1)} s`],
    ['relay RSS (last life)', memory.rss ? `start ${fmtBytes(memory.rss.start)}, end ${fmtBytes(memory.rss.end)}, max ${fmtBytes(memory.rss.max)}${opts.soak ? `; floor ${fmtBytes(memory.rss.earlyFloor)} → ${fmtBytes(memory.rss.lateFloor)}: ${verdictText(memory.rss.grows)} (trend ${fmtBytes(memory.rss.slopePerMinute)}/min)` : ''}` : '-'],
    ['relay fds (last life)', memory.fds ? `start ${memory.fds.start}, end ${memory.fds.end}, max ${memory.fds.max}${opts.soak ? `; floor ${memory.fds.earlyFloor} → ${memory.fds.lateFloor}: ${verdictText(memory.fds.grows)}` : ''}` : '-'],
  ];
  const width = Math.max(...rows.map(([k]) => String(k).length));
  console.log('\nonward chaos summary');
  for (const [k, val] of rows) console.log(`  ${String(k).padEnd(width)}  ${val}`);
  if (verdict.lostSamples.length > 0) console.log(`\nlost:\n  ${verdict.lostSamples.join('\n  ')}`);
  if (failures.length > 0) console.log(`\nfailures (${failures.length}):\n  ${failures.slice(0, 20).join('\n  ')}`);
  console.log(`\n${pass ? 'PASS' : 'FAIL'}: lost = ${verdict.lost}, spool-check problems = ${badChecks.length}, failures = ${failures.length}`);
  if (!pass || opts.keep) console.log(`spool, config and relay log kept in ${dir}`);
  if (opts.json) await writeFile(opts.json, JSON.stringify(results, null, 2) + '\n');
  if (pass && !opts.keep) await rm(dir, { recursive: true, force: true });
  process.exit(exitCode);
}

await main();
