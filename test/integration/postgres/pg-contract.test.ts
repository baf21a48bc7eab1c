/**
 * The spool contract (test/contract) on the PostgreSQL backend: a fresh database per test on
 * a throw-away cluster, opened the way the relay opens it (openSpool with a parsed config).
 */
import { stringify } from 'yaml';
import { openSpool } from '../../../src/app/spool.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Spool } from '../../../src/spool/index.js';
import { describeSpoolContract, type ContractSpoolOptions, type SpoolHarness } from '../../contract/spool-contract.js';
import { Teardown } from '../../helpers/common.js';
import { describePg, usePostgres, type PgCluster } from '../../helpers/postgres.js';

const DAY = 86_400_000;

describePg('postgres spool', () => {
  const cluster = usePostgres();
  let databases = 0;

  function pgHarness(): SpoolHarness {
    const teardown = new Teardown();
    const name = `contract_${String(process.pid)}_${String(++databases)}`;
    let url: Promise<string> | null = null;
    return {
      async open(options = {}): Promise<Spool> {
        url ??= createDatabase(cluster(), name);
        const spool = await openSpool(contractConfig(await url, options), { role: 'relay' });
        teardown.add(() => spool.close());
        return spool;
      },
      // The database is left for the cluster's teardown (dropping it would wait on the pool).
      dispose: () => teardown.run(),
    };
  }

  describeSpoolContract('postgres', pgHarness);
});

/** A new database on `pg`, reached as the password role (as a relay would be). */
async function createDatabase(pg: PgCluster, name: string): Promise<string> {
  await pg.createDatabase(name);
  const url = new URL(pg.passwordUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function contractConfig(url: string, options: ContractSpoolOptions): ReturnType<typeof parseConfig> {
  const doc = {
    nodeId: 'contract-node',
    spool: {
      backend: 'postgres',
      url,
      lease: `${String(options.leaseMs ?? 30_000)}ms`,
      retainFinished: `${String(options.retainFinishedMs ?? 7 * DAY)}ms`,
    },
    dedup: { window: `${String(options.dedupWindowMs ?? DAY)}ms` },
    // Required by the config; the spool never delivers, so the file target is never written.
    targets: { outbox: { type: 'file', path: './contract-outbox' } },
    routes: [{ match: '*', target: 'outbox' }],
  };
  return parseConfig(stringify(doc), {}, 'pg-contract');
}
