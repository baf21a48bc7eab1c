/**
 * DKIM signing on the way out (RFC 6376, SPEC section 13), for any transport that hands a
 * message to another MTA (smtp targets now, mx targets later). The spool keeps the bytes it
 * received; a transport signs its own copy just before sending.
 *
 * Canonicalisation, body hash and the signature header come from mailauth's signer; onward
 * chooses the key (by the From: domain) and the header fields (with From oversigned).
 */
import { createPublicKey } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import type { DkimKeyConfig } from '../config/types.js';
import { headerEnd, headerFields } from '../message/headers.js';

/** Signs one message: the bytes with a `DKIM-Signature` prepended, or the same bytes when no key applies. */
export type DkimSign = (message: Buffer) => Promise<Buffer>;

/** A message that should have been signed could not be: the transport must not send it unsigned. */
export class DkimSignError extends Error {
  override readonly name = 'DkimSignError';
}

/**
 * A signer over `keys`: a message whose From: domain (or its closest parent domain) has a key
 * is signed relaxed/relaxed with it (`rsa-sha256` or `ed25519-sha256` after the key type,
 * `d=` the key's domain); any other message passes unchanged.
 * @throws DkimSignError (from the returned function) when a key applies but signing fails.
 */
export function createDkimSigner(keys: readonly DkimKeyConfig[]): DkimSign {
  const byDomain = new Map(keys.map((k) => [k.domain, k]));
  if (byDomain.size === 0) return (message) => Promise.resolve(message);
  return async (message) => {
    const domain = fromDomain(message);
    const key = domain === null ? undefined : closestKey(byDomain, domain);
    if (key === undefined) return message;
    const signature = await signatureHeader(message, key);
    return Buffer.concat([Buffer.from(signature, 'latin1'), message]);
  };
}

/** The domain of the first address in the first From: field, lower-case ASCII; null when there is none. */
export function fromDomain(message: Buffer): string | null {
  const block = message.subarray(0, headerEnd(message)).toString('utf8');
  const from = headerFields(block).find(([name]) => name.toLowerCase() === 'from');
  if (from === undefined) return null;
  const address = addressparser(from[1], { flatten: true }).find((a) => a.address !== '')?.address;
  const at = address?.lastIndexOf('@') ?? -1;
  if (address === undefined || at < 0) return null;
  const domain = address.slice(at + 1).trim().replace(/\.$/, '').toLowerCase();
  return domain === '' ? null : domainToASCII(domain) || domain;
}

/** `mail.example.com` takes the key of `mail.example.com`, else `example.com`, else `com`. */
function closestKey(byDomain: ReadonlyMap<string, DkimKeyConfig>, domain: string): DkimKeyConfig | undefined {
  const labels = domain.split('.');
  for (let i = 0; i < labels.length; i++) {
    const key = byDomain.get(labels.slice(i).join('.'));
    if (key) return key;
  }
  return undefined;
}

/** mailauth is loaded when a message is first signed (once, for every caller): a relay without keys never carries it. */
let signerModule: Promise<typeof import('./dkim-signer.js')> | undefined;
const loadSigner = (): Promise<typeof import('./dkim-signer.js')> => (signerModule ??= import('./dkim-signer.js'));

async function signatureHeader(message: Buffer, key: DkimKeyConfig): Promise<string> {
  const { OversigningSigner } = await loadSigner();
  const signer = new OversigningSigner({
    canonicalization: 'relaxed/relaxed',
    signTime: new Date(),
    signatureData: [{ signingDomain: key.domain, selector: key.selector, privateKey: key.privateKeyPem, algorithm: key.algorithm }],
  });
  await pipeline(Readable.from([message]), signer);
  const [header] = signer.signatureHeaders;
  if (header === undefined || signer.errors.length > 0) {
    const why = signer.errors.map((e) => e.err.message).join('; ') || 'no signature produced';
    throw new DkimSignError(`cannot DKIM-sign for ${key.domain} (selector ${key.selector}): ${why}`);
  }
  return `${header}\r\n`;
}

/** The DNS TXT record that publishes a key's public half. */
export interface DkimRecord {
  /** `<selector>._domainkey.<domain>` */
  readonly name: string;
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimKeyConfig['algorithm'];
  /** `v=DKIM1; k=rsa|ed25519; p=<base64>` (RSA: the SubjectPublicKeyInfo; Ed25519: the raw 32 bytes, RFC 8463). */
  readonly value: string;
}

export function dkimRecord(key: DkimKeyConfig): DkimRecord {
  const publicKey = createPublicKey(key.privateKeyPem);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ed25519 = key.algorithm === 'ed25519-sha256';
  // An Ed25519 SPKI is a fixed 12-byte prefix and the 32-byte key.
  const p = (ed25519 ? spki.subarray(spki.length - 32) : spki).toString('base64');
  return {
    name: `${key.selector}._domainkey.${key.domain}`,
    domain: key.domain,
    selector: key.selector,
    algorithm: key.algorithm,
    value: `v=DKIM1; k=${ed25519 ? 'ed25519' : 'rsa'}; p=${p}`,
  };
}
