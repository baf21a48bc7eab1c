/**
 * Building blocks of the SMTP front-door fuzzer (test/integration/reliability/fuzz.test.ts):
 * a seeded PRNG, a byte-exact SMTP client that checks every reply line it reads, generators
 * of command lines, DATA payloads and valid messages, and the checker that compares what the
 * relay stored with what the client sent.
 *
 * Nothing here follows src/: the header model (where the relay may insert Message-ID/Date)
 * follows RFC 5322 and SPEC section 3, not the relay's own code. (The reply queue the client
 * waits on is the one common.ts gives every raw client.)
 */
import net from 'node:net';
import { connectTcp, ReplyQueue } from './common.js';

// ---------------------------------------------------------------------------------------
// PRNG

/** mulberry32: small, fast, good enough for a fuzzer, and the same sequence on every machine. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly distributed uint32. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** [0, 1) */
  float(): number {
    return this.next() / 4294967296;
  }

  /** [0, n) */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** [lo, hi] */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  /** Picks by weight: `[[5, 'often'], [1, 'rarely']]`. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    const total = entries.reduce((sum, [w]) => sum + w, 0);
    let r = this.float() * total;
    for (const [w, value] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    return entries[entries.length - 1]![1];
  }

  /** `n` random bytes, none of them in `exclude`. */
  bytes(n: number, exclude: readonly number[] = []): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      let b = this.int(256);
      while (exclude.includes(b)) b = this.int(256);
      out[i] = b;
    }
    return out;
  }
}

/** Mixes numbers into one seed (splitmix-style), so each session has its own stream. */
export function deriveSeed(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

// ---------------------------------------------------------------------------------------
// Bytes

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

/** Concatenates strings (UTF-8) and buffers. */
export function bytes(...parts: readonly (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Where the content has a CR not followed by LF, or an LF not preceded by CR (-1: none). */
export function bareLineEndingAt(data: Buffer): number {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === CR && data[i + 1] !== LF) return i;
    if (data[i] === LF && (i === 0 || data[i - 1] !== CR)) return i;
  }
  return -1;
}

/** Splits CRLF-terminated content into lines (without their CRLF); a last line without CRLF is kept. */
function splitCrlf(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    const eol = data.indexOf(CRLF, pos);
    if (eol === -1) {
      lines.push(data.subarray(pos));
      break;
    }
    lines.push(data.subarray(pos, eol));
    pos = eol + 2;
  }
  return lines;
}

/** RFC 5321 4.5.2 transparency: every line of `content` that starts with "." gets one more. Adds the terminator. */
export function dotStuff(content: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const line of splitCrlf(content)) {
    if (line[0] === 0x2e) parts.push(Buffer.from('.'));
    parts.push(line, CRLF);
  }
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

/**
 * The message content a receiver reads from a DATA payload (without its terminator) that
 * uses CRLF only: RFC 5321 4.5.2 deletes the first character of a line that starts with "."
 * and has more; the lenient reading (what smtp-server does) deletes it only from lines that
 * start with "..". For a correctly dot-stuffed payload both are the same.
 */
