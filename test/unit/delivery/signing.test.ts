/**
 * The signature headers as a pure function (src/delivery/signing.ts): the published Standard
 * Webhooks example vector, the onward scheme, and which header sets each scheme sends.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { signatureHeaders, standardKey } from '../../../src/delivery/signing.js';

// The example of the Standard Webhooks specification (and the libraries' tests).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: Buffer.from('{"test": 2432232314}'),
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('signatureHeaders', () => {
  it('reproduces the Standard Webhooks example signature', () => {
    const headers = signatureHeaders({ signing: 'standard', signingSecrets: [VECTOR.secret] }, VECTOR.id, VECTOR.timestamp, VECTOR.body);
    expect(headers).toEqual({ 'webhook-id': VECTOR.id, 'webhook-timestamp': '1614265330', 'webhook-signature': VECTOR.signature });
  });

  it('signs with every secret, newest first: space-separated v1, and comma-separated sha256=', () => {
    const headers = signatureHeaders({ signing: 'both', signingSecrets: ['plain', VECTOR.secret] }, VECTOR.id, VECTOR.timestamp, VECTOR.body);
    const plainV1 = createHmac('sha256', 'plain').update(`${VECTOR.id}.${VECTOR.timestamp}.`).update(VECTOR.body).digest('base64');
    expect(headers['webhook-signature']).toBe(`v1,${plainV1} ${VECTOR.signature}`);
    const onward = (secret: string): string => createHmac('sha256', secret).update(`${VECTOR.timestamp}.`).update(VECTOR.body).digest('hex');
    expect(headers['X-Onward-Timestamp']).toBe('1614265330');
    expect(headers['X-Onward-Signature']).toBe(`sha256=${onward('plain')},sha256=${onward(VECTOR.secret)}`);
  });

  it('sends nothing without a secret, and only its own set per scheme', () => {
    expect(signatureHeaders({ signing: 'both', signingSecrets: [] }, 'id', 1, Buffer.alloc(0))).toEqual({});
    expect(Object.keys(signatureHeaders({ signing: 'onward', signingSecrets: ['k'] }, 'id', 1, Buffer.alloc(0)))).toEqual(['X-Onward-Timestamp', 'X-Onward-Signature']);
    expect(Object.keys(signatureHeaders({ signing: 'standard', signingSecrets: ['k'] }, 'id', 1, Buffer.alloc(0)))).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
  });
});

describe('standardKey', () => {
  it('decodes whsec_ base64 and takes any other secret as UTF-8 bytes', () => {
    expect(standardKey('whsec_YWJj')).toEqual(Buffer.from('abc'));
    expect(standardKey('grüße')).toEqual(Buffer.from('grüße', 'utf8'));
  });

  it.each(['whsec_', 'whsec_YWJ', 'whsec_YW*j', 'whsec_YWJj\n', 'whsec_YQ'])('refuses %j', (secret) => {
    expect(standardKey(secret)).toBeNull();
  });
});
