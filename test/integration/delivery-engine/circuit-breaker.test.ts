/**
 * Circuit breaker per target (SPEC section 4): after `circuit.failures` consecutive ERRORs the
 * target is down; due deliveries wait without spending schedule steps, one probe goes out per
 * `circuit.probe`, the first success reopens it and the backlog drains. `retry.maxAge` still applies.
 */
import { describe, expect, it } from '@jest/globals';
import { useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { InFlightGauge, sendMany, simpleMessage, startDeliveryRelay } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';
const batch = (n: number) => Array.from({ length: n }, () => ({ from: FROM, to: ['a@hooks.test'], raw: simpleMessage({ to: 'a@hooks.test' }) }));

describe('circuit breaker', () => {
  const defer = useCleanup();

  it('sends only probes while the target is down and drains the backlog once it answers again', async () => {
    const gauge = new InFlightGauge();
    let up = false;
    const sink = await startHttpSink({ respond: () => gauge.track(20, { status: up ? 200 : 503 }) });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      retry: { schedule: ['200ms'], jitter: 0 },
      targets: { hooks: { type: 'http', url: sink.url, timeout: '2s', concurrency: 4, circuit: { failures: 2, probe: '500ms' } } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    const status = () => t.relay.scheduler.targetStatus().find((s) => s.name === 'hooks')!;
    const attemptsOf = async (ids: string[]) =>
      (await Promise.all(ids.map(async (id) => (await t.relay.spool.getDeliveries(id))[0]!))).map((d) => d.attemptCount);

    const ids = await sendMany(t.port, batch(6), 6);
    await waitForValue(status, (s) => !s.up, 3000, 'the circuit to open');
    await waitForValue(() => gauge.current, (n) => n === 0, 2000, 'the first wave to finish');

    // Watch the open circuit until three probes have gone out.
    gauge.phase = 'down';
    const requestsBefore = sink.requests.length;
    const attemptsBefore = await attemptsOf(ids);
    await waitForValue(() => sink.requests.length - requestsBefore, (n) => n >= 3, 10_000, 'three probes');
    const attemptsAfter = await attemptsOf(ids);
    const probes = sink.requests.length - requestsBefore;

    // One probe at a time, at least a probe interval (500ms) apart; without the circuit 6
    // deliveries on a 200ms schedule would have made some 30 requests per probe interval.
    expect(gauge.maxIn('down')).toBe(1);
    const probeTimes = gauge.samples.filter((s) => s.phase === 'down').map((s) => s.at);
    for (let i = 1; i < probeTimes.length; i++) expect(probeTimes[i]! - probeTimes[i - 1]!).toBeGreaterThanOrEqual(450);
    // Only the probes spent attempts (one more may be claimed and not yet sent); the other
    // deliveries' counters stood still.
    const spent = attemptsAfter.reduce((a, b) => a + b, 0) - attemptsBefore.reduce((a, b) => a + b, 0);
    expect(spent).toBeLessThanOrEqual(probes + 1);
    expect(attemptsAfter.filter((n, i) => n === attemptsBefore[i]).length).toBeGreaterThanOrEqual(ids.length - probes - 1);
    for (const id of ids) expect((await t.relay.spool.getDeliveries(id))[0]!.state).toMatch(/^(deferred|queued)$/);
    expect(status().up).toBe(false);

    // The downstream comes back: the next probe succeeds, the circuit closes, everything drains.
    up = true;
    gauge.phase = 'up';
    await waitForValue(
      async () => Promise.all(ids.map(async (id) => (await t.relay.spool.getMessage(id))?.state)),
      (states) => states.every((s) => s === 'delivered'),
      3000,
      'the backlog to drain',
    );
    expect(status().up).toBe(true);
    for (const id of ids) {
      const [delivery] = await t.relay.spool.getDeliveries(id);
      expect(delivery!.attempts.at(-1)).toMatchObject({ outcome: 'ok', reply: 'HTTP 200 OK' });
      expect(delivery!.attempts.slice(0, -1).every((a) => a.outcome === 'error' && a.reply === 'HTTP 503 Service Unavailable')).toBe(true);
    }
  });

  it('bounces a delivery that outlives retry.maxAge while the target keeps answering ERROR (circuit closed)', async () => {
    const sink = await startHttpSink({ respond: () => ({ status: 503 }) });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      retry: { schedule: ['200ms'], jitter: 0, maxAge: '1s' },
      targets: { hooks: { type: 'http', url: sink.url, timeout: '2s', circuit: { failures: 1000, probe: '20s' } } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());

    const [queueId] = await sendMany(t.port, batch(1), 1);
    const [delivery] = await t.waitForDeliveries(queueId!, (ds) => ds[0]?.state === 'failed', 3000);

    expect(delivery!.attemptCount).toBeGreaterThanOrEqual(3);
    expect(delivery!.recipients).toEqual([expect.objectContaining({ state: 'failed', lastError: 'HTTP 503 Service Unavailable', reported: true })]);
    expect((await t.relay.spool.getMessage(queueId!))?.state).toBe('bounced');
  });

  // Fixed in src by 7a66020 (was: expiry only checked when an attempt ran, so deliveries of a
  // down target outlived retry.maxAge until a probe picked each of them).
  it('bounces deliveries that outlive retry.maxAge while the circuit is open', async () => {
    const sink = await startHttpSink({ respond: () => ({ status: 503 }) });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      retry: { schedule: ['200ms'], jitter: 0, maxAge: '800ms' },
      targets: { hooks: { type: 'http', url: sink.url, timeout: '2s', circuit: { failures: 2, probe: '20s' } } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());

    const ids = await sendMany(t.port, batch(4), 4);
    await waitForValue(
      async () => Promise.all(ids.map(async (id) => (await t.relay.spool.getMessage(id))?.state)),
      (states) => states.every((s) => s === 'bounced'),
      2000,
      'every message bounced after maxAge',
    );
  });
});