export function unstuff(payload: Buffer, reading: 'rfc5321' | 'lenient'): Buffer {
  const parts: Buffer[] = [];
  for (const line of splitCrlf(payload)) {
    const strip = reading === 'rfc5321' ? line[0] === 0x2e && line.length > 1 : line[0] === 0x2e && line[1] === 0x2e;
    parts.push(strip ? line.subarray(1) : line, CRLF);
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------
// SMTP client

export interface WireReply {
  readonly code: number;
  readonly lines: readonly string[];
  /** The last line's text (after `NNN `). */
  readonly text: string;
}

const REPLY_LINE = /^([2-5][0-5]\d)(?:([ -])(.*))?$/s;
const ENHANCED = /^([245])\.\d{1,3}\.\d{1,3}(?: |$)/;

/**
 * A raw SMTP client: bytes go out exactly as given; every reply line that comes back is
 * checked (3 digits, then space or dash; CRLF; no control characters; one code per
 * multi-line reply; an enhanced status code of the reply's own class) and anything wrong
 * is collected in `problems`.
 */
export class FuzzClient {
  private buffer = Buffer.alloc(0);
  private pendingLines: string[] = [];
  private pendingCode: number | null = null;
  private readonly queue = new ReplyQueue<WireReply>();
  private destroyedByUs = false;
  /** Protocol violations seen in the server's replies. */
  readonly problems: string[] = [];
  /** Every complete reply, in order. */
  readonly all: WireReply[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', () => this.onEnd());
  }

  static async connect(port: number): Promise<FuzzClient> {
    const socket = await connectTcp(port);
    socket.setNoDelay(true);
    return new FuzzClient(socket);
  }

  get closed(): boolean {
    return this.queue.ended;
  }

  /** Writes `data` at once (ignored once the socket is gone). */
  send(data: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Writes `data` in random pieces (1 byte to 64 KB), yielding to the event loop between them. */
  async sendChunked(data: Buffer, rng: Rng): Promise<void> {
    let pos = 0;
    while (pos < data.length && !this.closed) {
      const size = rng.weighted<number>([
        [1, 1],
        [2, rng.between(2, 8)],
        [4, rng.between(9, 600)],
        [3, rng.between(601, 65536)],
      ]);
      this.send(data.subarray(pos, pos + size));
      pos += size;
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Half-closes (FIN) without waiting for anything. */
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** Closes at once (the server sees a reset or a FIN, whatever the kernel does). */
  destroy(): void {
    this.destroyedByUs = true;
    this.socket.destroy();
  }

  /** The next reply, or null when the connection ends or `timeoutMs` passes first. */
  next(timeoutMs: number): Promise<WireReply | null> {
    return this.queue.next(timeoutMs);
  }

  /** Every reply until the server closes the connection; false when it is still open after `timeoutMs`. */
  async untilClosed(timeoutMs: number): Promise<{ replies: WireReply[]; closed: boolean }> {
    const deadline = Date.now() + timeoutMs;
    const replies: WireReply[] = [];
    while (Date.now() < deadline) {
      const reply = await this.next(deadline - Date.now());
      if (reply) replies.push(reply);
      else if (this.closed) break;
    }
    return { replies, closed: this.closed };
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    let nl: number;
    while ((nl = this.buffer.indexOf(LF)) !== -1) {
      const raw = this.buffer.subarray(0, nl);
      this.buffer = this.buffer.subarray(nl + 1);
      if (raw[raw.length - 1] !== CR) this.problem(`reply line not ended by CRLF: ${show(raw)}`);
      this.onLine(raw.subarray(0, raw[raw.length - 1] === CR ? raw.length - 1 : raw.length).toString('latin1'));
    }
    this.queue.wake();
  }

  private onLine(line: string): void {
    const m = REPLY_LINE.exec(line);
    if (!m) {
      this.problem(`malformed reply line: ${JSON.stringify(line.slice(0, 120))}`);
      return;
    }
    const code = Number(m[1]);
    const text = m[3] ?? '';
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) this.problem(`control character in reply: ${JSON.stringify(line.slice(0, 120))}`);
    if (this.pendingCode !== null && this.pendingCode !== code) {
      this.problem(`multi-line reply changes code ${this.pendingCode} -> ${code}: ${JSON.stringify(line.slice(0, 120))}`);
    }
    const enhanced = ENHANCED.exec(text);
    if (enhanced && enhanced[1] !== String(code)[0]) this.problem(`enhanced status of another class: ${JSON.stringify(line.slice(0, 120))}`);
    this.pendingLines.push(text);
    this.pendingCode = code;
    if (m[2] !== '-') {
      const reply: WireReply = { code, lines: this.pendingLines, text };
      this.pendingLines = [];
      this.pendingCode = null;
      this.queue.push(reply);
      this.all.push(reply);
    }
  }

  private onEnd(): void {
    if (!this.closed && !this.destroyedByUs && (this.buffer.length > 0 || this.pendingLines.length > 0)) {
      this.problem(`connection closed inside a reply: ${show(this.buffer)} after ${JSON.stringify(this.pendingLines)}`);
    }
    this.queue.end();
  }

  private problem(text: string): void {
    this.problems.push(text);
  }
}

function show(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 120).toString('latin1'));
}

const QUEUED = /^2\.0\.0 Ok: (already )?queued as ([0-9A-Z]+)$/;

/** `{ id, duplicate }` for a `250 2.0.0 Ok: [already ]queued as ID` reply, else null. */
export function queuedReply(reply: WireReply | null): { id: string; duplicate: boolean } | null {
  if (!reply || reply.code !== 250) return null;
  const m = QUEUED.exec(reply.text);
  return m ? { id: m[2]!, duplicate: m[1] !== undefined } : null;
}

// ---------------------------------------------------------------------------------------
// Generators

const WORDS = ['alpha', 'bravo', 'delta', 'echo', 'hotel', 'kilo', 'lima', 'oscar', 'papa', 'sierra', 'tango', 'zulu', 'x', '42', '--', '=?', '=3D'];
/** Non-ASCII code points; the last ones have a low byte of CR, LF or space (U+0D0D, U+0D0A, U+0D20). */
const UNICODE = ['ü', 'é', 'ß', '中文', 'Ωmega', '😀', '\u00a0', '\u2028', '\u0d0d', '\u0d0a', '\u0d20'];

export function words(rng: Rng, n: number): string {
  return Array.from({ length: n }, () => rng.pick(WORDS)).join(' ');
}

/** A hostname for EHLO/HELO: mostly fine, sometimes 8-bit, UTF-8, invalid UTF-8, control bytes, empty or too long. */
export function hostname(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [10, () => bytes('client.test')],
    [4, () => bytes(`h${rng.int(1000)}.example.com`)],
    [2, () => bytes('[127.0.0.1]')],
    [1, () => bytes('[IPv6:::1]')],
    [2, () => bytes(`m${rng.pick(UNICODE)}nchen.test`)],
    [1, () => latin1(`caf\xe9.test`)],
    [1, () => Buffer.from([0x78, 0xff, 0xfe, 0xc3, 0x28, 0x2e, 0x74])],
    [1, () => bytes('a\x01b.test')],
    [1, () => bytes('nul\x00.test')],
    [1, () => bytes('')],
    [1, () => bytes('two words')],
    [1, () => bytes('h'.repeat(rng.between(250, 400)))],
  ])();
}

