/**
 * At-least-once across a crash (SPEC section 4): the built relay runs as a child process
 * (`node bin/onward serve`), is SIGKILLed while HTTP deliveries are in flight, and restarts on
 * the same spool. Every accepted message must reach the sink; repeats carry the same
 * Idempotency-Key and a higher X-Onward-Attempt (the attempt cut short counts).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ensureBuilt, makeTempDir, openSpool, removeDir, useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { deliveryConfigDoc, InFlightGauge, sendMany, simpleMessage, spawnRelay, writeConfig } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';
const COUNT = 30;

describe('crash during delivery', () => {
  const defer = useCleanup();

  beforeAll(() => {
    ensureBuilt();
  }, 120_000);

  it('delivers every accepted message after a SIGKILL mid-delivery, repeats keeping their Idempotency-Key', async () => {
    const gauge = new InFlightGauge();
    const sink = await startHttpSink({ respond: () => gauge.track(300, { status: 200 }) });
    defer(() => sink.close());
    const dir = await makeTempDir('onward-crash-');
    defer(() => removeDir(dir));
    const configPath = await writeConfig(
      dir,
      deliveryConfigDoc(dir, {
        log: { level: 'info' }, // the child announces its port in the "onward ready" line
        targets: { hooks: { type: 'http', url: sink.url, timeout: '5s', concurrency: 8 } },
        routes: [{ match: '*@hooks.test', target: 'hooks' }],
      }),
    );

    const first = await spawnRelay(configPath);
    defer(() => first.kill('SIGKILL'));
    const messages = Array.from({ length: COUNT }, () => ({ from: FROM, to: ['a@hooks.test'], raw: simpleMessage({ to: 'a@hooks.test' }) }));
    const ids = await sendMany(first.port, messages, 10);
    expect(new Set(ids).size).toBe(COUNT);

    // Kill while the sink holds requests that the relay has not seen answered yet.
    await waitForValue(() => gauge.current, (n) => n >= 1 && sink.requests.length >= 8, 5000, 'deliveries in flight');
    const inFlightAtKill = gauge.current;
    const beforeKill = sink.requests.length;
    first.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(beforeKill).toBeLessThan(COUNT); // the crash really came mid-way

    const second = await spawnRelay(configPath);
    defer(() => second.kill('SIGKILL'));
    const seen = () => new Set(sink.requests.map((r) => String(r.headers['x-onward-queue-id'])));
    await waitForValue(seen, (s) => ids.every((id) => s.has(id)), 15_000, 'every accepted message at the sink');
    // Requests the first relay never saw answered are repeated by the second one: wait until the
    // sink has been idle for a while (the retry step is 200ms), nothing in flight.
    let lastCount = -1;
    let quietSince = Date.now();
    await waitForValue(
      () => {
        if (sink.requests.length !== lastCount || gauge.current > 0) {
          lastCount = sink.requests.length;
          quietSince = Date.now();
        }
        return Date.now() - quietSince;
      },
      (quietMs) => quietMs >= 1000,
      15_000,
      'the sink to go quiet',
    );

    // Stop the second relay gracefully, then read the spool it leaves behind.
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    const spool = await openSpool(join(dir, 'spool'));
    defer(() => spool.close());

    const byKey = new Map<string, { queueId: string; attempt: number }[]>();
    for (const r of sink.requests) {
      const key = String(r.headers['idempotency-key']);
      byKey.set(key, [...(byKey.get(key) ?? []), { queueId: String(r.headers['x-onward-queue-id']), attempt: Number(r.headers['x-onward-attempt']) }]);
    }
    expect([...byKey.keys()].sort()).toEqual(ids.map((id) => `${id}.0`).sort());
    const repeated = [...byKey.entries()].filter(([, rs]) => rs.length > 1);
    // Requests the sink held at the kill were never recorded as answered: they went out again.
    expect(repeated.length).toBeGreaterThanOrEqual(inFlightAtKill);
    expect(sink.requests.length - COUNT).toBe(repeated.reduce((n, [, rs]) => n + rs.length - 1, 0));
    for (const [key, rs] of repeated) {
      expect(rs.every((r) => `${r.queueId}.0` === key)).toBe(true);
      const attempts = rs.map((r) => r.attempt);
      expect(attempts).toEqual([...attempts].sort((a, b) => a - b));
      expect(new Set(attempts).size).toBe(attempts.length); // the crashed attempt counted
    }

    for (const id of ids) {
      expect((await spool.getMessage(id))?.state).toBe('delivered');
      const [delivery] = await spool.getDeliveries(id);
      expect(delivery!.attemptCount).toBe(Math.max(...byKey.get(`${id}.0`)!.map((r) => r.attempt)));
    }
    console.log(`crash test: ${String(inFlightAtKill)} in flight at SIGKILL, ${String(repeated.length)} deliveries repeated, ${String(sink.requests.length)} requests for ${String(COUNT)} messages`);
  }, 30_000);
});
