/**
 * SPEC 1 and 7: the spool CLI on a spool of 2,000 messages — listings stream and `--limit`
 * stops early; offline CLIs and `serve` take turns on the LevelDB lock instead of failing
 * with a lock error; with neither a relay nor a spool the CLI exits 2.
 */
import { cp } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { closedPort, sleep, useCleanup, waitUntil } from '../../helpers/common.js';
import {
  apiStats,
  cliJson,
  makeCliEnv,
  openSpoolAt,
  runCli,
  seedSpool,
  spawnServe,
  useCliTeardown,
  type CliEnv,
  type CliResult,
  type ListEntryJson,
  type StatsJson,
  LIST_HEADER,
  withoutLockWait,
} from '../../helpers/cli.js';
import { isRelayError } from '../../../src/errors.js';

const MESSAGES = 2000;
const ROW = /^[0-9A-Z]{15}\s+(queued|deferred|held)\s/;
const LOCK_ERROR = /LEVEL_LOCKED|in use by another process|lock/i;

function rows(r: CliResult): string[] {
  return r.stdout.split('\n').filter((l) => ROW.test(l));
}

/** The config of a spool CLI env whose one target never answers (every delivery is an ERROR, nothing leaves the queue). */
async function writeHookConfig(env: CliEnv): Promise<void> {
  env.writeConfig({
    targets: { hook: { type: 'http', url: `http://127.0.0.1:${await closedPort()}/hook`, timeout: '2s' } },
    routes: [{ match: '*', target: 'hook' }],
  });
}

