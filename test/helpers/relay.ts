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
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { Relay } from '../../src/app/index.js';
import type { Config } from '../../src/config/index.js';
import type { DeliveryRecord, MessageRecord } from '../../src/spool/index.js';
import { connectTcp, openSpool, outboxRoute, refusalReply, ReplyQueue, spoolContents, startTempRelay, testConfig, useCleanup, type Yamlish } from './common.js';

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

/** The config of a test relay in `dir`: every recipient to the `outbox` file target, `overridesYaml` deep-merged over it. */
function testRelayConfig(dir: string, overridesYaml: string): Yamlish {
  const base = {
    limits: { maxMessageSize: '1MB', maxRecipients: 100, maxConnections: 100, maxConnectionsPerIp: 50 },
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
  };
  return testConfig(dir, base, outboxRoute(dir), (parse(overridesYaml) as Yamlish | null) ?? {});
}

/** The YAML text of a test config (base + overrides) for `dir`, as a relay or a child process reads it. */
export function testConfigYaml(dir: string, overridesYaml = ''): string {
  return stringify(testRelayConfig(dir, overridesYaml));
}

export async function startTestRelay(overridesYaml = ''): Promise<TestRelay> {
  const t = await startTempRelay('onward-relay-', (dir) => testRelayConfig(dir, overridesYaml));
  return { ...t, spoolPath: t.config.spool.path, outboxPath: join(t.dir, 'outbox') };
}

export interface StoredMessage {
  readonly message: MessageRecord;
  readonly deliveries: DeliveryRecord[];
  /** The stored RFC 5322 bytes, or null once freed (message finished). */
  readonly body: Buffer | null;
}

/** Every message in the spool at `path` (any state), oldest first. Opens and closes the spool (the relay that owned it must be closed). */
export async function readSpool(path: string): Promise<StoredMessage[]> {
  const spool = await openSpool(path);
  try {
    const out: StoredMessage[] = [];
    for (const { message, deliveries } of await spoolContents(spool)) {
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
  private readonly replies = new ReplyQueue<SmtpReply>();
  private pending: string[] = [];
  /** Every reply line as received (`250-PIPELINING`, `250 2.0.0 Ok: ...`). */
  readonly lines: string[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const end = (): void => this.replies.end();
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawSmtpClient> {
    return new RawSmtpClient(await connectTcp(port, host));
  }

  /** Whether the server closed (or reset) the connection. */
  get closed(): boolean {
    return this.replies.ended;
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
    throw new Error(`no SMTP reply within ${timeoutMs}ms (closed: ${this.closed}); lines so far: ${JSON.stringify(this.lines)}`);
  }

  /** The next complete reply, or null when the connection ends or `timeoutMs` passes first. */
  tryRead(timeoutMs = 2000): Promise<SmtpReply | null> {
    return this.replies.next(timeoutMs);
  }

  /** Resolves once the server has closed the connection (true), or false after `timeoutMs`. */
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.closed;
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
    this.replies.wake();
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

// ---------------------------------------------------------------------------------------
// nodemailer and fixtures

/** The reply line of a nodemailer refusal (`452 4.3.1 ...`); rejects when the server accepted. */
export async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return refusalReply(err);
  }
  throw new Error('expected the server to refuse, but it accepted');
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
  const defer = useCleanup();
  return async (overridesYaml) => {
    const t = await startTestRelay(overridesYaml);
    defer(() => t.close());
    return t;
  };
}
