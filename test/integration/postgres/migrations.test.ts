/**
 * Schema migrations of the postgres spool against a real, throwaway PostgreSQL: from an
 * empty database, concurrently from several nodes, refusing a newer schema, and rolling a
 * failed migration back whole. Every test migrates its own fresh database.
 */
import { expect, it } from '@jest/globals';
import type pg from 'pg';
import { createPool } from '../../../src/spool/postgres/connection.js';
import { MIGRATIONS, SCHEMA_VERSION, migrate, requireCurrentSchema, schemaVersion } from '../../../src/spool/postgres/migrations.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { useCleanup } from '../../helpers/common.js';

describePg('postgres spool migrations', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  let n = 0;

  /** A fresh database, reached as the unprivileged `onward` role with its password. */
  async function freshPool(size = 2): Promise<{ pool: pg.Pool; url: string; newPool: () => pg.Pool }> {
    n += 1;
    const name = `mig_${String(n)}`;
    await cluster().createDatabase(name);
    const url = cluster().passwordUrl.replace(/\/[^/]+$/, `/${name}`);
    const newPool = (): pg.Pool => {
      const p = createPool({ url, pool: size });
      defer(() => p.end());
      return p;
    };
    return { pool: newPool(), url, newPool };
  }

  it('creates the schema and every table from an empty database, then finds nothing to do', async () => {
    const { pool } = await freshPool();
    expect(await schemaVersion(pool, 'onward')).toBe(0);

    expect(await migrate(pool, 'onward')).toEqual({ from: 0, to: SCHEMA_VERSION, applied: MIGRATIONS.map((m) => m.version) });
    const tables = await pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'onward' ORDER BY table_name COLLATE "C"`,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(['attempts', 'bodies', 'dedup_keys', 'deliveries', 'messages', 'nodes', 'onward_schema']);
    const due = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'onward' AND indexname = 'deliveries_due'`);
    expect(due.rows[0]?.indexdef).toMatch(/WHERE .*state = ANY .*queued.*deferred.*lease_owner IS NULL/);
    const opts = await pool.query<{ reloptions: string[] }>(`SELECT reloptions FROM pg_class WHERE oid = 'onward.deliveries'::regclass`);
    expect(opts.rows[0]?.reloptions).toEqual(expect.arrayContaining(['fillfactor=70', 'autovacuum_vacuum_scale_factor=0.02']));

    expect(await migrate(pool, 'onward')).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
    await requireCurrentSchema(pool, 'onward');
  });

  it('lets several nodes start at once: one applies, all end on the same version, none fails', async () => {
    const { newPool } = await freshPool();
    const pools = [newPool(), newPool(), newPool(), newPool()];

    const results = await Promise.all(pools.map((p) => migrate(p, 'onward')));

    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    expect(results.map((r) => r.to)).toEqual(pools.map(() => SCHEMA_VERSION));
    const rows = await pools[0]!.query<{ version: number }>('SELECT version FROM onward.onward_schema ORDER BY version');
    expect(rows.rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('refuses a schema newer than this code, and changes nothing', async () => {
    const { pool } = await freshPool();
    await migrate(pool, 'onward');
    const newer = SCHEMA_VERSION + 1;
    await pool.query(`INSERT INTO onward.onward_schema (version, name) VALUES ($1, 'from the future')`, [newer]);

    await expect(migrate(pool, 'onward')).rejects.toMatchObject({
      code: 'ONWARD_ERR_SPOOL_REFUSED',
      message: expect.stringContaining(`version ${String(newer)}, newer than this onward knows (${String(SCHEMA_VERSION)})`),
    });
    await expect(requireCurrentSchema(pool, 'onward')).rejects.toMatchObject({ message: expect.stringContaining('newer than this onward knows') });
    expect(await schemaVersion(pool, 'onward')).toBe(newer);
  });

  it('rolls a failing migration back whole: its DDL and its version row are gone', async () => {
    const { pool } = await freshPool();
    await migrate(pool, 'onward');
    const broken = [
      ...MIGRATIONS,
      { version: SCHEMA_VERSION + 1, name: 'half done', sql: (s: string) => `CREATE TABLE ${s}.half_done (x int); SELECT no_such_function();` },
    ];

    await expect(migrate(pool, 'onward', { migrations: broken })).rejects.toThrow(/no_such_function/);

    expect(await schemaVersion(pool, 'onward')).toBe(SCHEMA_VERSION);
    const half = await pool.query<{ t: string | null }>(`SELECT to_regclass('onward.half_done') AS t`);
    expect(half.rows[0]?.t).toBeNull();
  });

  it('keeps schemas apart: a second schema in the same database migrates on its own', async () => {
    const { pool } = await freshPool();
    await migrate(pool, 'onward');
    expect(await schemaVersion(pool, 'relay_b')).toBe(0);
    expect((await migrate(pool, 'relay_b')).applied).toEqual(MIGRATIONS.map((m) => m.version));
    await expect(migrate(pool, 'Bad-Name')).rejects.toMatchObject({ code: 'ONWARD_ERR_CONFIG_INVALID' });
  });
});
