import { describe, expect, it } from '@jest/globals';
import {
  headerEnd,
  headerFields,
  normaliseMessageId,
  prepareMessage,
  readHeaders,
  receivedHeader,
  rfc5322Date,
  unfold,
  type ReceivedInfo,
} from '../../../src/message/headers.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const DATE = new Date(Date.UTC(2026, 10, 27, 11, 15, 1));
const RECEIVED: ReceivedInfo = {
  clientHostname: '[127.0.0.1]',
  clientIp: '127.0.0.1',
  helo: 'client.test',
  hostname: 'relay.test',
  protocol: 'ESMTP',
  queueId: '0MWYW9NT0TQDE6J',
  recipient: 'rcpt@example.org',
  date: DATE,
};
const RECEIVED_TEXT =
  'Received: from client.test ([127.0.0.1])\r\n\tby relay.test (onward) with ESMTP id 0MWYW9NT0TQDE6J\r\n\tfor <rcpt@example.org>;\r\n\tFri, 27 Nov 2026 11:15:01 +0000\r\n';

function prepare(text: string): string {
  const body = b(text);
  return prepareMessage(body, readHeaders(body), RECEIVED).body.toString('latin1');
}

describe('message headers', () => {
  it.each([
    ['headers and a body', 'A: 1\r\nB: 2\r\n\r\nbody\r\n', 'A: 1\r\nB: 2\r\n\r\n'.length],
    ['folded headers', 'A: 1\r\n  more\r\n\tand more\r\n\r\nbody\r\n', 'A: 1\r\n  more\r\n\tand more\r\n\r\n'.length],
    ['a blank first line', '\r\nbody\r\n', 2],
    ['only headers', 'A: 1\r\nB: 2\r\n', 'A: 1\r\nB: 2\r\n'.length],
    ['an empty message', '', 0],
    ['no headers at all', 'just text\r\nmore: text\r\n', 0],
    ['a body that starts without a blank line', 'A: 1\r\nbody text\r\n', 'A: 1\r\n'.length],
    ['a continuation line first', ' folded\r\nA: 1\r\n\r\n', 0],
    ['obsolete space before the colon', 'Subject : x\r\n\r\nb\r\n', 'Subject : x\r\n\r\n'.length],
  ])('finds the end of the header block in a message with %s', (_name, text, end) => {
    expect(headerEnd(b(text))).toBe(end);
  });

  it('reads header names case-insensitively and the first Message-ID, unfolded and normalised', () => {
    const info = readHeaders(b('FROM: a@b\r\nMessage-ID:\r\n <Abc.Def@Example.COM>\r\nmessage-id: <second@x>\r\nX-Empty:\r\n\r\nMessage-ID: <in-body@x>\r\n'));
    expect([...info.names].sort()).toEqual(['from', 'message-id', 'x-empty']);
    expect(info.messageId).toBe('Abc.Def@example.com');
  });

  it.each([
    ['a CRLF before a space', 'a\r\n b', 'a b'],
    ['a CRLF before a tab', 'a\r\n\tb', 'a\tb'],
    ['a bare LF before a space', 'a\n b', 'a b'],
    ['a line break before more white space', 'a\r\n   b', 'a   b'],
    ['a line break not followed by white space', 'a\r\nb', 'a\r\nb'],
  ])('unfolds %s by removing only the line break', (_name, folded, unfolded) => {
    expect(unfold(folded)).toBe(unfolded);
  });

  it('splits a header block into unfolded, trimmed fields in order, skipping lines without a colon', () => {
    const block = 'Subject : Hello\r\n\tworld\r\nnot a field\r\nX-Empty:\r\nTo: a@b,\r\n c@d\r\n\r\n';
    expect(headerFields(block)).toEqual([
      ['Subject', 'Hello\tworld'],
      ['X-Empty', ''],
      ['To', 'a@b, c@d'],
    ]);
  });

  it.each([
    ['<abc@Example.COM>', 'abc@example.com'],
    ['  <ABC@x.y>  ', 'ABC@x.y'],
    ['no-brackets@Host', 'no-brackets@host'],
    ['<local-only>', 'local-only'],
    ['<a@b@C.D>', 'a@b@c.d'],
    ['   ', null],
    ['<>', null],
  ])('normalises the Message-ID %j to %j', (raw, expected) => {
    expect(normaliseMessageId(raw)).toBe(expected);
  });

  it('writes RFC 5322 dates in UTC', () => {
    expect(rfc5322Date(DATE)).toBe('Fri, 27 Nov 2026 11:15:01 +0000');
  });

  it('writes a Received header with the reverse name only when it differs from the address literal', () => {
    expect(receivedHeader(RECEIVED)).toBe(RECEIVED_TEXT);
    expect(receivedHeader({ ...RECEIVED, clientHostname: 'mail.client.test', recipient: null, helo: '' })).toBe(
      'Received: from unknown (mail.client.test [127.0.0.1])\r\n\tby relay.test (onward) with ESMTP id 0MWYW9NT0TQDE6J;\r\n\tFri, 27 Nov 2026 11:15:01 +0000\r\n',
    );
  });

  it('adds only the Received header to a message that has Message-ID and Date', () => {
    const text = 'Message-ID: <m@x>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n';
    const body = b(text);
    const prepared = prepareMessage(body, readHeaders(body), RECEIVED);
    expect(prepared.body.toString('latin1')).toBe(RECEIVED_TEXT + text);
    expect(prepared.messageId).toBe('m@x');
  });

  it('adds Message-ID and Date at the end of the header block when missing', () => {
    const body = b('Subject: s\r\n\r\nbody\r\n');
    const prepared = prepareMessage(body, readHeaders(body), RECEIVED);
    expect(prepared.body.toString('latin1')).toBe(
      RECEIVED_TEXT + 'Subject: s\r\nMessage-ID: <0MWYW9NT0TQDE6J@relay.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\nbody\r\n',
    );
    expect(prepared.messageId).toBe('0MWYW9NT0TQDE6J@relay.test');
  });

  it('adds only the Date when just the Date is missing, and only the Message-ID when just that is missing', () => {
    expect(prepare('Message-ID: <m@x>\r\n\r\nb\r\n')).toBe(RECEIVED_TEXT + 'Message-ID: <m@x>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\nb\r\n');
    expect(prepare('date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nb\r\n')).toBe(
      RECEIVED_TEXT + 'date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <0MWYW9NT0TQDE6J@relay.test>\r\n\r\nb\r\n',
    );
  });

  it('handles an empty message, a headers-only message and a message that starts with a blank line', () => {
    const added = 'Message-ID: <0MWYW9NT0TQDE6J@relay.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n';
    expect(prepare('')).toBe(RECEIVED_TEXT + added);
    expect(prepare('Subject: s\r\n')).toBe(RECEIVED_TEXT + 'Subject: s\r\n' + added);
    expect(prepare('\r\nbody\r\n')).toBe(RECEIVED_TEXT + added + '\r\nbody\r\n');
  });

  it('keeps body text that comes without headers, or without a blank line after them, as body', () => {
    const added = 'Message-ID: <0MWYW9NT0TQDE6J@relay.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n';
    expect(prepare('just text\r\nNote: not a header\r\n')).toBe(RECEIVED_TEXT + added + '\r\njust text\r\nNote: not a header\r\n');
    expect(prepare('Subject: s\r\nbody text\r\n')).toBe(RECEIVED_TEXT + 'Subject: s\r\n' + added + '\r\nbody text\r\n');
    expect(prepare('Message-ID: <m@x>\r\nDate: d\r\nbody text\r\n')).toBe(RECEIVED_TEXT + 'Message-ID: <m@x>\r\nDate: d\r\n\r\nbody text\r\n');
  });

  it('ends a last header line that has no line break before adding Message-ID and Date (found by npm run fuzz)', () => {
    const added = 'Message-ID: <0MWYW9NT0TQDE6J@relay.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n';
    expect(prepare('From: a@b.test\r\nTo: c@d.test')).toBe(RECEIVED_TEXT + 'From: a@b.test\r\nTo: c@d.test\r\n' + added);
    expect(prepare('From:')).toBe(RECEIVED_TEXT + 'From:\r\n' + added);
    // Nothing added: nothing changes.
    expect(prepare('Message-ID: <m@x>\r\nDate: d')).toBe(RECEIVED_TEXT + 'Message-ID: <m@x>\r\nDate: d');
  });

  it('never re-encodes 8-bit bytes', () => {
    const body = Buffer.concat([b('Subject: '), Buffer.from([0xe9, 0xff]), b('\r\n\r\n'), Buffer.from([0x80, 0x00, 0xfe]), b('\r\n')]);
    const prepared = prepareMessage(body, readHeaders(body), RECEIVED).body;
    expect(prepared.includes(Buffer.from([0xe9, 0xff]))).toBe(true);
    expect(prepared.subarray(-5)).toEqual(Buffer.from([0x80, 0x00, 0xfe, 0x0d, 0x0a]));
  });
});
