/**
 * What the other helpers and the tests share: waiting and polling, free ports, cleanups run
 * in reverse order, temp folders, the test relay's YAML config (deep-merged layers), the real
 * relay in-process on a temp spool, direct spool reads, nodemailer submission, and the built
 * relay as a child process (`node bin/onward ...`). Nothing is mocked; everything binds
 * 127.0.0.1. Child processes are killed by their own PID only (never by name).
 *
 * ```ts
 * const defer = useCleanup();                       // afterEach, last registered first
 * const t = await startTempRelay('onward-x-', (dir) => testConfig(dir, outboxRoute(dir)));
 * defer(() => t.close());
 * const id = queuedId(await sendRaw(t.port, { from: 'a@client.test', to: ['b@x.test'] }, raw));
 * await waitUntil('the message delivered', async () => (await t.relay.spool.getMessage(id))?.state === 'delivered');
 * ```
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from '@jest/globals';
import nodemailer from 'nodemailer';
import { pino, type Logger } from 'pino';
import { stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { LevelSpool, type DeliveryRecord, type MessageRecord, type MessageState, type Spool } from '../../src/spool/index.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(REPO_ROOT, 'bin', 'onward');
/** The entry point `bin/onward` loads; missing until `npm run build`. */
export const BUILT_CLI = join(REPO_ROOT, 'dist', 'cli', 'index.js');

// ---------------------------------------------------------------------------------------
// Time

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls `probe` every `everyMs` until it returns a value other than undefined, null or false,
 * and resolves with that value. A probe that throws counts as "not yet". After `timeoutMs` it
 * rejects naming `what`, with the last error, or with what `describe` says about the state then.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 10_000,
  everyMs = 50,
  describe?: () => unknown,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      let state = '';
      if (describe) {
        try {
          state = `; state: ${JSON.stringify(await describe()).slice(0, 4000)}`;
        } catch (err) {
          state = `; state unavailable: ${String(err)}`;
        }
      }
      const cause = last instanceof Error ? `: ${last.message}` : last === undefined ? '' : `: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}${cause}${state}`);
    }
    await sleep(everyMs);
  }
}

/** Reads `read()` every 25 ms until `done(value)` holds and resolves with that value; rejects after `timeoutMs` showing the last one. */
export async function waitForValue<T>(read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 5000, what = 'condition'): Promise<T> {
  let last: { value: T } | undefined;
  const hit = await waitUntil(
    what,
    async () => {
      const value = await read();
      last = { value };
      return done(value) ? last : undefined;
    },
    timeoutMs,
    25,
    () => (last ? last.value : 'nothing read'),
  );
  return hit.value;
}

/**
 * Resolves with `items` once it holds at least `count`; rejects after `timeoutMs`. Whoever
 * appends to `items` calls every function in `waiters` afterwards.
 */
export function waitForCount<T>(items: readonly T[], waiters: Set<() => void>, count: number, timeoutMs: number, what: { who: string; things: string }): Promise<T[]> {
  return new Promise<T[]>((resolveItems, reject) => {
    const check = (): void => {
      if (items.length < count) return;
      cleanup();
      resolveItems(items as T[]);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what.who}: expected ${String(count)} ${what.things} within ${String(timeoutMs)} ms, got ${String(items.length)}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });
}

// ---------------------------------------------------------------------------------------
// Ports

/** A port that was free a moment ago on 127.0.0.1 (bind 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

/** A TCP port on 127.0.0.1 with nothing listening (bound to 0, then released): connections are refused. */
export const closedPort: () => Promise<number> = freePort;

// ---------------------------------------------------------------------------------------
// Cleanup and temp folders

/** Cleanup steps, run in reverse order of registration; every step runs even if one throws, the first error is rethrown. */
export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  /** A fresh folder `onward-<label>-XXXXXX` under the OS temp folder, removed at teardown. */
  tempDir(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `onward-${label}-`));
    this.add(() => removeDir(dir));
    return dir;
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      try {
        await step?.();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}

/** A Teardown that afterAll runs (the enclosing describe's, or the file's at top level). */
export function useTeardown(): Teardown {
  const teardown = new Teardown();
  afterAll(() => teardown.run());
  return teardown;
}

