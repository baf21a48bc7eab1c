/**
 * Fuzz target `submission` (`npm run fuzz`; a 1 % slice runs in `npm test`): the HTTP
 * submission front door (SPEC 10) of a real in-process relay over real sockets. Random raw
 * message/rfc822 bodies (CRLF, LF or mixed line ends, stray CR, NUL, 8-bit, huge lines,
 * header-looking body lines, Bcc), random JSON documents (valid-ish and broken), random
 * Content-Type, Authorization, Idempotency-Key (non-ASCII, over-long) and X-Onward-Envelope-*
 * headers, random methods and paths, and exact repeats of earlier requests. Checks:
 *   - every answer comes (no hang, no dropped connection but a 413's early close) and is a
 *     2xx or `{error:{code,message}}` whose code has that status; never a 500;
 *   - every 202 is in the spool: a raw body byte-exact (our Received header, the client's
 *     bytes with NULs removed, bare LF as CRLF, Bcc fields removed, Message-ID/Date added when
 *     missing: checkStored of test/helpers/fuzz.ts), recipients only from the envelope
 *     headers or the header section; a JSON document's subject and attachments intact;
 *   - a 200 duplicate names a message that exists (for an Idempotency-Key repeat: the original);
 *   - the relay is still up at the end.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { simpleParser } from 'mailparser';
import { ERROR_CODES, isErrorCode } from '../../src/errors.js';
import { closedPort, startTempRelay, testConfig, type TempRelay } from '../helpers/common.js';
import { checkStored, headerSection } from '../helpers/fuzz.js';
import { runProperty, selected, FULL } from '../helpers/fuzz-harness.js';

const KEY = 'k-fuzz-0123456789abcdef';
const OTHER_KEY = 'k-other-0123456789abcdef';
const LIMIT = 256 * 1024;
const HOSTNAME = 'relay.test';

// ---------------------------------------------------------------------------------------
// Requests

interface RawMessage {
  readonly kind: 'raw';
  /** Header lines (without line end) and whether each is a Bcc field (or its continuation). */
  readonly headers: readonly { readonly line: Buffer; readonly bcc: boolean }[];
  readonly body: readonly Buffer[];
  readonly eols: readonly string[];
  readonly blank: boolean;
  readonly terminated: boolean;
}
interface Request {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The raw message the body was built from (null: JSON or junk). */
  readonly raw: RawMessage | null;
  readonly json: Record<string, unknown> | null;
}

const addr = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.stringMatching(/^[a-z0-9.+]{1,12}$/), fc.constantFrom('hook.test', 'example.org')).map(([l, d]) => `${l.replace(/^\.|\.$|\.\./g, 'x')}@${d}`) },
  { weight: 1, arbitrary: fc.constantFrom('noat', '@x.test', 'a@', 'a b@c.test', 'üser@exämple.test', '"q"@x.test', '<a@x.test>', '') },
);
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 15 }), fc.constantFrom('caf\xe9', 'ü 中文 😀', '=?utf-8?B?w7w=?='));
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