/** An address, sometimes broken. */
function address(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [12, () => bytes(`u${rng.int(100)}@example.com`)],
    [3, () => bytes(`first.last+tag${rng.int(9)}@sub.example.org`)],
    [2, () => bytes('"quoted local"@example.com')],
    [2, () => bytes(`${rng.pick(UNICODE)}ser@ex${rng.pick(UNICODE)}mple.test`)],
    [1, () => bytes('a@[127.0.0.1]')],
    [1, () => bytes('noat')],
    [1, () => bytes('@nolocal')],
    [1, () => bytes('a@')],
    [1, () => bytes('a@@b')],
    [1, () => bytes('a b@c.test')],
    [1, () => bytes('a\x00b@c.test')],
    [1, () => Buffer.concat([bytes('bad'), rng.bytes(4, [CR, LF]), bytes('@c.test')])],
    [1, () => bytes('l'.repeat(rng.between(65, 2000)) + '@example.com')],
  ])();
}

function path(rng: Rng): Buffer {
  const a = address(rng);
  return rng.weighted<() => Buffer>([
    [12, () => bytes('<', a, '>')],
    [2, () => a],
    [1, () => bytes('< ', a, ' >')],
    [1, () => bytes('<@relay.test,@r2.test:', a, '>')],
    [2, () => bytes('<>')],
    [1, () => bytes('<', a)],
  ])();
}

function mailParams(rng: Rng): string {
  const params: string[] = [];
  const n = rng.weighted<number>([
    [6, 0],
    [3, 1],
    [1, rng.between(2, 4)],
  ]);
  for (let i = 0; i < n; i++) {
    params.push(
      rng.pick([
        `SIZE=${rng.pick([0, 100, 4096, 1_000_000, 3_000_000, 999_999_999_999])}`,
        'SIZE=abc',
        'SIZE=',
        'SIZE=-1',
        'BODY=8BITMIME',
        'BODY=7BIT',
        'BODY=BINARYMIME',
        'BODY=WRONG',
        'SMTPUTF8',
        'RET=HDRS',
        'ENVID=abc',
        'NOTIFY=NEVER',
        'ORCPT=rfc822;a@b.test',
        'AUTH=<>',
        'FOO=bar',
        'X'.repeat(rng.between(100, 3000)),
      ]),
    );
  }
  return params.length > 0 ? ' ' + params.join(' ') : '';
}

const PLAIN_OK = Buffer.from('\0fuzz\0fuzzpass').toString('base64');