/**
 * Registers an afterEach that runs the registered cleanups in reverse order (last created,
 * first closed), and returns `defer` to register one right after creating a resource.
 * Every cleanup runs even when one fails (an open server would keep jest alive); the first error is reported.
 */
export function useCleanup(): (cleanup: () => unknown) => void {
  const teardown = new Teardown();
  afterEach(() => teardown.run());
  return (cleanup) => teardown.add(cleanup);
}

/** A fresh folder under the OS temp folder, named `<prefix>XXXXXX`. */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes a folder and everything in it; retries, since a late delivery may still be writing into it. */
export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

// ---------------------------------------------------------------------------------------
// Config

/** A YAML document (or part of one) as a plain object, keys as an operator writes them. */
export type Yamlish = Record<string, unknown>;

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Mappings merge key by key; anything else (lists included) is replaced. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (isMapping(base) && isMapping(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(over)) out[key] = key in base ? deepMerge(base[key], value) : value;
    return out;
  }
  return over === undefined ? base : over;
}

/** `layers` deep-merged over one another, left to right. */
export function mergeConfig(...layers: readonly Yamlish[]): Yamlish {
  return layers.reduce<Yamlish>((doc, layer) => deepMerge(doc, layer) as Yamlish, {});
}

/** SMTP and admin on 127.0.0.1 port 0, hostname relay.test, the spool in `dir`/spool. */
export function loopbackConfig(dir: string): Yamlish {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    hostname: 'relay.test',
    // Tests run on shared disks: keep the free-space floor out of the way unless a test sets it.
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    admin: { host: '127.0.0.1', port: 0 },
  };
}

/** The config a test relay in `dir` starts from (loopback, a 1 s shutdownGrace, no log output) with `layers` deep-merged over it. */
export function testConfig(dir: string, ...layers: readonly Yamlish[]): Yamlish {
  return mergeConfig(loopbackConfig(dir), { shutdownGrace: '1s', log: { level: 'silent' } }, ...layers);
}

/** A `file` target `outbox` in `dir`/outbox and a route sending every recipient there. */
export function outboxRoute(dir: string): Yamlish {
  return {
    targets: { outbox: { type: 'file', path: join(dir, 'outbox') } },
    routes: [{ match: '*', target: 'outbox' }],
  };
}

// ---------------------------------------------------------------------------------------
// The relay in this process

export interface StartedRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** The first bound SMTP port on 127.0.0.1. */
  readonly port: number;
}

/** Parses `doc` as the relay would read it and starts the real relay with a silent logger (or `logger`). */
export async function startRelayWith(doc: Yamlish, logger: Logger = pino({ level: 'silent' })): Promise<StartedRelay> {
  const config = parseConfig(stringify(doc), {});
  const relay = await startRelay(config, logger);
  const port = relay.smtpAddresses[0]?.port;
  if (port === undefined) {
    await relay.close();
    throw new Error('relay has no SMTP listener');
  }
  return { relay, config, port };
}

export interface TempRelay extends StartedRelay {
  /** The temp folder holding the spool (and whatever the config puts there). */
  readonly dir: string;
  /** Stops the relay and removes the temp folder (idempotent). */
  close(): Promise<void>;
}

