/**
 * DKIM test keys and an independent verifier: keys generated here with node:crypto and
 * written as PEM files, and mailauth's `dkimVerify` answering its TXT lookups from a map of
 * records (mailauth's documented `resolver` option) instead of DNS.
 *
 * ```ts
 * const rsa = writeDkimKey(dir, 'rsa');                    // { path, publicKey }
 * const txt = new Map([['s1._domainkey.example.com', dkimTxt(rsa.publicKey)]]);
 * const [result] = (await verifyDkim(received, txt)).results;
 * expect(result?.status.result).toBe('pass');
 * ```
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DKIMResult, DKIMVerifyResult } from 'mailauth';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';

export interface TestKey {
  readonly path: string;
  readonly publicKey: KeyObject;
}

let counter = 0;

/** A new RSA 2048 or Ed25519 private key as a PKCS#8 PEM file in `dir`. */
export function writeDkimKey(dir: string, type: 'rsa' | 'ed25519', rsaBits = 2048): TestKey {
  const { privateKey, publicKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: rsaBits }) : generateKeyPairSync('ed25519');
  const path = join(dir, `dkim-${type}-${++counter}.pem`);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { path, publicKey };
}

/** The TXT value for a public key, written independently of onward's own dkimRecord. */
export function dkimTxt(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  if (publicKey.asymmetricKeyType === 'ed25519') return `v=DKIM1; k=ed25519; p=${spki.subarray(12).toString('base64')}`;
  return `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
}

/** mailauth's verification of `message`, its TXT lookups answered from `records` (name → value). */
export function verifyDkim(message: Buffer, records: ReadonlyMap<string, string>): Promise<DKIMVerifyResult> {
  return dkimVerify(message, {
    resolver: (name, rrtype) => {
      const value = rrtype === 'TXT' ? records.get(name) : undefined;
      if (value === undefined) return Promise.reject(Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: 'ENOTFOUND' }));
      return Promise.resolve([[value]]);
    },
  });
}

/** The `h=` field names of a DKIM-Signature header, lower-cased. */
export function signedFields(message: Buffer): string[] {
  const text = message.toString('latin1');
  const header = /^DKIM-Signature:((?:.*)(?:\r\n[ \t].*)*)/im.exec(text)?.[1] ?? '';
  const h = /(?:^|;)\s*h=([^;]*)/.exec(header.replace(/\r\n[ \t]/g, ' '))?.[1] ?? '';
  return h.split(':').map((f) => f.trim().toLowerCase()).filter((f) => f !== '');
}

/** The `a=` of a verified signature (mailauth reports it as `algo`, its types say `algorithm`). */
export function algorithm(result: DKIMResult | undefined): unknown {
  return (result as unknown as Record<string, unknown> | undefined)?.['algo'];
}

/** The `c=` of a verified signature (mailauth's `format`). */
export function canonicalization(result: DKIMResult | undefined): unknown {
  return (result as unknown as Record<string, unknown> | undefined)?.['format'];
}
