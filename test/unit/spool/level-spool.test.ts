/**
 * What only the LevelDB spool does, on a real temp directory with a controllable clock: its
 * own clock in records and due times, leases recovered at open, exact counters, group commit.
 * The behaviours every backend shares are the contract (test/contract, run by level-contract.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { isRelayError } from '../../../src/errors.js';
import { LevelSpool, type AttemptUpdate, type RecipientState } from '../../../src/spool/index.js';
import { OK, TEMP, message } from '../../contract/fixtures.js';

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

function outcome(addresses: readonly string[], state: RecipientState, nextDueAt: number | null, at: number): AttemptUpdate {
  const reply = state === 'delivered' ? OK : TEMP;
  return {
    attempts: [{ at, target: 'outbox', outcome: state === 'delivered' ? 'ok' : 'error', reply: reply.text, durationMs: 3 }],
    recipients: addresses.map((address) => ({ address, state, reply })),
    nextDueAt,
  };
}

describe('LevelSpool', () => {
  let dir: string;
  let now: number;
  const open: LevelSpool[] = [];
  const openSpool = async (): Promise<LevelSpool> => {
    const spool = await LevelSpool.open({ path: dir, dedupWindowMs: DAY, retainFinishedMs: 7 * DAY, now: () => now });
    open.push(spool);
    return spool;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onward-spool-'));
    now = T0;
  });
  afterEach(async () => {
    for (const spool of open.splice(0)) await spool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stamps records with its own clock and keeps unfinishedCount and target counts exact at once', async () => {
    const spool = await openSpool();
    const msgs = [message(), message()];
    for (const m of msgs) await spool.accept(m);
    // Exact without waiting: the counters are updated in the accept batch.
    expect(spool.unfinishedCount()).toBe(2);
    expect((await spool.getMessage(msgs[0]!.queueId))?.receivedAt).toBe(T0);
    expect((await spool.getDeliveries(msgs[0]!.queueId))[0]?.dueAt).toBe(T0);

    const [claimed] = await spool.claimDue('outbox', now, 1);
    // Both are due at T0: which one comes first is up to their ids' random part.
    const first = msgs.find((m) => m.queueId === claimed!.message.id)!;
    const other = msgs.find((m) => m !== first)!;
    now += 5;
    const done = await spool.completeAttempt(claimed!.delivery.id, outcome(first.recipients, 'delivered', null, now));
    expect(done.message).toMatchObject({ state: 'delivered', finishedAt: now });
    expect(spool.unfinishedCount()).toBe(1);
    now += 5;
    expect(await spool.act(other.queueId, 'delete')).toMatchObject({ state: 'deleted', finishedAt: now });
    expect(spool.unfinishedCount()).toBe(0);
    expect((await spool.stats()).targets['outbox']).toEqual({ queued: 0, deferred: 0 });
  });

  it("judges due times exactly by the caller's now: claimDue's argument and nextDueAt", async () => {
    const spool = await openSpool();
    const msg = message();
    await spool.accept(msg);
    await spool.claimDue('outbox', now, 1);
    const retryAt = now + 60_000;
    await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', retryAt, now));
    expect(await spool.nextDueAt('outbox')).toBe(retryAt);
    expect(await spool.claimDue('outbox', retryAt - 1, 10)).toEqual([]);
    const [again] = await spool.claimDue('outbox', retryAt, 10);
    expect(again?.delivery).toMatchObject({ attemptCount: 2, state: 'queued' });
    // retry makes it due at the spool's now, exactly.
    await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', now + DAY, now));
    now += 10;
    await spool.act(msg.queueId, 'retry');
    expect(await spool.nextDueAt('outbox')).toBe(now);
  });

  it('recovers the leases of a dead process at open: claimed and dispatched deliveries are due at once after a reopen', async () => {
    const first = await openSpool();
    const claimedMsg = message();
    await first.accept(claimedMsg);
    expect(await first.claimDue('outbox', now, 10)).toHaveLength(1);
    const dispatchedMsg = message();
    first.setDispatcher(() => ({ start: () => undefined, cancel: () => undefined }));
    await first.accept(dispatchedMsg);
    await first.close(); // as if the process died mid-attempt

    now += 1000;
    const second = await openSpool();
    // No lease to wait out: one claim right after open hands both out again, due at the reopen time.
    expect(await second.nextDueAt('outbox')).toBe(now);
    const again = await second.claimDue('outbox', now, 10);
    expect(again.map((c) => [c.message.id, c.delivery.attemptCount]).sort()).toEqual(
      [
        [claimedMsg.queueId, 2],
        [dispatchedMsg.queueId, 2],
      ].sort(),
    );
  });

  it('refuses writes once closed with ONWARD_ERR_SPOOL_WRITE and reports itself unavailable', async () => {
    const spool = await openSpool();
    expect(spool.available()).toBe(true);
    await spool.close();
    expect(spool.available()).toBe(false);
    const err = await spool.accept(message()).catch((e: unknown) => e);
    expect(isRelayError(err, 'ONWARD_ERR_SPOOL_WRITE')).toBe(true);
  });

  it('resolves many concurrent accepts through group commit and stores every one of them', async () => {
    const batches: number[] = [];
    const spool = await LevelSpool.open({ path: dir, dedupWindowMs: DAY, retainFinishedMs: DAY, now: () => now });
    spool.on('batch', (b) => batches.push(b.writes));
    open.push(spool);
    const msgs = Array.from({ length: 200 }, () => message());
    const results = await Promise.all(msgs.map((m) => spool.accept(m)));
    expect(results.map((r) => r.status)).toEqual(msgs.map(() => 'queued'));
    expect(results.map((r) => r.queueId)).toEqual(msgs.map((m) => m.queueId));
    // Grouped: fewer synced batches than messages, some holding many.
    expect(batches.reduce((a, b) => a + b, 0)).toBe(200);
    expect(batches.length).toBeLessThan(200);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect((await spool.countsByState()).queued).toBe(200);
    await spool.close();

    const reopened = await openSpool();
    for (const m of msgs) {
      expect(await reopened.getBody(m.queueId)).toEqual(m.body);
      expect((await reopened.getMessage(m.queueId))?.state).toBe('queued');
    }
    expect((await reopened.countsByState()).queued).toBe(200);
    expect((await reopened.claimDue('outbox', now, 1000)).length).toBe(200);
  });

});