/** Starts the real relay on a fresh temp folder `<prefix>XXXXXX`, configured by `configFor(dir)`; the folder goes when it fails to start. */
export async function startTempRelay(prefix: string, configFor: (dir: string) => Yamlish): Promise<TempRelay> {
  const dir = await makeTempDir(prefix);
  let started: StartedRelay;
  try {
    started = await startRelayWith(configFor(dir));
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
  const { relay } = started;
  let closing: Promise<void> | undefined;
  return {
    ...started,
    dir,
    close() {
      closing ??= (async () => {
        await relay.close();
        // A file target may still be renaming into place while the folder goes.
        await removeDir(dir);
      })();
      return closing;
    },
  };
}

// ---------------------------------------------------------------------------------------
// The spool

export const ALL_STATES: readonly MessageState[] = ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'];

/** Opens the spool directory a relay used (the relay must be stopped); `create` makes a new one. Close it when done. */
export function openSpool(path: string, options: { create?: boolean } = {}): Promise<LevelSpool> {
  return LevelSpool.open({ path, dedupWindowMs: 7 * 86_400_000, retainFinishedMs: 7 * 86_400_000, create: options.create ?? false });
}

/** Every message in `spool`, any state, with its deliveries. */
export async function spoolContents(spool: Spool): Promise<Array<{ message: MessageRecord; deliveries: DeliveryRecord[] }>> {
  const out: Array<{ message: MessageRecord; deliveries: DeliveryRecord[] }> = [];
  for await (const entry of spool.list({ states: ALL_STATES })) out.push(entry);
  return out;
}

// ---------------------------------------------------------------------------------------
// Submitting with nodemailer

/**
 * Sends `raw` (RFC 5322, sent as is; an empty `from` sends `MAIL FROM:<>`) over one nodemailer
 * connection and resolves with the server's final reply line. A refusal rejects with
 * nodemailer's error (`response`, `responseCode`). `options` go to the transport.
 */
export async function sendRaw(
  port: number,
  envelope: { from: string; to: readonly string[] },
  raw: string | Buffer,
  options: { auth?: { user: string; pass: string }; connectionTimeout?: number } = {},
): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.test', ...options });
  try {
    const info = (await transport.sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw })) as { response: string };
    return info.response;
  } finally {
    transport.close();
  }
}

/** The reply line of a nodemailer refusal (`452 4.3.1 ...`); rethrows anything else. */
export function refusalReply(err: unknown): string {
  const response = (err as { response?: unknown }).response;
  if (typeof response === 'string') return response;
  throw err;
}

const QUEUED = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{15})$/;

/** The queue id of a `250 2.0.0 Ok: queued as ID` reply line, or null for anything else. */
export function queuedIdOrNull(reply: string): string | null {
  return QUEUED.exec(reply.trim())?.[1] ?? null;
}

/** The queue id of a `250 2.0.0 Ok: queued as ID` reply line; throws on anything else. */
export function queuedId(reply: string): string {
  const id = queuedIdOrNull(reply);
  if (!id) throw new Error(`expected "250 2.0.0 Ok: queued as ID", got ${JSON.stringify(reply)}`);
  return id;
}

// ---------------------------------------------------------------------------------------
// Raw SMTP clients

/** A TCP connection to `host:port`, resolved once connected (rejected when the connection fails). */
export function connectTcp(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolveSocket, reject) => {
    const socket = net.connect({ port, host });
    // `reject` stays subscribed (a no-op once settled) so that an error before the caller adds its own listener is not unhandled.
    socket.on('error', reject);
    socket.once('connect', () => resolveSocket(socket));
  });
}

/**
 * The complete replies a socket reader has parsed, and a wait for the next one. The reader
 * `push`es replies, calls `wake` after a chunk and `end` when the connection is gone.
 */
export class ReplyQueue<R> {
  private readonly queue: R[] = [];
  private waiter: (() => void) | null = null;
  private finished = false;

  /** Whether the connection has ended (or was reset). */
  get ended(): boolean {
    return this.finished;
  }

  push(reply: R): void {
    this.queue.push(reply);
  }

  wake(): void {
    this.waiter?.();
  }

  end(): void {
    this.finished = true;
    this.wake();
  }

  /** The next reply, or null when the connection ends or `timeoutMs` passes first. */
  async next(timeoutMs: number): Promise<R | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0 && !this.finished && Date.now() < deadline) {
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
      this.waiter = null;
    }
    return this.queue.shift() ?? null;
  }
}

// ---------------------------------------------------------------------------------------
// The built relay as a child process

