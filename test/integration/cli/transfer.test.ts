/**
 * SPEC 9 "Moving a queue": `onward spool transfer --to OTHER.yaml` between two LevelDB spools,
 * as real processes. SIGKILLed midway and rerun, every message is in the target exactly once
 * with its deliveries, attempts, due times and dedup key, and none is left in the source.
 */
import { describe, expect, it } from '@jest/globals';
import { makeCliEnv, runCli, useCliTeardown, type CliEnv } from '../../helpers/cli.js';
import { openSpool } from '../../helpers/common.js';
import { seedDeferred, seedMessage, spawnKillable, unfinishedById } from '../../helpers/transfer.js';
import type { LevelSpool, TransferItem } from '../../../src/spool/index.js';

const COUNT = 1000;
const HOUR = 3_600_000;

describe('onward spool transfer (level to level)', () => {
  const cleanup = useCliTeardown();

  async function envWith(): Promise<CliEnv> {
    const env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({ targets: { hook: { type: 'http', url: 'http://127.0.0.1:9/hook' } }, routes: [{ match: '*', target: 'hook' }] });
    return env;
  }

  async function withSpool<T>(env: CliEnv, work: (spool: LevelSpool) => Promise<T>): Promise<T> {
    const spool = await openSpool(env.spoolPath);
    try {
      return await work(spool);
    } finally {
      await spool.close();
    }
  }

  /** A source spool of COUNT deferred messages; returns what it holds, by queue id. */
  async function seededSource(): Promise<{ env: CliEnv; expected: Map<string, TransferItem> }> {
    const env = await envWith();
    const spool = await openSpool(env.spoolPath, { create: true });
    try {
      await seedDeferred(spool, { count: COUNT, target: 'hook', retryInMs: HOUR });
      const expected = await unfinishedById(spool);
      expect(await spool.countsByState()).toMatchObject({ deferred: COUNT, queued: 0 });
      return { env, expected };
    } finally {
      await spool.close();
    }
  }

  it('moves 1,000 deferred messages exactly once across a SIGKILL and a rerun, with deliveries, attempts, due times and dedup keys', async () => {
    const { env: source, expected } = await seededSource();
    const target = await envWith();
    expect(expected.size).toBe(COUNT);

    const first = spawnKillable(['spool', 'transfer', '--to', target.configPath, '--config', source.configPath]);
    cleanup.add(() => first.kill());
    await first.waitForStderr(/moved 100 messages/, 30_000);
    first.kill();
    expect((await first.exited).signal).toBe('SIGKILL');

    // Killed midway: part of the queue has moved, part has not.
    const leftInSource = await withSpool(source, (s) => Promise.resolve(s.unfinishedCount()));
    const inTarget = await withSpool(target, (s) => Promise.resolve(s.unfinishedCount()));
    expect(leftInSource).toBeGreaterThan(0);
    expect(leftInSource).toBeLessThan(COUNT);
    expect(inTarget).toBeGreaterThanOrEqual(COUNT - leftInSource);

    const rerun = await runCli(source, ['spool', 'transfer', '--to', target.configPath], { timeoutMs: 120_000 });
    expect(rerun.code).toBe(0);
    const summary = /^moved (\d+) messages \((\d+) already there, 0 in flight skipped\)\n$/.exec(rerun.stdout);
    expect(summary?.[1]).toBe(String(leftInSource));
    expect(Number(summary?.[2])).toBeLessThanOrEqual(1); // at most the one caught between import and forget

    await withSpool(source, async (s) => {
      expect((await unfinishedById(s)).size).toBe(0);
      expect(await s.countsByState()).toEqual({ queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 });
      expect((await s.stats()).targets['hook']).toEqual({ queued: 0, deferred: 0 });
      expect((await s.check(false)).problems).toEqual([]);
    });
    await withSpool(target, async (t) => {
      const moved = await unfinishedById(t);
      expect([...moved.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [id, item] of expected) expect({ id, ...moved.get(id) }).toEqual({ id, ...item });
      expect(await t.countsByState()).toMatchObject({ deferred: COUNT, queued: 0, deleted: 0 });
      const deliveries = [...expected.values()].reduce((n, i) => n + i.deliveries.length, 0);
      expect((await t.stats()).targets['hook']).toEqual({ queued: 0, deferred: deliveries });
      const firstDue = Math.min(...[...expected.values()].flatMap((i) => i.deliveries.map((d) => d.dueAt ?? Infinity)));
      expect(await t.nextDueAt('hook')).toBe(firstDue);
      expect((await t.check(false)).problems).toEqual([]);
      // The dedup keys came along: resubmitting message 1 (it has a Message-ID) is a duplicate of its original.
      const original = [...expected.values()].find((i) => i.dedup?.key === 'seed-key-1');
      expect(original).toBeDefined();
      expect(await t.accept(seedMessage(1, 'hook'))).toEqual({ status: 'duplicate', queueId: original?.message.id });
    });
  }, 180_000);

  it('--dry-run counts what would move and changes nothing; --json is one document', async () => {
    const { env: source, expected } = await seededSource();
    const target = await envWith();
    const dry = await runCli(source, ['spool', 'transfer', '--to', target.configPath, '--dry-run', '--json'], { timeoutMs: 60_000 });
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({ moved: COUNT, alreadyThere: 0, inFlightSkipped: 0, dryRun: true });
    await withSpool(source, async (s) => expect(await unfinishedById(s)).toEqual(expected));
    const created = await openSpool(target.spoolPath).then(
      (s) => s.close().then(() => true),
      () => false,
    );
    expect(created).toBe(false); // the dry run did not even create the target
  }, 120_000);

  it('refuses a --to config that is missing or invalid (exit 1, naming the file) and the source spool as its own target', async () => {
    const source = await envWith();
    await openSpool(source.spoolPath, { create: true }).then((s) => s.close());
    const missing = `${source.dir}/nope.yaml`;
    const r1 = await runCli(source, ['spool', 'transfer', '--to', missing]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain(missing);

    const bad = await envWith();
    bad.writeConfig({ targets: { hook: { type: 'nonsense' } } });
    const r2 = await runCli(source, ['spool', 'transfer', '--to', bad.configPath]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(bad.configPath);

    const r3 = await runCli(source, ['spool', 'transfer', '--to', source.configPath]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain('same spool');
  });

  it('refuses a source or target spool another process holds, saying to stop it', async () => {
    const source = await envWith();
    const target = await envWith();
    await openSpool(target.spoolPath, { create: true }).then((s) => s.close());
    const held = await openSpool(source.spoolPath, { create: true });
    try {
      const r = await runCli(source, ['spool', 'transfer', '--to', target.configPath]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/the source spool .* is in use .*stop it.*postgres/);
    } finally {
      await held.close();
    }
    const heldTarget = await openSpool(target.spoolPath);
    try {
      const r = await runCli(source, ['spool', 'transfer', '--to', target.configPath]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/the target spool .* is in use .*stop it/);
    } finally {
      await heldTarget.close();
    }
  });
});
