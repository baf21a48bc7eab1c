/**
 * One attempt's walk over a failover list (src/delivery/attempt.ts), with real file
 * transports in a temp directory and real target state: what it does with the slots the
 * scheduler reserved, and with an attempt that broke on our side.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { FileTargetConfig, RetryConfig } from '../../../src/config/types.js';
import { attemptBoundMs, brokenAttempt, runAttempt, type LiveTarget } from '../../../src/delivery/attempt.js';
import { createFileTransport } from '../../../src/delivery/file.js';
import { localFailureResult } from '../../../src/delivery/results.js';
import { TargetState } from '../../../src/delivery/target-state.js';
import type { Transport } from '../../../src/delivery/types.js';
import { newRecords } from '../../../src/spool/records.js';
import { newQueueId, type ClaimedDelivery } from '../../../src/spool/index.js';
import { makeTempDir, removeDir } from '../../helpers/common.js';

const RETRY: RetryConfig = { scheduleMs: [60_000], jitter: 0, maxAgeMs: 86_400_000, delayWarningAfterMs: null };

function fileTarget(name: string, dir: string): FileTargetConfig {
  return { name, type: 'file', path: join(dir, name), concurrency: 4, circuit: { failures: 3, probeMs: 1000 } };
}

function claimed(targets: readonly string[]): ClaimedDelivery {
  const queueId = newQueueId();
  const body = Buffer.from('Subject: attempt\r\n\r\nhello\r\n');
  const { message, deliveries } = newRecords(
    {
      queueId,
      sender: 'a@client.test',
      recipients: ['b@example.org'],
      messageId: null,
      body,
      client: { ip: '127.0.0.1', hostname: 'h', helo: 'h', user: null },
      deliveries: [{ targets, recipients: ['b@example.org'] }],
      dedupKey: null,
      bounceOf: null,
    },
    Date.now(),
  );
  const delivery = deliveries[0];
  if (!delivery) throw new Error('no delivery');
  return { delivery: { ...delivery, dueAt: null, attemptCount: 1 }, message, body };
}

describe('runAttempt', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir('onward-attempt-');
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it('gives back a slot reserved on a backup that the walk never reached', async () => {
    // The scheduler reserved on the backup while the primary was down; by the time the
    // attempt ran, the primary's probe was due and it took every recipient.
    const primary = fileTarget('primary', dir);
    const backup = fileTarget('backup', dir);
    const live = new Map<string, LiveTarget>([
      ['primary', { state: new TargetState(primary), transport: createFileTransport(primary) }],
      ['backup', { state: new TargetState(backup), transport: createFileTransport(backup) }],
    ]);
    const backupState = live.get('backup')?.state;
    expect(backupState?.take(Date.now(), 1)).toBe(1);
    const outcome = await runAttempt(claimed(['primary', 'backup']), live, RETRY, Date.now, 'backup');
    expect(outcome.recipients.map((r) => r.state)).toEqual(['delivered']);
    expect(await readdir(join(dir, 'primary'))).toHaveLength(1);
    expect(backupState?.inFlight).toBe(0);
    expect(live.get('primary')?.state.inFlight).toBe(0);
  });

  it('defers an attempt that broke on our side without failing over or blaming the target', async () => {
    const backup = fileTarget('backup', dir);
    const primary = fileTarget('primary', dir);
    // The primary's transport is the delivery thread's stand-in: the thread died mid-attempt.
    const lostThread: Transport = {
      deliver: (job) => Promise.resolve(localFailureResult(job, 'delivery thread exited (code 1) during the attempt', 5)),
      close: () => Promise.resolve(),
    };
    const primaryState = new TargetState({ ...primary, circuit: { failures: 1, probeMs: 60_000 } });
    const live = new Map<string, LiveTarget>([
      ['primary', { state: primaryState, transport: lostThread }],
      ['backup', { state: new TargetState(backup), transport: createFileTransport(backup) }],
    ]);
    const outcome = await runAttempt(claimed(['primary', 'backup']), live, RETRY, Date.now, null);
    expect(outcome.interrupted).toBe(true);
    expect(outcome.recipients.map((r) => [r.state, r.reply?.text])).toEqual([['deferred', 'delivery thread exited (code 1) during the attempt']]);
    expect(outcome.nextDueAt).not.toBeNull();
    expect(outcome.attempts.map((a) => a.target)).toEqual(['primary']);
    await expect(readdir(join(dir, 'backup'))).rejects.toThrow(); // never written: no failover
    // One failure would open this circuit; a local failure is not the target's.
    expect([primaryState.up, primaryState.inFlight]).toEqual([true, 0]);
  });

  it('ends an attempt whose transport rejects as a local failure, with the slot given back', async () => {
    const primary = fileTarget('primary', dir);
    const rejecting: Transport = { deliver: () => Promise.reject(new Error('socket gone sideways')), close: () => Promise.resolve() };
    const state = new TargetState({ ...primary, circuit: { failures: 1, probeMs: 60_000 } });
    const outcome = await runAttempt(claimed(['primary']), new Map([['primary', { state, transport: rejecting }]]), RETRY, Date.now, null);
    expect(outcome.interrupted).toBe(true);
    expect(outcome.recipients.map((r) => [r.state, r.reply])).toEqual([
      ['deferred', { kind: 'x-onward', code: null, enhancedStatus: null, text: 'transport failed: socket gone sideways' }],
    ]);
    expect([state.up, state.inFlight]).toEqual([true, 0]);
  });
});

describe('brokenAttempt', () => {
  it('defers every unfinished recipient with our reply, or fails them once the queue lifetime is over', () => {
    const c = claimed(['primary']);
    const now = c.delivery.createdAt + 1000;
    const deferred = brokenAttempt(c, RETRY, now, new Error('bug'));
    expect(deferred.recipients.map((r) => [r.state, r.reply?.text, r.expired])).toEqual([['deferred', 'attempt failed on our side: bug', false]]);
    expect(deferred.nextDueAt).toBe(now + 60_000);
    expect(deferred.attempts).toEqual([{ at: now, target: 'primary', outcome: 'error', reply: 'attempt failed on our side: bug', durationMs: 0 }]);
    const expired = brokenAttempt(c, RETRY, c.delivery.createdAt + RETRY.maxAgeMs + 1, new Error('bug'));
    expect(expired.recipients.map((r) => [r.state, r.expired])).toEqual([['failed', true]]);
    expect(expired.nextDueAt).toBeNull();
  });
});

describe('attemptBoundMs', () => {
  it('allows twice the target timeout, a margin, and the transfer at 64 kB/s', () => {
    const http = { ...fileTarget('h', '/x'), type: 'http', url: 'http://127.0.0.1/', format: 'raw', headers: {}, signing: 'onward', signingSecrets: [], timeoutMs: 200 } as const;
    expect(attemptBoundMs(http, 0)).toBe(1400);
    expect(attemptBoundMs(http, 640_000)).toBe(11_400);
    expect(attemptBoundMs(fileTarget('f', '/x'), 0)).toBe(61_000);
  });
});
