/**
 * Helpers for the production-readiness tests (test/integration/production/): TLS material
 * made with openssl, a raw SMTP client that can STARTTLS, and the relay in-process or as a
 * real `bin/onward serve` child process (spawned, its pino stdout parsed, by common.ts, which
 * also holds cleanup, temp folders, waiting and direct spool access). Nothing is mocked;
 * everything binds 127.0.0.1.
 *
 * ```ts
 * const cleanup = useTeardown();                 // common.ts; afterAll
 * const dir = cleanup.tempDir('prod-tls');        // removed at teardown
 * const child = await startServeChild(dir, configYaml(dir, { targets: {...}, routes: [...] }));
 * cleanup.add(() => child.kill());
 * ```
 *
 * Child processes are killed by their own PID only (never by name).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { loopbackConfig, mergeConfig, sleep, spawnServeChild, type LogLine, type ServeChild, type ServeOptions, type Teardown } from './common.js';

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

/** `SmtpWire.connect`, with the socket closed by `cleanup`. */
export async function openWire(cleanup: Teardown, port: number, options: { implicitTls?: tls.ConnectionOptions } = {}): Promise<SmtpWire> {
  const wire = await SmtpWire.connect(port, options);
  cleanup.add(() => wire.close());
  return wire;
}

/** Connects, reads the greeting and sends `EHLO client.test` (whatever the replies); the socket is closed by `cleanup`. */
export async function openSession(cleanup: Teardown, port: number): Promise<SmtpWire> {
  const wire = await openWire(cleanup, port);
  await wire.read();
  await wire.command('EHLO client.test');
  return wire;
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
  const base = { spool: { minFreeDisk: 0 }, retry: { schedule: ['1s'], jitter: 0 }, log: { level: 'info' } };
  return stringify(mergeConfig(loopbackConfig(dir), base, overrides));
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

// ---------------------------------------------------------------------------------------
// The relay as a child process (`node bin/onward serve`)

/** Writes `config.yaml` into `dir`, spawns `node bin/onward serve --config` in `dir`, and waits for `onward ready`. */
export async function startServeChild(dir: string, yamlText: string, options: Omit<ServeOptions, 'cwd'> = {}): Promise<ServeChild> {
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, yamlText);
  return spawnServeChild(configPath, { ...options, cwd: dir });
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