/** AUTH command lines (and the odd continuation line on its own). */
function authLine(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [3, () => bytes(`AUTH PLAIN ${PLAIN_OK}`)],
    [3, () => bytes(`AUTH PLAIN ${Buffer.from(`\0fuzz\0wrong${rng.int(99)}`).toString('base64')}`)],
    [1, () => bytes('AUTH PLAIN')],
    [1, () => bytes('AUTH PLAIN !!!notbase64')],
    [1, () => bytes(`AUTH PLAIN ${Buffer.from('\0fu\x01zz\0x').toString('base64')}`)],
    [2, () => bytes('AUTH LOGIN')],
    [1, () => bytes(`AUTH LOGIN ${Buffer.from('fuzz').toString('base64')}`)],
    [1, () => bytes('AUTH CRAM-MD5')],
    [1, () => bytes('AUTH XOAUTH2 dXNlcj1mdXp6AWF1dGg9QmVhcmVyIHgBAQ==')],
    [1, () => bytes('AUTH')],
    [1, () => bytes('*')],
    [1, () => bytes(Buffer.from('fuzzpass').toString('base64'))],
  ])();
}

export interface CommandOptions {
  /** Allow DATA, AUTH, QUIT and lines that make smtp-server close the connection. */
  readonly anything: boolean;
}

/**
 * One random command line, without its line ending. Never contains CR or LF, so the
 * server sees exactly one line (with `anything`, it may be one that closes the session).
 */
export function commandLine(rng: Rng, options: CommandOptions): Buffer {
  const verb = (v: string): string => rng.weighted<string>([
    [8, v],
    [2, v.toLowerCase()],
    [1, v[0]! + v.slice(1).toLowerCase()],
  ]);
  const safe: (readonly [number, () => Buffer])[] = [
    [6, () => bytes(verb('EHLO'), ' ', hostname(rng))],
    [3, () => bytes(verb('HELO'), ' ', hostname(rng))],
    [1, () => bytes(verb('EHLO'))],
    [10, () => bytes(verb('MAIL'), rng.pick([' FROM:', ' FROM: ', ' from:', '  FROM:', ' TO:', ' ']), path(rng), mailParams(rng))],
    [10, () => bytes(verb('RCPT'), rng.pick([' TO:', ' TO: ', ' to:', ' FROM:', ' ']), path(rng), rng.chance(0.1) ? ' NOTIFY=NEVER' : '')],
    [4, () => bytes(verb('RSET'), rng.chance(0.1) ? ' extra' : '')],
    [4, () => bytes(verb('NOOP'), rng.chance(0.2) ? ` ${words(rng, 2)}` : '')],
    [2, () => bytes(verb('VRFY'), ' ', rng.chance(0.5) ? address(rng) : bytes('postmaster'))],
    [1, () => bytes(verb('EXPN'), ' list')],
    [1, () => bytes(verb('HELP'), rng.chance(0.5) ? ' MAIL' : '')],
    [1, () => bytes(verb('STARTTLS'))],
    [1, () => bytes('BDAT ', String(rng.int(100)), rng.chance(0.5) ? ' LAST' : '')],
    [1, () => bytes(rng.pick(['ETRN example.com', 'TURN', 'XCLIENT ADDR=1.2.3.4', 'XFORWARD NAME=x', 'LHLO x', 'WIZ', 'SHELL', 'KILL', 'DEBUG', 'VERB']))],
    [2, () => rng.bytes(rng.between(0, 80), [CR, LF])],
    [1, () => bytes('')],
    [1, () => bytes(' ', verb('NOOP'))],
    [1, () => Buffer.concat([bytes('NOOP '), rng.bytes(rng.between(1, 40), [CR, LF])])],
    [1, () => latin1(`NOOP caf\xe9 \xff\xfe`)],
    [1, () => bytes('NOOP ', 'n'.repeat(rng.between(1000, 16000)))],
    [1, () => bytes('MAIL FROM:<a@b.test>\x00 SIZE=1')],
  ];
  const risky: (readonly [number, () => Buffer])[] = [
    [4, () => bytes(verb('DATA'), rng.chance(0.1) ? ' x' : '')],
    [4, () => authLine(rng)],
    [1, () => bytes(verb('QUIT'))],
    [1, () => bytes('GET / HTTP/1.1')],
  ];
  return rng.weighted(options.anything ? [...safe, ...risky] : safe)();
}

