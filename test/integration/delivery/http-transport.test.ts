import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { HttpTargetConfig } from '../../../src/config/types.js';
import { createHttpTransport } from '../../../src/delivery/http.js';
import type { DeliveryJob, Transport } from '../../../src/delivery/types.js';
import { closedPort } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join('\r\n'), 'utf8');

const SIMPLE = crlf([
  'From: Alice <alice@example.com>',
  'To: bob@example.org',
  'Subject: hello',
  'Message-ID: <m1@example.com>',
  'Date: Tue, 02 Jan 2024 03:04:05 +0000',
  '',
  'Hi Bob.',
  '',
]);

const MULTIPART = crlf([
  'Received: from client.example.com (client.example.com [192.0.2.7])',
  '\tby relay.example.com with ESMTP id Q1; Tue, 02 Jan 2024 03:04:06 +0000',
  'From: "Alice A." <alice@example.com>',
  'To: Bob <bob@example.org>, carol@example.org',
  'Cc: Dave <dave@example.net>, erin@example.net',
  'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and',
  ' =?UTF-8?B?8J+Ri8Kg?= more',
  'Message-ID: <m2.part@example.com>',
  'X-Raw-8bit: Grüße ohne Kodierung',
  'Date: Tue, 02 Jan 2024 03:04:05 +0100',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: multipart/alternative; boundary="b2"',
  '',
  '--b2',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Plain body.',
  '--b2',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>HTML body.</p>',
  '--b2--',
  '--b1',
  'Content-Type: application/pdf; name="report.pdf"',
  'Content-Disposition: attachment; filename="report.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('%PDF-1.4 fake').toString('base64'),
  '--b1--',
  '',
]);

function job(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  return {
    deliveryId: 'Q1AAAAAAAA.1',
    queueId: 'Q1AAAAAAAA',
    attempt: 3,
    envelope: { from: 'alice@example.com', to: ['bob@example.org', 'carol@example.org'] },
    body: SIMPLE,
    receivedAt: new Date('2024-01-02T03:04:06.000Z'),
    ...overrides,
  };
}

function target(url: string, overrides: Partial<HttpTargetConfig> = {}): HttpTargetConfig {
  return {
    type: 'http',
    name: 'hooks',
    url,
    format: 'raw',
    headers: {},
    signing: 'onward',
    signingSecrets: [],
    timeoutMs: 2000,
    concurrency: 4,
    circuit: { failures: 5, probeMs: 30000 },
    ...overrides,
  };
}

