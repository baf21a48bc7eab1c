/**
 * Helpers for the CLI / admin API tests: the real `bin/onward` (built `dist/`) as child
 * processes, a config file per test on free loopback ports, direct spool seeding, SMTP
 * submission, admin API requests and Prometheus text parsing. Nothing is mocked.
 *
 * ```ts
 * const cleanup = useCliTeardown();                           // afterAll
 * const env = await makeCliEnv();
 * cleanup.add(() => env.remove());
 * env.writeConfig({ targets: { hook: { type: 'http', url: sink.url } }, routes: [{ match: '*', target: 'hook' }] });
 * const relay = await startServe(env);
 * cleanup.add(() => relay.kill());
 * const r = await runCli(env, ['spool', 'list', '--json']);   // { code, stdout, stderr, ... }
 * await relay.stop();                                          // SIGTERM, waits for exit
 * ```
 *
 * Every child process is recorded; `killSpawned()` (run last by the teardown of
 * `useCliTeardown`) ends those still running, by PID, and only those.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createRouter } from '../../src/routing/index.js';
import { LevelSpool, newQueueId, type NewMessage } from '../../src/spool/index.js';
import { freePort, removeDir, sendRaw, sleep, spawnOnward, testConfig, useTeardown, type Teardown } from './common.js';

// ---------------------------------------------------------------------------------------
// Teardown and process bookkeeping

/** A Teardown run by afterAll that, after every step registered with it, SIGKILLs the children this module spawned that still run. */
/** The header line of the human `spool list` table. */
export const LIST_HEADER = /^ID\s+STATE\s+AGE\s+SIZE\s+NEXT ATTEMPT\s+SENDER$/;

/** What an offline command prints while another holds the spool's lock (progress, not an error). */
export const LOCK_WAIT_NOTICE = 'onward: the spool is in use by another onward command; waiting for it…\n';

/** `stderr` without a leading lock-wait notice: commands run side by side may take turns. */
export function withoutLockWait(stderr: string): string {
  return stderr.startsWith(LOCK_WAIT_NOTICE) ? stderr.slice(LOCK_WAIT_NOTICE.length) : stderr;
}

export function useCliTeardown(): Teardown {
  const teardown = useTeardown();
  teardown.add(killSpawned); // registered first, so it runs last
  return teardown;
}

const spawned = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
}

/** SIGKILLs every child this module spawned that is still running (by its PID) and waits for the exits. */
export async function killSpawned(): Promise<void> {
  await Promise.all(
    [...spawned].map(
      (child) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGKILL');
        }),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Ports, folders, config

export interface CliEnv {
  /** Temp folder holding the config, the spool and anything else of the test. */
  readonly dir: string;
  readonly configPath: string;
  readonly spoolPath: string;
  readonly smtpPort: number;
  readonly adminPort: number;
  /** The admin token written by the last writeConfig, or null. */
  readonly token: string | null;
  /** The parsed config last written (as the relay will read it). */
  readonly config: Config;
  /** Writes the YAML: the base (ports, spool, 1h retry, no jitter, log warn) merged with `overrides`. */
  writeConfig(overrides: Record<string, unknown>): void;
  /** Removes the temp folder. */
  remove(): Promise<void>;
}

export async function makeCliEnv(): Promise<CliEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'onward-cli-'));
  const smtpPort = await freePort();
  let adminPort = await freePort();
  while (adminPort === smtpPort) adminPort = await freePort();
  const configPath = join(dir, 'onward.yaml');
  const spoolPath = join(dir, 'spool');
  let token: string | null = null;
  let config: Config | null = null;
  return {
    dir,
    configPath,
    spoolPath,
    smtpPort,
    adminPort,
    get token() {
      return token;
    },
    get config() {
      if (!config) throw new Error('writeConfig first');
      return config;
    },
    writeConfig(overrides) {
      const base = {
        listen: [{ host: '127.0.0.1', port: smtpPort }],
        limits: { maxMessageSize: '1MB' },
        relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
        retry: { schedule: ['1h'], jitter: 0 },
        admin: { port: adminPort },
        shutdownGrace: '2s',
        log: { level: 'warn' },
      };
      const merged = testConfig(dir, base, overrides);
      const text = stringify(merged);
      writeFileSync(configPath, text);
      const admin = merged['admin'] as { token?: string } | undefined;
      token = admin?.token ?? null;
      // Parsing here too lets tests use the resolved config; a deliberately bad one stays null.
      try {
        config = parseConfig(text, {});
      } catch {
        config = null;
      }
    },
    remove: () => removeDir(dir),
  };
}

// ---------------------------------------------------------------------------------------
// Running bin/onward

