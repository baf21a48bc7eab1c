/**
 * Fuzz target `payload` (`npm run fuzz`; a 1 % slice runs in `npm test`): buildJsonPayload
 * (src/delivery/http-payload.ts, the `format: json` body of SPEC 4) on messages nodemailer's
 * MailComposer builds from random parts (names, subjects, text, html, attachments, headers),
 * on byte mutations of them, and on random bytes. It always resolves to a payload of the
 * SPEC 4 shape, or RelayError ONWARD_ERR_BAD_MESSAGE when mailparser does not finish
 * within the parse timeout (2 s here; some malformed MIME never settles), within 5 s per input; for an unmutated message the Message-ID and every
 * named binary attachment come through intact.
 */
import { describe } from '@jest/globals';
import fc from 'fast-check';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { buildJsonPayload, type JsonAddress, type JsonPayload } from '../../src/delivery/http-payload.js';
import { RelayError } from '../../src/errors.js';
import { fuzzIt } from '../helpers/fuzz-harness.js';

const RECEIVED_AT = new Date(Date.UTC(2026, 4, 27, 11, 15, 1));
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const name = fc.oneof(fc.constant(''), fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 10 }), fc.constantFrom('"Quoted, Name"', 'A =?utf-8?B?w7w=?= B', 'Ünïcödé Nàmé', '中文', 'a\r\nBcc: x@y.test'));
const address = fc.oneof(
  fc.constantFrom('a@example.com', 'first.last+tag@sub.example.org', 'user@[127.0.0.1]', 'üser@exämple.test', 'x@y'),
  fc.tuple(fc.stringMatching(/^[a-z0-9.+-]{1,20}$/), fc.constantFrom('example.com', 'hook.test')).map(([l, d]) => `${l}@${d}`),
);
const mailbox = fc.oneof(address, fc.record({ name, address }));
const mailboxes = fc.array(mailbox, { maxLength: 3 });
const attachment = fc.record({
  filename: fc.oneof(fc.constantFrom('a.bin', 'report.pdf', 'ünï.txt', 'x y;z.dat', 'very-long-' + 'n'.repeat(200) + '.bin'), fc.string({ minLength: 1, maxLength: 20 })),
  content: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  contentType: fc.constantFrom('application/octet-stream', 'application/pdf', 'image/png', 'text/plain', 'message/rfc822', 'multipart/mixed'),
});
const headerValue = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 }), fc.constantFrom('=?utf-8?Q?caf=C3=A9?=', '=?x-unknown?B?AAAA?=', '=?utf-8?B?', 'a'.repeat(1200)));

const mailOptions = fc.record(
  {
    from: mailbox,
    to: mailboxes,
    cc: mailboxes,
    subject: fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.constant('x'.repeat(2000))),
    text: fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'grapheme', maxLength: 100 }), fc.integer({ min: 1000, max: 200_000 }).map((n) => 'long line '.repeat(n / 10))),
    html: fc.oneof(fc.string({ maxLength: 200 }), fc.constant('<p>ü <img src="cid:c1"></p>')),
    attachments: fc.array(attachment, { maxLength: 4 }),
    headers: fc.dictionary(fc.stringMatching(/^X-[A-Za-z0-9-]{1,15}$/), headerValue, { maxKeys: 4 }),
    messageId: fc.stringMatching(/^<[a-z0-9.]{1,20}@[a-z0-9.]{1,10}>$/),
    date: fc.date({ min: new Date(Date.UTC(1971, 0, 1)), max: new Date(Date.UTC(2100, 0, 1)), noInvalidDate: true }),
    // MailComposer's textEncoding: Q or B (anything else is not an option it has).
    encoding: fc.constantFrom('quoted-printable', 'base64'),
  },
  { requiredKeys: ['messageId'] },
) satisfies fc.Arbitrary<Record<string, unknown>> as fc.Arbitrary<Record<string, unknown>>;

async function compose(options: Record<string, unknown>): Promise<Buffer> {
  const { encoding, ...rest } = options;
  const mail = { ...rest, ...(encoding !== undefined ? { textEncoding: encoding as 'quoted-printable' | 'base64' } : {}), baseBoundary: 'fuzz' };
  return new MailComposer(mail).compile().build();
}

type Mutation = (b: Buffer) => Buffer;
const BITS = ['\r\n', '\n', '\r', '\0', '--', '--fuzz', '\r\n\r\n', 'Content-Type: multipart/mixed; boundary=x\r\n', '=?', '=\r\n', '=XX', 'Content-Transfer-Encoding: base64\r\n', ';', '"', '\xff\xfe', 'begin 644 x\r\n'];
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, v]) => (b: Buffer) => { if (b.length === 0) return b; const c = Buffer.from(b); c[at % c.length] = v; return c; }),
  fc.tuple(fc.nat(), fc.nat({ max: 200 })).map(([at, n]) => (b: Buffer) => { const i = at % (b.length + 1); return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]); }),
  fc.tuple(fc.nat(), fc.constantFrom(...BITS)).map(([at, s]) => (b: Buffer) => { const i = at % (b.length + 1); return Buffer.concat([b.subarray(0, i), Buffer.from(s, 'latin1'), b.subarray(i)]); }),
  fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 300 })).map(([a, c, n]) => (b: Buffer) => { const i = a % (b.length + 1); const j = c % (b.length + 1); return Buffer.concat([b.subarray(0, j), b.subarray(i, i + n), b.subarray(j)]); }),
  fc.nat().map((at) => (b: Buffer) => b.subarray(0, at % (b.length + 1))),
);

