/**
 * The HTTP submission front door (SPEC 10) over real sockets: the real relay in this
 * process, a real SMTP sink and a real HTTP sink downstream, requests with fetch and
 * node:http. Each answer and each error code of SPEC 10.
 */
import { readdir, readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/index.js';
import { metricValue } from '../../helpers/cli.js';
import { outboxRoute, startTempRelay, testConfig, waitUntil, type TempRelay } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { makeCertificate, type Certificate } from '../../helpers/production.js';
import { startSmtpSink, type SmtpSink } from '../../helpers/smtp-sink.js';
import { call, composed, postJson, postRaw, postStreaming, withoutReceived } from '../../helpers/submission.js';

const KEY = 'k-app1-0123456789abcdef';
const OTHER_KEY = 'k-app2-0123456789abcdef';
const LIMIT = 64 * 1024;

function rawMessage(marker: string, extra = ''): string {
  return (
    `From: App <app@client.test>\r\nTo: user@smtp.test\r\n${extra}Subject: ${marker}\r\n` +
    `Message-ID: <${marker}@client.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\nbody of ${marker}\r\n`
  );
}

describe('HTTP submission', () => {
  let t: TempRelay;
  let smtp: SmtpSink;
  let hook: HttpSink;
  let port: number;

  beforeAll(async () => {
    smtp = await startSmtpSink();
    hook = await startHttpSink();
    t = await startTempRelay('onward-submission-', (dir) =>
      testConfig(dir, {
        limits: { maxMessageSize: LIMIT, maxRecipients: 10 },
        submission: { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }, { name: 'app2', key: OTHER_KEY }] },
        targets: {
          mail: { type: 'smtp', host: '127.0.0.1', port: smtp.port, secure: 'none' },
          hook: { type: 'http', url: hook.url, format: 'raw' },
        },
        routes: [
          { match: '*@smtp.test', target: 'mail' },
          { match: '*@hook.test', target: 'hook' },
        ],
        retry: { schedule: ['200ms'], jitter: 0 },
      }),
    );
    port = t.relay.submissionAddress?.port ?? 0;
  });
  afterAll(async () => {
    await t.close();
    await smtp.close();
    await hook.close();
  });

  it('takes a raw message and delivers it over SMTP byte for byte, with its Received header naming the key; Bcc removed, envelope from the headers', async () => {
    const raw = rawMessage('raw-1', 'Cc: Other <other@smtp.test>\r\nBcc: hidden@smtp.test,\r\n also@smtp.test\r\n');
    const answer = await postRaw(port, raw, { key: KEY });
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({ id: expect.stringMatching(/^[0-9A-Z]{15}$/), status: 'queued', messageId: 'raw-1@client.test' });
    const [message] = await smtp.waitFor(1);
    expect(message?.envelope).toEqual({ from: 'app@client.test', to: ['user@smtp.test', 'other@smtp.test', 'hidden@smtp.test', 'also@smtp.test'] });
    const expected = raw.replace('Bcc: hidden@smtp.test,\r\n also@smtp.test\r\n', '');
    expect(withoutReceived(message?.raw ?? Buffer.alloc(0)).toString('latin1')).toBe(expected);
    const received = message?.raw.toString('latin1').split('\r\n').slice(0, 3).join('\n') ?? '';
    expect(received).toContain('(Authenticated sender: app1)');
    expect(received).toContain(`with HTTP id ${answer.body.id ?? ''}`);
  });

  it('takes the envelope from X-Onward-Envelope-From / -To, turns bare LF into CRLF and adds Message-ID and Date when missing', async () => {
    const answer = await postRaw(port, 'From: a@client.test\nSubject: lf\n\nline one\nline two\n', {
      key: KEY,
      headers: { 'x-onward-envelope-from': 'bounce@client.test', 'x-onward-envelope-to': 'one@hook.test, <two@hook.test>' },
    });
    expect(answer.status).toBe(202);
    const requests = await hook.waitFor(1);
    const delivered = requests.find((r) => r.body.includes('Subject: lf'));
    expect(delivered?.headers['x-onward-envelope-from']).toBe('bounce@client.test');
    const body = withoutReceived(delivered?.body ?? Buffer.alloc(0)).toString('latin1');
    expect(body).toBe(
      `From: a@client.test\r\nSubject: lf\r\nMessage-ID: <${answer.body.id ?? ''}@relay.test>\r\nDate: ${/\r\nDate: ([^\r]+)\r\n/.exec(body)?.[1] ?? '?'}\r\n\r\nline one\r\nline two\r\n`,
    );
    expect(answer.body.messageId).toBe(`${answer.body.id ?? ''}@relay.test`);
  });

  it('composes JSON with MailComposer: the delivery is what MailComposer makes of the same input (Received aside)', async () => {
    const doc = {
      from: { name: 'App Sender', address: 'app@client.test' },
      to: ['Hook User <json@hook.test>'],
      cc: ['cc@hook.test'],
      bcc: ['bcc@hook.test'],
      replyTo: 'reply@client.test',
      subject: 'Grüße, JSON',
      text: 'plain text\nsecond line',
      html: '<p>html</p>',
      headers: { 'X-Campaign': 'spring' },
      attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', content: Buffer.from([0, 1, 2, 250, 255]).toString('base64') }],
    };
    const before = hook.requests.length;
    const answer = await postJson(port, doc, { key: KEY });
    expect(answer.status).toBe(202);
    const id = answer.body.id ?? '';
    expect(answer.body.messageId).toBe(`${id}@relay.test`);
    const requests = await hook.waitFor(before + 1);
    const delivered = requests.slice(before).find((r) => r.body.includes('X-Campaign'));
    expect(delivered?.headers['x-onward-envelope-to']).toBe('json@hook.test, cc@hook.test, bcc@hook.test');
    const body = withoutReceived(delivered?.body ?? Buffer.alloc(0));
    const date = new Date(/\r\nDate: ([^\r]+)\r\n/.exec(body.toString('latin1'))?.[1] ?? '');
    const expected = await composed(doc, { messageId: `${id}@relay.test`, date, boundary: id.toLowerCase() });
    // MailComposer keeps a text's bare LF in a 7bit part; the relay makes every line end CRLF.
    expect(body.toString('latin1')).toBe(expected.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'));
    expect(body.toString('latin1')).not.toMatch(/^Bcc:/im);
  });

  it('answers a repeat with the same Idempotency-Key 200 duplicate with the original id, delivering once; another request under that key is 422', async () => {
    const doc = { from: 'app@client.test', to: ['idem@hook.test'], subject: 'idempotent', text: 'once' };
    const headers = { 'idempotency-key': 'order-4711' };
    const first = await postJson(port, doc, { key: KEY, headers });
    const second = await postJson(port, doc, { key: KEY, headers });
    expect([first.status, first.body.status]).toEqual([202, 'queued']);
    expect(second).toMatchObject({ status: 200, body: { id: first.body.id, status: 'duplicate', messageId: first.body.messageId } });
    const mismatch = await postJson(port, { ...doc, text: 'something else' }, { key: KEY, headers });
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error).toMatchObject({ code: 'ONWARD_ERR_IDEMPOTENCY_MISMATCH', field: 'Idempotency-Key' });
    // Another key's identical request is its own message.
    const otherKey = await postJson(port, doc, { key: OTHER_KEY, headers });
    expect(otherKey.status).toBe(202);
    expect(otherKey.body.id).not.toBe(first.body.id);
    await waitUntil('both deliveries', async () => {
      const views = await Promise.all([first, otherKey].map((a) => call(port, `/v1/messages/${a.body.id ?? ''}`, null, { key: a === first ? KEY : OTHER_KEY })));
      return views.every((v) => v.body['state'] === 'delivered');
    });
    expect(hook.requests.filter((r) => r.body.includes('Subject: idempotent'))).toHaveLength(2);
  });

  it('without Idempotency-Key applies the SMTP rule: the same Message-ID, sender and recipients from the same key is a duplicate', async () => {
    const raw = rawMessage('dedup-rule');
    const first = await postRaw(port, raw, { key: KEY });
    const again = await postRaw(port, raw, { key: KEY });
    expect([first.status, again.status]).toEqual([202, 200]);
    expect(again.body).toEqual({ id: first.body.id, status: 'duplicate', messageId: 'dedup-rule@client.test' });
  });

  it('reports a message to its own key: GET /v1/messages/ID; another key, an unknown or a malformed id is 404', async () => {
    const sent = await postRaw(port, rawMessage('status-1'), { key: KEY });
    const id = sent.body.id ?? '';
    const view = await waitUntil('delivered', async () => {
      const v = await call(port, `/v1/messages/${id}`, null, { key: KEY });
      return v.body['state'] === 'delivered' ? v : undefined;
    });
    expect(view.body).toEqual({
      id,
      state: 'delivered',
      messageId: 'status-1@client.test',
      receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      recipients: [{ address: 'user@smtp.test', state: 'delivered', lastError: expect.stringMatching(/^250 /) }],
    });
    for (const [path, key] of [[`/v1/messages/${id}`, OTHER_KEY], ['/v1/messages/0000000000NOPE0', KEY], ['/v1/messages/../admin', KEY]] as const) {
      const answer = await call(port, path, null, { key });
      expect([path, answer.status, answer.body.error?.code]).toEqual([path, 404, 'ONWARD_ERR_NOT_FOUND']);
    }
  });

  it('refuses with a coded error for each kind of bad request', async () => {
    const cases: [string, Promise<{ status: number; body: { error?: { code: string; field?: string } } }>, number, string, string?][] = [
      ['no key', postRaw(port, rawMessage('e1')), 401, 'ONWARD_ERR_UNAUTHORIZED'],
      ['wrong key', postRaw(port, rawMessage('e2'), { key: 'k-wrong-0123456789abcdef' }), 401, 'ONWARD_ERR_UNAUTHORIZED'],
      ['other type', call(port, '/v1/messages', 'hello', { key: KEY, contentType: 'text/plain' }), 415, 'ONWARD_ERR_UNSUPPORTED_TYPE', 'Content-Type'],
      ['malformed JSON', call(port, '/v1/messages', '{"from":', { key: KEY, contentType: 'application/json' }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'body'],
      ['unknown JSON field', postJson(port, { from: 'a@client.test', to: ['b@hook.test'], colour: 'red' }, { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'body'],
      ['bad address', postJson(port, { from: 'a@client.test', to: ['b@hook.test', 'not an address'] }, { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'to[1]'],
      ['no recipients', postJson(port, { from: 'a@client.test', subject: 'x' }, { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'to'],
      ['no sender', postRaw(port, 'To: b@hook.test\r\nSubject: x\r\n\r\nx\r\n', { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'From'],
      ['no header block', postRaw(port, 'just text, no header field\r\n', { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'body'],
      ['bare CR', postRaw(port, 'From: a@client.test\r\nTo: b@hook.test\r\n\r\nbare\rCR\r\n', { key: KEY }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'body'],
      ['bad Idempotency-Key', postRaw(port, rawMessage('e3'), { key: KEY, headers: { 'idempotency-key': 'x'.repeat(256) } }), 400, 'ONWARD_ERR_BAD_MESSAGE', 'Idempotency-Key'],
      ['no route', postJson(port, { from: 'a@client.test', to: ['b@nowhere.test'] }, { key: KEY }), 400, 'ONWARD_ERR_NO_ROUTE', 'to'],
      ['no such path', call(port, '/v2/things', null, { key: KEY }), 404, 'ONWARD_ERR_NOT_FOUND'],
      ['wrong method', call(port, '/v1/messages', null, { key: KEY }), 405, 'ONWARD_ERR_METHOD_NOT_ALLOWED'],
      ['too large', postRaw(port, rawMessage('big', `X-Filler: ${'x'.repeat(LIMIT)}\r\n`), { key: KEY }), 413, 'ONWARD_ERR_TOO_LARGE', 'body'],
    ];
    const seen = [];
    for (const [name, answer, status, code, field] of cases) {
      const a = await answer;
      seen.push([name, a.status, a.body.error?.code, a.body.error?.field]);
      expect([name, a.status, a.body.error?.code, a.body.error?.field]).toEqual([name, status, code, field]);
    }
    expect(seen).toHaveLength(cases.length);
  });

  it('answers 413 at once to a Content-Length over the limit, before any of the body is sent', async () => {
    const answer = await postStreaming(
      port,
      { authorization: `Bearer ${KEY}`, 'content-type': 'message/rfc822', 'content-length': String(2 * 1024 ** 3) },
      async (req, answered) => {
        // Only the head goes out: the answer must come without the body.
        req.flushHeaders();
        await waitUntil('the 413', () => answered(), 5000, 10);
      },
    );
    expect(answer).toMatchObject({ status: 413, body: { error: { code: 'ONWARD_ERR_TOO_LARGE' } }, uploadDone: false });
  });

  it('answers 413 while a slow upload over the limit is still being sent', async () => {
    const chunk = Buffer.alloc(8 * 1024, 'a');
    const answer = await postStreaming(port, { authorization: `Bearer ${KEY}`, 'content-type': 'message/rfc822' }, async (req, answered) => {
      req.write('From: a@client.test\r\nTo: b@hook.test\r\n\r\n');
      // Up to 4× the limit, a chunk every 20 ms; the answer is expected long before the end.
      for (let sent = 0; sent < 4 * LIMIT && !answered(); sent += chunk.length) {
        req.write(chunk);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    expect(answer).toMatchObject({ status: 413, body: { error: { code: 'ONWARD_ERR_TOO_LARGE', field: 'body' } }, uploadDone: false });
  });

  it('counts accepted submissions in onward_messages_received_total{via="http"}', async () => {
    const text = await (await fetch(`http://127.0.0.1:${String(t.relay.adminAddress.port)}/metrics`)).text();
    expect(metricValue(text, 'onward_messages_received_total', { result: 'queued', via: 'http' })).toBeGreaterThanOrEqual(5);
    expect(metricValue(text, 'onward_messages_received_total', { result: 'duplicate', via: 'http' })).toBeGreaterThanOrEqual(2);
  });
});

describe('HTTP submission when the spool cannot take more', () => {
  it('answers 503 ONWARD_ERR_SPOOL_FULL with Retry-After at spool.maxQueued, and 503 ONWARD_ERR_SPOOL_WRITE when the store is gone', async () => {
    const hook = await startHttpSink({ respond: () => ({ status: 503 }) }); // nothing finishes: the queue stays full
    const t = await startTempRelay('onward-submission-full-', (dir) =>
      testConfig(dir, {
        spool: { maxQueued: 1 },
        submission: { listen: { host: '127.0.0.1', port: 0 } }, // loopback without keys
        targets: { hook: { type: 'http', url: hook.url, format: 'raw' } },
        routes: [{ match: '*', target: 'hook' }],
        retry: { schedule: ['1h'], jitter: 0 },
      }),
    );
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      const first = await postRaw(port, rawMessage('full-1'));
      expect(first.status).toBe(202);
      const full = await postRaw(port, rawMessage('full-2'));
      expect([full.status, full.body.error?.code, full.headers.get('retry-after')]).toEqual([503, 'ONWARD_ERR_SPOOL_FULL', '30']);
      // The store goes away under the listener (as a shared spool's database can): coded 503, never a crash.
      await t.relay.spool.close();
      const gone = await postRaw(port, rawMessage('full-3'));
      expect([gone.status, gone.body.error?.code, gone.headers.get('retry-after')]).toEqual([503, 'ONWARD_ERR_SPOOL_WRITE', '30']);
    } finally {
      await t.close();
      await hook.close();
    }
  });
});

describe('HTTP submission on SIGHUP', () => {
  it('applies new keys and routes at once; a new listen address is reported as needing a restart', async () => {
    const base = (dir: string, keys: { name: string; key: string }[], match: string, port = 0) =>
      testConfig(dir, {
        submission: { listen: { host: '127.0.0.1', port }, keys },
        targets: { outbox: { type: 'file', path: `${dir}/outbox` } },
        routes: [{ match, target: 'outbox' }],
      });
    const t = await startTempRelay('onward-submission-reload-', (dir) => base(dir, [{ name: 'app1', key: KEY }], '*@old.test'));
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      expect((await postJson(port, { from: 'a@client.test', to: ['x@new.test'] }, { key: KEY })).body.error?.code).toBe('ONWARD_ERR_NO_ROUTE');
      const next = parseConfig(stringify(base(t.dir, [{ name: 'app2', key: OTHER_KEY }], '*@new.test')), {});
      expect(t.relay.reload(next)).toEqual([]);
      expect((await postJson(port, { from: 'a@client.test', to: ['x@new.test'] }, { key: KEY })).status).toBe(401);
      const accepted = await postJson(port, { from: 'a@client.test', to: ['x@new.test'] }, { key: OTHER_KEY });
      expect(accepted.status).toBe(202);
      const moved = parseConfig(stringify(base(t.dir, [{ name: 'app2', key: OTHER_KEY }], '*@new.test', port + 1)), {});
      expect(t.relay.reload(moved)).toEqual(['submission.listen']);
    } finally {
      await t.close();
    }
  });
});

describe('HTTP submission with tls configured', () => {
  it('serves HTTPS with the SMTP certificate; the Received header says HTTPS', async () => {
    let cert: Certificate | null = null;
    const t = await startTempRelay('onward-submission-tls-', (dir) => {
      cert = makeCertificate(dir);
      return testConfig(dir, {
        tls: { key: cert.keyPath, cert: cert.certPath },
        submission: { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] },
        ...outboxRoute(dir),
      });
    });
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      const ca = (cert as Certificate | null)?.cert;
      const answer = await new Promise<{ status: number; body: { id?: string } }>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', servername: 'localhost', ca, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'message/rfc822' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string } }));
          },
        );
        req.on('error', reject);
        req.end(rawMessage('tls-1'));
      });
      expect(answer.status).toBe(202);
      const stored = await t.relay.spool.getMessage(answer.body.id ?? '');
      expect(stored?.client).toMatchObject({ user: 'app1', via: 'http' });
      const plain = await postRaw(port, rawMessage('tls-2'), { key: KEY }).catch((err: unknown) => err);
      expect(plain).toHaveProperty('message'); // a failed fetch: no plaintext HTTP on a TLS listener
      expect(plain).not.toHaveProperty('status');
      const id = answer.body.id ?? '';
      const file = await waitUntil('the delivery in the outbox', async () => (await readdir(join(t.dir, 'outbox')).catch(() => [])).find((n) => n.startsWith(`${id}.`)));
      expect(await readFile(join(t.dir, 'outbox', file), 'latin1')).toContain(`with HTTPS id ${id}`);
    } finally {
      await t.close();
    }
  });
});