const headerLine = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('From', 'To', 'Cc', 'from', 'TO'), fc.array(addr, { minLength: 1, maxLength: 3 })).map(([n, as]) => [{ line: utf8(`${n}: ${as.join(', ')}`), bcc: false }]) },
  { weight: 1, arbitrary: fc.array(addr, { minLength: 1, maxLength: 2 }).map((as) => [{ line: utf8(`Bcc: ${as[0]}${as.length > 1 ? ',' : ''}`), bcc: true }, ...as.slice(1).map((a) => ({ line: utf8(` ${a}`), bcc: true }))]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('Subject', 'X-A', 'Message-ID', 'Date', 'Sender', 'Obs-Space '), text).map(([n, v]) => [{ line: utf8(`${n}: ${v.replace(/[\r\n\0]/g, ' ')}`), bcc: false }]) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9]{1,12}$/).map((id) => [{ line: utf8(`Message-ID: <${id}@fuzz.test>`), bcc: false }]) },
  { weight: 1, arbitrary: text.map((v) => [{ line: utf8(`X-Folded: a\r\n\t${v.replace(/[\r\n\0]/g, ' ')}`), bcc: false }]) },
  { weight: 1, arbitrary: fc.constant([{ line: latin1('X-Eight: caf\xe9 \xff'), bcc: false }]) },
);
const bodyLine = fc.oneof(
  { weight: 5, arbitrary: text.map((t) => utf8(t.replace(/[\r\n]/g, ' '))) },
  { weight: 1, arbitrary: fc.constantFrom('Cc: body-cc@hook.test', 'Bcc: body-bcc@hook.test', 'To: body-to@hook.test', '.', '..', 'From x').map(utf8) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a.filter((b) => b !== 0x0a && b !== 0x0d))) },
  { weight: 1, arbitrary: fc.constantFrom(latin1('a\0b'), latin1('\0'), latin1('stray\rcr'), latin1('\xc3\x28\xff')) },
  { weight: 1, arbitrary: fc.integer({ min: 990, max: 300_000 }).map((n) => utf8('w'.repeat(n))) },
);
const rawMessage: fc.Arbitrary<RawMessage> = fc
  .record({
    headers: fc.array(headerLine, { maxLength: 8 }).map((hs) => hs.flat()),
    body: fc.array(bodyLine, { maxLength: 8 }),
    eol: fc.constantFrom('\r\n', '\r\n', '\n', 'mixed'),
    mixed: fc.array(fc.constantFrom('\r\n', '\n'), { minLength: 40, maxLength: 40 }),
    blank: fc.boolean(),
    terminated: fc.boolean(),
  })
  .map(({ headers, body, eol, mixed, blank, terminated }) => ({
    kind: 'raw' as const,
    headers,
    body,
    eols: eol === 'mixed' ? mixed : Array<string>(40).fill(eol),
    blank,
    terminated,
  }));

/** The bytes of a raw message: the lines joined with their line ends (a folded header's own CRLF follows the style). */
function rawBytes(m: RawMessage, keepBcc: boolean): Buffer {
  const lines: Buffer[] = [...m.headers.filter((h) => keepBcc || !h.bcc).map((h) => h.line), ...(m.blank ? [Buffer.alloc(0)] : []), ...m.body];
  const out: Buffer[] = [];
  lines.forEach((l, i) => {
    const eol = m.eols[i % m.eols.length]!;
    out.push(latin1(l.toString('latin1').replace(/\r\n/g, eol)));
    if (i < lines.length - 1 || m.terminated) out.push(latin1(eol));
  });
  return Buffer.concat(out);
}

const jsonDoc = fc.record(
  {
    from: fc.oneof(addr, fc.record({ name: text, address: addr }), fc.constant(42)),
    to: fc.oneof(addr, fc.array(fc.oneof(addr, fc.record({ name: text, address: addr })), { maxLength: 3 }), fc.constant({ address: 5 })),
    cc: fc.array(addr, { maxLength: 2 }),
    bcc: fc.array(addr, { maxLength: 2 }),
    subject: fc.oneof(text, fc.constant(null)),
    text: fc.oneof(text, fc.integer({ min: 1, max: 300_000 }).map((n) => 'long '.repeat(n / 5))),
    html: text,
    headers: fc.dictionary(fc.oneof(fc.stringMatching(/^X-[A-Za-z]{1,8}$/), fc.constantFrom('Subject', 'bad name', 'X-\u00fc')), fc.oneof(text, fc.constant('a\r\nBcc: x@y.test')), { maxKeys: 3 }),
    attachments: fc.array(
      fc.record(
        { filename: fc.oneof(fc.constant('a.bin'), text), contentType: fc.constantFrom('application/octet-stream', 'image/png', 'text/plain', 'x'), content: fc.oneof(fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a).toString('base64')), fc.constantFrom('!!not base64', '', 'QQ==\n')) },
        { requiredKeys: ['content'] },
      ),
      { maxLength: 3 },
    ),
    messageId: fc.oneof(fc.stringMatching(/^[a-z0-9]{1,12}@fuzz\.test$/), fc.constantFrom('', 'no-at', '<a@b>')),
    envelope: fc.record({ from: addr, to: fc.array(addr, { maxLength: 2 }) }, { requiredKeys: [] }),
    extra: fc.jsonValue({ maxDepth: 3 }),
  },
  { requiredKeys: [] },
);
/** A document as sent: mostly the record, sometimes deeply nested junk or broken JSON text. */
const jsonBody = fc.oneof(
  { weight: 8, arbitrary: jsonDoc.map((d): { doc: Record<string, unknown> | null; text: string } => ({ doc: d, text: JSON.stringify(d) })) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 6 }).map((v) => ({ doc: null, text: JSON.stringify(v) ?? 'null' })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5000 }).map((n) => ({ doc: null, text: '['.repeat(n) + ']'.repeat(n) })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((t) => ({ doc: null, text: `{"to":"a@hook.test",${t}` })) },
);

