/**
 * Per-target concurrency (SPEC section 4): never more requests in flight than `concurrency`;
 * contention signals (429) halve the live value toward 1, successes raise it again.
 * The sink counts simultaneous requests itself.
 */
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { closedPort, makeTempDir, removeDir, sleep, useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { InFlightGauge, sendMany, simpleMessage, startDeliveryRelay } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';

const batch = (n: number, to: string) => Array.from({ length: n }, () => ({ from: FROM, to: [to], raw: simpleMessage({ to }) }));

describe('per-target concurrency', () => {
  const defer = useCleanup();

  it('never runs more than `concurrency` requests at once, halves under 429 and climbs back on recovery', async () => {
    const gauge = new InFlightGauge();
    let mode: 'ok' | 'busy' = 'ok';
    const sink = await startHttpSink({
      respond: () => gauge.track(mode === 'ok' ? 150 : 100, { status: mode === 'ok' ? 200 : 429 }),
    });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      targets: {
        // The circuit stays out of the way here (see circuit-breaker.test.ts).
        hooks: { type: 'http', url: sink.url, timeout: '2s', concurrency: 4, circuit: { failures: 1000, probe: '200ms' } },
      },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    const ok = () => sink.requests.filter((_r, i) => gauge.samples[i]?.phase !== 'busy').length;

    // Phase 1: an available downstream, 16 messages at once: the bound is reached, never exceeded.
    gauge.phase = 'ok';
    await sendMany(t.port, batch(16, 'a@hooks.test'), 8);
    await waitForValue(ok, (n) => n >= 16, 8000, '16 deliveries');
    expect(gauge.maxIn('ok')).toBe(4);
    expect(t.relay.scheduler.targetStatus().find((s) => s.name === 'hooks')?.concurrency).toBe(4);

    // Phase 2: the downstream answers 429 (no Retry-After: the 200ms schedule applies).
    await sleep(300);
    mode = 'busy';
    gauge.phase = 'busy';
    await sendMany(t.port, batch(12, 'a@hooks.test'), 6);
    await waitForValue(() => gauge.samples.filter((s) => s.phase === 'busy').length, (n) => n >= 20, 8000, '20 requests answered 429');
    const busy = gauge.samples.filter((s) => s.phase === 'busy');
    // The first wave may still use the bound; once a few 429s came back the limit is down to 1.
    expect(Math.max(...busy.slice(0, 4).map((s) => s.inFlight))).toBeLessThanOrEqual(4);
    expect(gauge.maxIn('busy', 8)).toBe(1);
    expect(t.relay.scheduler.targetStatus().find((s) => s.name === 'hooks')?.concurrency).toBe(1);

    // Phase 3: the downstream recovers; the backlog drains with the limit climbing back to the bound.
    mode = 'ok';
    gauge.phase = 'recovered';
    const queued = await sendMany(t.port, batch(8, 'a@hooks.test'), 4);
    await waitForValue(
      async () => (await Promise.all(queued.map((id) => t.relay.spool.getMessage(id)))).every((m) => m?.state === 'delivered'),
      (done) => done,
      10_000,
      'the backlog to drain',
    );
    await waitForValue(() => t.relay.spool.unfinishedCount(), (n) => n === 0, 10_000, 'every message finished');
    const recovered = gauge.samples.filter((s) => s.phase === 'recovered');
    expect(recovered.length).toBeGreaterThanOrEqual(20);
    expect(recovered[0]!.inFlight).toBe(1);
    expect(gauge.maxIn('recovered')).toBeGreaterThanOrEqual(3);
    expect(gauge.max).toBeLessThanOrEqual(4);
  });

  /**
   * Two routes whose failover lists differ (`hooks` and `hooks+spare`) make two lanes that
   * share the `hooks` target. Setup: a first relay on the same spool leaves 6 + 6 deliveries
   * deferred (every target refusing); a second relay starts on that spool with `hooks` up.
   */
  async function sharedTargetRelays(hooksUrl: string, spareUrl: string, spoolPath: string) {
    const refused = `http://127.0.0.1:${String(await closedPort())}/hook`;
    const routes = [
      { match: '*@a.test', target: 'hooks' },
      { match: '*@b.test', target: ['hooks', 'spare'] },
    ];
    const noCircuit = { failures: 1000, probe: '200ms' };
    const first = await startDeliveryRelay({
      spool: { path: spoolPath },
      targets: {
        hooks: { type: 'http', url: refused, concurrency: 16, circuit: noCircuit },
        spare: { type: 'http', url: refused, circuit: noCircuit },
      },
      routes,
    });
    defer(() => first.close());
    const ids = await sendMany(first.port, [...batch(6, 'x@a.test'), ...batch(6, 'y@b.test')], 6);
    await waitForValue(
      async () => Promise.all(ids.map(async (id) => (await first.relay.spool.getDeliveries(id))[0])),
      (ds) => ds.every((d) => d?.state === 'deferred'),
      10_000, // the setup itself can hit the idle-poll stall below
      'every delivery deferred',
    );
    await first.close();
    await sleep(300); // every retry is due now
    const second = await startDeliveryRelay({
      spool: { path: spoolPath },
      targets: {
        hooks: { type: 'http', url: hooksUrl, timeout: '2s', concurrency: 2 },
        spare: { type: 'http', url: spareUrl, timeout: '2s' },
      },
      routes,
    });
    defer(() => second.close());
    return { second, ids };
  }

  // Lanes sharing a target take its slots before their claims are awaited (TargetState.take),
  // so two lanes pumped together (here: at start) cannot both count the same free slots.
  it('holds the limit when two lanes share a target', async () => {
    const gauge = new InFlightGauge();
    const sink = await startHttpSink({ respond: () => gauge.track(300, { status: 200 }) });
    defer(() => sink.close());
    const spare = await startHttpSink();
    defer(() => spare.close());
    const dir = await makeTempDir('onward-shared-');
    defer(() => removeDir(dir));
    await sharedTargetRelays(sink.url, spare.url, join(dir, 'spool'));

    await waitForValue(() => sink.requests.length, (n) => n >= 12, 10_000, '12 requests at the shared target');

    expect(gauge.max).toBeLessThanOrEqual(2);
  });

  // A lane that found the shared target busy is pumped as soon as an attempt of another lane
  // frees a slot there (TargetState.onSlotFreed), before a newcomer could take that slot at
  // accept — not at the scheduler's idle poll.
  it('starts a waiting lane as soon as the shared target has room again', async () => {
    const held: (() => void)[] = [];
    const sink = await startHttpSink({
      respond: (r) =>
        String(r.headers['x-onward-envelope-to']).startsWith('x@') ? new Promise((resolve) => held.push(() => resolve({ status: 200 }))) : { status: 200 },
    });
    defer(() => sink.close());
    const spare = await startHttpSink();
    defer(() => spare.close());
    const t = await startDeliveryRelay({
      targets: {
        hooks: { type: 'http', url: sink.url, timeout: '30s', concurrency: 2 },
        spare: { type: 'http', url: spare.url, timeout: '2s' },
      },
      routes: [
        { match: '*@a.test', target: 'hooks' },
        { match: '*@b.test', target: ['hooks', 'spare'] },
      ],
    });
    defer(() => t.close());
    const to = (i: number): string => String(sink.requests[i]?.headers['x-onward-envelope-to']);

    // Lane `hooks` fills the target: two requests the sink holds until the test answers them.
    const fullIds = await sendMany(t.port, batch(2, 'x@a.test'), 2);
    await sink.waitFor(2);
    // Lane `hooks+spare` gets a message now, while the target is full: it waits in the due index.
    const [waitingId] = await sendMany(t.port, batch(1, 'y@b.test'), 1);
    expect(sink.requests).toHaveLength(2);

    // One held request is answered: its slot comes free, and only then a newcomer for lane `hooks`.
    held.shift()?.();
    await waitForValue(
      async () => (await Promise.all(fullIds.map((id) => t.relay.spool.getMessage(id)))).filter((m) => m?.state === 'delivered').length,
      (n) => n === 1,
      5000,
      'the answered message recorded',
    );
    const [newcomerId] = await sendMany(t.port, batch(1, 'z@a.test'), 1);
    await waitForValue(() => t.relay.spool.getMessage(newcomerId!), (m) => m?.state === 'delivered', 15_000, 'the newcomer delivered');
    // The freed slot went to the waiting lane; the newcomer came after it.
    expect([to(2), to(3)]).toEqual(['y@b.test', 'z@a.test']);
    expect((await t.relay.spool.getMessage(waitingId!))?.state).toBe('delivered');
    for (const answer of held) answer();
  });
});
