/**
 * AUTH PLAIN/LOGIN against `relay.users`. A password may be plaintext (usually
 * `${ENV}`-substituted) or a hash: bcrypt (`$2a$`/`$2b$`/`$2y$`), argon2 (`$argon2id$`…)
 * or scrypt in the form `$scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>`.
 * Every comparison is constant-time, and every user is checked, so timing says nothing
 * about which usernames exist.
 */
import { createHash, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { verify as argon2Verify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import type { RelayUser } from '../config/types.js';

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

function sameBytes(a: string, b: string): boolean {
  // Hash both sides first: timingSafeEqual needs equal lengths, and lengths must not leak either.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export async function verifyPassword(stored: string, given: string): Promise<boolean> {
  if (/^\$2[aby]\$/.test(stored)) return bcrypt.compare(given, stored);
  if (stored.startsWith('$argon2')) return argon2Verify(stored, given).catch(() => false);
  const s = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$/.exec(stored);
  if (s) {
    const expected = Buffer.from(s[5] ?? '', 'base64');
    const N = Number(s[1]);
    const r = Number(s[2]);
    const key = await scrypt(given, Buffer.from(s[4] ?? '', 'base64'), expected.length, { N, r, p: Number(s[3]), maxmem: 256 * N * r });
    return timingSafeEqual(key, expected);
  }
  return sameBytes(stored, given);
}

/** The matching username, or null. All users are checked whatever the outcome. */
export async function authenticate(users: readonly RelayUser[], username: string, password: string): Promise<string | null> {
  let match: string | null = null;
  for (const user of users) {
    const nameOk = sameBytes(user.username, username);
    const passOk = await verifyPassword(user.password, password);
    if (nameOk && passOk) match = user.username;
  }
  return match;
}

/** The scrypt hash form above, for `onward hash-password`. */
export async function hashPassword(password: string, salt: Buffer): Promise<string> {
  const N = 16384;
  const r = 8;
  const p = 1;
  const key = await scrypt(password, salt, 32, { N, r, p, maxmem: 256 * N * r });
  return `$scrypt$N=${N},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const WINDOW_MS = 10 * 60_000;

/** Failed AUTH attempts per client IP in a fixed 10-minute window. */
export class AuthFailureLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(private maxFailures: number) {}

  setLimit(maxFailures: number): void {
    this.maxFailures = maxFailures;
  }

  blocked(ip: string, now: number = Date.now()): boolean {
    const f = this.failures.get(ip);
    if (!f || f.resetAt <= now) return false;
    return f.count >= this.maxFailures;
  }

  fail(ip: string, now: number = Date.now()): void {
    const f = this.failures.get(ip);
    if (!f || f.resetAt <= now) this.failures.set(ip, { count: 1, resetAt: now + WINDOW_MS });
    else f.count += 1;
    // Bounded memory under a spray from many addresses: forget expired entries now and then.
    if (this.failures.size > 10_000) for (const [k, v] of this.failures) if (v.resetAt <= now) this.failures.delete(k);
  }
}
