/**
 * SPEC 1: spool commands on a stopped relay change the spool for good — the next `serve`
 * honours them: held stays held (and is not delivered), released is delivered, deleted is
 * gone, retried is due at once instead of after the 1h schedule step.
 */
import { describe, expect, it } from '@jest/globals';
import { sleep, waitUntil } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { apiShow, cliJson, makeCliEnv, openSpoolAt, runCli, seedSpool, startServe, useCliTeardown, type ListEntryJson } from '../../helpers/cli.js';

describe('acting on the stopped spool, then starting the relay', () => {
  const cleanup = useCliTeardown();

  it('keeps a message held offline held and undelivered, delivers the released one, forgets the deleted one and tries the retried one at once', async () => {
    let answer = 503;
    const sink = await startHttpSink({ respond: () => ({ status: answer }) });
    cleanup.add(() => sink.close());
    const env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({
      targets: { hook: { type: 'http', url: sink.url, format: 'raw', circuit: { failures: 1000 } } },
      routes: [{ match: '*', target: 'hook' }],
    });
    const [held, deleted, released, retried] = await seedSpool(env.config, [
      { from: 'app@senders.test', to: ['held@rcpt.test'] },
      { from: 'app@senders.test', to: ['deleted@rcpt.test'] },
      { from: 'app@senders.test', to: ['released@rcpt.test'] },
      { from: 'app@senders.test', to: ['retried@rcpt.test'] },
    ]);
    const ids = { held: held ?? '', deleted: deleted ?? '', released: released ?? '', retried: retried ?? '' };

    // First run: each message is tried once against the 503 sink and deferred for an hour.
    const first = await startServe(env);
    cleanup.add(() => first.kill());
    await sink.waitFor(4);
    await waitUntil('all four deferred', async () => {
      const views = await Promise.all(Object.values(ids).map((id) => apiShow(env, id)));
      return views.every((v) => v.state === 'deferred');
    });
    expect(await first.stop()).toBe(0);

    // Offline: several ids at once, then one each.
    const hold = await runCli(env, ['spool', 'hold', ids.held, ids.released]);
    expect(hold).toMatchObject({ code: 0, stdout: `${ids.held}: held\n${ids.released}: held\n` });
    for (const [action, id, state] of [
      ['release', ids.released, 'queued'],
      ['delete', ids.deleted, 'deleted'],
      ['retry', ids.retried, 'queued'],
    ] as const) {
      const r = await runCli(env, ['spool', action, id]);
      expect({ action, code: r.code, stdout: r.stdout }).toEqual({ action, code: 0, stdout: `${id}: ${state}\n` });
    }
    const spool = await openSpoolAt(env.config);
    try {
      const [retriedDelivery] = await spool.getDeliveries(ids.retried);
      expect(retriedDelivery?.state).toBe('queued');
      expect(retriedDelivery?.dueAt).toBeLessThanOrEqual(Date.now()); // due now, not in an hour
      expect((await spool.getMessage(ids.held))?.state).toBe('held');
      expect(await spool.getBody(ids.deleted)).toBeNull();
    } finally {
      await spool.close();
    }

    // Second run, the sink now accepts: released and retried go out at once, held does not.
    answer = 200;
    const before = sink.requests.length;
    const second = await startServe(env);
    cleanup.add(() => second.kill());
    const queueIdsSince = (): string[] => sink.requests.slice(before).map((r) => String(r.headers['x-onward-queue-id']));
    await waitUntil('released and retried delivered', () => queueIdsSince().includes(ids.released) && queueIdsSince().includes(ids.retried), 5_000);
    await sleep(500);
    expect(queueIdsSince().sort()).toEqual([ids.released, ids.retried].sort());
    expect((await apiShow(env, ids.released)).state).toBe('delivered');
    expect((await apiShow(env, ids.retried)).state).toBe('delivered');
    const heldView = await apiShow(env, ids.held);
    expect(heldView).toMatchObject({ state: 'held', nextAttemptAt: null });
    expect(heldView.deliveries[0]?.attempts).toHaveLength(1); // only the first run's try
    expect((await apiShow(env, ids.deleted)).state).toBe('deleted');
    // Through the running relay: the queue holds only the held message; the deleted one shows with --state.
    const queue = await cliJson<ListEntryJson[]>(env, ['spool', 'list', '--json']);
    expect(queue.map((e) => [e.id, e.state])).toEqual([[ids.held, 'held']]);
    const gone = await cliJson<ListEntryJson[]>(env, ['spool', 'list', '--state', 'deleted', '--json']);
    expect(gone.map((e) => e.id)).toEqual([ids.deleted]);
    expect(await second.stop()).toBe(0);
  }, 45_000);
});