/** A line longer than smtp-server's 16 KB command limit. */
export function overlongLine(rng: Rng): Buffer {
  return bytes(rng.pick(['NOOP ', 'MAIL FROM:<', 'EHLO ', '']), 'A'.repeat(16 * 1024 + rng.between(1, 30_000)));
}

export interface Envelope {
  readonly from: string;
  readonly to: readonly string[];
  /** MAIL FROM parameters, e.g. ` BODY=8BITMIME`. */
  readonly params: string;
}

export function validEnvelope(rng: Rng, size: number): Envelope {
  const to = Array.from({ length: rng.weighted<number>([[8, 1], [3, 2], [1, 3]]) }, (_, i) => `r${i}-${rng.int(1000)}@example.org`);
  const params = rng.weighted<string>([
    [5, ''],
    [2, ' BODY=8BITMIME'],
    [2, ` SIZE=${size}`],
    [1, ` BODY=8BITMIME SIZE=${size}`],
  ]);
  return { from: rng.chance(0.05) ? '' : `s${rng.int(1000)}@example.com`, to, params };
}

export interface Payload {
  /** The bytes after DATA, terminator included, as they go on the wire. */
  readonly wire: Buffer;
  /**
   * What the client means the message to be. Null for a payload whose meaning is
   * ambiguous (a line that starts with "." without being dot-stuffed): then either
   * reading of `unstuff` is acceptable.
   */
  readonly content: Buffer | null;
  /** The Message-ID the client put in a header (without <>), when it is a plain one. */
  readonly messageId: string | null;
  /** Contains bare CR/LF, a NUL or an over-size part: the relay must refuse it. */
  readonly mustRefuse: boolean;
}

/** The token that ties a stored message back to the payload that made it. */
export const TOKEN_PATTERN = /FZT-[0-9a-f]+-\d+-\d+/;

/** A body line (without CRLF): text, 8-bit, dots, long lines. Never contains CR, LF or NUL. */
function bodyLine(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [20, () => bytes(words(rng, rng.between(1, 12)))],
    [4, () => bytes('')],
    [3, () => bytes('.', words(rng, 2))],
    [2, () => bytes('.')],
    [1, () => bytes('..')],
    [1, () => bytes('...', words(rng, 1))],
    [2, () => bytes(' ', words(rng, 3))],
    [1, () => bytes('\t', words(rng, 2))],
    [3, () => bytes(`${rng.pick(UNICODE)} ${words(rng, 2)}`)],
    [2, () => latin1(`caf\xe9 na\xefve \xa0\xff`)],
    // No NUL: a NUL in DATA is refused (SPEC 3); randomBlob's 'nul' segments carry it.
    [2, () => rng.bytes(rng.between(1, 60), [CR, LF, 0x00])],
    [1, () => bytes('From someone@example.com Fri Nov 27 11:15:01 2026')],
    [1, () => bytes('MAIL FROM:<inside@data.test>')],
    [2, () => bytes('y'.repeat(rng.between(999, 5000)))],
    [1, () => bytes('z'.repeat(rng.between(100 * 1024 + 1, 140 * 1024)))],
  ])();
}

function headerLines(rng: Rng, token: string | null): { lines: Buffer[]; messageId: string | null } {
  const lines: Buffer[] = [];
  let messageId: string | null = null;
  lines.push(bytes(`From: ${rng.chance(0.2) ? `"${rng.pick(UNICODE)} Name" ` : ''}<sender@example.com>`));
  lines.push(bytes('To: rcpt@example.org'));
  if (rng.chance(0.9)) lines.push(bytes(`Subject: ${rng.chance(0.2) ? rng.pick(UNICODE) : ''}${words(rng, rng.between(0, 6))}`));
  if (token) lines.push(bytes(`X-Fuzz-Token: ${token}`));
  if (rng.chance(0.7)) {
    const id = `${token ?? `nt${rng.next().toString(16)}`}@fuzz.test`;
    messageId = id;
    lines.push(bytes(rng.weighted<string>([[8, `Message-ID: <${id}>`], [1, `message-id:<${id}>`], [1, `Message-Id:   <${id}>  `]])));
  } else if (rng.chance(0.1)) {
    lines.push(bytes(rng.pick(['Message-ID:', 'Message-ID: <>', 'Message-ID:   '])));
  }
  if (rng.chance(0.7)) lines.push(bytes(rng.pick(['Date: Fri, 27 Nov 2026 11:15:01 +0000', 'DATE: 27 Nov 2026 11:15 -0500', 'date:x'])));
  const extras = rng.between(0, 4);
  for (let i = 0; i < extras; i++) {
    lines.push(
      rng.weighted<() => Buffer>([
        [3, () => bytes(`X-Extra-${i}: ${words(rng, 3)}`)],
        [2, () => bytes(`X-Folded: ${words(rng, 2)}\r\n\t${words(rng, 2)}\r\n  ${words(rng, 1)}`)],
        [1, () => bytes(`X-Long: ${'h'.repeat(rng.between(999, 3000))}`)],
        [1, () => latin1('X-Eight: caf\xe9 \xff')],
        [1, () => bytes(`X-Utf8: ${rng.pick(UNICODE)}`)],
        [1, () => bytes('Obs-Space : value')],
        [1, () => bytes('X-Empty:')],
        [1, () => bytes('Received: from earlier.test by hop.test; Fri, 27 Nov 2026 11:00:00 +0000')],
        [1, () => bytes('X-!#$%&\'*+-/=?^_`{|}~: odd name')],
      ])(),
    );
  }
  return { lines, messageId };
}

