/**
 * Signature headers of HTTP targets (SPEC sections 4 and 11): onward's own scheme and
 * Standard Webhooks (standardwebhooks.com). A pure function of the target's signing config,
 * the delivery (or event) id, the timestamp and the body bytes, so every request that goes
 * to an http target — messages and delivery events alike — is signed by the same code.
 */
import { createHmac } from 'node:crypto';
import type { HttpTargetConfig } from '../config/types.js';

export type SigningConfig = Pick<HttpTargetConfig, 'signing' | 'signingSecrets'>;

/** Lower-case names of every header this module may set: configured headers never override them. */
export const SIGNATURE_HEADERS: readonly string[] = [
  'x-onward-timestamp',
  'x-onward-signature',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
];

const WHSEC_PREFIX = 'whsec_';
/** Canonical padded base64, as Standard Webhooks libraries decode it (they refuse anything looser). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The Standard Webhooks HMAC key of a secret: `whsec_<base64>` is its decoded bytes (the
 * convention of that standard, so a secret issued for another sender works unchanged), anything
 * else its UTF-8 bytes. Null for a `whsec_` secret that does not decode to at least one byte;
 * config validation refuses those with `signing: standard|both`, so the transport never sees one.
 * (The onward scheme keys its HMAC with the secret's UTF-8 bytes as written, as it always has:
 * receivers already verifying it keep working whatever the secret looks like.)
 */
export function standardKey(secret: string): Buffer | null {
  if (!secret.startsWith(WHSEC_PREFIX)) return Buffer.from(secret, 'utf8');
  const encoded = secret.slice(WHSEC_PREFIX.length);
  if (encoded === '' || !BASE64.test(encoded)) return null;
  return Buffer.from(encoded, 'base64');
}

/**
 * The signature headers for one request (none when the target has no secret). `timestamp` is
 * unix seconds; both schemes carry the same one. Secrets are newest first and each yields one
 * signature, so a receiver holding any of them verifies during a key rotation.
 */
export function signatureHeaders(config: SigningConfig, id: string, timestamp: number, body: Buffer): Record<string, string> {
  const secrets = config.signingSecrets;
  if (secrets.length === 0) return {};
  const time = String(timestamp);
  const headers: Record<string, string> = {};
  if (config.signing === 'onward' || config.signing === 'both') {
    headers['X-Onward-Timestamp'] = time;
    headers['X-Onward-Signature'] = secrets.map((secret) => `sha256=${onwardSignature(secret, time, body)}`).join(',');
  }
  if (config.signing === 'standard' || config.signing === 'both') {
    headers['webhook-id'] = id;
    headers['webhook-timestamp'] = time;
    headers['webhook-signature'] = secrets.map((secret) => `v1,${standardSignature(keyOf(secret), id, time, body)}`).join(' ');
  }
  return headers;
}

/** Hex HMAC-SHA256 of `<timestamp>.<body bytes>`: what `X-Onward-Signature` carries after `sha256=`. */
function onwardSignature(secret: string, timestamp: string, body: Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** Base64 HMAC-SHA256 of `<id>.<timestamp>.<body bytes>`: what `webhook-signature` carries after `v1,`. */
function standardSignature(key: Buffer, id: string, timestamp: string, body: Buffer): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
}

function keyOf(secret: string): Buffer {
  const key = standardKey(secret);
  // Unreachable after config validation; a loud failure beats signing with a wrong key.
  if (key === null) throw new Error('signing secret: whsec_ secret is not valid base64');
  return key;
}
