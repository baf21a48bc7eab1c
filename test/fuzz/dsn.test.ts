/**
 * Fuzz target `dsn` (`npm run fuzz`; a 1 % slice runs in `npm test`): buildDsn
 * (src/bounce/dsn.ts, SPEC 5) with random recipients, replies and original headers (8-bit,
 * over-long, CR/LF injection attempts). It either throws RelayError ONWARD_ERR_BAD_ARGS (no
 * sender, no recipients, a status that is not x.y.z) or builds a CRLF-only message with no
 * line over 998 octets whose top-level header fields are exactly the DSN's own (a reply
 * text with CRLF creates no header line), that mailparser reads as multipart/report with a
 * message/delivery-status part holding one block per recipient with its fields.
 */
import { describe } from '@jest/globals';
import fc from 'fast-check';
import { simpleParser } from 'mailparser';
import { buildDsn, type DsnInput, type DsnRecipient } from '../../src/bounce/dsn.js';
import type { Reply } from '../../src/delivery/types.js';
import { RelayError } from '../../src/errors.js';
import { parseDsn } from '../helpers/dsn.js';
import { bareLineEndingAt, headerSection } from '../helpers/fuzz.js';
import { fuzzIt } from '../helpers/fuzz-harness.js';

const INJECT = ['\r\nBcc: evil@attacker.test', '\nX-Injected: 1', '\r\n\r\n--boundary\r\nContent-Type: text/html', '\rX-CR: 1', '\0', '\u2028X-Sep: 1', '\u0d0a'];
const text = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(...INJECT),
  fc.tuple(fc.string({ maxLength: 20 }), fc.constantFrom(...INJECT), fc.string({ maxLength: 20 })).map(([a, b, c]) => a + b + c),
  fc.integer({ min: 900, max: 5000 }).map((n) => 'w'.repeat(n)),
  fc.integer({ min: 10, max: 400 }).map((n) => 'word '.repeat(n)),
);
const address = fc.oneof(
  fc.constantFrom('user@example.org', 'üser@exämple.test', '<angle@example.org>', 'a b@c.test', '', 'x@' + 'd'.repeat(300) + '.test', 'inject@x.test\r\nBcc: evil@attacker.test'),
  text,
);
const status = fc.oneof({ weight: 9, arbitrary: fc.tuple(fc.constantFrom('2', '4', '5'), fc.nat({ max: 999 }), fc.nat({ max: 999 })).map(([a, b, c]) => `${a}.${b}.${c}`) }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom('5.1', '6.0.0', '5.1.1 ', 'x'), fc.string({ maxLength: 6 })) });
const reply: fc.Arbitrary<Reply | null> = fc.option(
  fc.record({
    kind: fc.constantFrom('smtp', 'http', 'network', 'file') as fc.Arbitrary<Reply['kind']>,
    code: fc.option(fc.integer({ min: 100, max: 599 })),
    enhancedStatus: fc.option(fc.oneof(status, text)),
    text,
  }),
);
const date = fc.option(fc.date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(2200, 0, 1)), noInvalidDate: true }));
const recipient: fc.Arbitrary<DsnRecipient> = fc.record({
  address,
  action: fc.constantFrom<'failed' | 'delayed'>('failed', 'delayed'),
  status,
  reply,
  lastAttemptAt: date,
  willRetryUntil: date,
});
/** What a stored message's header block can hold: the ingress keeps only CRLF line ends and no NUL (SPEC 3). */
const asStored = (b: Buffer): Buffer =>
  Buffer.from(b.toString('latin1').replace(/\0/g, '').replace(/\r(?!\n)/g, '').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
const originalHeaders = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  fc.array(fc.tuple(fc.constantFrom('From', 'To', 'Subject', 'Message-ID', 'X-8bit', 'Received'), text), { maxLength: 8 }).map((fs) => Buffer.from(fs.map(([n, v]) => `${n}: ${v}\r\n`).join(''), 'utf8')),
  fc.constant(Buffer.alloc(0)),
).map(asStored);
const input: fc.Arbitrary<DsnInput> = fc.record({
  reportingMta: fc.oneof(fc.constant('relay.test'), fc.constantFrom('mx.example.com', ' spaced.test ', 'ünï.test')),
  from: fc.constantFrom('MAILER-DAEMON@relay.test', 'Bounces <bounce@relay.test>'),
  to: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('sender@example.com', 'Sender Name <sender@example.com>', 'sénder@exämple.test') }, { weight: 1, arbitrary: fc.constantFrom('', '<>', '  ') }, { weight: 1, arbitrary: fc.constantFrom('inject@x.test\r\nBcc: evil@attacker.test', 'a@b.test\nX-Injected: 1', '"q\r\nX: y" <q@x.test>') }),
  // (`to` is the envelope sender of a message the ingress accepted: an address, never free text.)
  // Queue ids are ours (newQueueId), never client text.
  queueId: fc.stringMatching(/^[0-9A-Z]{15}$/),
  arrivalDate: fc.date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(2200, 0, 1)), noInvalidDate: true }),
  recipients: fc.array(recipient, { minLength: 0, maxLength: 5 }),
  originalHeaders,
  now: fc.constant(new Date(Date.UTC(2026, 4, 27, 11, 15, 1))),
});

