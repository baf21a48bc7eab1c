/** Contract: operator actions (act) and giving up on a message (giveUp). */
import { expect, it } from '@jest/globals';
import type { Reply } from '../../src/delivery/types.js';
import { isRelayError } from '../../src/errors.js';
import type { MessageRecord, RecipientRecord } from '../../src/spool/index.js';
import { waitForValue } from '../helpers/common.js';
import { claimSoon, dsnFor, LATER, message, near, outcome } from './fixtures.js';
import type { OpenSpool } from './harness.js';

export function adminContract(open: OpenSpool): void {
  it('holds, releases, retries and deletes a message through act', async () => {
    const spool = await open();
    const msg = message();
    await spool.accept(msg);

    expect((await spool.act(msg.queueId, 'hold')).state).toBe('held');
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, held: 1 });
    expect((await spool.getDeliveries(msg.queueId))[0]?.recipients[0]?.state).toBe('held');

    expect((await spool.act(msg.queueId, 'release')).state).toBe('queued');
    const [claimed] = await claimSoon(spool, 'outbox');
    expect(claimed?.message.id).toBe(msg.queueId);
    await spool.completeAttempt(claimed!.delivery.id, outcome(msg.recipients, 'deferred', Date.now() + LATER));
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);

    // retry: the deferred delivery is due now, like postqueue -i.
    const retryAt = Date.now();
    expect((await spool.act(msg.queueId, 'retry')).state).toBe('queued');
    expect(near(await spool.nextDueAt('outbox'), retryAt)).toBe(true);
    const [retried] = await claimSoon(spool, 'outbox');
    expect(retried?.delivery.attemptCount).toBe(2);
    await spool.completeAttempt(retried!.delivery.id, outcome(msg.recipients, 'deferred', Date.now() + LATER));

    const deleted = await spool.act(msg.queueId, 'delete');
    expect(deleted.state).toBe('deleted');
    expect(deleted.finishedAt).toBeGreaterThanOrEqual(deleted.receivedAt);
    expect(await spool.getBody(msg.queueId)).toBeNull();
    expect(await spool.nextDueAt('outbox')).toBeNull();
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, held: 0, deleted: 1 });
    expect((await spool.stats()).targets['outbox'] ?? { queued: 0, deferred: 0 }).toEqual({ queued: 0, deferred: 0 });

    // Finished messages are left as they are; unknown ids are an error.
    expect((await spool.act(msg.queueId, 'hold')).state).toBe('deleted');
    const missing = await spool.act(message().queueId, 'hold').catch((err: unknown) => err);
    expect(isRelayError(missing, 'ONWARD_ERR_NOT_FOUND')).toBe(true);
  });

  it('gives up on a message: unfinished recipients fail with the reason, the DSN is written with it', async () => {
    const spool = await open();
    const recipients = ['a@one.test', 'b@one.test'];
    const msg = message({ recipients, deliveries: [{ targets: ['one'], recipients: ['a@one.test'] }, { targets: ['two'], recipients: ['b@one.test'] }] });
    await spool.accept(msg);
    const [one] = await claimSoon(spool, 'one');
    await spool.completeAttempt(one!.delivery.id, outcome(['a@one.test'], 'delivered', null, 'one'));

    const reason: Reply = { kind: 'x-onward', code: null, enhancedStatus: '5.0.0', text: 'bounced by the operator' };
    const dsn = dsnFor(msg.queueId);
    const reported: { message: MessageRecord; failed: readonly RecipientRecord[]; body: Buffer | null }[] = [];
    const after = await spool.giveUp(msg.queueId, reason, (m, failed, body) => {
      reported.push({ message: m, failed, body });
      return Promise.resolve(dsn);
    });
    expect(after.state).toBe('bounced');
    // Only the unfinished recipient is reported, with the body still there to quote.
    expect(reported.map((r) => [r.message.id, r.failed.map((f) => f.address), r.body])).toEqual([[msg.queueId, ['b@one.test'], msg.body]]);
    const deliveries = await spool.getDeliveries(msg.queueId);
    expect(deliveries.map((d) => d.state)).toEqual(['delivered', 'failed']);
    expect(deliveries[1]?.recipients[0]).toMatchObject({ state: 'failed', lastError: reason.text, reported: true });
    expect(await spool.getBody(msg.queueId)).toBeNull();
    expect(await spool.getMessage(dsn.queueId)).toMatchObject({ bounceOf: msg.queueId, state: 'queued' });
    expect(await spool.countsByState()).toMatchObject({ queued: 1, bounced: 1 });
    // The DSN is new due work like any message.
    await waitForValue(() => spool.lanes(), (l) => l.includes('outbox'), 5000, 'the DSN lane');
  });
}
