/**
 * Bulk actions on the PostgreSQL spool (SPEC 12): the same scenarios as the level suite
 * (test/helpers/bulk.ts) against `onward serve` on a throwaway PostgreSQL, SIGKILL mid-bulk
 * included.
 */
import { expect, it } from '@jest/globals';
import { bulkByFilter, killMidBulk, type BulkRelay } from '../../helpers/bulk.js';
import { closedPort, makeTempDir, removeDir, spawnServeChild, useTeardown } from '../../helpers/common.js';
import { startNodes, type ClusterNode } from '../../helpers/pg-cluster.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';

describePg('bulk actions (postgres spool)', () => {
  const cluster = usePostgres();
  const teardown = useTeardown();

  async function node(database: string): Promise<ClusterNode> {
    const dir = await makeTempDir('onward-pg-bulk-');
    teardown.add(() => removeDir(dir));
    const url = await cluster().createDatabase(database);
    const port = await closedPort();
    const [started] = await startNodes(teardown, dir, {
      url,
      sinkUrl: `http://127.0.0.1:${String(port)}/closed`,
      nodes: 1,
      lease: '5s',
      extra: { retry: { schedule: ['1h'], jitter: 0 }, targets: { hook: { circuit: { failures: 100000, probe: '100ms' } } } },
    });
    return started!;
  }

  const asRelay = (n: ClusterNode): BulkRelay => ({ configPath: n.configPath, adminPort: n.adminPort, smtpPort: n.smtpPort });

  it('applies each action to exactly the messages a filter matches, by API and CLI', async () => {
    await bulkByFilter(asRelay(await node('bulk_filter')));
  }, 90_000);

  it('leaves every message valid when killed mid-bulk; the rerun finishes the job', async () => {
    const first = await node('bulk_kill');
    let serve = first.serve;
    await killMidBulk(
      asRelay(first),
      () => serve.kill(),
      async () => {
        serve = await spawnServeChild(first.configPath, { timeoutMs: 30_000 });
        teardown.add(() => serve.kill());
        return asRelay(first);
      },
      1500,
    );
    expect(serve.pid).not.toBe(first.serve.pid);
  }, 240_000);
});
