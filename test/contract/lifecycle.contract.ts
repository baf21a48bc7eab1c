/** Contract: a restart keeps everything, leases of a dead process come back, housekeeping, check, nodes. */
import { expect, it } from '@jest/globals';
import type { JanitorKind } from '../../src/spool/index.js';
import { acceptAndClaim, claimSoon, clockPast, LATER, listedIds, message, outcome, RecordingDispatcher } from './fixtures.js';
import type { OpenSpool } from './harness.js';

/** Leases short enough for a restart test to see one expire on a backend where they do. */
const SHORT_LEASE_MS = 1000;

export function lifecycleContract(open: OpenSpool): void {
  it('keeps messages, deliveries, bodies and counts across a restart', async () => {
    const first = await open();
    const msgs = [message(), message(), message()];
    for (const m of msgs) await first.accept(m);
    await first.act(msgs[1]!.queueId, 'hold');
    const [claimed] = await claimSoon(first, 'outbox', 1);
    await first.completeAttempt(claimed!.delivery.id, outcome(['rcpt@example.org'], 'deferred', Date.now() + LATER));
    const before = await Promise.all(msgs.map(async (m) => [await first.getMessage(m.queueId), await first.getDeliveries(m.queueId)]));
    await first.close();

    const second = await open();
    expect(await Promise.all(msgs.map(async (m) => [await second.getMessage(m.queueId), await second.getDeliveries(m.queueId)]))).toEqual(before);
    for (const m of msgs) expect(await second.getBody(m.queueId)).toEqual(m.body);
    expect(await second.countsByState()).toMatchObject({ queued: 1, deferred: 1, held: 1 });
    expect((await listedIds(second, {})).sort()).toEqual(msgs.map((m) => m.queueId).sort());
  });

  it('makes a delivery claimed but never completed due again after a restart, counting the interrupted attempt', async () => {
    const first = await open({ leaseMs: SHORT_LEASE_MS });
    const msg = message();
    const claimed = await acceptAndClaim(first, msg);
    expect(claimed.delivery.attemptCount).toBe(1);
    await first.close(); // as if the process died mid-attempt

    // At once (a local spool recovers its leases at open) or once the lease ran out (a shared one).
    const second = await open({ leaseMs: SHORT_LEASE_MS });
    const [again] = await claimSoon(second, 'outbox', 10, SHORT_LEASE_MS + 5000);
    expect(again?.message.id).toBe(msg.queueId);
    expect(again?.body).toEqual(msg.body);
    expect(again?.delivery.attemptCount).toBe(2);
    expect(await second.countsByState()).toMatchObject({ queued: 1 });
  });

  it('makes a dispatched delivery that never completed due again after a restart', async () => {
    const first = await open({ leaseMs: SHORT_LEASE_MS });
    const probe = new RecordingDispatcher(1);
    first.setDispatcher(probe.dispatcher);
    const msg = message();
    await first.accept(msg);
    expect(probe.started).toHaveLength(1);
    await first.close();

    const second = await open({ leaseMs: SHORT_LEASE_MS });
    const [again] = await claimSoon(second, 'outbox', 10, SHORT_LEASE_MS + 5000);
    expect(again?.delivery.id).toBe(`${msg.queueId}.0`);
    expect(again?.body).toEqual(msg.body);
    expect(again?.delivery.attemptCount).toBe(2);
  });

  it('sweeps expired dedup keys and finished messages past retention and keeps the rest', async () => {
    // Long enough that the key accepted after the others expired is still fresh when checked.
    const windowMs = 1000;
    const spool = await open({ dedupWindowMs: windowMs, retainFinishedMs: windowMs });
    const removed: Record<JanitorKind, number> = { dedup: 0, finished: 0 };
    spool.on('janitor', (j) => (removed[j.kind] += j.removed));
    const finished = message({ dedupKey: 'sweep-finished' });
    const waiting = message({ dedupKey: 'sweep-waiting' });
    const claimed = await acceptAndClaim(spool, finished);
    await spool.accept(waiting);
    const done = await spool.completeAttempt(claimed.delivery.id, outcome(finished.recipients, 'delivered', null));
    // Both keys and the finished message are past their horizon (plus a margin for clocks that differ by a little).
    await clockPast(Math.max(done.message.finishedAt ?? 0, Date.now()) + windowMs + 200);
    const fresh = message({ dedupKey: 'sweep-fresh' });
    await spool.accept(fresh);

    await spool.sweep();
    expect(removed).toEqual({ dedup: 2, finished: 1 });
    expect(await spool.getMessage(finished.queueId)).toBeNull();
    expect(await spool.getDeliveries(finished.queueId)).toEqual([]);
    // Unfinished messages stay whatever their age; an unexpired key still names its original.
    expect((await spool.getMessage(waiting.queueId))?.state).toBe('queued');
    expect(await spool.getBody(waiting.queueId)).toEqual(waiting.body);
    expect(await spool.accept(message({ dedupKey: 'sweep-fresh' }))).toEqual({ status: 'duplicate', queueId: fresh.queueId });
    expect(await spool.countsByState()).toMatchObject({ queued: 2, delivered: 0 });
    // Caught up: a second sweep finds nothing.
    await spool.sweep();
    expect(removed).toEqual({ dedup: 2, finished: 1 });
  });

  it('reports no problems when checking a healthy spool', async () => {
    const spool = await open();
    const claimed = await acceptAndClaim(spool, message());
    await spool.completeAttempt(claimed.delivery.id, outcome(['rcpt@example.org'], 'delivered', null));
    await spool.accept(message());
    const held = message({ recipients: ['a@x.test', 'b@y.test'], deliveries: [{ targets: ['x'], recipients: ['a@x.test'] }, { targets: ['y'], recipients: ['b@y.test'] }] });
    await spool.accept(held);
    await spool.act(held.queueId, 'hold');
    const scanned: number[] = [];
    const report = await spool.check(false, (n) => scanned.push(n));
    expect(report).toMatchObject({ messages: 3, deliveries: 4, problems: [], repaired: false });
    expect(Object.values(report.counts).reduce((a, b) => a + b, 0)).toBe(0);
    // Still working afterwards.
    expect((await claimSoon(spool, 'outbox')).length).toBe(1);
  });

  it('is available while open and lists its nodes as null or an array', async () => {
    const spool = await open();
    expect(spool.available()).toBe(true);
    const nodes = await spool.nodes();
    expect(nodes === null || Array.isArray(nodes)).toBe(true);
    expect(['level', 'postgres']).toContain(spool.backend);
  });
}