export interface CliResult {
  /** Exit code (null when killed by a signal). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** stdout exactly as written. */
  readonly stdoutBytes: Buffer;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout chunks in arrival order (to see that output starts before the end). */
  readonly chunks: readonly Buffer[];
}

export interface RunOptions {
  /** Kill the child (SIGKILL) and reject after this long. Default 20 s. */
  readonly timeoutMs?: number;
  /** Extra environment variables for the child (ONWARD_CONFIG is always removed). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Stop reading the child's stdout until this promise settles, as a pager (`| less`) does:
   * once the pipe is full the child blocks in its write.
   */
  readonly holdStdoutUntil?: Promise<unknown>;
}

/**
 * Runs `node bin/onward ARGS --config <env.configPath>` (no `--config` when `env` is null)
 * and collects its output and exit code.
 */
export function runCli(env: Pick<CliEnv, 'configPath'> | null, args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  const argv = env === null ? [...args] : [...args, '--config', env.configPath];
  const child = spawnOnward(argv, { env: options.env });
  track(child);
  const chunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => errChunks.push(c));
  if (options.holdStdoutUntil) {
    child.stdout.pause();
    void options.holdStdoutUntil.finally(() => child.stdout.resume());
  }
  const timeoutMs = options.timeoutMs ?? 20_000;
  return new Promise((resolveRun, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`onward ${argv.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${Buffer.concat(errChunks).toString()}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(chunks);
      resolveRun({ code, signal, stdoutBytes, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(errChunks).toString('utf8'), chunks });
    });
  });
}

/** runCli that also parses stdout as JSON and fails loudly (with stderr) when it is not exit 0. */
export async function cliJson<T>(env: Pick<CliEnv, 'configPath'>, args: readonly string[]): Promise<T> {
  const r = await runCli(env, args);
  if (r.code !== 0) throw new Error(`onward ${args.join(' ')} exited ${String(r.code)}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`onward ${args.join(' ')} printed no JSON: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

export interface ServeProcess {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`); resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL if still running; for teardown. */
  kill(): Promise<void>;
}