const idempotencyKey = fc.option(fc.oneof({ weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9-]{1,40}$/) }, { weight: 1, arbitrary: fc.constantFrom('', ' ', 'clé-ü', 'k'.repeat(256), 'k'.repeat(255), 'tab\there') }), { nil: undefined, freq: 2 });
const request: fc.Arbitrary<Request> = fc
  .record({
    kind: fc.constantFrom('raw', 'raw', 'raw', 'json', 'json', 'junk'),
    raw: rawMessage,
    json: jsonBody,
    junk: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    method: fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
    path: fc.oneof({ weight: 12, arbitrary: fc.constant('/v1/messages') }, { weight: 1, arbitrary: fc.constantFrom('/', '/v1/messages/', '/v1/messages?x=1', '/v1/messages/0123456789ABCDE', '/v1/messages/%00', '/v1/messages/../admin', '/V1/MESSAGES', '/v1/messages/' + 'x'.repeat(3000)) }),
    auth: fc.oneof({ weight: 10, arbitrary: fc.constant(`Bearer ${KEY}`) }, { weight: 1, arbitrary: fc.constantFrom('', `Bearer ${OTHER_KEY}`, 'Bearer wrong', `bearer ${KEY}`, `Basic ${KEY}`, `Bearer ${KEY} `) }),
    contentType: fc.option(fc.constantFrom('message/rfc822', 'application/json', 'application/json; charset=utf-8', 'MESSAGE/RFC822', 'text/plain', 'multipart/form-data; boundary=x', ';;', 'application/json\u00e9'), { nil: undefined, freq: 8 }),
    idempotencyKey,
    envFrom: fc.option(fc.oneof(addr, fc.constantFrom('<>', '', '<a@hook.test>', 'caf\xe9@x.test')), { nil: undefined, freq: 4 }),
    envTo: fc.option(fc.oneof(fc.array(addr, { minLength: 1, maxLength: 3 }).map((as) => as.join(', ')), fc.constantFrom('', ',', '<a@hook.test>, b@hook.test')), { nil: undefined, freq: 4 }),
  })
  .map((r) => {
    const headers: Record<string, string> = {};
    if (r.auth !== '') headers['authorization'] = r.auth;
    const natural = r.kind === 'json' ? 'application/json' : 'message/rfc822';
    headers['content-type'] = r.contentType ?? natural;
    // Header values go out as the bytes given: UTF-8 as latin1 characters.
    if (r.idempotencyKey !== undefined) headers['idempotency-key'] = Buffer.from(r.idempotencyKey, 'utf8').toString('latin1');
    if (r.envFrom !== undefined) headers['x-onward-envelope-from'] = Buffer.from(r.envFrom, 'utf8').toString('latin1');
    if (r.envTo !== undefined) headers['x-onward-envelope-to'] = Buffer.from(r.envTo, 'utf8').toString('latin1');
    const body = r.kind === 'raw' ? rawBytes(r.raw, true) : r.kind === 'json' ? Buffer.from(r.json.text, 'utf8') : r.junk;
    // What the server reads the body as: only then is what it stored checked against the model.
    const media = headers['content-type'].toLowerCase().split(';')[0]!.trim();
    return { method: r.method, path: r.path, headers, body, raw: r.kind === 'raw' && media === 'message/rfc822' ? r.raw : null, json: r.kind === 'json' && media === 'application/json' ? r.json.doc : null };
  });

