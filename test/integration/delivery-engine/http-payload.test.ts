/**
 * What an HTTP target receives (SPEC section 4): the `format: json` document, the `format: raw`
 * bytes, the protocol headers and the signature, end to end from an SMTP client.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { useCleanup } from '../../helpers/common.js';
import { startHttpSink, type HttpSinkRequest } from '../../helpers/http-sink.js';
import { startDeliveryRelay } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';
const crlf = (lines: string[]): string => lines.join('\r\n');

const PDF = Buffer.from('%PDF-1.4\n% fake document for the attachment test\n%%EOF\n', 'latin1');

/** multipart/mixed: text + html alternative, one PDF attachment; encoded subject; To with and without names; Cc. */
const MULTIPART = crlf([
  'From: "Alice A." <alice@client.test>',
  'To: Bob <bob@hooks.test>, carol@hooks.test',
  'Cc: Dave <dave@example.net>, erin@example.net',
  'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from',
  ' Alice',
  'Message-ID: <m-json.1@client.test>',
  'Date: Fri, 27 Nov 2026 11:15:01 +0100',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  '--outer',
  'Content-Type: multipart/alternative; boundary="inner"',
  '',
  '--inner',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Plain body.',
  '--inner',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>HTML body.</p>',
  '--inner--',
  '--outer',
  'Content-Type: application/pdf; name="report.pdf"',
  'Content-Disposition: attachment; filename="report.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  PDF.toString('base64'),
  '--outer--',
  '',
]);

interface Payload {
  id: string;
  queueId: string;
  messageId: string | null;
  envelope: { from: string; to: string[] };
  headers: [string, string][];
  subject: string | null;
  from: { address: string; name: string } | null;
  to: { address: string; name: string }[];
  cc: { address: string; name: string }[];
  date: string | null;
  text: string | null;
  html: string | null;
  attachments: { filename: string | null; contentType: string; size: number; content: string }[];
  receivedAt: string;
}

/** Splits a stored/raw body into our Received header (first, folded) and the rest. */
function splitReceived(body: Buffer): { received: string; rest: Buffer } {
  const text = body.toString('latin1');
  expect(text.startsWith('Received: ')).toBe(true);
  let end = text.indexOf('\r\n');
  while (end !== -1 && (text[end + 2] === '\t' || text[end + 2] === ' ')) end = text.indexOf('\r\n', end + 2);
  return { received: text.slice(0, end + 2), rest: body.subarray(Buffer.byteLength(text.slice(0, end + 2), 'latin1')) };
}