describe('the spool CLI on a large spool', () => {
  useCliTeardown(); // kills any child still running once the file is done
  const defer = useCleanup(); // what one case made goes when that case ends

  // Seeded once and never touched by a case: each case works on its own copy (largeSpool).
  let template: CliEnv;
  let ids: string[];
  beforeAll(async () => {
    template = await makeCliEnv();
    await writeHookConfig(template);
    ids = await seedSpool(
      template.config,
      Array.from({ length: MESSAGES }, (_, i) => ({ from: `app${i % 7}@senders.test`, to: [`user${i}@rcpt.test`] })),
      { parallel: 250 },
    );
  }, 60_000);
  afterAll(() => template.remove());

  /** A fresh env holding a copy of the 2,000-message spool (stopped), removed when the case ends. */
  async function largeSpool(): Promise<CliEnv> {
    const env = await makeCliEnv();
    defer(() => env.remove());
    await writeHookConfig(env);
    await cp(template.spoolPath, env.spoolPath, { recursive: true });
    return env;
  }

  it('lists 2,000 messages offline and online, stops early with --limit, and never fails on the LevelDB lock', async () => {
    const env = await largeSpool();
    expect(ids).toHaveLength(MESSAGES);
    const inArrivalOrder = [...ids].sort(); // queue ids sort by arrival (ms, then random)

    // --- stopped: full listings and a limited one (one after another; two at once: see the paged-listing case)
    const human = await runCli(env, ['spool', 'list']);
    const json = await runCli(env, ['spool', 'list', '--json']);
    for (const r of [human, json]) {
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(LIST_HEADER);
    expect(rows(human)).toHaveLength(MESSAGES);
    expect(lines.at(-1)).toBe(`-- ${MESSAGES} messages`);
    // printed as it goes: the header arrived in an earlier chunk than the end of the listing
    expect(human.chunks.length).toBeGreaterThan(1);
    expect(human.chunks[0]?.toString()).toMatch(/^ID\s+STATE/);
    expect(human.chunks[0]?.toString()).not.toContain(`-- ${MESSAGES} messages`);
    const entries = JSON.parse(json.stdout) as ListEntryJson[];
    expect(entries.map((e) => e.id)).toEqual(inArrivalOrder);

    const limited = await runCli(env, ['spool', 'list', '--limit', '5']);
    expect(limited.code).toBe(0);
    expect(rows(limited).map((l) => l.slice(0, 15))).toEqual(inArrivalOrder.slice(0, 5));
    expect(limited.stdout.trimEnd().split('\n').at(-1)).toBe('-- 5 messages');

    // --- an offline listing and `serve` started together: one waits for the other, neither fails
    const listing = runCli(env, ['spool', 'list', '--json']);
    const serve = spawnServe(env);
    defer(() => serve.kill());
    const during = await listing;
    // Whichever opens the spool first, the other waits: the listing may say so, and succeeds.
    expect(during.code).toBe(0);
    expect(during.stderr).toMatch(/^(onward: the spool is in use by another onward command; waiting for it…\n)?$/);
    expect((JSON.parse(during.stdout) as unknown[]).length).toBe(MESSAGES);
    await waitUntil('serve ready after the offline listing let go', async () => {
      if (serve.stderr().match(LOCK_ERROR)) throw new Error(serve.stderr());
      const r = await fetch(`http://127.0.0.1:${env.adminPort}/readyz`).catch(() => null);
      return r?.status === 200;
    }, 15_000);
    expect(serve.stderr()).not.toMatch(LOCK_ERROR);

    // --- running: the same listings through the admin API
    const [onlineLimited, onlineAll, stats] = await Promise.all([
      runCli(env, ['spool', 'list', '--limit', '5', '--json']),
      runCli(env, ['spool', 'list']),
      cliJson<StatsJson>(env, ['spool', 'stats', '--json']),
    ]);
    for (const r of [onlineLimited, onlineAll]) {
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    expect((JSON.parse(onlineLimited.stdout) as ListEntryJson[]).map((e) => e.id)).toEqual(inArrivalOrder.slice(0, 5));
    expect(rows(onlineAll)).toHaveLength(MESSAGES);
    expect(onlineAll.stdout.trimEnd().split('\n').at(-1)).toBe(`-- ${MESSAGES} messages`);
    expect(stats.source).toBe('relay');
    expect(stats.states.queued + stats.states.deferred).toBe(MESSAGES);
    expect(stats.targets['hook']).toMatchObject({ up: expect.any(Boolean), concurrency: expect.any(Number) });
    expect((await apiStats(env)).states.delivered).toBe(0);
    expect(await serve.stop()).toBe(0);
  }, 60_000);

  it('makes a second offline command wait while a paged `spool list` holds the spool, instead of failing with a lock error', async () => {
    // `onward spool list | less`: the reader stops reading, the listing blocks in its write
    // with the LevelDB directory open. Another offline command meanwhile must wait, not fail.
    const env = await largeSpool();
    let letGo: () => void = () => undefined;
    const pagerDone = new Promise<void>((r) => (letGo = r));
    defer(letGo);
    const paged = runCli(env, ['spool', 'list'], { holdStdoutUntil: pagerDone, timeoutMs: 30_000 });
    await waitUntil('the paged listing to hold the spool', async () => {
      try {
        const probe = await openSpoolAt(env.config);
        await probe.close();
        return false;
      } catch (err) {
        if (isRelayError(err, 'ONWARD_ERR_SPOOL_LOCKED')) return true;
        throw err;
      }
    }, 10_000, 100);
    const second = runCli(env, ['spool', 'stats', '--json'], { timeoutMs: 30_000 });
    await sleep(3_000); // longer than any fixed lock wait a CLI might give up after
    letGo();
    const [first, waited] = await Promise.all([paged, second]);
    // The probe above holds the lock for a moment too: the listing may have waited for it.
    expect(first.code).toBe(0);
    expect(withoutLockWait(first.stderr)).toBe('');
    expect(rows(first)).toHaveLength(MESSAGES);
    // It may say that it waits (progress), never that it failed on the lock.
    expect(waited.code).toBe(0);
    expect(withoutLockWait(waited.stderr)).toBe('');
    expect(waited.stderr).not.toMatch(/LOCK/);
    expect((JSON.parse(waited.stdout) as StatsJson).source).toBe('spool');
  }, 40_000);

  it('rejects bad listing options with exit 1 naming the option, before printing any of the listing', async () => {
    const env = await makeCliEnv();
    defer(() => env.remove());
    await writeHookConfig(env);
    await seedSpool(env.config, [{ from: 'app@senders.test', to: ['user@rcpt.test'] }]);
    const [state, limit] = await Promise.all([
      runCli(env, ['spool', 'list', '--json', '--state', 'nope']),
      runCli(env, ['spool', 'list', '--limit', '0']),
    ]);
    expect({ code: state.code, stderr: state.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('--state: unknown state "nope"') });
    expect({ code: limit.code, stderr: limit.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('--limit') });
    // A script reading --json must not get half a document (`[`), a person no orphan header.
    expect({ jsonStdout: state.stdout, humanStdout: limit.stdout }).toEqual({ jsonStdout: '', humanStdout: '' });
  }, 20_000);

  it('exits 2 naming both when no relay answers and there is no spool directory', async () => {
    const env = await makeCliEnv();
    defer(() => env.remove());
    env.writeConfig({
      targets: { outbox: { type: 'file', path: `${env.dir}/outbox` } },
      routes: [{ match: '*', target: 'outbox' }],
    });
    const results = await Promise.all(
      [['spool', 'stats'], ['spool', 'list', '--json'], ['spool', 'show', '000000000000000'], ['spool', 'hold', '000000000000000']].map((args) => runCli(env, args)),
    );
    for (const r of results) {
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
      expect(r.stderr).toContain(`127.0.0.1:${env.adminPort}`);
      expect(r.stderr).toContain(env.spoolPath);
    }
  }, 20_000);
});