/** Spawns `onward serve` without waiting for it to be ready. */
export function spawnServe(env: Pick<CliEnv, 'configPath'>): ServeProcess {
  const child = spawnOnward(['serve', '--config', env.configPath]);
  track(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => done({ code, signal }));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn onward serve');
  return {
    pid,
    exited,
    stdout: () => out,
    stderr: () => err,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Spawns `onward serve` and waits until /readyz answers 200; throws (with stderr) when it exits first. */
export async function startServe(env: Pick<CliEnv, 'configPath' | 'adminPort'>, timeoutMs = 15_000): Promise<ServeProcess> {
  const serve = spawnServe(env);
  let exited = false;
  void serve.exited.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      const { code } = await serve.exited;
      throw new Error(`onward serve exited ${String(code)} before it was ready:\n${serve.stderr()}${serve.stdout()}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${env.adminPort}/readyz`, { signal: AbortSignal.timeout(500) });
      await res.arrayBuffer();
      if (res.status === 200) return serve;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await serve.kill();
      throw new Error(`onward serve not ready within ${timeoutMs} ms:\n${serve.stderr()}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------
// Admin API

export interface AdminResponse {
  readonly status: number;
  readonly text: string;
}

export async function adminRequest(
  env: Pick<CliEnv, 'adminPort'>,
  path: string,
  options: { method?: string; token?: string | null } = {},
): Promise<AdminResponse> {
  const headers: Record<string, string> = {};
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  const res = await fetch(`http://127.0.0.1:${env.adminPort}${path}`, { method: options.method ?? 'GET', headers });
  return { status: res.status, text: await res.text() };
}

/** One sample value from Prometheus text, matching the name and every given label; undefined when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[pair[1] ?? ''] = pair[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Messages

export interface SubmitOptions {
  readonly from: string;
  readonly to: readonly string[];
  /** The RFC 5322 bytes; default a small text message with a fresh Message-ID. */
  readonly raw?: string | Buffer;
  readonly subject?: string;
}

/** A small RFC 5322 message with CRLF line ends. */
export function rawMessage(opts: { from: string; to: readonly string[]; subject?: string; messageId?: string; body?: string }): string {
  const messageId = opts.messageId ?? `<${Math.random().toString(36).slice(2)}.${Date.now()}@client.test>`;
  return [
    `From: ${opts.from}`,
    `To: ${opts.to.join(', ')}`,
    `Subject: ${opts.subject ?? 'cli test'}`,
    `Message-ID: ${messageId}`,
    'Date: Tue, 01 Jul 2025 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    opts.body ?? 'Hello.',
    '',
  ].join('\r\n');
}

/** Submits one message over SMTP (nodemailer, as is) and returns the relay's reply. */
export async function submit(port: number, opts: SubmitOptions): Promise<{ response: string; queueId: string }> {
  const raw = opts.raw ?? rawMessage({ from: opts.from, to: opts.to, ...(opts.subject ? { subject: opts.subject } : {}) });
  const response = await sendRaw(port, { from: opts.from, to: opts.to }, raw, { connectionTimeout: 5000 });
  const queueId = /queued as ([0-9A-Z]{15})/.exec(response)?.[1];
  if (!queueId) throw new Error(`no queue id in ${response}`);
  return { response, queueId };
}

export interface SeedMessage {
  readonly from: string;
  readonly to: readonly string[];
  readonly raw?: Buffer;
}

/**
 * Writes messages straight into the (stopped) spool, routed by `config`, as the ingress
 * would. `ageMs` back-dates them (receivedAt and first due time). Returns the queue ids.
 */
export async function seedSpool(
  config: Config,
  messages: readonly SeedMessage[],
  options: { ageMs?: number; parallel?: number } = {},
): Promise<string[]> {
  const ageMs = options.ageMs ?? 0;
  const clock = (): number => Date.now() - ageMs;
  const spool = await LevelSpool.open({
    path: config.spool.path,
    dedupWindowMs: config.dedup.windowMs,
    retainFinishedMs: config.spool.retainFinishedMs,
    now: clock,
  });
  const router = createRouter(config.routes);
  const ids: string[] = [];
  try {
    const parallel = options.parallel ?? 1;
    for (let i = 0; i < messages.length; i += parallel) {
      const slice = messages.slice(i, i + parallel);
      const made = slice.map((m): NewMessage => {
        const body = m.raw ?? Buffer.from(rawMessage({ from: m.from, to: m.to }));
        return {
          queueId: newQueueId(clock()),
          sender: m.from,
          recipients: m.to,
          messageId: null,
          body,
          client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'seed.test', user: null },
          deliveries: router(m.to),
          dedupKey: null,
          bounceOf: null,
        };
      });
      const results = await Promise.all(made.map((m) => spool.accept(m)));
      for (const r of results) ids.push(r.queueId);
    }
  } finally {
    await spool.close();
  }
  return ids;
}

/** Opens the stopped spool read-write for a direct look; close it when done. */
export function openSpoolAt(config: Config): Promise<LevelSpool> {
  return LevelSpool.open({ path: config.spool.path, dedupWindowMs: config.dedup.windowMs, retainFinishedMs: config.spool.retainFinishedMs, create: false });
}

// ---------------------------------------------------------------------------------------
// Running many at once

/** Runs `fn` over `items` with at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The spool JSON shapes as the CLI prints them (the fields these tests read). */
export interface ListEntryJson {
  id: string;
  state: string;
  sender: string;
  recipients: { address: string; state: string; target: string; lastError: string | null }[];
  size: number;
  receivedAt: string;
  nextAttemptAt: string | null;
  [extra: string]: unknown;
}

export interface StatsJson {
  states: Record<'queued' | 'deferred' | 'held' | 'delivered' | 'bounced' | 'deleted', number>;
  targets: Record<string, { queued: number; deferred: number; up: boolean | null; concurrency: number | null }>;
  oldestQueuedAgeSeconds: number | null;
  spoolBytes: number;
  source: 'relay' | 'spool';
}

export interface ShowJson extends ListEntryJson {
  headers: [string, string][];
  deliveries: {
    id: string;
    target: string;
    recipients: { address: string; state: string; lastError: string | null }[];
    state: string;
    attempts: { at: string; outcome: string; reply: string; durationMs: number; target?: string }[];
    [extra: string]: unknown;
  }[];
}

/** Stats from the admin API (with the env's token). */
export async function apiStats(env: Pick<CliEnv, 'adminPort' | 'token'>): Promise<StatsJson> {
  const r = await adminRequest(env, '/api/spool/stats', { token: env.token });
  if (r.status !== 200) throw new Error(`stats: HTTP ${r.status} ${r.text}`);
  return JSON.parse(r.text) as StatsJson;
}

/** One message as `show --json` gives it, from the admin API (with the env's token). */
export async function apiShow(env: Pick<CliEnv, 'adminPort' | 'token'>, id: string): Promise<ShowJson> {
  const r = await adminRequest(env, `/api/spool/messages/${id}`, { token: env.token });
  if (r.status !== 200) throw new Error(`show ${id}: HTTP ${r.status} ${r.text}`);
  return JSON.parse(r.text) as ShowJson;
}