const TOP_FIELDS = ['content-type', 'from', 'to', 'subject', 'date', 'message-id', 'auto-submitted', 'mime-version'];
const PER_RECIPIENT = ['final-recipient', 'action', 'status', 'diagnostic-code', 'last-attempt-date', 'will-retry-until'];
const PER_MESSAGE = ['reporting-mta', 'x-onward-queue-id', 'arrival-date'];

async function checkDsn(dsn: DsnInput): Promise<void> {
  let out: Buffer;
  try {
    out = await buildDsn(dsn);
  } catch (err) {
    if (err instanceof RelayError && err.code === 'ONWARD_ERR_BAD_ARGS') {
      const expected = dsn.to.trim() === '' || dsn.to.trim() === '<>' || dsn.recipients.length === 0 || dsn.recipients.some((r) => !/^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status));
      if (!expected) throw new Error(`BAD_ARGS for a usable input: ${err.message}`, { cause: err });
      return;
    }
    throw err;
  }
  const bare = bareLineEndingAt(out);
  if (bare !== -1) throw new Error(`bare CR/LF at ${bare}: ${JSON.stringify(out.subarray(Math.max(0, bare - 80), bare + 40).toString('latin1'))}`);
  const long = out.toString('latin1').split('\r\n').find((l) => Buffer.byteLength(l, 'latin1') > 998);
  if (long !== undefined) throw new Error(`line of ${long.length} octets`);
  const section = headerSection(out);
  const names = section.names;
  if (!section.separated) throw new Error('no blank line after the header fields');
  if (names.length !== TOP_FIELDS.length || !TOP_FIELDS.every((n) => names.includes(n))) throw new Error(`top-level fields ${names.join(', ')}`);

  const mail = await simpleParser(out);
  const ct = mail.headers.get('content-type') as { value?: string; params?: Record<string, string> } | undefined;
  if (ct?.value !== 'multipart/report' || ct.params?.['report-type'] !== 'delivery-status') throw new Error(`content-type ${JSON.stringify(ct)}`);
  // mailparser folds message/delivery-status into `text`: the part's fields are there, one block per recipient.
  const finals = (mail.text ?? '').match(/^Final-Recipient:/gm)?.length ?? 0;
  if (finals !== dsn.recipients.length) throw new Error(`mailparser text has ${finals} Final-Recipient fields for ${dsn.recipients.length} recipients`);
  // The MIME walk of test/helpers/dsn.ts: the part's blocks and their field names.
  const parsed = parseDsn(out);
  const perMessage = Object.keys(parsed.perMessage);
  if (JSON.stringify(perMessage) !== JSON.stringify(PER_MESSAGE)) throw new Error(`per-message fields ${perMessage.join(', ')}`);
  if (parsed.recipients.length !== dsn.recipients.length) throw new Error(`${parsed.recipients.length} recipient blocks for ${dsn.recipients.length} recipients`);
  parsed.recipients.forEach((block, i) => {
    const r = dsn.recipients[i]!;
    const fields = Object.keys(block);
    for (const f of ['final-recipient', 'action', 'status', 'diagnostic-code']) if (!fields.includes(f)) throw new Error(`recipient ${i}: no ${f} in ${fields.join(', ')}`);
    if (block['action'] !== r.action || block['status'] !== r.status) throw new Error(`recipient ${i}: action/status ${block['action']} ${block['status']}`);
    if (r.lastAttemptAt && !fields.includes('last-attempt-date')) throw new Error(`recipient ${i}: no last-attempt-date`);
    const stray = fields.find((f) => !PER_RECIPIENT.includes(f));
    if (stray !== undefined) throw new Error(`recipient ${i}: injected field ${JSON.stringify(stray)} in ${fields.join(', ')}`);
  });
  if (!mail.attachments.some((a) => a.contentType === 'text/rfc822-headers')) throw new Error('no text/rfc822-headers part');
}

describe('fuzz: the DSN builder', () => {
  fuzzIt('dsn:build', () => fc.asyncProperty(input, checkDsn), 30_000, { timeout: 5000 });
});
