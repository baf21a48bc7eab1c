/**
 * Helpers for the production-readiness tests (test/integration/production/): TLS material
 * made with openssl, a raw SMTP client that can STARTTLS, the relay in-process or as a real
 * `bin/onward serve` child process with its pino stdout parsed, and the spool read back
 * from disk. Nothing is mocked; everything binds 127.0.0.1.
 *
 * ```ts
 * const cleanup = new Teardown();
 * afterAll(() => cleanup.run());
 * const dir = await tempDir('tls');
 * cleanup.add(() => removeDir(dir));
 * const child = await startServeChild(dir, { targets: {...}, routes: [...] });
 * cleanup.add(() => child.kill());
 * ```
 *
 * Child processes are killed by their own PID only (never by name).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { LevelSpool } from '../../src/spool/index.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(REPO_ROOT, 'bin', 'onward');
const BUILT_CLI = join(REPO_ROOT, 'dist', 'cli', 'index.js');

// ---------------------------------------------------------------------------------------
// Teardown, folders, small utilities

/** Cleanup steps, run in reverse order of registration; every step runs even if one throws. */
export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.steps.push(step);
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

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `onward-prod-${label}-`));
}

export function removeDir(dir: string): Promise<void> {
  // Retries: a delivery finishing late (see shutdown.test.ts) may still be writing into it.
  return rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns something truthy; rejects naming `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > giveUpAt) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await sleep(25);
  }
}

// ---------------------------------------------------------------------------------------
// TLS material

export interface Certificate {
  readonly keyPath: string;
  readonly certPath: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/**
 * A self-signed RSA-2048 certificate for CN=localhost, valid one day, written into `dir`.
 * @throws Error with a clear message when openssl is not installed: the TLS tests need it.
 */
export function makeCertificate(dir: string): Certificate {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  const result = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', keyPath, '-out', certPath],
    { encoding: 'utf8' },
  );
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('openssl is not on PATH: the TLS tests generate their self-signed certificate with `openssl req -x509`; install openssl (apt-get install openssl)');
  }
  if (result.status !== 0) throw new Error(`openssl req failed (exit ${String(result.status)}): ${result.stderr}`);
  return { keyPath, certPath, key: readFileSync(keyPath), cert: readFileSync(certPath) };
}

// ---------------------------------------------------------------------------------------
// Raw SMTP client

export interface SmtpReply {
  readonly code: number;
  /** Text of every line without the code and separator. */
  readonly lines: readonly string[];
  /** The whole reply as on the wire, lines joined with \n. */
  readonly raw: string;
}

/**
 * A line-level SMTP client on a real socket: reads complete (multi-line) replies, writes
 * anything, and upgrades to TLS after STARTTLS. Knows nothing about the server.
 */
export class SmtpWire {
  private socket: net.Socket;
  private buffer = '';
  private wake: (() => void) | null = null;
  private ended = false;
  private endError: Error | null = null;
  /** Resolves when the socket has closed (either side). */
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((r) => (this.markClosed = r));
    this.attach(socket);
  }

  /** Connects (plain, or TLS from the first byte with `implicitTls`) and resolves once connected. */
  static connect(port: number, options: { implicitTls?: tls.ConnectionOptions } = {}): Promise<SmtpWire> {
    return new Promise((resolveConnect, reject) => {
      const socket = options.implicitTls
        ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options.implicitTls })
        : net.connect({ host: '127.0.0.1', port });
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once(options.implicitTls ? 'secureConnect' : 'connect', () => {
        socket.off('error', onError);
        resolveConnect(new SmtpWire(socket));
      });
    });
  }

  private attach(socket: net.Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.endError = err;
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
      this.markClosed();
    });
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Negotiated TLS protocol (`TLSv1.3`), or null on a plain socket. */
  get protocol(): string | null {
    return this.socket instanceof tls.TLSSocket ? this.socket.getProtocol() : null;
  }

  /** SHA-256 fingerprint of the server's certificate (`AB:CD:...`), or null on a plain socket. */
  get peerFingerprint256(): string | null {
    return this.socket instanceof tls.TLSSocket ? this.socket.getPeerCertificate().fingerprint256 : null;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next complete reply; rejects when the socket closes first or after `timeoutMs`. */
  async read(timeoutMs = 5000): Promise<SmtpReply> {
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.takeReply();
      if (reply) return reply;
      if (this.ended) {
        throw new Error(`connection closed before a complete reply${this.endError ? ` (${this.endError.message})` : ''}; pending: ${JSON.stringify(this.buffer)}`);
      }
      const left = giveUpAt - Date.now();
      if (left <= 0) throw new Error(`no complete reply within ${String(timeoutMs)} ms; pending: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(timer);
          r();
        };
      });
      this.wake = null;
    }
  }

  private takeReply(): SmtpReply | null {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', offset);
      if (end < 0) return null;
      const line = this.buffer.slice(offset, end);
      offset = end + 2;
      lines.push(line);
      if (!/^\d{3}-/.test(line)) break;
    }
    this.buffer = this.buffer.slice(offset);
    const code = Number(lines[0]?.slice(0, 3));
    return { code, lines: lines.map((l) => l.slice(4)), raw: lines.join('\n') };
  }

  async command(line: string, timeoutMs = 5000): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** Sends STARTTLS, expects 220, and upgrades the socket (any certificate accepted). */
  async startTls(options: tls.ConnectionOptions = {}): Promise<SmtpReply> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) return reply;
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<tls.TLSSocket>((resolveTls, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost', ...options });
      s.once('error', reject);
      s.once('secureConnect', () => {
        s.off('error', reject);
        resolveTls(s);
      });
    });
    this.socket = secure;
    this.attach(secure);
    return reply;
  }

  /** Resolves true when the server closes the socket within `timeoutMs`, false otherwise. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)]);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** EHLO keywords (`AUTH PLAIN LOGIN`, `STARTTLS`, ...) from an EHLO reply, without the greeting line. */
