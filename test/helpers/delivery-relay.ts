/**
 * The real relay in-process for delivery-engine tests: SMTP on 127.0.0.1:0, a fresh LevelDB
 * spool in a temp folder, log level silent, short retry schedule, and the caller's targets
 * and routes. DSNs go to a `file` target (`outbox`) so they never reach the sinks under test.
 *
 * ```ts
 * const t = await startDeliveryRelay({ targets: { hooks: { type: 'http', url: sink.url } },
 *                                      routes: [{ match: '*', target: 'hooks' }] });
 * afterEach(() => t.close());
 * const queueId = await t.send({ from: 'a@client.test', to: ['b@x.test'], raw: message() });
 * const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered');
 * ```
 *
 * Also: a child-process relay (`node bin/onward serve`) for crash tests, and small
 * polling and message helpers. Nothing is mocked.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach } from '@jest/globals';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import type { DeliveryRecord } from '../../src/spool/index.js';

/**
 * Registers an afterEach that runs the registered cleanups in reverse order (last created,
 * first closed), and returns `defer` to register one right after creating a resource.
 */
export function useCleanup(): (cleanup: () => unknown) => void {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    // Every cleanup runs even when one fails (an open server would keep jest alive); the first error is reported.
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

type Yamlish = Record<string, unknown>;

/** Mappings merge key by key; anything else (lists included) is replaced. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (isMapping(base) && isMapping(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(over)) out[key] = key in base ? deepMerge(base[key], value) : value;
    return out;
  }
  return over === undefined ? base : over;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The config document for a delivery test relay in `dir`: `overrides` (targets, routes,
 * retry, ...) deep-merged over a base with a 200ms retry schedule, no jitter, and an
 * `outbox` file target that carries DSNs.
 */
export function deliveryConfigDoc(dir: string, overrides: Yamlish): Yamlish {
  const base: Yamlish = {
    listen: [{ host: '127.0.0.1', port: 0 }],
    hostname: 'relay.test',
    limits: { maxMessageSize: '10MB', maxRecipients: 100, maxConnections: 200, maxConnectionsPerIp: 100 },
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    retry: { schedule: ['200ms'], jitter: 0 },
    targets: { outbox: { type: 'file', path: join(dir, 'outbox') } },
    bounces: { from: 'MAILER-DAEMON@relay.test', via: 'outbox' },
    admin: { host: '127.0.0.1', port: 0 },
    shutdownGrace: '1s',
    log: { level: 'silent' },
  };
  return deepMerge(base, overrides) as Yamlish;
}

export interface DeliveryRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** Bound SMTP port on 127.0.0.1. */
  readonly port: number;
  readonly dir: string;
  /** Sends `raw` with nodemailer and returns the queue id of the `250 ... queued as ID` reply. */
  send(envelope: { from: string; to: readonly string[] }, raw: string | Buffer): Promise<string>;
  /** Polls the spool until `done(deliveries)` holds; rejects with the last state after `timeoutMs`. */
  waitForDeliveries(queueId: string, done: (deliveries: DeliveryRecord[]) => boolean, timeoutMs?: number): Promise<DeliveryRecord[]>;
  /** Stops the relay (idempotent) and removes the temp folder. */
  close(): Promise<void>;
}

export async function startDeliveryRelay(overrides: Yamlish): Promise<DeliveryRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'onward-delivery-'));
  let relay: Relay;
  let config: Config;
  try {
    config = parseConfig(stringify(deliveryConfigDoc(dir, overrides)), {});
    relay = await startRelay(config, pino({ level: 'silent' }));
  } catch (err) {
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    throw err;
  }
  const port = relay.smtpAddresses[0]?.port;
  if (port === undefined) throw new Error('relay has no SMTP listener');
  let closing: Promise<void> | undefined;
  return {
    relay,
    config,
    port,
    dir,
    send: (envelope, raw) => sendRaw(port, envelope, raw),
    waitForDeliveries: (queueId, done, timeoutMs = 5000) =>
      waitUntil(() => relay.spool.getDeliveries(queueId), done, timeoutMs, `deliveries of ${queueId}`),
    close() {
      closing ??= (async () => {
        await relay.close();
        // A file target may still be renaming into place while the folder goes.
        await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      })();
      return closing;
    },
  };
}

const QUEUED = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{15})$/;

/** The queue id in a `250 2.0.0 Ok: queued as ID` reply; throws on anything else. */
export function queueIdOf(reply: string): string {
  const id = QUEUED.exec(reply.trim())?.[1];
  if (!id) throw new Error(`expected "250 2.0.0 Ok: queued as ID", got ${JSON.stringify(reply)}`);
  return id;
}

