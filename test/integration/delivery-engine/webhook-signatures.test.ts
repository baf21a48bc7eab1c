/**
 * Signature headers of HTTP targets (SPEC sections 4 and 11), end to end: a real relay takes a
 * message over SMTP and POSTs it to a real HTTP sink; the receiver side verifies with the
 * `standardwebhooks` npm package (an implementation independent of onward's) and recomputes
 * `X-Onward-Signature` with node:crypto.
 */
import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import { useCleanup } from '../../helpers/common.js';
import { startDeliveryRelay } from '../../helpers/delivery-relay.js';
import { startHttpSink, type HttpSinkRequest } from '../../helpers/http-sink.js';

const FROM = 'sender@client.test';
const TO = 'bob@hooks.test';
/** Standard Webhooks libraries refuse timestamps older than this. */
const TOLERANCE_S = 5 * 60;

const NEW_WHSEC = `whsec_${Buffer.from('the new 32-byte key for hooks..!').toString('base64')}`;
const OLD_PLAIN = 'old-plain-secret';

function message(subject: string): string {
  return [
    'From: Alice <alice@client.test>',
    `To: Bob <${TO}>`,
    `Subject: ${subject}`,
    'Date: Fri, 27 Nov 2026 11:15:01 +0100',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Grüße, signed.',
    '',
  ].join('\r\n');
}

/** A verifier holding one secret, as a receiver configures it: `whsec_…` as is, any other secret as its UTF-8 bytes. */
function verifier(secret: string): Webhook {
  return secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' });
}

/** The request's headers as the verifier takes them (node:http gives lower-case names). */
function flat(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : (value ?? '')]));
}

/** Verifies with `secret`; for a JSON body also returns the parsed document. Throws as the verifier does. */
function verify(secret: string, request: Pick<HttpSinkRequest, 'body' | 'headers'>): unknown {
  const json = request.headers['content-type'] === 'application/json';
  return verifier(secret).verify(request.body.toString('utf8'), flat(request.headers), { jsonParse: json });
}

