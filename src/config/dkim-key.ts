/**
 * Reads and checks a DKIM private key file at config load (and so again on SIGHUP): a key that
 * cannot be read, is not a private key, or is of a type DKIM cannot use is a config error that
 * names the file.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DkimAlgorithm } from './types.js';

/** RFC 8301 3.2: verifiers must not accept shorter RSA keys. */
const MIN_RSA_BITS = 1024;

export type DkimKeyRead =
  | { readonly ok: true; readonly pem: string; readonly algorithm: DkimAlgorithm }
  | { readonly ok: false; readonly problem: string };

/** The key at `path` as PKCS#8 PEM with its algorithm, or the problem (naming `path`). */
export function readDkimKey(path: string): DkimKeyRead {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    return { ok: false, problem: `cannot read ${path}: ${reason(err)}` };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (err) {
    return { ok: false, problem: `cannot read ${path}: not a PEM private key (${reason(err)})` };
  }
  const type = key.asymmetricKeyType ?? 'unknown';
  let algorithm: DkimAlgorithm;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) return { ok: false, problem: `${path}: an RSA key of ${bits} bits is too short for DKIM (at least ${MIN_RSA_BITS}, 2048 recommended)` };
    algorithm = 'rsa-sha256';
  } else if (type === 'ed25519') {
    algorithm = 'ed25519-sha256';
  } else {
    return { ok: false, problem: `${path}: unsupported key type ${type}; DKIM keys are RSA (at least ${MIN_RSA_BITS} bits) or Ed25519` };
  }
  return { ok: true, pem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm };
}

/** The error's message (duck-typed: errors from another realm, as under jest, are no `instanceof Error`). */
function reason(err: unknown): string {
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : String(err);
}
