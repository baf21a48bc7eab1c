/**
 * The PostgreSQL backend, loaded when a config names it: a relay on the embedded LevelDB
 * spool never carries the `pg` driver (issue 17, memory).
 */
import type { Spool } from '../types.js';
import type { PostgresSpoolOptions } from './postgres-spool.js';

export async function openPostgresSpool(options: PostgresSpoolOptions): Promise<Spool> {
  const { PostgresSpool } = await import('./postgres-spool.js');
  return PostgresSpool.open(options);
}
