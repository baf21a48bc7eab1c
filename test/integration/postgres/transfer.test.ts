/**
 * SPEC 9 "Moving a queue", level to postgres, as real processes: a LevelDB spool with 1,000
 * deferred messages transferred to PostgreSQL, the transfer SIGKILLed midway and rerun: every
 * message exactly once in the target, none left unfinished in the source, and all delivered
 * by the cluster (two `onward serve` nodes) with their original queue and delivery ids.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { createPool } from '../../../src/spool/postgres/connection.js';
import { migrate } from '../../../src/spool/postgres/migrations.js';
import { makeCliEnv, runCli, startServe, useCliTeardown, type CliEnv } from '../../helpers/cli.js';
import { freePort, openSpool, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { seedDeferred, spawnKillable, unfinishedById } from '../../helpers/transfer.js';

const COUNT = 1000;
const HOUR = 3_600_000;

describePg('onward spool transfer (level to postgres)', () => {
  const cluster = usePostgres();
  const cleanup = useCliTeardown();

  /** A postgres config of one node (its own SMTP and admin ports), written beside the source's. */
  async function writeNodeConfig(dir: string, name: string, url: string, sinkUrl: string): Promise<Pick<CliEnv, 'configPath' | 'adminPort'>> {
    const adminPort = await freePort();
    const configPath = join(dir, `${name}.yaml`);
    writeFileSync(
      configPath,
      stringify({
        listen: [{ host: '127.0.0.1', port: await freePort() }],
        hostname: 'relay.test',
        relay: { allowNetworks: ['127.0.0.0/8'] },
        admin: { host: '127.0.0.1', port: adminPort },
        spool: { backend: 'postgres', url, schema: 'onward', lease: '5s' },
        nodeId: name,
        retry: { schedule: ['1h'], jitter: 0 },
        targets: { hook: { type: 'http', url: sinkUrl, format: 'raw' } },
        routes: [{ match: '*', target: 'hook' }],
        shutdownGrace: '1s',
        log: { level: 'warn' },
      }),
    );
    return { configPath, adminPort };
  }

  it('moves 1,000 deferred messages from LevelDB to PostgreSQL across a SIGKILL, then the cluster delivers each with its original ids', async () => {
    const sink = await startHttpSink();
    cleanup.add(() => sink.close());
    const source = await makeCliEnv();
    cleanup.add(() => source.remove());
    source.writeConfig({ targets: { hook: { type: 'http', url: sink.url, format: 'raw' } }, routes: [{ match: '*', target: 'hook' }] });
    const level = await openSpool(source.spoolPath, { create: true });
    const expected = await (async () => {
      try {
        await seedDeferred(level, { count: COUNT, target: 'hook', retryInMs: HOUR });
        return await unfinishedById(level);
      } finally {
        await level.close();
      }
    })();
    const expectedDeliveries = [...expected.values()].flatMap((i) => i.deliveries.map((d) => d.id)).sort();

    await cluster().createDatabase('transfer_cli');
    const url = cluster().passwordUrl.replace(/\/[^/]+$/, '/transfer_cli');
    const pool = createPool({ url, pool: 2 });
    cleanup.add(() => pool.end());
    await migrate(pool, 'onward');
    const nodeA = await writeNodeConfig(source.dir, 'node-a', url, sink.url);
    const nodeB = await writeNodeConfig(source.dir, 'node-b', url, sink.url);

    const first = spawnKillable(['spool', 'transfer', '--to', nodeA.configPath, '--config', source.configPath]);
    cleanup.add(() => first.kill());
    await first.waitForStderr(/moved 100 messages/, 60_000);
    first.kill();
    expect((await first.exited).signal).toBe('SIGKILL');
    const unfinishedInDb = async (): Promise<number> =>
      Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM onward.messages WHERE finished_at IS NULL`)).rows[0]?.n);
    const movedBeforeKill = await unfinishedInDb();
    expect(movedBeforeKill).toBeGreaterThan(0);
    expect(movedBeforeKill).toBeLessThan(COUNT);

    const rerun = await runCli(source, ['spool', 'transfer', '--to', nodeA.configPath, '--json'], { timeoutMs: 180_000 });
    expect(rerun.code).toBe(0);
    const result = JSON.parse(rerun.stdout) as { moved: number; alreadyThere: number; inFlightSkipped: number };
    expect(result.inFlightSkipped).toBe(0);
    expect(result.moved).toBeGreaterThanOrEqual(COUNT - movedBeforeKill);

    const left = await openSpool(source.spoolPath);
    try {
      expect((await unfinishedById(left)).size).toBe(0);
      expect(left.unfinishedCount()).toBe(0);
    } finally {
      await left.close();
    }
    const ids = await pool.query<{ id: string }>(`SELECT id FROM onward.messages WHERE state = 'deferred' ORDER BY id`);
    expect(ids.rows.map((r) => r.id)).toEqual([...expected.keys()].sort());
    const attempts = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM onward.attempts`);
    expect(Number(attempts.rows[0]?.n)).toBe(expectedDeliveries.length);

    // Due now instead of in an hour, then two nodes deliver the queue between them.
    expect((await runCli({ configPath: nodeA.configPath }, ['spool', 'retry', '--all'])).code).toBe(0);
    for (const node of [nodeA, nodeB]) {
      const relay = await startServe(node);
      cleanup.add(() => relay.kill());
    }
    await waitForValue(unfinishedInDb, (n) => n === 0, 120_000, 'every transferred message delivered');
    const keys = new Set(sink.requests.map((r) => String(r.headers['idempotency-key'])));
    expect([...keys].sort()).toEqual(expectedDeliveries);
    const queueIds = new Set(sink.requests.map((r) => String(r.headers['x-onward-queue-id'])));
    expect([...queueIds].sort()).toEqual([...expected.keys()].sort());
  }, 400_000);
});