/**
 * A message a correct client sends: CRLF only, dot-stuffed, under `maxBytes`. Mostly
 * headers + blank line + body; sometimes no headers, headers only, body text right after
 * the headers (no blank line), a blank first line, or nothing at all (`allowEmpty`).
 */
export function validMessage(rng: Rng, token: string | null, options: { allowEmpty: boolean; maxBytes: number }): Payload {
  const shape = rng.weighted<string>([
    [70, 'normal'],
    [8, 'headerless'],
    [5, 'headers-only'],
    [5, 'no-blank'],
    [5, 'blank-first'],
    [options.allowEmpty ? 3 : 0, 'empty'],
  ]);
  if (shape === 'empty' || token === null) {
    const content = shape === 'empty' ? Buffer.alloc(0) : bytes(words(rng, 3), '\r\n');
    return { wire: dotStuff(content), content, messageId: null, mustRefuse: false };
  }
  const { lines: headers, messageId } = headerLines(rng, token);
  const body: Buffer[] = [];
  let budget = options.maxBytes - 16 * 1024; // headers, stuffing and the relay's additions stay well below
  for (let n = rng.between(0, 12); n > 0; n--) {
    const line = bodyLine(rng);
    if (line.length + 3 > budget) continue;
    budget -= line.length + 3;
    body.push(line);
  }
  let lines: Buffer[];
  switch (shape) {
    case 'headerless':
      lines = [bytes(`Token ${token} says hello`), ...body];
      break;
    case 'headers-only':
      lines = headers;
      break;
    case 'no-blank':
      lines = [...headers, bytes(`plain text ${words(rng, 2)}`), ...body];
      break;
    case 'blank-first':
      lines = [bytes(''), bytes(`token ${token}`), ...body];
      break;
    default:
      lines = [...headers, bytes(''), ...body];
  }
  const content = Buffer.concat(lines.flatMap((l) => [l, CRLF]));
  return { wire: dotStuff(content), content, messageId: shape === 'normal' || shape === 'no-blank' || shape === 'headers-only' ? messageId : null, mustRefuse: false };
}

/** Fake end-of-data sequences (SMTP smuggling): each has a bare CR or LF, or a NUL. */
const FAKE_ENDS = ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r', '\n.\r', '\r\n.\r', '\r.\r\n', '\r.\n', '\r\n\x00.\r\n'];

/**
 * A random DATA payload: text and header-ish lines mixed with stray CR, LF and NUL, long
 * lines (> 998 bytes and > 100 KB), invalid UTF-8, lines starting with dots (stuffed or not),
 * and smuggling attempts that hide a second transaction behind a fake end-of-data.
 * The token goes in the first line so that an accepted blob can be traced.
 */