describe('HTTP transport', () => {
  let sink: HttpSink;
  let transport: Transport | undefined;
  afterEach(async () => {
    await transport?.close();
    await sink.close();
  });
  const start = async (overrides: Partial<HttpTargetConfig> = {}): Promise<Transport> => {
    sink = await startHttpSink();
    transport = createHttpTransport(target(sink.url, overrides));
    return transport;
  };

  it('posts the stored bytes as message/rfc822 with every envelope header and configured headers', async () => {
    const t = await start({ headers: { Authorization: 'Bearer t0k', 'X-Onward-Attempt': 'forged' } });
    const result = await t.deliver(job());
    const [request] = sink.requests;
    expect(request?.method).toBe('POST');
    expect(request?.body.equals(SIMPLE)).toBe(true);
    expect(request?.headers).toMatchObject({
      'content-type': 'message/rfc822',
      'idempotency-key': 'Q1AAAAAAAA.1',
      'x-onward-queue-id': 'Q1AAAAAAAA',
      'x-onward-attempt': '3',
      'x-onward-envelope-from': 'alice@example.com',
      'x-onward-envelope-to': 'bob@example.org, carol@example.org',
      authorization: 'Bearer t0k',
    });
    expect(request?.headers['x-onward-signature']).toBeUndefined();
    expect(result.recipients).toEqual([
      { address: 'bob@example.org', outcome: 'ok', reply: { kind: 'http', code: 200, enhancedStatus: null, text: 'HTTP 200 OK' } },
      { address: 'carol@example.org', outcome: 'ok', reply: { kind: 'http', code: 200, enhancedStatus: null, text: 'HTTP 200 OK' } },
    ]);
    expect(result.contention).toBe(false);
    expect(result.retryAfterMs).toBeNull();
  });

  it('sends <> for the null sender and UTF-8 bytes for an internationalised address', async () => {
    const t = await start();
    await t.deliver(job({ envelope: { from: '', to: ['jörg@bücher.example'] } }));
    const headers = sink.requests[0]?.headers ?? {};
    expect(headers['x-onward-envelope-from']).toBe('<>');
    const to = String(headers['x-onward-envelope-to']);
    expect(Buffer.from(to, 'latin1').toString('utf8')).toBe('jörg@bücher.example');
  });

  it('signs timestamp and body so that the receiver can verify them with node:crypto', async () => {
    const t = await start({ signingSecrets: ['s3cret'] });
    const before = Math.floor(Date.now() / 1000);
    await t.deliver(job());
    const request = sink.requests[0];
    const timestamp = String(request?.headers['x-onward-timestamp']);
    expect(Number(timestamp)).toBeGreaterThanOrEqual(before);
    expect(Number(timestamp)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    const expected = createHmac('sha256', 's3cret')
      .update(Buffer.concat([Buffer.from(`${timestamp}.`), request?.body ?? Buffer.alloc(0)]))
      .digest('hex');
    expect(request?.headers['x-onward-signature']).toBe(`sha256=${expected}`);
  });

  it('posts the parsed message as JSON with exactly the fields of the spec', async () => {
    const t = await start({ format: 'json', signingSecrets: ['k'] });
    const result = await t.deliver(job({ body: MULTIPART }));
    expect(result.recipients.every((r) => r.outcome === 'ok')).toBe(true);
    const request = sink.requests[0];
    expect(request?.headers['content-type']).toBe('application/json');
    const timestamp = String(request?.headers['x-onward-timestamp']);
    const mac = createHmac('sha256', 'k').update(`${timestamp}.`).update(request?.body ?? Buffer.alloc(0)).digest('hex');
    expect(request?.headers['x-onward-signature']).toBe(`sha256=${mac}`);

    const payload = JSON.parse(request?.body.toString('utf8') ?? '') as Record<string, unknown>;
    expect(Object.keys(payload).sort()).toEqual(
      ['attachments', 'cc', 'date', 'envelope', 'from', 'headers', 'html', 'id', 'messageId', 'queueId', 'receivedAt', 'subject', 'text', 'to'].sort(),
    );
    expect(payload).toMatchObject({
      id: 'Q1AAAAAAAA.1',
      queueId: 'Q1AAAAAAAA',
      messageId: 'm2.part@example.com',
      envelope: { from: 'alice@example.com', to: ['bob@example.org', 'carol@example.org'] },
      subject: 'Grüße and 👋\u00a0 more',
      from: { address: 'alice@example.com', name: 'Alice A.' },
      to: [
        { address: 'bob@example.org', name: 'Bob' },
        { address: 'carol@example.org', name: '' },
      ],
      cc: [
        { address: 'dave@example.net', name: 'Dave' },
        { address: 'erin@example.net', name: '' },
      ],
      date: '2024-01-02T02:04:05.000Z',
      text: 'Plain body.',
      html: '<p>HTML body.</p>',
      attachments: [
        {
          filename: 'report.pdf',
          contentType: 'application/pdf',
          size: 13,
          content: Buffer.from('%PDF-1.4 fake').toString('base64'),
        },
      ],
      receivedAt: '2024-01-02T03:04:06.000Z',
    });
    const headers = payload['headers'] as Array<[string, string]>;
    expect(headers.map(([name]) => name)).toEqual([
      'Received', 'From', 'To', 'Cc', 'Subject', 'Message-ID', 'X-Raw-8bit', 'Date', 'MIME-Version', 'Content-Type',
    ]);
    expect(headers[6]).toEqual(['X-Raw-8bit', 'Grüße ohne Kodierung']);
    expect(headers[0]?.[1]).toBe(
      'from client.example.com (client.example.com [192.0.2.7])\tby relay.example.com with ESMTP id Q1; Tue, 02 Jan 2024 03:04:06 +0000',
    );
    expect(headers[4]).toEqual(['Subject', 'Grüße and 👋\u00a0 more']);
  });

  it('fails every recipient on a 400', async () => {
    const t = await start();
    sink.respond(() => ({ status: 400, body: 'bad payload' }));
    const result = await t.deliver(job());
    expect(result.recipients.map((r) => r.outcome)).toEqual(['fail', 'fail']);
    expect(result.recipients[0]?.reply).toEqual({ kind: 'http', code: 400, enhancedStatus: null, text: 'HTTP 400 Bad Request' });
    expect(result.contention).toBe(false);
  });

  it('defers a 503 with Retry-After in seconds and signals contention', async () => {
    const t = await start();
    sink.respond(() => ({ status: 503, headers: { 'Retry-After': '120' } }));
    const result = await t.deliver(job());
    expect(result.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(result.recipients[0]?.reply.text).toBe('HTTP 503 Service Unavailable');
    expect(result.retryAfterMs).toBe(120_000);
    expect(result.contention).toBe(true);
  });

  it('defers a 429 with Retry-After as an HTTP-date', async () => {
    const t = await start();
    const at = new Date(Date.now() + 90_000);
    sink.respond(() => ({ status: 429, headers: { 'Retry-After': at.toUTCString() } }));
    const result = await t.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply.text).toBe('HTTP 429 Too Many Requests');
    expect(result.retryAfterMs).toBeGreaterThan(85_000);
    expect(result.retryAfterMs).toBeLessThanOrEqual(90_000);
    expect(result.contention).toBe(true);
  });

  it('ignores Retry-After on a 500', async () => {
    const t = await start();
    sink.respond(() => ({ status: 500, headers: { 'Retry-After': '5' } }));
    const result = await t.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.retryAfterMs).toBeNull();
    expect(result.contention).toBe(false);
  });

  it('reads large response bodies without failing the delivery', async () => {
    const t = await start();
    sink.respond(() => ({ status: 202, body: Buffer.alloc(512 * 1024, 0x61) }));
    const result = await t.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('ok');
  });

  it('defers a request that outlives the timeout', async () => {
    const t = await start({ timeoutMs: 150 });
    sink.respond(() => ({ status: 200, delayMs: 2000 }));
    const result = await t.deliver(job());
    expect(result.recipients[0]).toEqual({
      address: 'bob@example.org',
      outcome: 'error',
      reply: { kind: 'http', code: null, enhancedStatus: null, text: 'timeout after 150 ms' },
    });
    expect(result.contention).toBe(true);
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('defers when the connection is refused', async () => {
    sink = await startHttpSink();
    const port = await closedPort();
    transport = createHttpTransport(target(`http://127.0.0.1:${String(port)}/hook`));
    const result = await transport.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply).toEqual({
      kind: 'http',
      code: null,
      enhancedStatus: null,
      text: `connect ECONNREFUSED 127.0.0.1:${String(port)}`,
    });
    expect(result.contention).toBe(true);
  });

  it('turns a request that cannot even be sent into ERROR instead of throwing', async () => {
    const t = await start({ headers: { 'X-Broken': 'line\nbreak' } });
    const result = await t.deliver(job());
    expect(result.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(result.recipients[0]?.reply.code).toBeNull();
    expect(result.contention).toBe(false);
    expect(sink.requests).toHaveLength(0);
  });
});