/** One message over one nodemailer connection into the relay; resolves with the queue id. */
export async function sendRaw(port: number, envelope: { from: string; to: readonly string[] }, raw: string | Buffer): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.test' });
  try {
    const info = (await transport.sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw })) as { response: string };
    return queueIdOf(info.response);
  } finally {
    transport.close();
  }
}

/** Many messages over a bounded nodemailer pool; resolves with the queue ids in order. */
export async function sendMany(
  port: number,
  messages: readonly { from: string; to: readonly string[]; raw: string | Buffer }[],
  maxConnections = 5,
): Promise<string[]> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
  });
  try {
    return await Promise.all(
      messages.map(async (m) => {
        const info = (await transport.sendMail({ envelope: { from: m.from, to: [...m.to] }, raw: m.raw })) as { response: string };
        return queueIdOf(info.response);
      }),
    );
  } finally {
    transport.close();
  }
}

let counter = 0;

/** A small well-formed message (CRLF) with a unique Message-ID. */
export function simpleMessage(opts: { subject?: string; to?: string; body?: string } = {}): string {
  counter += 1;
  const id = `${Date.now().toString(36)}.${String(counter)}.${Math.random().toString(36).slice(2)}@client.test`;
  return [
    'From: Sender <sender@client.test>',
    `To: ${opts.to ?? 'rcpt@example.test'}`,
    `Subject: ${opts.subject ?? 'delivery test'}`,
    `Message-ID: <${id}>`,
    'Date: Fri, 27 Nov 2026 11:15:01 +0000',
    '',
    opts.body ?? 'Hello.',
    '',
  ].join('\r\n');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `read` every 25 ms until `done(value)`; rejects after `timeoutMs` showing the last value. */
export async function waitUntil<T>(read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    }
    await sleep(25);
  }
}

/** A TCP port on 127.0.0.1 with nothing listening (bound to 0, then released): connections are refused. */
export function closedPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Counts requests in flight at an HTTP sink: wrap the answer with `track`, which holds the
 * request for `delayMs` (counted as in flight) and then answers.
 */
export class InFlightGauge {
  current = 0;
  max = 0;
  /** In-flight count seen by each request when it arrived (itself included), with a phase label. */
  readonly samples: { phase: string; inFlight: number; at: number }[] = [];
  phase = 'start';

  async track<T>(delayMs: number, answer: T): Promise<T> {
    this.current += 1;
    this.max = Math.max(this.max, this.current);
    this.samples.push({ phase: this.phase, inFlight: this.current, at: Date.now() });
    try {
      await sleep(delayMs);
      return answer;
    } finally {
      this.current -= 1;
    }
  }

  maxIn(phase: string, from = 0): number {
    return Math.max(0, ...this.samples.filter((s) => s.phase === phase).slice(from).map((s) => s.inFlight));
  }
}

// ---------------------------------------------------------------------------------------
// The built relay as a child process (crash tests)

/** Builds `dist/` when it is missing or older than any file under `src/`. */
export function ensureBuilt(): void {
  const entry = join(REPO_ROOT, 'dist', 'cli', 'index.js');
  if (existsSync(entry) && newestMtime(join(REPO_ROOT, 'src')) <= newestMtime(join(REPO_ROOT, 'dist'))) return;
  const result = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: 'pipe', encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}\n${result.stderr}`);
}

function newestMtime(path: string): number {
  let newest = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

export interface ChildRelay {
  readonly child: ChildProcess;
  /** SMTP port the child bound (from its "onward ready" log line). */
  readonly port: number;
  /** Resolves with the exit code / signal once the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` to this child's PID only, if it still runs. */
  kill(signal: NodeJS.Signals): void;
}

/** Writes `configDoc` as YAML next to the spool and returns its path. */
export async function writeConfig(dir: string, configDoc: Yamlish, name = 'onward.yaml'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, stringify(configDoc));
  return path;
}

/** `node bin/onward serve --config <path>`; resolves once it logged "onward ready" (log level must be ≤ info). */
export async function spawnRelay(configPath: string, timeoutMs = 10_000): Promise<ChildRelay> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'onward'), 'serve', '--config', configPath], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const kill = (signal: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, signal);
  };
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => {
      kill('SIGKILL');
      reject(new Error(`relay child not ready within ${String(timeoutMs)} ms; stderr: ${stderr}`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      let entry: { msg?: unknown; smtp?: unknown };
      try {
        entry = JSON.parse(line) as { msg?: unknown; smtp?: unknown };
      } catch {
        return;
      }
      if (entry.msg !== 'onward ready' || typeof entry.smtp !== 'string') return;
      clearTimeout(timer);
      resolvePort(Number(entry.smtp.split(',')[0]?.trim().split(':').at(-1)));
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`relay child exited before ready (code ${String(code)}, signal ${String(signal)}); stderr: ${stderr}`));
    });
  });
  return { child, port, exited, kill };
}
