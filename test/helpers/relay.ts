/**
 * The real relay in-process for integration tests, plus a raw SMTP client and direct
 * spool access. Nothing is mocked: the relay listens on 127.0.0.1 (port 0), spools into a
 * fresh LevelDB under a temp folder and routes every recipient to a `file` target.
 *
 * ```ts
 * const t = await startTestRelay('limits: { maxRecipients: 2 }');
 * afterEach(() => t.close());
 * const { replies } = await smtpConversation(t.port, ['EHLO client.test', 'QUIT']);
 * await t.relay.close();                       // stop, keep the files
 * const stored = await readSpool(t.spoolPath); // every message with deliveries and body
 * ```
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from '@jest/globals';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { parse, stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { LevelSpool, type DeliveryRecord, type MessageRecord } from '../../src/spool/index.js';

export interface TestRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** The bound SMTP port on 127.0.0.1. */
  readonly port: number;
  readonly spoolPath: string;
  /** Folder of the `outbox` file target. */
  readonly outboxPath: string;
  /** The temp folder holding spool and outbox. */
  readonly dir: string;
  /** Stops the relay (idempotent) and removes the temp folder. */
  close(): Promise<void>;
}

/** The YAML every test relay starts from; `overridesYaml` is deep-merged over it. */
export function baseConfigYaml(dir: string): string {
  return stringify({
    listen: [{ host: '127.0.0.1', port: 0 }],
    hostname: 'relay.test',
    limits: { maxMessageSize: '1MB', maxRecipients: 100, maxConnections: 100, maxConnectionsPerIp: 50 },
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
    // Tests run on shared disks: keep the free-space floor out of the way unless a test sets it.
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    targets: { outbox: { type: 'file', path: join(dir, 'outbox') } },
    routes: [{ match: '*', target: 'outbox' }],
    admin: { host: '127.0.0.1', port: 0 },
    shutdownGrace: '1s',
    log: { level: 'silent' },
  });
}

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

/** The YAML text of a test config (base + overrides) for `dir`, as a relay or a child process reads it. */
export function testConfigYaml(dir: string, overridesYaml = ''): string {
  const merged = deepMerge(parse(baseConfigYaml(dir)), parse(overridesYaml) ?? {});
  return stringify(merged);
}

export async function startTestRelay(overridesYaml = ''): Promise<TestRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'onward-relay-'));
  let relay: Relay;
  let config: Config;
  try {
    config = parseConfig(testConfigYaml(dir, overridesYaml), {});
    relay = await startRelay(config, pino({ level: 'silent' }));
  } catch (err) {
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    throw err;
  }
  const address = relay.smtpAddresses[0];
  if (!address) throw new Error('relay has no SMTP listener');
  return {
    relay,
    config,
    port: address.port,
    spoolPath: config.spool.path,
    outboxPath: join(dir, 'outbox'),
    dir,
    async close() {
      await relay.close();
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}

/** Opens a spool directly (the relay that owned it must be closed). Close it when done. */
export function openSpool(path: string): Promise<LevelSpool> {
  return LevelSpool.open({ path, dedupWindowMs: 7 * 86_400_000, retainFinishedMs: 7 * 86_400_000 });
}

export interface StoredMessage {
  readonly message: MessageRecord;
  readonly deliveries: DeliveryRecord[];
  /** The stored RFC 5322 bytes, or null once freed (message finished). */
  readonly body: Buffer | null;
}

/** Every message in the spool at `path` (any state), oldest first. Opens and closes the spool. */
export async function readSpool(path: string): Promise<StoredMessage[]> {
  const spool = await openSpool(path);
  try {
    const out: StoredMessage[] = [];
    const states = ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'] as const;
    for await (const { message, deliveries } of spool.list({ states })) {
      out.push({ message, deliveries, body: await spool.getBody(message.id) });
    }
    return out;
  } finally {
    await spool.close();
  }
}

// ---------------------------------------------------------------------------------------
// Raw SMTP

/** One SMTP reply: its code and its lines (text after `NNN-` / `NNN `). */
export interface SmtpReply {
  readonly code: number;
  readonly lines: readonly string[];
  /** All lines joined with `\n`, without the codes: handy for `toMatch`. */
  readonly text: string;
}

/**
 * A byte-exact SMTP client on a raw socket: `write` sends bytes as given (no CRLF added,
 * no dot-stuffing), `command` sends one line + CRLF and waits for the reply.
 */
export class RawSmtpClient {
  private buffer = '';
  private readonly replies: SmtpReply[] = [];
  private pending: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  /** Every reply line as received (`250-PIPELINING`, `250 2.0.0 Ok: ...`). */
  readonly lines: string[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawSmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawSmtpClient(socket));
      });
    });
  }

  /** Whether the server closed (or reset) the connection. */
  get closed(): boolean {
    return this.ended;
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Sends `line` + CRLF and resolves with the next reply. */
  async command(line: string, timeoutMs = 2000): Promise<SmtpReply> {
    this.write(line + '\r\n');
    return this.read(timeoutMs);
  }

  /** The next complete reply; rejects when the connection ends first or after `timeoutMs`. */
  async read(timeoutMs = 2000): Promise<SmtpReply> {
    const reply = await this.tryRead(timeoutMs);
    if (reply) return reply;
    throw new Error(`no SMTP reply within ${timeoutMs}ms (closed: ${this.ended}); lines so far: ${JSON.stringify(this.lines)}`);
  }

  /** The next complete reply, or null when the connection ends or `timeoutMs` passes first. */
  async tryRead(timeoutMs = 2000): Promise<SmtpReply | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0 && !this.ended && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.replies.shift() ?? null;
  }

  /** Resolves once the server has closed the connection (true), or false after `timeoutMs`. */
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
      this.pending.push(m ? (m[3] ?? '') : line);
      if (!m || m[2] !== '-') {
        const lines = this.pending;
        this.pending = [];
        this.replies.push({ code: m ? Number(m[1]) : 0, lines, text: lines.join('\n') });
      }
    }
    this.wake();
  }

  private wake(): void {
    this.waiter?.();
  }
}