function checkAddress(a: JsonAddress | null, where: string): void {
  if (a === null) return;
  if (typeof a !== 'object' || typeof a.address !== 'string' || typeof a.name !== 'string' || Object.keys(a).length !== 2) throw new Error(`${where}: not {address,name}: ${JSON.stringify(a)}`);
}

/** The SPEC 4 shape: every field present, of its type. */
function checkShape(p: JsonPayload): void {
  const keys = ['id', 'queueId', 'messageId', 'envelope', 'headers', 'subject', 'from', 'to', 'cc', 'date', 'text', 'html', 'attachments', 'receivedAt'];
  const got = Object.keys(p).sort();
  if (JSON.stringify(got) !== JSON.stringify([...keys].sort())) throw new Error(`keys ${got.join(',')}`);
  if (p.id !== 'D1' || p.queueId !== 'Q1') throw new Error('ids');
  if (p.messageId !== null && (typeof p.messageId !== 'string' || /^<|>$/.test(p.messageId))) throw new Error(`messageId ${JSON.stringify(p.messageId)}`);
  if (p.envelope.from !== 'a@b.test' || p.envelope.to.join() !== 'c@d.test') throw new Error('envelope');
  if (!Array.isArray(p.headers)) throw new Error('headers not a list');
  for (const h of p.headers) if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') throw new Error(`header ${JSON.stringify(h)}`);
  for (const k of ['subject', 'text', 'html', 'date'] as const) if (p[k] !== null && typeof p[k] !== 'string') throw new Error(`${k} ${typeof p[k]}`);
  if (p.date !== null && !ISO.test(p.date)) throw new Error(`date ${p.date}`);
  if (p.receivedAt !== RECEIVED_AT.toISOString()) throw new Error('receivedAt');
  checkAddress(p.from, 'from');
  if (!Array.isArray(p.to) || !Array.isArray(p.cc)) throw new Error('to/cc not lists');
  p.to.forEach((a: JsonAddress, i) => checkAddress(a, `to[${i}]`));
  p.cc.forEach((a: JsonAddress, i) => checkAddress(a, `cc[${i}]`));
  for (const a of p.attachments) {
    if (a.filename !== null && typeof a.filename !== 'string') throw new Error('attachment filename');
    if (typeof a.contentType !== 'string' || typeof a.size !== 'number' || typeof a.content !== 'string' || !BASE64.test(a.content)) throw new Error(`attachment ${JSON.stringify(a).slice(0, 200)}`);
    if (Buffer.from(a.content, 'base64').length !== a.size) throw new Error(`attachment size ${a.size} != its content`);
  }
  // It must travel as JSON.
  JSON.parse(JSON.stringify(p));
}

/** The payload, or null for the typed error of a message the parser does not finish within 2 s. */
async function build(body: Buffer): Promise<JsonPayload | null> {
  try {
    return await buildJsonPayload({ deliveryId: 'D1', queueId: 'Q1', attempt: 1, envelope: { from: 'a@b.test', to: ['c@d.test'] }, body, receivedAt: RECEIVED_AT }, 2000);
  } catch (err) {
    if (err instanceof RelayError && err.code === 'ONWARD_ERR_BAD_MESSAGE') return null;
    throw err;
  }
}

function checkMaybe(p: JsonPayload | null): void {
  if (p !== null) checkShape(p);
}

const PARAMS = { timeout: 5000 };

describe('fuzz: the JSON payload builder', () => {
  fuzzIt(
    'payload:composed',
    () =>
      fc.asyncProperty(mailOptions, async (options) => {
        const body = await compose(options);
        const p = await build(body);
        if (p === null) throw new Error('a composed message did not parse in time');
        checkShape(p);
        if (p.messageId !== String(options['messageId']).slice(1, -1)) throw new Error(`messageId ${p.messageId}, sent ${String(options['messageId'])}`);
        const sent = (options['attachments'] as { filename: string; content: Buffer; contentType: string }[] | undefined) ?? [];
        for (const a of sent.filter((x) => x.contentType === 'application/octet-stream' || x.contentType === 'application/pdf' || x.contentType === 'image/png')) {
          if (!p.attachments.some((got) => Buffer.from(got.content, 'base64').equals(a.content))) throw new Error(`attachment ${a.filename} (${a.content.length} bytes) lost or changed`);
        }
      }),
    10_000,
    PARAMS,
  );
  fuzzIt(
    'payload:mutated',
    () =>
      fc.asyncProperty(mailOptions, fc.array(mutation, { minLength: 1, maxLength: 8 }), async (options, ms) => {
        const body = ms.reduce((b, m) => m(b), await compose(options));
        checkMaybe(await build(body));
      }),
    15_000,
    PARAMS,
  );
  fuzzIt(
    'payload:bytes',
    () => fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (a) => checkMaybe(await build(Buffer.from(a)))),
    60_000,
    PARAMS,
  );
});
