/**
 * No stuck work: whatever goes wrong inside an attempt ends as data. A transport that
 * throws, one that never answers, and an outcome the spool will not take each leave the
 * delivery due again by itself — slots released, the attempt recorded as ERROR where it
 * can be — and it is delivered once the cause is gone, without a restart.
 *
 * Real spool, scheduler and HTTP sink. Transports are real (undici to the sink, or a real
 * delivery thread); the faults are switched in front of them by the test, since no healthy
 * transport throws or hangs on cue.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { parseConfig, type Config } from '../../../src/config/index.js';
import { DeliveryScheduler, TransportHost, type DeliveryJob, type Transport, type TransportResult } from '../../../src/delivery/index.js';
import { createTransport, type TransportFactory } from '../../../src/delivery/transports.js';
import { LevelSpool, type DeliveryRecord, type Spool } from '../../../src/spool/index.js';
import { makeTempDir, removeDir, useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { hooksMessage, startDeliveryRelay } from '../../helpers/delivery-relay.js';

const silent = pino({ level: 'silent' });

/** A real transport with a switch in front of it: `throw` makes deliver() throw outright. */
class SwitchedTransport implements Transport {
  mode: 'pass' | 'throw' = 'pass';
  constructor(private readonly inner: Transport) {}

  deliver(job: DeliveryJob): Promise<TransportResult> {
    if (this.mode === 'throw') throw new TypeError('transport exploded (test)');
    return this.inner.deliver(job);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** One `hooks` HTTP target with one slot, a 200 ms retry step and a circuit that stays closed. */
function hooksConfig(dir: string, url: string): Config {
  return parseConfig(
    `spool: { path: ${dir}/spool }\n` +
      `retry: { schedule: [200ms], jitter: 0 }\n` +
      `targets:\n  hooks: { type: http, url: "${url}", format: raw, timeout: 200ms, concurrency: 1, circuit: { failures: 1000, probe: 1s } }\n` +
      `routes: [{ match: "*", target: hooks }]\n`,
  );
}

describe('no stuck work', () => {
  const defer = useCleanup();

  async function start(sink: HttpSink, transports: TransportFactory, wrap: (spool: LevelSpool) => Spool = (s) => s) {
    const dir = await makeTempDir('onward-stuck-');
    defer(() => removeDir(dir));
    const config = hooksConfig(dir, sink.url);
    const real = await LevelSpool.open({ path: config.spool.path, dedupWindowMs: 60_000, retainFinishedMs: 60_000 });
    defer(() => real.close());
    const spool = wrap(real);
    const scheduler = new DeliveryScheduler({ config, spool, logger: silent, reporter: null, transports });
    await scheduler.start();
    defer(() => scheduler.stop(0));
    const deliveryOf = async (queueId: string): Promise<DeliveryRecord | undefined> => (await real.getDeliveries(queueId))[0];
    return { spool: real, scheduler, deliveryOf };
  }

  it('a transport that throws releases its slot, is recorded as ERROR and is delivered on retry', async () => {
    const sink = await startHttpSink();
    defer(() => sink.close());
    const made: SwitchedTransport[] = [];
    const { spool, scheduler, deliveryOf } = await start(sink, (target, options) => {
      const switched = new SwitchedTransport(createTransport(target, options));
      made.push(switched);
      return switched;
    });
    const [transport] = made;
    if (!transport) throw new Error('no transport made');

    transport.mode = 'throw';
    const first = await spool.accept(hooksMessage('first'));
    const failed = await waitForValue(() => deliveryOf(first.queueId), (d) => (d?.attempts.length ?? 0) >= 1, 5000, 'the first attempt recorded');
    expect(failed?.attempts[0]).toMatchObject({ target: 'hooks', outcome: 'error', reply: 'transport failed: transport exploded (test)' });
    expect(failed?.recipients[0]?.lastReply).toMatchObject({ kind: 'x-onward', code: null });

    // The only slot came back: with concurrency 1 a leaked slot would block both messages.
    transport.mode = 'pass';
    const second = await spool.accept(hooksMessage('second'));
    await waitForValue(() => deliveryOf(second.queueId), (d) => d?.state === 'delivered', 5000, 'the second message delivered');
    const retried = await waitForValue(() => deliveryOf(first.queueId), (d) => d?.state === 'delivered', 5000, 'the first message delivered on retry');
    expect(retried?.attempts.map((a) => a.outcome)).toEqual(['error', 'ok']);
    expect(sink.requests.map((r) => r.headers['idempotency-key']).sort()).toEqual([`${first.queueId}.0`, `${second.queueId}.0`].sort());
    expect(scheduler.targetStatus().find((t) => t.name === 'hooks')?.inFlight).toBe(0);
  });

  it('an attempt the delivery thread never answers ends as ERROR by itself and is retried without a restart', async () => {
    const dir = await makeTempDir('onward-stuck-thread-');
    defer(() => removeDir(dir));
    // A stand-in delivery thread: it swallows every first attempt (no answer, ever) and
    // answers OK to the rest.
    const script = join(dir, 'silent-worker.mjs');
    await writeFile(
      script,
      `import { parentPort } from 'node:worker_threads';
parentPort.on('message', (m) => {
  if (m.kind === 'close') parentPort.postMessage({ call: m.call, result: null, error: null });
  if (m.kind !== 'deliver' || m.job.attempt === 1) return;
  parentPort.postMessage({ call: m.call, error: null, result: {
    recipients: m.job.envelope.to.map((address) => ({ address, outcome: 'ok', reply: { kind: 'x-onward', code: null, enhancedStatus: null, text: 'taken by the thread' } })),
    durationMs: 1, retryAfterMs: null, contention: false } });
});
`,
    );
    const host = new TransportHost(silent, pathToFileURL(script));
    defer(() => host.close());
    const sink = await startHttpSink(); // unused by the stand-in thread; the config needs a URL
    defer(() => sink.close());
    const { spool, scheduler, deliveryOf } = await start(sink, (target, options) => host.open(target, options));

    const queued = await spool.accept(hooksMessage('hung'));
    // While the first attempt hangs it holds the target's only slot.
    await waitForValue(() => scheduler.targetStatus().find((t) => t.name === 'hooks')?.inFlight, (n) => n === 1, 2000, 'the attempt in flight');
    // Bounded by twice the 200 ms target timeout plus a margin (attemptBoundMs): then ERROR, then the retry.
    const done = await waitForValue(() => deliveryOf(queued.queueId), (d) => d?.state === 'delivered', 10_000, 'the delivery after the hung attempt');
    expect(done?.attempts.map((a) => a.outcome)).toEqual(['error', 'ok']);
    expect(done?.attempts[0]?.reply).toMatch(/^transport gave no answer within \d+ ms$/);
    expect(done?.recipients[0]?.lastReply?.text).toBe('taken by the thread');
    expect(scheduler.targetStatus().find((t) => t.name === 'hooks')?.inFlight).toBe(0);
    expect(scheduler.leasesOverdue()).toBe(0);
  });

  it('an outcome the spool will not take gives the delivery back to the queue instead of holding the lease', async () => {
    const sink = await startHttpSink();
    defer(() => sink.close());
    // The spool refuses these writes while their switch is on (think: disk full).
    const refuse = { completeAttempt: true, postpone: true };
    const refusing = (spool: LevelSpool): Spool =>
      new Proxy(spool, {
        get(target, key, receiver) {
          if ((key === 'completeAttempt' || key === 'postpone') && refuse[key]) return () => Promise.reject(new Error(`${key} refused (test)`));
          const value: unknown = Reflect.get(target, key, receiver);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    const { spool, scheduler, deliveryOf } = await start(sink, (target, options) => createTransport(target, options), refusing);

    const queued = await spool.accept(hooksMessage('unrecorded'));
    await sink.waitFor(1);
    // Nothing can be written: the lease outlives its bound and the scheduler says so.
    await waitForValue(() => scheduler.leasesOverdue(), (n) => n === 1, 10_000, 'the lease reported overdue');

    // The outcome is still refused, but the delivery can be given back: it comes due again
    // and is retried (same Idempotency-Key), without a restart.
    refuse.postpone = false;
    await sink.waitFor(2, 15_000);
    expect(sink.requests.map((r) => r.headers['idempotency-key'])).toEqual([`${queued.queueId}.0`, `${queued.queueId}.0`]);
    expect(scheduler.leasesOverdue()).toBe(0);

    refuse.completeAttempt = false;
    const delivered = await waitForValue(() => deliveryOf(queued.queueId), (d) => d?.state === 'delivered', 15_000, 'the outcome recorded');
    expect(delivered?.attempts.map((a) => a.outcome)).toEqual(['ok']);
    expect(scheduler.leasesOverdue()).toBe(0);
  }, 40_000);

  it('shows attempts in flight per target in /metrics', async () => {
    const held: (() => void)[] = [];
    const sink = await startHttpSink({ respond: () => new Promise((resolve) => held.push(() => resolve({ status: 200 }))) });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url: sink.url, format: 'raw', concurrency: 4 } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${String(t.relay.adminAddress.port)}/metrics`)).text();
    const series = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(name));

    const ids = await Promise.all(['a', 'b'].map((l) => t.send({ from: 'sender@client.test', to: [`${l}@hooks.test`] }, `Subject: ${l}\r\n\r\n${l}\r\n`)));
    await sink.waitFor(2);
    const during = await scrape();
    expect(series(during, 'onward_deliveries_in_flight{target="hooks"}')).toEqual(['onward_deliveries_in_flight{target="hooks"} 2']);
    expect(series(during, 'onward_leases_overdue ')).toEqual(['onward_leases_overdue 0']);

    for (const answer of held) answer();
    for (const id of ids) await t.waitForDeliveries(id, (ds) => ds[0]?.state === 'delivered');
    expect(series(await scrape(), 'onward_deliveries_in_flight{target="hooks"}')).toEqual(['onward_deliveries_in_flight{target="hooks"} 0']);
  });
});
