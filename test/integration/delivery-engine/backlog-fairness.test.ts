/**
 * New mail must not overtake due work. A new message may start at accept only with a free
 * slot, and a slot that comes free goes first to a lane with deliveries waiting in the due
 * index (TargetState.onSlotFreed). Real spool and scheduler; the target's transport is a
 * gate the test opens, so the order of attempts is what is observed.
 */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/index.js';
import { DeliveryScheduler, type DeliveryJob, type Transport, type TransportResult } from '../../../src/delivery/index.js';
import { LevelSpool } from '../../../src/spool/index.js';
import { hooksMessage } from '../../helpers/delivery-relay.js';
import { makeTempDir, removeDir, useCleanup, waitForValue } from '../../helpers/common.js';

/** A transport whose attempts wait until the test lets each one finish (OK). */
class GatedTransport implements Transport {
  readonly started: { job: DeliveryJob; finish: () => void }[] = [];

  deliver(job: DeliveryJob): Promise<TransportResult> {
    return new Promise((resolve) => {
      const reply = { kind: 'x-onward' as const, code: null, enhancedStatus: null, text: 'let through' };
      const finish = (): void => resolve({ recipients: job.envelope.to.map((address) => ({ address, outcome: 'ok', reply })), durationMs: 1, retryAfterMs: null, contention: false });
      this.started.push({ job, finish });
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('backlog fairness', () => {
  const defer = useCleanup();

  it('gives a freed slot to the delivery waiting in the due index, not to a message accepted meanwhile', async () => {
    const dir = await makeTempDir('onward-fairness-');
    defer(() => removeDir(dir));
    const config = parseConfig(
      `spool: { path: ${dir}/spool }\ntargets:\n  hooks: { type: http, url: "http://127.0.0.1:9/", concurrency: 1 }\nroutes: [{ match: "*", target: hooks }]\n`,
    );
    const spool = await LevelSpool.open({ path: config.spool.path, dedupWindowMs: 60_000, retainFinishedMs: 60_000 });
    defer(() => spool.close());
    const gate = new GatedTransport();
    const scheduler = new DeliveryScheduler({ config, spool, logger: pino({ level: 'silent' }), reporter: null, transports: () => gate });
    await scheduler.start();
    defer(() => scheduler.stop(0));
    const label = (i: number): string => gate.started[i]?.job.envelope.to[0]?.split('@')[0] ?? '?';

    await spool.accept(hooksMessage('first')); // takes the only slot at accept
    await waitForValue(() => gate.started.length, (n) => n === 1, 2000, 'the first attempt');
    await spool.accept(hooksMessage('waiting')); // no slot: due index
    expect(gate.started).toHaveLength(1);

    // The first attempt ends; while its outcome is being written, a new message arrives.
    gate.started[0]?.finish();
    await new Promise((resolve) => setImmediate(resolve));
    await spool.accept(hooksMessage('newcomer'));
    await waitForValue(() => gate.started.length, (n) => n === 2, 2000, 'the second attempt');
    expect(label(1)).toBe('waiting');

    gate.started[1]?.finish();
    await waitForValue(() => gate.started.length, (n) => n === 3, 2000, 'the third attempt');
    expect(label(2)).toBe('newcomer');
    gate.started[2]?.finish();
    await waitForValue(() => spool.unfinishedCount(), (n) => n === 0, 2000, 'every message delivered');
  });
});
