/** Contract: claiming due work, recording attempts, postponing. */
import { expect, it } from '@jest/globals';
import type { AttemptUpdate } from '../../src/spool/index.js';
import { waitForValue } from '../helpers/common.js';
import { acceptAndClaim, claimSoon, dsnFor, LATER, listedIds, message, near, outcome, PERM, twoRouteMessage } from './fixtures.js';
import type { OpenSpool } from './harness.js';

export function attemptContract(open: OpenSpool): void {
  it('hands a due delivery out once with its message and body, counting the attempt', async () => {
    const spool = await open();
    const msg = message();
    await spool.accept(msg);
    const [claimed, ...rest] = await claimSoon(spool, 'outbox');
    expect(rest).toEqual([]);
    expect(claimed?.body).toEqual(msg.body);
    expect(claimed?.delivery).toMatchObject({ id: `${msg.queueId}.0`, attemptCount: 1, dueAt: null, state: 'queued' });
    expect(claimed?.message).toMatchObject({ id: msg.queueId, sender: msg.sender, size: msg.body.length });
    // Leased: a second claim does not hand it out again; other lanes never see it.
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);
    expect(await spool.claimDue('elsewhere', Date.now(), 10)).toEqual([]);
  });

  it('hands out due deliveries in due-time order within the claim limit', async () => {
    const spool = await open();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Distinct due times: each accept after the clock has moved on.
      const last = Date.now();
      await waitForValue(() => Date.now(), (t) => t > last + 1, 1000, 'the clock to tick');
      const msg = message();
      ids.push(msg.queueId);
      await spool.accept(msg);
    }
    const first = await spool.claimDue('outbox', Date.now(), 2);
    expect(first).toHaveLength(2);
    const second = await spool.claimDue('outbox', Date.now(), 10);
    expect([...first, ...second].map((c) => c.message.id)).toEqual(ids);
  });

  it('records a delivered attempt: attempts appended, message delivered, body freed', async () => {
    const spool = await open();
    const recipients = ['a@example.org', 'b@example.org'];
    const msg = message({ recipients, deliveries: [{ targets: ['outbox'], recipients }] });
    const claimed = await acceptAndClaim(spool, msg);
    const update = outcome(recipients, 'delivered', null);
    const done = await spool.completeAttempt(claimed.delivery.id, update);
    expect(done.delivery).toMatchObject({ state: 'delivered', dueAt: null, attemptCount: 1 });
    expect(done.message.state).toBe('delivered');
    expect(done.message.finishedAt).toBeGreaterThanOrEqual(done.message.receivedAt);
    expect(await spool.getBody(msg.queueId)).toBeNull();
    const [delivery] = await spool.getDeliveries(msg.queueId);
    // The attempt as the scheduler reported it; its start time may be re-stamped by the backend's clock.
    const [attempt] = update.attempts;
    expect(delivery?.attempts).toEqual([{ ...attempt, at: expect.any(Number) }]);
    expect(near(delivery?.attempts[0]?.at, attempt!.at)).toBe(true);
    expect(delivery?.recipients.map((r) => [r.address, r.state, r.lastError, r.lastReply])).toEqual([
      ['a@example.org', 'delivered', 'written', update.recipients[0]?.reply],
      ['b@example.org', 'delivered', 'written', update.recipients[1]?.reply],
    ]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, delivered: 1 });
  });

  it('makes a deferred delivery due at nextDueAt and not before, keeping the body', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const retryAt = Date.now() + LATER;
    const { message: after, delivery } = await spool.completeAttempt(claimed.delivery.id, outcome(msg.recipients, 'deferred', retryAt));
    expect([after.state, delivery.state]).toEqual(['deferred', 'deferred']);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 1 });
    // nextDueAt answers by the caller's clock; a shared backend converts from its own.
    expect(near(await spool.nextDueAt('outbox'), retryAt)).toBe(true);
    expect(await spool.getBody(msg.queueId)).toEqual(msg.body);
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);

    // Deferred again, due now: handed out with the next attempt counted and the last reply kept.
    await spool.act(msg.queueId, 'retry');
    const [again] = await claimSoon(spool, 'outbox');
    expect(again?.delivery).toMatchObject({ attemptCount: 2, state: 'queued' });
    expect(again?.delivery.recipients[0]?.lastError).toBe('451 4.3.0 try later');
    const second = await spool.completeAttempt(again!.delivery.id, outcome(msg.recipients, 'deferred', Date.now()));
    expect(second.delivery.attempts).toHaveLength(2);
    expect((await claimSoon(spool, 'outbox'))[0]?.delivery.attemptCount).toBe(3);
  });

  it('postpones a claimed delivery without counting the attempt, due again at the given time', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    expect(claimed.delivery.attemptCount).toBe(1);
    await spool.postpone(claimed.delivery.id, Date.now());
    expect((await spool.getDeliveries(msg.queueId))[0]).toMatchObject({ attemptCount: 0, attempts: [] });
    const [again] = await claimSoon(spool, 'outbox');
    expect(again?.delivery).toMatchObject({ id: claimed.delivery.id, attemptCount: 1 });

    // Postponed past the test: not due.
    await spool.postpone(claimed.delivery.id, Date.now() + LATER);
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);
    const [postponed] = await spool.getDeliveries(msg.queueId);
    expect(postponed).toMatchObject({ attemptCount: 0, attempts: [] });
    expect(near(postponed?.dueAt, Date.now() + LATER, 5000)).toBe(true);
    expect(near(await spool.nextDueAt('outbox'), Date.now() + LATER, 5000)).toBe(true);
  });

  it('finishes a message with one delivery per route only when every delivery is final', async () => {
    const spool = await open();
    const msg = twoRouteMessage();
    await spool.accept(msg);
    const [one] = await claimSoon(spool, 'one');
    const [two] = await claimSoon(spool, 'two+backup');
    expect([one?.delivery.id, two?.delivery.id]).toEqual([`${msg.queueId}.0`, `${msg.queueId}.1`]);
    const afterOne = await spool.completeAttempt(one!.delivery.id, outcome(['a@one.test'], 'delivered', null, 'one'));
    expect(afterOne.message.state).toBe('queued');
    expect(afterOne.message.deliveries).toEqual({ [`${msg.queueId}.0`]: 'delivered', [`${msg.queueId}.1`]: 'queued' });
    expect(await spool.getBody(msg.queueId)).not.toBeNull();
    const afterTwo = await spool.completeAttempt(two!.delivery.id, outcome(['b@two.test'], 'failed', null, 'two'));
    expect(afterTwo.message.state).toBe('bounced');
    expect(afterTwo.delivery.recipients[0]).toMatchObject({ state: 'failed', reported: true, lastError: PERM.text });
    expect(await spool.getBody(msg.queueId)).toBeNull();
    expect(await spool.countsByState()).toMatchObject({ queued: 0, bounced: 1 });
  });

  it('writes the DSN of an attempt with its outcome', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const dsn = dsnFor(msg.queueId);
    const update: AttemptUpdate = { ...outcome(msg.recipients, 'failed', null), dsn };
    const after = await spool.completeAttempt(claimed.delivery.id, update);
    expect(after.message.state).toBe('bounced');
    expect(await spool.getMessage(dsn.queueId)).toMatchObject({ id: dsn.queueId, sender: '', bounceOf: msg.queueId, state: 'queued' });
    expect(await spool.getBody(dsn.queueId)).toEqual(dsn.body);
    expect(await listedIds(spool, {})).toEqual([dsn.queueId]);
  });

  it('keeps a message the operator bounced during an attempt bounced when that attempt then defers', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const reason = { kind: 'x-onward' as const, code: null, enhancedStatus: '5.0.0', text: 'bounced by the operator' };
    expect((await spool.giveUp(msg.queueId, reason, () => Promise.resolve(null))).state).toBe('bounced');
    const after = await spool.completeAttempt(claimed.delivery.id, outcome(msg.recipients, 'deferred', Date.now() + 60_000));
    expect([after.delivery.state, after.delivery.dueAt, after.message.state]).toEqual(['failed', null, 'bounced']);
    expect(after.delivery.attempts).toHaveLength(1);
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, bounced: 1 });
  });
}
