/**
 * Fuzz target `headers` (`npm run fuzz`; a 1 % slice runs in `npm test`): readHeaders and
 * prepareMessage (src/message/headers.ts) on random bytes and on random header/body lines
 * joined by CRLF, LF or CR. Neither throws; the output is our Received header, then the
 * input's bytes with only `Message-ID:` (when the input has none), `Date:` (when it has
 * none) and a blank line inserted at one line boundary; a CRLF-only input gives a CRLF-only
 * output that matches the RFC 5322 model of test/helpers/fuzz.ts (checkStored).
 */
import { describe } from '@jest/globals';
import fc from 'fast-check';
import { prepareMessage, readHeaders, receivedHeader, type ReceivedInfo } from '../../src/message/headers.js';
import { bareLineEndingAt, checkStored, headerSection } from '../helpers/fuzz.js';
import { fuzzIt } from '../helpers/fuzz-harness.js';

const LF = 0x0a;
const HOSTNAME = 'relay.test';
const QUEUE_ID = '0123456789ABCDE';

const received = (helo: string): ReceivedInfo => ({
  clientHostname: 'client.test',
  clientIp: '127.0.0.1',
  helo,
  hostname: HOSTNAME,
  protocol: 'ESMTP',
  queueId: QUEUE_ID,
  recipient: 'rcpt@example.org',
  date: new Date(Date.UTC(2026, 4, 27, 11, 15, 1)),
});

const NAMES = ['From', 'To', 'Cc', 'Bcc', 'Subject', 'Message-ID', 'message-id', 'MESSAGE-ID', 'Date', 'date', 'X-A', 'Received', 'Obs-Space ', 'X-!#$%', 'Content-Type', 'Resent-Date'];
const VALUES = ['<a@b.test>', '<>', '', '   ', ' <X@Example.COM> ', 'Fri, 27 Nov 2026 11:15:01 +0000', 'x', '=?utf-8?B?w7w=?=', 'caf\xe9', 'ü 中文 😀', '\u0d0a', 'a: b'];

/** Text of one line, as latin1 or UTF-8 bytes: never holds a line break unless `breaks`. */
const text = (breaks: boolean): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.string({ maxLength: 40 }).map((s) => Buffer.from(s, 'utf8')),
    fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => Buffer.from(s, 'utf8')),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(breaks ? a : a.filter((b) => b !== 0x0a && b !== 0x0d))),
    fc.constantFrom(...VALUES).map((s) => Buffer.from(s, 'latin1')),
    fc.integer({ min: 990, max: 5000 }).map((n) => Buffer.from('h'.repeat(n))),
  );

/** A line without its line ending: a header field, a folded continuation, a blank line, body text, a dot line. */
const line = (breaks: boolean): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(':', ': ', ' :', ':\t'), text(breaks)).map(([n, c, v]) => Buffer.concat([Buffer.from(n + c), v])) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(' ', '\t', '  '), text(breaks)).map(([w, v]) => Buffer.concat([Buffer.from(w), v])) },
    { weight: 2, arbitrary: fc.constant(Buffer.alloc(0)) },
    { weight: 3, arbitrary: text(breaks) },
    { weight: 1, arbitrary: fc.constantFrom('.', '..', '.x', 'From someone', 'no colon here').map((s) => Buffer.from(s)) },
  );

/** Lines joined by CRLF only (and sometimes a last line without one). */
const crlfMessage = fc.tuple(fc.array(line(false), { maxLength: 14 }), fc.boolean()).map(([lines, terminated]) =>
  Buffer.concat(lines.flatMap((l, i) => (i < lines.length - 1 || terminated ? [l, Buffer.from('\r\n')] : [l]))),
);