export function randomBlob(rng: Rng, token: string, maxMessageBytes: number): Payload {
  const segments: Buffer[] = [bytes(`X-Fuzz-Token: ${token}\r\n`)];
  let ambiguous = false;
  let oversize = false;
  const n = rng.between(0, 14);
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted<string>([
      [20, 'line'],
      [4, 'stray-cr'],
      [4, 'stray-lf'],
      [2, 'nul'],
      [3, 'invalid-utf8'],
      [2, 'unstuffed-dot'],
      [2, 'smuggle'],
      [1, 'huge'],
      [1, 'oversize'],
    ]);
    switch (kind) {
      case 'line': {
        const line = bodyLine(rng);
        segments.push(line[0] === 0x2e ? bytes('.', line) : line, CRLF);
        break;
      }
      case 'stray-cr':
        segments.push(bytes(words(rng, 2), '\r', words(rng, 1), '\r\n'));
        break;
      case 'stray-lf':
        segments.push(bytes(words(rng, 2), '\n', rng.chance(0.3) ? '.' : '', words(rng, 1), '\r\n'));
        break;
      case 'nul':
        segments.push(Buffer.from([0x00, 0x00]), bytes(words(rng, 1), '\r\n'));
        break;
      case 'invalid-utf8':
        segments.push(Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc, 0xff]), CRLF);
        break;
      case 'unstuffed-dot':
        // A client that forgot to dot-stuff: the meaning of this line is ambiguous.
        segments.push(bytes('.', rng.pick(['a', 'x', ' ', 'dot-line', '\t']), words(rng, 1), '\r\n'));
        ambiguous = true;
        break;
      case 'smuggle':
        segments.push(
          bytes(words(rng, 1)),
          bytes(rng.pick(FAKE_ENDS)),
          bytes(`MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: SMUGGLE-${token}\r\n\r\nsmuggled\r\n`),
        );
        break;
      case 'huge':
        segments.push(bytes('w'.repeat(rng.between(100 * 1024 + 1, 200 * 1024))), CRLF);
        break;
      case 'oversize':
        segments.push(bytes(('o'.repeat(998) + '\r\n').repeat(Math.ceil(maxMessageBytes / 1000) + 10)));
        oversize = true;
        break;
    }
  }
  let payload: Buffer = Buffer.concat(segments);
  // The only end-of-data is the one we add: stuff any "\r\n.\r\n" the pieces happen to form.
  payload = stuffTerminators(payload);
  const wireBody = payload.length >= 2 && payload[payload.length - 2] === CR && payload[payload.length - 1] === LF ? payload : Buffer.concat([payload, CRLF]);
  // smtp-server counts the unstuffed bytes against the size limit.
  const mustRefuse = oversize || unstuff(wireBody, 'lenient').length > maxMessageBytes || bareLineEndingAt(wireBody) !== -1 || wireBody.includes(0x00);
  return {
    wire: Buffer.concat([wireBody, Buffer.from('.\r\n')]),
    content: ambiguous ? null : unstuff(wireBody, 'rfc5321'),
    messageId: null,
    mustRefuse,
  };
}

