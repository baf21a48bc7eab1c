/**
 * Opening the postgres spool the way the relay and the CLI do (openSpool from a parsed config)
 * against a real PostgreSQL: the relay migrates and registers; the CLI refuses a schema
 * missing or newer than this code instead of touching it.
 */
import { expect, it } from '@jest/globals';
import { openSpool } from '../../../src/app/spool.js';
import { parseConfig } from '../../../src/config/load.js';
import { SCHEMA_VERSION } from '../../../src/spool/postgres/migrations.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshSpoolDb } from './spool-fixture.js';

const configFor = (url: string, nodeId: string): ReturnType<typeof parseConfig> =>
  parseConfig(
    `targets:\n  outbox: { type: file, path: ./out }\nroutes:\n  - { match: "*", target: outbox }\nspool: { backend: postgres, url: "${url}", lease: 5s, pool: 3 }\nnodeId: ${nodeId}\n`,
    {},
  );

describePg('postgres spool open', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  it('opens for the relay from config (migrating, node id held) and for the CLI on the current schema', async () => {
    const db = await freshSpoolDb(cluster(), 'open', defer);
    const cliBefore: unknown = await openSpool(configFor(db.url, 'cfg-a'), { role: 'cli' }).catch((e: unknown) => e);
    expect(cliBefore).toMatchObject({ code: 'ONWARD_ERR_SPOOL_UNAVAILABLE', message: expect.stringContaining('version 0') });

    const relay = await openSpool(configFor(db.url, 'cfg-a'), { role: 'relay' });
    defer(() => relay.close());
    expect(relay.backend).toBe('postgres');
    expect(relay.available()).toBe(true);
    const version = await db.observer.query<{ v: number }>(`SELECT max(version) AS v FROM onward.onward_schema`);
    expect(version.rows[0]?.v).toBe(SCHEMA_VERSION);
    const second: unknown = await openSpool(configFor(db.url, 'cfg-a'), { role: 'relay' }).catch((e: unknown) => e);
    expect(second).toMatchObject({ code: 'ONWARD_ERR_SPOOL_LOCKED' });

    const cli = await openSpool(configFor(db.url, 'cfg-a'), { role: 'cli' });
    defer(() => cli.close());
    expect(cli.backend).toBe('postgres');
  });

  it('refuses, for the CLI, a schema newer than this code', async () => {
    const db = await freshSpoolDb(cluster(), 'open', defer);
    const relay = await openSpool(configFor(db.url, 'cfg-b'), { role: 'relay' });
    await relay.close();
    await db.observer.query(`INSERT INTO onward.onward_schema (version, name) VALUES ($1, 'from the future')`, [SCHEMA_VERSION + 1]);

    const err: unknown = await openSpool(configFor(db.url, 'cfg-b'), { role: 'cli' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_REFUSED', message: expect.stringContaining('newer than this onward knows') });
    expect(String((err as Error).message)).not.toContain(cluster().password);
  });
});