export interface Conversation {
  /** Replies after the greeting, in order. */
  readonly replies: SmtpReply[];
  readonly greeting: SmtpReply;
  /** Every reply line, greeting included. */
  readonly lines: string[];
  /** Whether the server closed the connection (after QUIT, a 421, ...) before the timeout. */
  readonly closed: boolean;
}

/**
 * Connects, waits for the greeting, writes `input` exactly as given (lines each get a CRLF;
 * a Buffer goes byte for byte, all at once, i.e. pipelined) and collects replies until the
 * server closes the connection, `expectReplies` replies have arrived, or `timeoutMs` passes.
 * End the input with QUIT to make the server close.
 */
export async function smtpConversation(
  port: number,
  input: readonly string[] | Buffer,
  options: { readonly timeoutMs?: number; readonly expectReplies?: number } = {},
): Promise<Conversation> {
  const timeoutMs = options.timeoutMs ?? 3000;
  const client = await RawSmtpClient.connect(port);
  try {
    const greeting = await client.read(timeoutMs);
    client.write(Buffer.isBuffer(input) ? input : Buffer.from(input.map((l) => l + '\r\n').join(''), 'latin1'));
    const replies: SmtpReply[] = [];
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (options.expectReplies === undefined || replies.length < options.expectReplies)) {
      const reply = await client.tryRead(deadline - Date.now());
      if (!reply) break;
      replies.push(reply);
    }
    return { replies, greeting, lines: client.lines, closed: client.closed };
  } finally {
    client.close();
  }
}

/** A well-formed message with CRLF line endings; `extraHeaders` go first. */
export function sampleMessage(opts: { subject?: string; messageId?: string | null; date?: boolean; body?: string } = {}): string {
  const headers = ['From: sender@example.com', 'To: rcpt@example.org', `Subject: ${opts.subject ?? 'test'}`];
  if (opts.messageId !== null) headers.push(`Message-ID: <${opts.messageId ?? `${Math.random().toString(36).slice(2)}@client.test`}>`);
  if (opts.date !== false) headers.push('Date: Fri, 27 Nov 2026 11:15:01 +0000');
  return headers.join('\r\n') + '\r\n\r\n' + (opts.body ?? 'Hello.\r\n');
}

/** A complete SMTP transaction as pipelined lines (message must use CRLF and need no dot-stuffing). */
export function transaction(from: string, to: readonly string[], message: string): string[] {
  const body = message.endsWith('\r\n') ? message.slice(0, -2) : message;
  return [`MAIL FROM:<${from}>`, ...to.map((r) => `RCPT TO:<${r}>`), 'DATA', body, '.'];
}

/** A free TCP port on 127.0.0.1 (bound to port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------
// nodemailer and fixtures

/**
 * Sends `raw` (RFC 5322, sent as is) with nodemailer and resolves with the server's final
 * reply line. A refusal rejects with nodemailer's error (`response`, `responseCode`).
 */
export async function sendRaw(
  port: number,
  envelope: { from: string; to: readonly string[] },
  raw: string | Buffer,
  auth?: { user: string; pass: string },
): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.test', ...(auth ? { auth } : {}) });
  try {
    const info = (await transport.sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw })) as { response: string };
    return info.response;
  } finally {
    transport.close();
  }
}

/** The reply line of a nodemailer refusal (`452 4.3.1 ...`). */
export async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const response = (err as { response?: unknown }).response;
    if (typeof response === 'string') return response;
    throw err;
  }
  throw new Error('expected the server to refuse, but it accepted');
}

const QUEUED = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{15})$/;

/** The queue id of a `250 2.0.0 Ok: queued as ID` reply; throws on anything else. */
export function queuedId(reply: string): string {
  const id = QUEUED.exec(reply)?.[1];
  if (!id) throw new Error(`expected "250 2.0.0 Ok: queued as ID", got ${JSON.stringify(reply)}`);
  return id;
}

/**
 * The bytes the relay took responsibility for: the spool body while the message waits, or,
 * once a delivery freed it, the copy the `file` target wrote (its envelope lines removed).
 */
export async function messageBytes(stored: StoredMessage, outboxPath: string): Promise<Buffer | null> {
  if (stored.body) return stored.body;
  const names = await readdir(outboxPath).catch(() => [] as string[]);
  const name = names.find((n) => n.startsWith(`${stored.message.id}.`) && n.endsWith('.eml'));
  if (!name) return null;
  const file = await readFile(join(outboxPath, name));
  let start = 0;
  while (file.subarray(start, start + 17).toString('latin1') === 'X-Onward-Envelope') {
    start = file.indexOf('\r\n', start) + 2;
  }
  return file.subarray(start);
}

/**
 * Registers an afterEach that closes every relay it started, and returns the starter:
 * `const start = useTestRelays(); ... const t = await start('limits: ...');`
 */
export function useTestRelays(): (overridesYaml?: string) => Promise<TestRelay> {
  const started: TestRelay[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((t) => t.close()));
  });
  return async (overridesYaml) => {
    const t = await startTestRelay(overridesYaml);
    started.push(t);
    return t;
  };
}
