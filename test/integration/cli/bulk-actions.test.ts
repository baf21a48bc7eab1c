/**
 * Bulk actions on the LevelDB spool (SPEC 12): by filter through the admin API and the CLI
 * of a running relay, on a stopped spool, and SIGKILL mid-bulk then the rerun.
 */
import { describe, expect, it } from '@jest/globals';
import { makeCliEnv, runCli, seedSpool, useCliTeardown, type CliEnv } from '../../helpers/cli.js';
import { bulkByFilter, killMidBulk, type BulkRelay } from '../../helpers/bulk.js';
import { closedPort, spawnServeChild, type ServeChild } from '../../helpers/common.js';

describe('bulk actions (level spool)', () => {
  const teardown = useCliTeardown();

  async function relayEnv(): Promise<CliEnv> {
    const env = await makeCliEnv();
    teardown.add(() => env.remove());
    const port = await closedPort();
    env.writeConfig({
      targets: { parked: { type: 'http', url: `http://127.0.0.1:${String(port)}/closed`, circuit: { failures: 100000, probe: '100ms' } } },
      routes: [{ match: '*', target: 'parked' }],
      log: { level: 'info' },
    });
    return env;
  }

  async function serve(env: CliEnv): Promise<ServeChild> {
    const child = await spawnServeChild(env.configPath);
    teardown.add(() => child.kill());
    return child;
  }

  it('applies each action to exactly the messages a filter matches, by API and CLI', async () => {
    const env = await relayEnv();
    await serve(env);
    await bulkByFilter(env);
  }, 60_000);

  it('works on a stopped spool too, and refuses ids mixed with filters', async () => {
    const env = await relayEnv();
    await seedSpool(env.config, [
      ...Array.from({ length: 5 }, (_, i) => ({ from: 'a@client.test', to: [`x${String(i)}@off.test`] })),
      ...Array.from({ length: 3 }, (_, i) => ({ from: 'b@client.test', to: [`y${String(i)}@other.test`] })),
    ]);
    const dry = await runCli(env, ['spool', 'hold', '--sender', 'a@*', '--dry-run']);
    expect(dry.stdout).toBe('hold (dry run): 5 messages would be affected\n');
    const held = await runCli(env, ['spool', 'hold', '--sender', 'a@*', '--json']);
    expect(JSON.parse(held.stdout)).toEqual({ matched: 5, changed: 5 });
    const all = await runCli(env, ['spool', 'retry', '--all', '--json']);
    expect(JSON.parse(all.stdout)).toEqual({ matched: 8, changed: 3 }); // held ones are left alone by retry
    const mixed = await runCli(env, ['spool', 'delete', '0000000000ABCDE', '--sender', 'a@*']);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/ids or filters .*not both/);
  }, 30_000);

  it('leaves every message valid when killed mid-bulk; the rerun finishes the job', async () => {
    const env = await relayEnv();
    let child = await serve(env);
    const relay: BulkRelay = env;
    await killMidBulk(
      relay,
      () => child.kill(),
      async () => {
        child = await serve(env);
        return relay;
      },
      2500,
    );
  }, 120_000);
});
