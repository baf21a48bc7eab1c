/**
 * Contract: per-domain lanes of mx deliveries (SPEC 13). A delivery with a `domain` has its
 * own due-index lane (`internet@example.com`), kept through attempts, operator actions and
 * a restart, and its record carries the domain back.
 */
import { expect, it } from '@jest/globals';
import { waitForValue } from '../helpers/common.js';
import { claimSoon, LATER, message, outcome } from './fixtures.js';
import type { OpenSpool } from './harness.js';

export function laneContract(open: OpenSpool): void {
  it('gives each domain of an mx delivery its own lane: claimed, deferred and found again after a restart', async () => {
    let spool = await open();
    const msg = message({
      recipients: ['x@a.test', 'y@b.test'],
      deliveries: [
        { targets: ['internet'], domain: 'a.test', recipients: ['x@a.test'] },
        { targets: ['internet', 'backup'], domain: 'b.test', recipients: ['y@b.test'] },
      ],
    });
    await spool.accept(msg);
    await waitForValue(() => spool.lanes(), (l) => l.includes('internet@a.test') && l.includes('internet+backup@b.test'), 5000, 'both domain lanes');
    // The plain target lane holds nothing: every delivery is in its domain's lane.
    expect(await spool.claimDue('internet', Date.now(), 10)).toEqual([]);

    const [a] = await claimSoon(spool, 'internet@a.test', 10);
    expect(a?.delivery.domain).toBe('a.test');
    expect(a?.delivery.recipients.map((r) => r.address)).toEqual(['x@a.test']);
    // A dead domain: deferred far ahead, it does not hold up the other lane.
    await spool.completeAttempt(a!.delivery.id, outcome(['x@a.test'], 'deferred', Date.now() + LATER, 'internet'));
    const dueA = await spool.nextDueAt('internet@a.test');
    expect(dueA).not.toBeNull();
    expect(dueA!).toBeGreaterThan(Date.now() + LATER / 2);

    // Retry by the operator: back in its own lane, due now.
    await spool.act(msg.queueId, 'retry');
    const deliveries = await spool.getDeliveries(msg.queueId);
    expect(deliveries.map((d) => d.domain)).toEqual(['a.test', 'b.test']);

    // Restart: the lanes are found again from the stored records.
    await spool.close();
    spool = await open();
    await waitForValue(() => spool.lanes(), (l) => l.includes('internet@a.test') && l.includes('internet+backup@b.test'), 5000, 'domain lanes after a restart');
    const [b] = await claimSoon(spool, 'internet+backup@b.test', 10);
    expect(b?.delivery.domain).toBe('b.test');
    expect(b?.delivery.targets).toEqual(['internet', 'backup']);
    const [again] = await claimSoon(spool, 'internet@a.test', 10);
    expect(again?.delivery.id).toBe(a!.delivery.id);
  });

  it('decodes a delivery without a domain as not split (domain null) in the target lane', async () => {
    const spool = await open();
    await spool.accept(message());
    const [claimed] = await claimSoon(spool, 'outbox', 1);
    expect(claimed?.delivery.domain ?? null).toBeNull();
  });
}
