/**
 * The spool format version (`v!format`): the key layout in README.md beside this folder is
 * version 1. A spool written before the key existed has that layout, so a missing key means
 * 1 (and is written); a version this code does not know refuses to open rather than misread it.
 */
import { RelayError } from '../../errors.js';
import type { Db } from './context.js';
import { keys } from './keys.js';

export const FORMAT_VERSION = 1;

export async function checkFormat(db: Db, path: string): Promise<void> {
  const raw = await db.get(keys.formatVersion);
  if (raw === undefined) {
    await db.put(keys.formatVersion, Buffer.from(String(FORMAT_VERSION)), { sync: true });
    return;
  }
  const found = raw.toString('utf8');
  if (found !== String(FORMAT_VERSION)) {
    throw new RelayError(
      'ONWARD_ERR_SPOOL_UNAVAILABLE',
      `spool ${path} has format version ${JSON.stringify(found)}; this onward supports version ${String(FORMAT_VERSION)} only (was it written by a newer onward?)`,
    );
  }
}