// ---------------------------------------------------------------------------------------
// Answers

interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One request; null with a reason when no answer came. */
function send(port: number, r: Request): Promise<HttpAnswer | { failed: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: r.method, path: r.path, headers: { ...r.headers, 'content-length': String(r.body.length) }, agent });
    const timer = setTimeout(() => {
      resolve({ failed: 'no answer within 10 s' });
      req.destroy();
    }, 10_000);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        resolve({ failed: `response broke: ${err.message}` });
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      resolve({ failed: `connection error: ${err.message}` });
    });
    req.end(r.body);
  });
}

/** The message as the relay reads it: NULs gone, bare LF as CRLF (SPEC 10). */
function normalised(m: RawMessage): Buffer {
  return latin1(rawBytes(m, true).toString('latin1').replace(/\0/g, '').replace(/(?<!\r)\n/g, '\r\n'));
}

/** What the relay must store for a raw message: normalised, then the Bcc fields of its header section removed. */
function expectedRaw(m: RawMessage): Buffer {
  const content = normalised(m);
  const { end } = headerSection(content);
  const lines = content.subarray(0, end).toString('latin1').split(/(?<=\r\n)/);
  let dropping = false;
  const kept = lines.filter((line) => {
    if (!/^[ \t]/.test(line)) dropping = /^bcc[ \t]*:/i.test(line);
    return !dropping;
  });
  return Buffer.concat([latin1(kept.join('')), content.subarray(end)]);
}

/** The To, Cc and Bcc values of the header section, lower-cased: where recipients may come from. */
function addressFields(m: RawMessage): string {
  return headerSection(normalised(m))
    .fields.filter(([n]) => n === 'to' || n === 'cc' || n === 'bcc')
    .map(([, v]) => Buffer.from(v, 'latin1').toString('utf8').toLowerCase())
    .join('\n');
}