describe('HTTP payloads', () => {
  const defer = useCleanup();

  async function relayTo(url: string, target: Record<string, unknown>) {
    const t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url, timeout: '2s', ...target } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    return t;
  }

  async function deliverOne(target: Record<string, unknown>, raw: string | Buffer, to = ['bob@hooks.test', 'carol@hooks.test']) {
    const sink = await startHttpSink();
    defer(() => sink.close());
    const t = await relayTo(sink.url, target);
    const before = Date.now();
    const queueId = await t.send({ from: FROM, to }, raw);
    const [request] = await sink.waitFor(1);
    const after = Date.now();
    const message = await t.relay.spool.getMessage(queueId);
    return { queueId, request: request!, before, after, receivedAt: message!.receivedAt };
  }

  it('sends a multipart message with an attachment as the JSON document the SPEC describes', async () => {
    const { queueId, request, receivedAt } = await deliverOne({ format: 'json' }, MULTIPART);

    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/json');
    const payload = JSON.parse(request.body.toString('utf8')) as Payload;

    expect(payload.id).toBe(`${queueId}.0`);
    expect(payload.queueId).toBe(queueId);
    expect(payload.messageId).toBe('m-json.1@client.test');
    expect(payload.envelope).toEqual({ from: FROM, to: ['bob@hooks.test', 'carol@hooks.test'] });
    expect(payload.subject).toBe('Grüße from Alice');
    expect(payload.from).toEqual({ address: 'alice@client.test', name: 'Alice A.' });
    expect(payload.to).toEqual([
      { address: 'bob@hooks.test', name: 'Bob' },
      { address: 'carol@hooks.test', name: '' },
    ]);
    expect(payload.cc).toEqual([
      { address: 'dave@example.net', name: 'Dave' },
      { address: 'erin@example.net', name: '' },
    ]);
    expect(payload.date).toBe('2026-11-27T10:15:01.000Z');
    expect(payload.text?.trim()).toBe('Plain body.');
    expect(payload.html?.trim()).toBe('<p>HTML body.</p>');
    expect(payload.attachments).toEqual([
      { filename: 'report.pdf', contentType: 'application/pdf', size: PDF.length, content: PDF.toString('base64') },
    ]);
    expect(payload.receivedAt).toBe(new Date(receivedAt).toISOString());

    // Headers in message order, our Received first, values unfolded and decoded.
    expect(payload.headers.map(([name]) => name)).toEqual([
      'Received',
      'From',
      'To',
      'Cc',
      'Subject',
      'Message-ID',
      'Date',
      'MIME-Version',
      'Content-Type',
    ]);
    const [receivedName, receivedValue] = payload.headers[0]!;
    expect(receivedName).toBe('Received');
    expect(receivedValue).not.toMatch(/[\r\n]/);
    expect(receivedValue).toMatch(new RegExp(`by relay\\.test \\(onward\\) with \\S+ id ${queueId}`));
    expect(payload.headers[4]).toEqual(['Subject', 'Grüße from Alice']);
    expect(payload.headers[5]).toEqual(['Message-ID', '<m-json.1@client.test>']);
    expect(payload.headers[1]).toEqual(['From', '"Alice A." <alice@client.test>']);

    // The protocol headers ride along with the JSON format too.
    expect(request.headers['idempotency-key']).toBe(`${queueId}.0`);
    expect(request.headers['x-onward-queue-id']).toBe(queueId);
    expect(request.headers['x-onward-attempt']).toBe('1');
    expect(request.headers['x-onward-envelope-from']).toBe(FROM);
    expect(request.headers['x-onward-envelope-to']?.toString().split(/,\s*/)).toEqual(['bob@hooks.test', 'carol@hooks.test']);
    expect(request.headers['x-onward-signature']).toBeUndefined();
  });

  it('sends format raw byte for byte as received, with only our Received header added', async () => {
    // Dot-leading lines (dot-stuffed on the wire), trailing blanks, a long line, no final blank line trickery.
    const original = crlf([
      'From: Alice <alice@client.test>',
      'To: bob@hooks.test',
      'Subject: raw bytes',
      'Message-ID: <m-raw.1@client.test>',
      'Date: Fri, 27 Nov 2026 11:15:01 +0000',
      'X-Folded: first part',
      '\tsecond part',
      '',
      '.a line that starts with a dot',
      '..two dots',
      'trailing spaces   ',
      '',
      'x'.repeat(900),
      '.',
      'end',
      '',
    ]);
    const { queueId, request } = await deliverOne({ format: 'raw' }, original, ['bob@hooks.test']);

    expect(request.headers['content-type']).toBe('message/rfc822');
    const { received, rest } = splitReceived(request.body);
    expect(rest.equals(Buffer.from(original, 'latin1'))).toBe(true);
    expect(received).toMatch(/^Received: from client\.test /);
    expect(received).toContain(`id ${queueId}`);
    expect(request.headers['x-onward-envelope-from']).toBe(FROM);
    expect(request.headers['x-onward-envelope-to']).toBe('bob@hooks.test');
    expect(request.headers['idempotency-key']).toBe(`${queueId}.0`);
  });

  it('adds Message-ID and Date to a raw message only when the client sent none', async () => {
    const headerBlock = crlf(['From: Alice <alice@client.test>', 'To: bob@hooks.test', 'Subject: no id, no date', '']);
    const bodyPart = crlf(['', 'Body line.', '']);
    const { queueId, request } = await deliverOne({ format: 'raw' }, headerBlock + bodyPart, ['bob@hooks.test']);

    const { rest } = splitReceived(request.body);
    const text = rest.toString('latin1');
    expect(text.startsWith(headerBlock)).toBe(true);
    expect(text.endsWith(bodyPart)).toBe(true);
    const added = text.slice(headerBlock.length, text.length - bodyPart.length);
    expect(added).toMatch(/^Message-ID: <[^>\r\n]+>\r\nDate: [^\r\n]+\r\n$/);
    expect(added).toContain(`<${queueId}@relay.test>`);
  });

  it('sends the null sender as <> in X-Onward-Envelope-From and "" in the JSON envelope', async () => {
    const sink = await startHttpSink();
    defer(() => sink.close());
    const t = await relayTo(sink.url, { format: 'json' });
    const queueId = await t.send({ from: '', to: ['bob@hooks.test'] }, MULTIPART);
    const [request] = await sink.waitFor(1);

    expect(request!.headers['x-onward-envelope-from']).toBe('<>');
    const payload = JSON.parse(request!.body.toString('utf8')) as Payload;
    expect(payload.envelope).toEqual({ from: '', to: ['bob@hooks.test'] });
    expect(payload.queueId).toBe(queueId);
  });

  it.each([
    ['json', 'application/json'],
    ['raw', 'message/rfc822'],
  ])('signs the %s body: X-Onward-Signature is sha256=HMAC-SHA256("<timestamp>.<body>")', async (format, contentType) => {
    const secret = 's3cret-for-signing';
    const { request, before, after } = await deliverOne({ format, signingSecret: secret }, MULTIPART, ['bob@hooks.test']);

    expect(request.headers['content-type']).toBe(contentType);
    const timestamp = String(request.headers['x-onward-timestamp']);
    expect(timestamp).toMatch(/^\d+$/);
    expect(Number(timestamp)).toBeGreaterThanOrEqual(Math.floor(before / 1000) - 1);
    expect(Number(timestamp)).toBeLessThanOrEqual(Math.ceil(after / 1000) + 1);
    expect(request.headers['x-onward-signature']).toBe(`sha256=${hmac(secret, timestamp, request)}`);
    // A wrong secret or a tampered body does not verify.
    expect(request.headers['x-onward-signature']).not.toBe(`sha256=${hmac('other', timestamp, request)}`);
    const tampered = { ...request, body: Buffer.concat([request.body, Buffer.from(' ')]) };
    expect(request.headers['x-onward-signature']).not.toBe(`sha256=${hmac(secret, timestamp, tampered)}`);
  });
});

function hmac(secret: string, timestamp: string, request: Pick<HttpSinkRequest, 'body'>): string {
  return createHmac('sha256', secret).update(Buffer.concat([Buffer.from(`${timestamp}.`), request.body])).digest('hex');
}