/** Lines joined by any line ending, with stray CR/LF/NUL inside. */
const anyMessage = fc.array(fc.tuple(line(true), fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r', '', '\n\r', '\r\r\n')), { maxLength: 14 }).map((parts) =>
  Buffer.concat(parts.flatMap(([l, eol]) => [l, Buffer.from(eol, 'latin1')])),
);

/** HELO names as smtp-server hands them over (one line, maybe 8-bit or UTF-8). */
const helo = fc.oneof(fc.constantFrom('client.test', '', '[127.0.0.1]', 'm\u00fcnchen.test', '\u0d0d\u0d0a.test'), fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')));

const ADDED = /^(\r\n)?(Message-ID: <[^\r\n]*>\r\n)?(Date: [^\r\n]+\r\n)?(\r\n)?$/;

/** The invariants of prepareMessage for any input; throws with the reason. */
function checkPrepared(input: Buffer, heloName: string): void {
  const info = readHeaders(input);
  if (!(info.headerBytes >= 0 && info.headerBytes <= input.length)) throw new Error(`headerBytes ${info.headerBytes} outside 0..${input.length}`);
  for (const name of info.names) if (name !== name.toLowerCase()) throw new Error(`header name not lower-cased: ${name}`);
  const r = received(heloName);
  const { body: out, messageId } = prepareMessage(input, info, r);
  const rh = Buffer.from(receivedHeader(r), 'utf8');
  if (!out.subarray(0, rh.length).equals(rh)) throw new Error('output does not start with our Received header');
  if (bareLineEndingAt(rh) !== -1) throw new Error(`Received header has a bare CR/LF: ${JSON.stringify(rh.toString('latin1'))}`);
  const wantMid = info.messageId === null;
  const wantDate = !info.names.has('date');
  const expectedId = info.messageId ?? `${QUEUE_ID}@${HOSTNAME}`;
  if (messageId !== expectedId) throw new Error(`messageId ${messageId}, expected ${expectedId}`);
  const rest = out.subarray(rh.length);
  const extra = rest.length - input.length;
  if (extra < 0) throw new Error('output shorter than input');
  if (extra === 0) {
    if (wantMid || wantDate) throw new Error('Message-ID or Date missing, nothing added');
    if (!rest.equals(input)) throw new Error('input bytes changed');
  } else {
    let p = 0;
    while (p < input.length && rest[p] === input[p]) p++;
    let found = false;
    for (let k = p; k >= Math.max(0, p - extra) && !found; k--) {
      if (!rest.subarray(k + extra).equals(input.subarray(k))) continue;
      const added = rest.subarray(k, k + extra).toString('latin1');
      const m = ADDED.exec(added);
      if (!m) continue;
      if (Boolean(m[2]) !== wantMid || Boolean(m[3]) !== wantDate) continue;
      if (m[2] && m[2] !== `Message-ID: <${expectedId}>\r\n`) continue;
      // At a line start: nothing may be glued onto the input's last line.
      if (k > 0 && input[k - 1] !== LF && !m[1]) continue;
      found = true;
    }
    if (!found) throw new Error(`output is not input + Message-ID/Date at one line boundary: ${JSON.stringify(rest.toString('latin1').slice(0, 400))}`);
  }
  if (bareLineEndingAt(input) === -1) {
    if (bareLineEndingAt(out) !== -1) throw new Error(`CRLF-only input, output has a bare CR/LF at ${bareLineEndingAt(out)}`);
    // checkStored also refuses NUL (the front doors never store one); prepareMessage keeps bytes as they are.
    if (input.includes(0)) return;
    // A header section that runs to the end without a final CRLF gets one before the added
    // fields (an HTTP body may end anywhere; SMTP content always ends with CRLF).
    const unterminated = extra > 0 && input.length > 0 && input[input.length - 1] !== LF && headerSection(input).end === input.length;
    const check = checkStored(out, unterminated ? Buffer.concat([input, Buffer.from('\r\n')]) : input, QUEUE_ID, HOSTNAME);
    if (check.problem !== null) throw new Error(check.problem);
  }
}

describe('fuzz: readHeaders / prepareMessage', () => {
  fuzzIt('headers:bytes', () => fc.property(fc.uint8Array({ maxLength: 600 }), helo, (a, h) => checkPrepared(Buffer.from(a), h)), 300_000);
  fuzzIt('headers:crlf', () => fc.property(crlfMessage, helo, (m, h) => checkPrepared(m, h)), 300_000);
  fuzzIt('headers:mixed', () => fc.property(anyMessage, helo, (m, h) => checkPrepared(m, h)), 200_000);
});
