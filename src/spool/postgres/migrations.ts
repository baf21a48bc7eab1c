/**
 * Versioned migrations of the shared spool's schema, run at every node's start and by
 * `onward spool migrate`. One transaction does it all under a transaction-scoped advisory
 * lock taken first, so nodes starting together queue up behind one migrator and then find
 * nothing left to do (PostgreSQL's DDL is transactional: a failed migration leaves nothing).
 * A schema newer than this code knows is refused: an old node must not write rows whose
 * meaning a newer version changed.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { RelayError } from '../../errors.js';
import { schemaV1 } from './schema-v1.js';
import { schemaV2 } from './schema-v2.js';

export interface Migration {
  /** 1, 2, 3, ...: applied in order, each exactly once. */
  readonly version: number;
  readonly name: string;
  /** The SQL, given the quoted schema name. */
  readonly sql: (schema: string) => string;
}

/** Append only: a released migration never changes (nodes already ran it). */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'messages, bodies, deliveries, attempts, dedup keys, nodes', sql: schemaV1 },
  { version: 2, name: 'delivery events: messages.event_of', sql: schemaV2 },
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** `spool.schema` as an SQL identifier; only plain lower-case names, so quoting never surprises. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new RelayError('ONWARD_ERR_CONFIG_INVALID', `spool.schema must be a plain lower-case name ([a-z_][a-z0-9_]*, at most 63 characters), not ${JSON.stringify(schema)}`);
  }
  return `"${schema}"`;
}

/** The advisory lock key of one schema's migrations: the same on every node, distinct per schema. */
export function migrationLockKey(schema: string): bigint {
  return createHash('sha256').update(`onward migrate ${schema}`).digest().readBigInt64BE(0);
}

export interface MigrateResult {
  /** Version found (0: empty database). */
  readonly from: number;
  readonly to: number;
  /** Versions this call applied; empty when another node had already done it. */
  readonly applied: readonly number[];
}

export interface MigrateOptions {
  /**
   * How long to wait for another node's migration (the lock) plus our own statements. Longer
   * than the usual statement bound: a future migration may rewrite a large table. @defaultValue 120000
   */
  readonly timeoutMs?: number;
  readonly migrations?: readonly Migration[];
}

/** Brings `schema` up to the newest version, or refuses a newer one (RelayError). */
export async function migrate(pool: pg.Pool, schema: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const s = quoteSchema(schema);
  const migrations = [...(options.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);
  const newest = migrations.at(-1)?.version ?? 0;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL statement_timeout = ${String(timeoutMs)}`);
      await client.query(`SET LOCAL lock_timeout = ${String(timeoutMs)}`);
      // The lock comes before anything else, CREATE SCHEMA included: two concurrent
      // `CREATE SCHEMA IF NOT EXISTS` can still collide on the catalog's unique index.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(schema).toString()]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.onward_schema (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const from = await versionIn(client, s);
      if (from > newest) throw newerSchema(schema, from, newest);
      const applied: number[] = [];
      for (const m of migrations) {
        if (m.version <= from) continue;
        await client.query(m.sql(s));
        await client.query(`INSERT INTO ${s}.onward_schema (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        applied.push(m.version);
      }
      await client.query('COMMIT');
      return { from, to: Math.max(from, newest), applied };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true; // the connection is gone: do not hand it back to the pool
      });
      throw err;
    }
  } finally {
    client.release(broken);
  }
}

/** The version a schema is at (0 when it has no schema table yet); refuses nothing. */
export async function schemaVersion(db: Pick<pg.Pool, 'query'>, schema: string): Promise<number> {
  const s = quoteSchema(schema);
  const exists = await db.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${s}.onward_schema`]);
  if (exists.rows[0]?.t == null) return 0;
  return versionIn(db, s);
}

/**
 * For commands that use the schema without migrating it (the CLI with `--no-migrate`, a
 * reader): refuses a schema that is missing, older or newer than this code.
 */
export async function requireCurrentSchema(db: Pick<pg.Pool, 'query'>, schema: string): Promise<void> {
  const found = await schemaVersion(db, schema);
  if (found > SCHEMA_VERSION) throw newerSchema(schema, found, SCHEMA_VERSION);
  if (found < SCHEMA_VERSION) {
    throw new RelayError('ONWARD_ERR_SPOOL_UNAVAILABLE', `spool schema ${schema} is at version ${String(found)}, this onward needs ${String(SCHEMA_VERSION)}: run onward spool migrate`);
  }
}

async function versionIn(db: Pick<pg.Pool, 'query'>, quoted: string): Promise<number> {
  const result = await db.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quoted}.onward_schema`);
  return result.rows[0]?.v ?? 0;
}

function newerSchema(schema: string, found: number, known: number): RelayError {
  return new RelayError(
    'ONWARD_ERR_SPOOL_REFUSED',
    `spool schema ${schema} is at version ${String(found)}, newer than this onward knows (${String(known)}): upgrade onward on this node; refusing to start`,
  );
}

/** The advisory lock key of one schema's housekeeping (one janitor of the cluster at a time). */
export function janitorLockKey(schema: string): bigint {
  return createHash('sha256').update(`onward janitor ${schema}`).digest().readBigInt64BE(0);
}