/** `dist/` is built once by jest's globalSetup (test/global-setup.mjs); a suite that needs it says so clearly. */
export function ensureBuilt(): void {
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: npm test builds it in test/global-setup.mjs`);
}

/**
 * Spawns `node bin/onward ARGS` (in `cwd`, default the repository) with stdout and stderr
 * piped, this process's environment plus `env`, and never `$ONWARD_CONFIG`.
 */
export function spawnOnward(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcessByStdio<null, Readable, Readable> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env['ONWARD_CONFIG'];
  return spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  readonly at: number;
}

export interface ServeChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly configPath: string;
  /** Every stdout line that parsed as JSON, in order. */
  readonly logs: LogLine[];
  /** Everything the process wrote, stdout and stderr, as text. */
  output(): string;
  /** Lines of stdout that were not JSON (should be none). */
  readonly nonJsonLines: string[];
  readonly smtpPorts: readonly number[];
  readonly exited: Promise<ExitInfo>;
  /** The first log line (past or future) that matches; rejects after `timeoutMs` or when the process exits. */
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `sig` to this child's PID only, if it still runs. */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL by PID if still running, then waits for the exit. Idempotent. */
  kill(): Promise<void>;
}

export interface ServeOptions {
  /** The child's working folder; default the repository. */
  readonly cwd?: string;
  /** Extra environment variables (on top of this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for `onward ready`. Default 15 s. */
  readonly timeoutMs?: number;
  /**
   * Pause after `onward ready` before resolving. serve logs `onward ready` before it installs
   * its SIGTERM/SIGINT/SIGHUP handlers (src/cli/serve.ts), so a signal sent at once can hit
   * the default action and kill it; tests that are not about that race wait a moment.
   * Default 150 ms; signals.test.ts uses 0 to show the race.
   */
  readonly settleMs?: number;
  /** Send this signal the moment the `onward ready` line arrives (synchronously, in the stdout handler). */
  readonly signalOnReady?: NodeJS.Signals;
}

/**
 * Spawns `node bin/onward serve --config <configPath>` and resolves once it logged
 * `onward ready` (its log level must be info or lower); its pino stdout is parsed as it comes.
 */
export async function spawnServeChild(configPath: string, options: ServeOptions = {}): Promise<ServeChild> {
  const { timeoutMs = 15_000, settleMs = 150, signalOnReady } = options;
  ensureBuilt();
  const child = spawnOnward(['serve', '--config', configPath], { cwd: options.cwd, env: options.env });
  if (child.pid === undefined) throw new Error('could not spawn bin/onward serve');
  const pid = child.pid;
  const logs: LogLine[] = [];
  const nonJsonLines: string[] = [];
  const listeners = new Set<() => void>();
  let text = '';
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    text += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.trim() === '') continue;
      try {
        const parsed = JSON.parse(line) as LogLine;
        logs.push(parsed);
        if (signalOnReady && parsed.msg === 'onward ready') process.kill(pid, signalOnReady);
      } catch {
        nonJsonLines.push(line);
      }
    }
    for (const l of listeners) l();
  });
  child.stderr.on('data', (chunk: string) => {
    text += chunk;
  });
  let exitInfo: ExitInfo | null = null;
  const exited = new Promise<ExitInfo>((r) =>
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal, at: Date.now() };
      for (const l of listeners) l();
      r(exitInfo);
    }),
  );

  const waitForLog = (what: string, match: (line: LogLine) => boolean, waitMs = 10_000): Promise<LogLine> =>
    new Promise<LogLine>((resolveLog, reject) => {
      let seen = 0;
      const check = (): void => {
        for (; seen < logs.length; seen++) {
          const line = logs[seen];
          if (line && match(line)) {
            done();
            resolveLog(line);
            return;
          }
        }
        if (exitInfo) {
          done();
          reject(new Error(`serve exited (${JSON.stringify(exitInfo)}) before logging ${what}; output:\n${text}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line for ${what} within ${String(waitMs)} ms; output:\n${text}`));
      }, waitMs);
      const done = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });

  const kill = async (): Promise<void> => {
    if (exitInfo) return;
    child.kill('SIGKILL');
    await exited;
  };

  let ready: LogLine;
  try {
    ready = await waitForLog('onward ready', (l) => l.msg === 'onward ready', timeoutMs);
  } catch (err) {
    await kill();
    throw err;
  }
  if (settleMs > 0) await sleep(settleMs);
  const smtpPorts = String(ready['smtp'])
    .split(', ')
    .map((a) => Number(a.slice(a.lastIndexOf(':') + 1)));
  return {
    child,
    pid,
    configPath,
    logs,
    nonJsonLines,
    output: () => text,
    smtpPorts,
    exited,
    waitForLog,
    signal: (sig) => {
      if (!exitInfo) process.kill(pid, sig);
    },
    kill,
  };
}