function stuffTerminators(payload: Buffer): Buffer {
  let out: Buffer = payload;
  if (out.subarray(0, 3).equals(Buffer.from('.\r\n'))) out = Buffer.concat([Buffer.from('.'), out]);
  for (let i = out.indexOf('\r\n.\r\n'); i !== -1; i = out.indexOf('\r\n.\r\n', i + 3)) {
    out = Buffer.concat([out.subarray(0, i + 2), Buffer.from('.'), out.subarray(i + 2)]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// What the relay stored

/**
 * RFC 5322 view of a message's header section: where it ends and which fields it has.
 * A field line is `ftext+ WSP* ":"` (ftext: printable ASCII but ":"); a line starting with
 * WSP continues the previous field; the section ends at the empty line (separated) or at
 * the first line that is neither (then the rest is body text not preceded by a blank line).
 */
export function headerSection(content: Buffer): { end: number; separated: boolean; names: string[]; fields: [string, string][] } {
  const fields: [string, string][] = [];
  let pos = 0;
  while (pos < content.length) {
    const eol = content.indexOf(CRLF, pos);
    const lineEnd = eol === -1 ? content.length : eol;
    const next = eol === -1 ? content.length : eol + 2;
    const line = content.subarray(pos, lineEnd).toString('latin1');
    if (line.length === 0 && eol !== -1) return { end: pos, separated: true, names: fields.map((f) => f[0]), fields };
    if (pos > 0 && fields.length > 0 && (line[0] === ' ' || line[0] === '\t')) {
      const last = fields[fields.length - 1]!;
      last[1] += ' ' + line.trim();
    } else {
      const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$/s.exec(line);
      if (!m) return { end: pos, separated: false, names: fields.map((f) => f[0]), fields };
      fields.push([m[1]!.toLowerCase(), m[2]!]);
    }
    pos = next;
  }
  return { end: content.length, separated: false, names: fields.map((f) => f[0]), fields };
}

function isValidUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

const DATE_VALUE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$/;

export interface StoredCheck {
  /** null when the stored bytes are right. */
  readonly problem: string | null;
  /** `problem`'s category, for the summary. */
  readonly category: string | null;
}

/**
 * Compares the bytes the relay stored for `queueId` with the message the client sent:
 * they must be our `Received:` header, then the client's bytes, with `Message-ID:` and
 * `Date:` added at the end of the header section only when the client had none (and a
 * blank line after them when body text followed the header fields directly). The whole
 * stored message must use CRLF only, and the Received header must be valid UTF-8.
 */
export function checkStored(stored: Buffer, content: Buffer, queueId: string, relayHostname: string): StoredCheck {
  const fail = (category: string, problem: string): StoredCheck => ({ category, problem: `${queueId}: ${problem}` });
  const bare = bareLineEndingAt(stored);
  if (bare !== -1) {
    return fail('bare CR/LF in stored message', `bare ${stored[bare] === CR ? 'CR' : 'LF'} at byte ${bare}: ${show(stored.subarray(Math.max(0, bare - 60), bare + 60))}`);
  }
  if (stored.includes(0x00)) return fail('NUL in stored message', `NUL at byte ${stored.indexOf(0x00)}`);
  if (!stored.subarray(0, 10).equals(Buffer.from('Received: '))) return fail('no Received header first', `starts with ${show(stored.subarray(0, 60))}`);
  let pos = stored.indexOf(CRLF) + 2;
  while (pos > 1 && (stored[pos] === 0x20 || stored[pos] === 0x09)) pos = stored.indexOf(CRLF, pos) + 2;
  if (pos <= 1) return fail('unterminated Received header', show(stored.subarray(0, 200)));
  const received = stored.subarray(0, pos);
  if (!received.toString('latin1').includes(` id ${queueId}`)) return fail('Received header without the queue id', show(received));
  if (!isValidUtf8(received)) return fail('Received header not valid UTF-8', show(received));
  const rest = stored.subarray(pos);

  const section = headerSection(content);
  const hasMid = section.fields.some(([name, value]) => name === 'message-id' && value.trim().replace(/^<|>$/g, '').trim() !== '');
  const hasDate = section.names.includes('date');
  const insertAt = section.end;
  const needsBlank = !section.separated && section.end < content.length;
  if (!rest.subarray(0, insertAt).equals(content.subarray(0, insertAt))) {
    return fail('client header section changed', `expected ${show(content.subarray(0, insertAt))}, stored ${show(rest.subarray(0, insertAt))}`);
  }
  let p = insertAt;
  const takeLine = (): string | null => {
    const eol = rest.indexOf(CRLF, p);
    if (eol === -1) return null;
    const line = rest.subarray(p, eol).toString('latin1');
    p = eol + 2;
    return line;
  };
  if (!hasMid) {
    const line = takeLine();
    if (line !== `Message-ID: <${queueId}@${relayHostname}>`) return fail('Message-ID not added as expected', `expected the relay's Message-ID at byte ${insertAt}, got ${JSON.stringify(line)}`);
  }
  if (!hasDate) {
    const line = takeLine();
    if (line === null || !line.startsWith('Date: ') || !DATE_VALUE.test(line.slice(6))) return fail('Date not added as expected', `expected the relay's Date at byte ${insertAt}, got ${JSON.stringify(line)}`);
  }
  if (needsBlank) {
    const line = takeLine();
    if (line !== '') return fail('blank line not added before body text', `got ${JSON.stringify(line)}`);
  }
  const tail = rest.subarray(p);
  if (!tail.equals(content.subarray(insertAt))) {
    const at = firstDifference(tail, content.subarray(insertAt));
    return fail(
      'message bytes differ',
      `after the added headers the stored bytes differ from the client's at offset ${insertAt + at}: stored ${show(tail.subarray(Math.max(0, at - 30), at + 50))}, client ${show(content.subarray(insertAt + Math.max(0, at - 30), insertAt + at + 50))} (stored ${tail.length} vs client ${content.length - insertAt} bytes)`,
    );
  }
  return { problem: null, category: null };
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