describe('fuzz: the HTTP submission front door', () => {
  let t: TempRelay;
  let port = 0;
  const byKey = new Map<string, string>();
  const counts: Record<string, number> = {};

  beforeAll(async () => {
    const dead = await closedPort();
    t = await startTempRelay('onward-fuzz-submission-', (dir) =>
      testConfig(dir, {
        hostname: HOSTNAME,
        limits: { maxMessageSize: LIMIT, maxRecipients: 20 },
        submission: { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'fuzz', key: KEY }, { name: 'other', key: OTHER_KEY }] },
        // Deliveries go nowhere and wait: every accepted body stays in the spool to be checked.
        targets: { nowhere: { type: 'http', url: `http://127.0.0.1:${dead}/`, format: 'raw' } },
        routes: [{ match: '*@hook.test', target: 'nowhere' }, { match: '*@example.org', target: 'nowhere' }],
        retry: { schedule: ['1h'], jitter: 0 },
      }),
    );
    port = t.relay.submissionAddress?.port ?? 0;
  });
  afterAll(async () => {
    agent.destroy();
    await t.close();
    if (FULL) console.log(`submission answers: ${JSON.stringify(counts)}`);
  });

  async function check(r: Request): Promise<void> {
    const a = await send(port, r);
    if ('failed' in a) {
      // A body over the limit may be cut off after the 413 (SPEC 10): the client can see a reset instead.
      if (r.body.length > LIMIT) return;
      throw new Error(`${r.method} ${r.path}: ${a.failed}`);
    }
    let parsed: Record<string, unknown> = {};
    if (r.method !== 'HEAD') {
      try {
        parsed = JSON.parse(a.body.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new Error(`${a.status} with a body that is not JSON: ${JSON.stringify(a.body.toString('latin1').slice(0, 200))}`);
      }
    }
    const error = parsed['error'] as { code?: unknown; message?: unknown } | undefined;
    const label = a.status < 300 ? String(a.status) : `${a.status} ${String(error?.code)}`;
    counts[label] = (counts[label] ?? 0) + 1;
    if (a.status >= 500 && a.status !== 503) throw new Error(`${a.status}: ${a.body.toString('utf8').slice(0, 300)}`);
    if (a.status >= 300) {
      if (r.method === 'HEAD') return;
      if (!error || !isErrorCode(error.code) || typeof error.message !== 'string') throw new Error(`${a.status} without a coded error: ${a.body.toString('utf8').slice(0, 300)}`);
      if (ERROR_CODES[error.code].status !== a.status) throw new Error(`${error.code} answered with ${a.status}, its status is ${ERROR_CODES[error.code].status}`);
      return;
    }
    if (r.method !== 'POST') return; // a GET of a message: nothing stored
    const id = parsed['id'];
    if (typeof id !== 'string') throw new Error(`${a.status} without an id: ${a.body.toString('utf8')}`);
    const message = await t.relay.spool.getMessage(id);
    if (message === null) throw new Error(`${a.status} names ${id}, which is not in the spool`);
    const key = r.headers['idempotency-key'];
    if (a.status === 200) {
      if (parsed['status'] !== 'duplicate') throw new Error(`200 with status ${String(parsed['status'])}`);
      if (key !== undefined && byKey.has(key) && byKey.get(key) !== id) throw new Error(`duplicate of key ${key} names ${id}, the original was ${byKey.get(key)}`);
      return;
    }
    if (a.status !== 202 || parsed['status'] !== 'queued') throw new Error(`${a.status} ${a.body.toString('utf8')}`);
    if (key !== undefined) byKey.set(key, id);
    const stored = await t.relay.spool.getBody(id);
    if (stored === null) throw new Error(`202 ${id}: no body in the spool`);
    if (r.raw) {
      const exp = expectedRaw(r.raw);
      let check = checkStored(stored, exp, id, HOSTNAME);
      // A header section that runs to the end without a line break gets a CRLF before the added Message-ID/Date.
      if (check.problem !== null && exp.length > 0 && exp[exp.length - 1] !== 0x0a && headerSection(exp).end === exp.length) {
        check = checkStored(stored, Buffer.concat([exp, Buffer.from('\r\n')]), id, HOSTNAME);
      }
      if (check.problem !== null) throw new Error(`raw message altered: ${check.problem}`);
      if (r.headers['x-onward-envelope-to'] === undefined) {
        const named = addressFields(r.raw);
        const stray = message.recipients.find((rcpt) => !named.includes(rcpt.toLowerCase()));
        if (stray !== undefined) throw new Error(`recipient ${stray} is in no header field of the message`);
      }
    } else if (r.json) {
      const mail = await simpleParser(stored);
      const subject = r.json['subject'];
      // (A subject that already looks like an RFC 2047 encoded word, `=?utf-8?B?…?=`, goes out as such: MailComposer's choice, and a reader decodes it.)
      if (typeof subject === 'string' && subject.trim() !== '' && /^[\x21-\x7e]+( [\x21-\x7e]+)*$/.test(subject) && !subject.includes('=?') && mail.subject !== subject) throw new Error(`subject ${JSON.stringify(mail.subject)}, sent ${JSON.stringify(subject)}`);
      const sent = (r.json['attachments'] as { content: string; contentType?: string; filename?: string }[] | undefined) ?? [];
      for (const at of sent.filter((x) => x.contentType === 'application/octet-stream' && x.filename === 'a.bin')) {
        const bytes = Buffer.from(at.content, 'base64');
        if (bytes.length > 0 && !mail.attachments.some((got) => got.content.equals(bytes))) throw new Error(`attachment of ${bytes.length} bytes lost or changed`);
      }
    }
  }

  const name = 'submission:requests';
  const test = selected(name) ? it : it.skip;
  test(`${name}: seeded requests and repeats`, async () => {
    await runProperty(
      name,
      fc.asyncProperty(request, fc.option(fc.nat(), { freq: 5 }), async (r, repeat) => {
        await check(r);
        // An exact repeat: with an Idempotency-Key it must name the original.
        if (repeat !== null) await check(r);
      }),
      40_000,
      { timeout: 30_000 },
    );
    // Still up.
    const after = await send(port, { method: 'POST', path: '/v1/messages', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ from: 'a@hook.test', to: ['b@hook.test'], text: 'still up' })), raw: null, json: null });
    expect('status' in after ? after.status : after).toBe(202);
  }, FULL ? 14 * 60_000 : 60_000);
});
