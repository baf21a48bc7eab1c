/**
 * Contract: delivery events (SPEC 11). An outcome's events are written in the same atomic
 * write as the outcome (completeAttempt, giveUp), as spool messages of their own with
 * `eventOf`; they never change the message's state; listings show messages by default and
 * events only when asked.
 */
import { expect, it } from '@jest/globals';
import type { Reply } from '../../src/delivery/types.js';
import type { AttemptUpdate, GivenUpDelivery, NewMessage } from '../../src/spool/index.js';
import { waitForValue } from '../helpers/common.js';
import { acceptAndClaim, claimSoon, collect, dsnFor, listedIds, message, outcome } from './fixtures.js';
import type { OpenSpool } from './harness.js';

const ALL = ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'] as const;

/** An event reporting on `queueId`, as the event builder hands it over: null sender, one delivery to `events`. */
function eventFor(queueId: string, type: string): NewMessage {
  const id = `${queueId}.0.1.${type}`;
  return message({
    sender: '',
    recipients: ['events@onward.invalid'],
    messageId: id,
    body: Buffer.from(JSON.stringify({ id, type, queueId })),
    deliveries: [{ targets: ['events'], recipients: ['events@onward.invalid'] }],
    eventOf: queueId,
  });
}

export function eventsContract(open: OpenSpool): void {
  it('writes an outcome’s events with it: spool messages with eventOf, due to their target, the message’s state untouched', async () => {
    const spool = await open();
    const recipients = ['a@example.org', 'b@example.org'];
    const msg = message({ recipients, deliveries: [{ targets: ['outbox'], recipients }] });
    const claimed = await acceptAndClaim(spool, msg);
    const delivered = eventFor(msg.queueId, 'delivered');
    const deferred = eventFor(msg.queueId, 'deferred');
    const update: AttemptUpdate = {
      ...outcome(['a@example.org'], 'delivered', null),
      recipients: [
        { address: 'a@example.org', state: 'delivered', reply: null },
        { address: 'b@example.org', state: 'deferred', reply: null },
      ],
      nextDueAt: Date.now() + 3_600_000,
      events: [delivered, deferred],
    };
    const after = await spool.completeAttempt(claimed.delivery.id, update);
    expect(after.message.state).toBe('deferred');
    for (const e of [delivered, deferred]) {
      expect(await spool.getMessage(e.queueId)).toMatchObject({ id: e.queueId, sender: '', eventOf: msg.queueId, bounceOf: null, messageId: e.messageId, state: 'queued' });
      expect(await spool.getBody(e.queueId)).toEqual(e.body);
    }
    expect((await spool.getMessage(msg.queueId))?.eventOf).toBeNull();
    // Due work in the events lane, handed out like any delivery.
    const claimedEvents = await waitForValue(
      async () => [...(await claimSoon(spool, 'events')), ...(await spool.claimDue('events', Date.now(), 10))],
      (c) => c.length >= 1,
      5000,
      'the events to be due',
    );
    expect(claimedEvents.every((c) => c.message.eventOf === msg.queueId)).toBe(true);
    // An event's own outcome leaves the message as it is.
    for (const c of claimedEvents) await spool.completeAttempt(c.delivery.id, outcome(['events@onward.invalid'], 'delivered', null, 'events'));
    expect((await spool.getMessage(msg.queueId))?.state).toBe('deferred');
  });

  it('writes no events for an attempt on a delivery that was already final, nor for an outcome it refused', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const reason: Reply = { kind: 'x-onward', code: null, enhancedStatus: '5.0.0', text: 'bounced by the operator' };
    await spool.giveUp(msg.queueId, reason, () => Promise.resolve(null));
    const late = eventFor(msg.queueId, 'deferred');
    await spool.completeAttempt(claimed.delivery.id, { ...outcome(msg.recipients, 'deferred', Date.now() + 60_000), events: [late] });
    expect(await spool.getMessage(late.queueId)).toBeNull();
    // An outcome the spool does not record (no such delivery) writes none of its events.
    const orphan = eventFor('0000000000NOPE0', 'delivered');
    await expect(spool.completeAttempt('0000000000NOPE0.0', { ...outcome(['x@example.org'], 'delivered', null), events: [orphan] })).rejects.toThrow();
    expect(await spool.getMessage(orphan.queueId)).toBeNull();
    expect(await listedIds(spool, { states: [...ALL], events: true })).toEqual([]);
  });

  it('writes an operator bounce’s DSN and failed events in its own write, the report told which deliveries ended', async () => {
    const spool = await open();
    const recipients = ['a@one.test', 'b@two.test'];
    const msg = message({ recipients, deliveries: [{ targets: ['one'], recipients: ['a@one.test'] }, { targets: ['two'], recipients: ['b@two.test'] }] });
    await spool.accept(msg);
    const [one] = await claimSoon(spool, 'one');
    await spool.completeAttempt(one!.delivery.id, outcome(['a@one.test'], 'delivered', null, 'one'));
    const reason: Reply = { kind: 'x-onward', code: null, enhancedStatus: '5.0.0', text: 'bounced by the operator' };
    const dsn = dsnFor(msg.queueId);
    const failedEvent = eventFor(msg.queueId, 'failed.operator');
    const given: GivenUpDelivery[] = [];
    const after = await spool.giveUp(msg.queueId, reason, (_m, _failed, _body, deliveries) => {
      given.push(...deliveries);
      return Promise.resolve({ dsn, events: [failedEvent] });
    });
    expect(after.state).toBe('bounced');
    expect(given.map((g) => [g.delivery.id, g.delivery.targets, g.failed.map((r) => r.address)])).toEqual([[`${msg.queueId}.1`, ['two'], ['b@two.test']]]);
    expect(await spool.getMessage(dsn.queueId)).toMatchObject({ bounceOf: msg.queueId, eventOf: null, state: 'queued' });
    expect(await spool.getMessage(failedEvent.queueId)).toMatchObject({ eventOf: msg.queueId, state: 'queued' });
    await waitForValue(() => spool.lanes(), (l) => l.includes('events'), 5000, 'the events lane');
  });

  it('lists messages by default and events only when asked, in every state, with the other filters', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const event = eventFor(msg.queueId, 'delivered');
    await spool.completeAttempt(claimed.delivery.id, { ...outcome(msg.recipients, 'delivered', null), events: [event] });
    const other = message();
    await spool.accept(other);
    expect(await listedIds(spool, {})).toEqual([other.queueId]);
    expect(await listedIds(spool, { states: [...ALL] })).toEqual([msg.queueId, other.queueId]);
    expect(await listedIds(spool, { events: true })).toEqual([event.queueId]);
    expect(await listedIds(spool, { states: [...ALL], events: true })).toEqual([event.queueId]);
    expect(await listedIds(spool, { events: true, target: 'events' })).toEqual([event.queueId]);
    expect(await listedIds(spool, { events: true, target: 'outbox' })).toEqual([]);
    expect(await listedIds(spool, { target: 'events' })).toEqual([]);
    // Delivered, the event leaves the queue listing and stays listed by state.
    const [c] = await claimSoon(spool, 'events');
    await spool.completeAttempt(c!.delivery.id, outcome(['events@onward.invalid'], 'delivered', null, 'events'));
    expect(await listedIds(spool, { events: true })).toEqual([]);
    expect((await collect(spool.list({ states: ['delivered'], events: true }))).map((e) => [e.message.id, e.message.eventOf])).toEqual([[event.queueId, msg.queueId]]);
  });

  it('counts events apart from messages: stats.states and countsByState are messages only, stats.events the events; check agrees', async () => {
    const spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const event = eventFor(msg.queueId, 'delivered');
    await spool.completeAttempt(claimed.delivery.id, { ...outcome(msg.recipients, 'delivered', null), events: [event] });
    await spool.accept(message());
    const zero = { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 };
    const stats = await spool.stats();
    expect(stats.states).toEqual({ ...zero, queued: 1, delivered: 1 });
    expect(stats.events).toEqual({ ...zero, queued: 1 });
    expect(await spool.countsByState()).toEqual({ ...zero, queued: 1, delivered: 1 });
    // The event delivered: it moves within the events' counts only.
    const [c] = await claimSoon(spool, 'events');
    await spool.completeAttempt(c!.delivery.id, outcome(['events@onward.invalid'], 'delivered', null, 'events'));
    const after = await spool.stats();
    expect(after.states).toEqual({ ...zero, queued: 1, delivered: 1 });
    expect(after.events).toEqual({ ...zero, delivered: 1 });
    expect((await spool.check(false)).problems).toEqual([]);
  });

  it('keeps events and their eventOf across a restart', async () => {
    let spool = await open();
    const msg = message();
    const claimed = await acceptAndClaim(spool, msg);
    const event = eventFor(msg.queueId, 'delivered');
    await spool.completeAttempt(claimed.delivery.id, { ...outcome(msg.recipients, 'delivered', null), events: [event] });
    await spool.close();
    spool = await open();
    expect(await spool.getMessage(event.queueId)).toMatchObject({ eventOf: msg.queueId, state: 'queued' });
    const [c] = await claimSoon(spool, 'events');
    expect(c?.body).toEqual(event.body);
    expect(c?.message.messageId).toBe(event.messageId);
  });
}
