/**
 * Delivery events survive a crash (SPEC 11): the built relay (`onward serve`, a child process)
 * records outcomes while the events target refuses everything, so the events sit in the spool
 * undelivered; SIGKILL; a restart on the same spool delivers every one of them, with the ids
 * they were written with.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ensureBuilt, makeTempDir, openSpool, removeDir, useCleanup, waitForValue } from '../../helpers/common.js';
import { cliJson } from '../../helpers/cli.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { deliveryConfigDoc, sendMany, simpleMessage, spawnRelay, writeConfig } from '../../helpers/delivery-relay.js';

const COUNT = 10;

describe('delivery events across a crash', () => {
  const defer = useCleanup();

  beforeAll(() => {
    ensureBuilt();
  }, 120_000);

  it('loses no event written before a SIGKILL: the restarted relay delivers them all', async () => {
    const hooks = await startHttpSink();
    defer(() => hooks.close());
    let blocked = true;
    const events = await startHttpSink({ respond: () => ({ status: blocked ? 503 : 200 }) });
    defer(() => events.close());
    const dir = await makeTempDir('onward-events-crash-');
    defer(() => removeDir(dir));
    const configPath = await writeConfig(
      dir,
      deliveryConfigDoc(dir, {
        log: { level: 'info' }, // the child announces its port in the "onward ready" line
        targets: {
          hooks: { type: 'http', url: hooks.url, timeout: '5s', concurrency: 4 },
          appEvents: { type: 'http', url: events.url, format: 'json', timeout: '5s', concurrency: 2, circuit: { failures: 1000 } },
        },
        routes: [{ match: '*@hooks.test', target: 'hooks' }],
        events: { target: 'appEvents', types: ['delivered'] },
      }),
    );

    const first = await spawnRelay(configPath);
    defer(() => first.kill('SIGKILL'));
    const ids = await sendMany(first.port, Array.from({ length: COUNT }, (_, i) => ({ from: 'sender@client.test', to: [`r${String(i)}@hooks.test`], raw: simpleMessage({ to: `r${String(i)}@hooks.test` }) })), 5);
    await hooks.waitFor(COUNT, 10_000);
    // Every outcome recorded: each message's event has been tried (and refused) at least once.
    const tried = (): Set<string> => new Set(events.requests.map((r) => String(r.headers['idempotency-key'])));
    await waitForValue(tried, (s) => ids.every((id) => s.has(`${id}.0.1.delivered`)), 10_000, 'a refused try of every event');
    first.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // The operator's view of the stopped spool: no messages in the queue, the events with --events.
    const env = { configPath };
    expect(await cliJson<unknown[]>(env, ['spool', 'list', '--json'])).toEqual([]);
    const listed = await cliJson<{ id: string; sender: string; messageId: string }[]>(env, ['spool', 'list', '--events', '--json']);
    expect(listed.map((e) => e.messageId).sort()).toEqual(ids.map((id) => `${id}.0.1.delivered`).sort());
    expect(listed.every((e) => e.sender === '')).toBe(true);
    const shown = await cliJson<{ eventOf: string; headers: unknown[] }>(env, ['spool', 'show', listed[0]?.id ?? '', '--json']);
    expect(ids).toContain(shown.eventOf);
    expect(shown.headers).toEqual([]);

    // On disk: every event, undelivered, beside its delivered message.
    const spool = await openSpool(join(dir, 'spool'));
    const waiting: string[] = [];
    for await (const e of spool.list({ events: true })) waiting.push(e.message.eventOf ?? '');
    const messageStates = await Promise.all(ids.map(async (id) => (await spool.getMessage(id))?.state));
    await spool.close();
    expect(waiting.sort()).toEqual([...ids].sort());
    expect(messageStates.every((s) => s === 'delivered')).toBe(true);

    blocked = false;
    const before = events.requests.length;
    const second = await spawnRelay(configPath);
    defer(() => second.kill('SIGKILL'));
    const acceptedIds = (): Set<string> => new Set(events.requests.slice(before).map((r) => String(r.headers['idempotency-key'])));
    await waitForValue(acceptedIds, (s) => ids.every((id) => s.has(`${id}.0.1.delivered`)), 15_000, 'every event after the restart');
    for (const r of events.requests.slice(before)) {
      const body = JSON.parse(r.body.toString('utf8')) as { id: string; type: string; queueId: string };
      expect(body.id).toBe(r.headers['idempotency-key']);
      expect(body.type).toBe('delivered');
      expect(ids).toContain(body.queueId);
    }
    expect(hooks.requests).toHaveLength(COUNT); // the messages were not delivered again
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  }, 60_000);
});