function onwardHmac(secret: string, timestamp: string, body: Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

describe('webhook signatures on HTTP targets', () => {
  const defer = useCleanup();

  /** One message through a relay whose `hooks` target has `target`'s keys; the request the sink got. */
  async function deliverOne(target: Record<string, unknown>, subject = 'signed'): Promise<HttpSinkRequest> {
    const sink = await startHttpSink();
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url: sink.url, timeout: '2s', ...target } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    await t.send({ from: FROM, to: [TO] }, message(subject));
    const [request] = await sink.waitFor(1);
    return request!;
  }

  it.each([
    ['standard', 'json'],
    ['standard', 'raw'],
    ['both', 'json'],
    ['both', 'raw'],
  ])('signing: %s, format: %s — a standardwebhooks receiver accepts the delivery', async (signing, format) => {
    const before = Math.floor(Date.now() / 1000);
    const request = await deliverOne({ signing, format, signingSecret: NEW_WHSEC });
    const after = Math.ceil(Date.now() / 1000);
    const h = request.headers;

    expect(h['webhook-id']).toBe(h['idempotency-key']);
    const timestamp = Number(h['webhook-timestamp']);
    expect(timestamp).toBeGreaterThanOrEqual(before);
    expect(timestamp).toBeLessThanOrEqual(after);
    expect(h['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);

    const payload = verify(NEW_WHSEC, request);
    if (format === 'json') expect(payload).toMatchObject({ id: h['webhook-id'], envelope: { from: FROM, to: [TO] } });
    else expect(request.body.toString('utf8')).toContain('Grüße, signed.');

    if (signing === 'both') {
      // One timestamp for both sets; the onward HMAC is keyed with the secret as written.
      expect(h['x-onward-timestamp']).toBe(h['webhook-timestamp']);
      expect(h['x-onward-signature']).toBe(`sha256=${onwardHmac(NEW_WHSEC, String(h['x-onward-timestamp']), request.body)}`);
    } else {
      expect(h['x-onward-signature']).toBeUndefined();
      expect(h['x-onward-timestamp']).toBeUndefined();
    }
  });

  it('signing: onward (the default) sends no Standard Webhooks headers', async () => {
    const request = await deliverOne({ signingSecret: OLD_PLAIN });
    expect(request.headers['x-onward-signature']).toBe(`sha256=${onwardHmac(OLD_PLAIN, String(request.headers['x-onward-timestamp']), request.body)}`);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) expect(request.headers[name]).toBeUndefined();
  });

  it('rotation: with [new, old] a receiver holding only the old secret and one holding only the new both accept', async () => {
    for (const [newest, oldest] of [[NEW_WHSEC, OLD_PLAIN], [OLD_PLAIN, NEW_WHSEC]] as const) {
      const request = await deliverOne({ signing: 'standard', signingSecret: [newest, oldest] }, `rotation ${newest}`);
      const signatures = String(request.headers['webhook-signature']).split(' ');
      expect(signatures).toHaveLength(2);
      // Newest first: the first signature is the one a new-secret-only verifier computes.
      const id = String(request.headers['webhook-id']);
      const at = new Date(Number(request.headers['webhook-timestamp']) * 1000);
      expect(signatures[0]).toBe(verifier(newest).sign(id, at, request.body));
      expect(signatures[1]).toBe(verifier(oldest).sign(id, at, request.body));
      expect(() => verify(newest, request)).not.toThrow();
      expect(() => verify(oldest, request)).not.toThrow();
    }
  });

  it('the verifier refuses a tampered body, an old timestamp and a wrong secret', async () => {
    const request = await deliverOne({ signing: 'standard', format: 'json', signingSecret: NEW_WHSEC });
    expect(() => verify(NEW_WHSEC, request)).not.toThrow();

    const tampered = { ...request, body: Buffer.from(request.body.toString('utf8').replace('Grüße', 'Grüsse')) };
    expect(tampered.body.equals(request.body)).toBe(false);
    expect(() => verify(NEW_WHSEC, tampered)).toThrow('No matching signature found');

    const id = String(request.headers['webhook-id']);
    const old = String(Number(request.headers['webhook-timestamp']) - TOLERANCE_S - 60);
    // A replay with its timestamp moved back: the signature no longer matches...
    const moved = { ...request, headers: { ...request.headers, 'webhook-timestamp': old } };
    expect(() => verify(NEW_WHSEC, moved)).toThrow(/timestamp too old|No matching signature/);
    // ...and even correctly signed for that time, the verifier refuses it as too old.
    const resigned = { ...moved, headers: { ...moved.headers, 'webhook-signature': verifier(NEW_WHSEC).sign(id, new Date(Number(old) * 1000), request.body) } };
    expect(() => verify(NEW_WHSEC, resigned)).toThrow('Message timestamp too old');

    const wrong = `whsec_${Buffer.from('some other 32-byte key .........').toString('base64')}`;
    expect(() => verify(wrong, request)).toThrow('No matching signature found');
    expect(() => verify(OLD_PLAIN, request)).toThrow('No matching signature found');
  });

  it('signing: onward with a list sends one sha256= per secret, comma-separated, newest first', async () => {
    const secrets = ['newest-secret', NEW_WHSEC, OLD_PLAIN];
    const request = await deliverOne({ signing: 'onward', format: 'raw', signingSecret: secrets });
    const timestamp = String(request.headers['x-onward-timestamp']);
    expect(timestamp).toMatch(/^\d+$/);
    const values = String(request.headers['x-onward-signature']).split(',');
    expect(values).toEqual(secrets.map((secret) => `sha256=${onwardHmac(secret, timestamp, request.body)}`));
    expect(values.every((v) => /^sha256=[0-9a-f]{64}$/.test(v))).toBe(true);
  });

  it.each(['both', 'onward'])('configured headers cannot forge or add the signature headers (signing: %s)', async (signing) => {
    const forged = {
      'webhook-id': 'forged-id',
      'Webhook-Timestamp': '1',
      'WEBHOOK-SIGNATURE': 'v1,Zm9yZ2Vk',
      'x-onward-signature': 'sha256=forged',
      'X-Onward-Timestamp': '1',
      'X-Kept': 'kept',
    };
    const request = await deliverOne({ signing, signingSecret: NEW_WHSEC, headers: forged });
    const h = request.headers;
    expect(h['x-kept']).toBe('kept');
    expect(h['x-onward-signature']).toBe(`sha256=${onwardHmac(NEW_WHSEC, String(h['x-onward-timestamp']), request.body)}`);
    if (signing === 'both') {
      expect(h['webhook-id']).toBe(h['idempotency-key']);
      expect(h['webhook-timestamp']).toBe(h['x-onward-timestamp']);
      expect(String(h['webhook-signature']).split(' ')).toHaveLength(1);
      expect(() => verify(NEW_WHSEC, request)).not.toThrow();
    } else {
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) expect(h[name]).toBeUndefined();
    }
  });

  it('delivery events are signed too: a standardwebhooks receiver holding either secret of a rotation accepts each event, whose webhook-id is the event id', async () => {
    const hooks = await startHttpSink();
    defer(() => hooks.close());
    const events = await startHttpSink();
    defer(() => events.close());
    const secrets = [NEW_WHSEC, OLD_PLAIN];
    const t = await startDeliveryRelay({
      targets: {
        hooks: { type: 'http', url: hooks.url, timeout: '2s', signing: 'standard', signingSecret: secrets },
        appEvents: { type: 'http', url: events.url, format: 'json', timeout: '2s', signing: 'standard', signingSecret: secrets },
      },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
      events: { target: 'appEvents' },
    });
    defer(() => t.close());
    const queueId = await t.send({ from: FROM, to: [TO] }, message('evented'));
    const [delivery] = await hooks.waitFor(1);
    const [event] = await events.waitFor(1);
    for (const secret of secrets) {
      expect(() => verify(secret, delivery!)).not.toThrow();
      const body = verify(secret, event!) as { id: string; type: string; queueId: string };
      expect(body).toMatchObject({ type: 'delivered', queueId });
      expect(event!.headers['webhook-id']).toBe(body.id);
      expect(event!.headers['idempotency-key']).toBe(body.id);
    }
    expect(() => verify(OLD_PLAIN, { ...event!, body: Buffer.from(event!.body.toString('utf8').replace('delivered', 'failed')) })).toThrow();
  });
});
