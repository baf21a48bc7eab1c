/**
 * The TLS key and certificate of the front doors (SMTP STARTTLS / implicit TLS, HTTPS
 * submission): read from the configured files on every call, so SIGHUP picks up renewed
 * certificates, and checked as a pair before a reload applies anything.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { RelayError } from '../errors.js';
import type { Config } from './types.js';

export interface TlsMaterial {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** Minimum protocol for STARTTLS, implicit TLS and HTTPS. */
  readonly minVersion: 'TLSv1.2';
}

/** The configured key and certificate, read now; null when `tls` is not configured. */
export function readTlsMaterial(config: Config): TlsMaterial | null {
  if (!config.tls) return null;
  return { key: readFileSync(config.tls.keyPath), cert: readFileSync(config.tls.certPath), minVersion: 'TLSv1.2' };
}

/**
 * Reads the key and certificate and builds a TLS context from them, so an unreadable file or a
 * key that does not match its certificate is a config error naming `tls` before a reload changes
 * anything (the running config then stays in force as a whole).
 */
export function checkTlsMaterial(config: Config): void {
  try {
    const material = readTlsMaterial(config);
    if (material) createSecureContext(material);
  } catch (err) {
    throw new RelayError('ONWARD_ERR_CONFIG_INVALID', `tls: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