export function ehloKeywords(reply: SmtpReply): string[] {
  return reply.lines.slice(1);
}

/** A small RFC 5322 message with CRLF line ends. */
export function messageText(opts: { from: string; to: string; subject: string; messageId?: string; body?: string }): string {
  const lines = [
    `From: <${opts.from}>`,
    `To: <${opts.to}>`,
    `Subject: ${opts.subject}`,
    ...(opts.messageId ? [`Message-ID: <${opts.messageId}>`] : []),
    'Date: Thu, 27 Nov 2025 10:00:00 +0000',
    '',
    opts.body ?? `Body of ${opts.subject}.`,
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** MAIL, RCPT..., DATA and the message on an open session (after EHLO/AUTH); returns the reply to the final dot. */
export async function transaction(wire: SmtpWire, from: string, to: readonly string[], message: string): Promise<SmtpReply> {
  const mail = await wire.command(`MAIL FROM:<${from}>`);
  if (mail.code !== 250) return mail;
  for (const rcpt of to) {
    const reply = await wire.command(`RCPT TO:<${rcpt}>`);
    if (reply.code !== 250) return reply;
  }
  const data = await wire.command('DATA');
  if (data.code !== 354) return data;
  wire.write(`${message}.\r\n`);
  return wire.read(10_000);
}

/** A whole session: connect, EHLO, one message, QUIT. */
export async function sendOne(port: number, from: string, to: readonly string[], message: string): Promise<SmtpReply> {
  const wire = await SmtpWire.connect(port);
  try {
    await expectCode(wire.read(), 220);
    await expectCode(wire.command('EHLO client.test'), 250);
    const reply = await transaction(wire, from, to, message);
    if (!wire.isClosed) wire.write('QUIT\r\n');
    return reply;
  } finally {
    wire.close();
  }
}

export async function expectCode(reply: Promise<SmtpReply>, code: number): Promise<SmtpReply> {
  const r = await reply;
  if (r.code !== code) throw new Error(`expected ${String(code)}, got ${r.raw}`);
  return r;
}

/** `ID` from `250 2.0.0 Ok: queued as ID`. */
export function queueIdOf(reply: SmtpReply): string {
  const match = /queued as (\S+)/.exec(reply.lines.at(-1) ?? '');
  if (!match?.[1]) throw new Error(`not a "queued as" reply: ${reply.raw}`);
  return match[1];
}

/** `AUTH PLAIN` initial response for user/pass. */
export function plainAuth(user: string, pass: string): string {
  return Buffer.from(`\0${user}\0${pass}`).toString('base64');
}

export function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

// ---------------------------------------------------------------------------------------
// Configs

/** The YAML text for a config object (listeners, spool and admin on temp paths / port 0 by default). */
export function configYaml(dir: string, overrides: Record<string, unknown>): string {
  const base: Record<string, unknown> = {
    listen: [{ host: '127.0.0.1', port: 0 }],
    hostname: 'relay.test',
    spool: { path: join(dir, 'spool'), minFreeDisk: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    retry: { schedule: ['1s'], jitter: 0 },
    log: { level: 'info' },
  };
  return stringify({ ...base, ...overrides });
}

// ---------------------------------------------------------------------------------------
// The relay in this process

export interface InProcessRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** Bound SMTP ports, in `listen` order. */
  readonly ports: readonly number[];
  close(): Promise<void>;
}

/**
 * Starts the real relay (spool, ingress, scheduler, admin) in this process. Its log lines go
 * into `logs` when given (level from the config, default info), else nowhere.
 */
export async function startInProcess(dir: string, overrides: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, logs?: LogLine[]): Promise<InProcessRelay> {
  const config = parseConfig(configYaml(dir, overrides), env);
  const logger = logs
    ? createLogger(config.log.level, {
        write: (line: string) => {
          logs.push(JSON.parse(line) as LogLine);
        },
      })
    : createLogger('silent');
  const relay = await startRelay(config, logger);
  return { relay, config, ports: relay.smtpAddresses.map((a) => a.port), close: () => relay.close() };
}

/** Opens the spool directory a relay used (the relay must be stopped); `create` makes a new one. */
export function openSpool(path: string, options: { create?: boolean } = {}): Promise<LevelSpool> {
  return LevelSpool.open({ path, dedupWindowMs: 7 * 86_400_000, retainFinishedMs: 7 * 86_400_000, create: options.create ?? false });
}

// ---------------------------------------------------------------------------------------
// The relay as a child process (`node bin/onward serve`)

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
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL by PID if still running, then waits for the exit. Idempotent. */
  kill(): Promise<void>;
}

export interface ServeOptions {
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

/** Writes `config.yaml` into `dir`, spawns `node bin/onward serve --config` in `dir`, and waits for `onward ready`. */
export async function startServeChild(dir: string, yamlText: string, options: ServeOptions = {}): Promise<ServeChild> {
  const { env = {}, timeoutMs = 15_000, settleMs = 150, signalOnReady } = options;
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run \`npm run build\` before these tests`);
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, yamlText);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], {
    cwd: dir,
    env: { ...process.env, ONWARD_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

/** `promise`, or a rejection naming `what` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${String(ms)} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Connects to `port`: the refusal code (`ECONNREFUSED`), or the socket, its greeting (null when
 * none came within 3 s) and whether the server had closed it by then.
 */
export async function connectOutcome(port: number): Promise<{ refused: string } | { wire: SmtpWire; greeting: SmtpReply | null; closed: boolean }> {
  try {
    const wire = await SmtpWire.connect(port);
    const greeting = await wire.read(3000).catch(() => null);
    return { wire, greeting, closed: wire.isClosed };
  } catch (err) {
    return { refused: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}
