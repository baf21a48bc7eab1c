/**
 * The LevelDB spool on a real temp directory, with a controllable clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Reply } from '../../../src/delivery/types.js';
import { isRelayError } from '../../../src/errors.js';
import {
  LevelSpool,
  newQueueId,
  type AttemptUpdate,
  type ClaimedDelivery,
  type Dispatcher,
  type NewMessage,
  type RecipientState,
} from '../../../src/spool/index.js';

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

const OK: Reply = { kind: 'x-onward', code: null, enhancedStatus: null, text: 'written' };
const TEMP: Reply = { kind: 'smtp', code: 451, enhancedStatus: '4.3.0', text: '451 4.3.0 try later' };

function message(overrides: Partial<NewMessage> = {}): NewMessage {
  const recipients = overrides.recipients ?? ['rcpt@example.org'];
  return {
    queueId: newQueueId(),
    sender: 'sender@example.com',
    recipients,
    messageId: null,
    body: Buffer.from(`Subject: test\r\n\r\n${Math.random()}\r\n`),
    client: { ip: '127.0.0.1', hostname: '[127.0.0.1]', helo: 'client.test', user: null },
    deliveries: [{ targets: ['outbox'], recipients }],
    dedupKey: null,
    bounceOf: null,
    ...overrides,
  };
}

/** One recipient routed to `one`, one to the failover list `two` + `backup`: two deliveries. */
function twoRouteMessage(): NewMessage {
  return message({
    recipients: ['a@one.test', 'b@two.test'],
    deliveries: [
      { targets: ['one'], recipients: ['a@one.test'] },
      { targets: ['two', 'backup'], recipients: ['b@two.test'] },
    ],
  });
}

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

  it('hands an accepted message to claimDue with its body, and after an OK attempt marks it delivered and frees the body', async () => {
    const spool = await openSpool();
    const msg = message({ recipients: ['a@example.org', 'b@example.org'], deliveries: [{ targets: ['outbox'], recipients: ['a@example.org', 'b@example.org'] }] });
    expect(await spool.accept(msg)).toEqual({ status: 'queued', queueId: msg.queueId });
    expect(await spool.countsByState()).toMatchObject({ queued: 1, delivered: 0 });
    expect(spool.unfinishedCount()).toBe(1);
    expect((await spool.stats()).targets['outbox']).toEqual({ queued: 1, deferred: 0 });

    const [claimed, ...rest] = await spool.claimDue('outbox', now, 10);
    expect(rest).toEqual([]);
    expect(claimed?.body).toEqual(msg.body);
    expect(claimed?.delivery).toMatchObject({ id: `${msg.queueId}.0`, attemptCount: 1, dueAt: null, state: 'queued' });
    expect(claimed?.message).toMatchObject({ id: msg.queueId, sender: 'sender@example.com', size: msg.body.length });
    // Leased: a second claim does not hand it out again.
    expect(await spool.claimDue('outbox', now, 10)).toEqual([]);

    now += 5;
    const done = await spool.completeAttempt(`${msg.queueId}.0`, outcome(['a@example.org', 'b@example.org'], 'delivered', null, now));
    expect(done.delivery.state).toBe('delivered');
    expect(done.message).toMatchObject({ state: 'delivered', finishedAt: now });
    expect(await spool.getBody(msg.queueId)).toBeNull();
    const [delivery] = await spool.getDeliveries(msg.queueId);
    expect(delivery?.attempts).toEqual([{ at: now, target: 'outbox', outcome: 'ok', reply: 'written', durationMs: 3 }]);
    expect(delivery?.recipients.map((r) => [r.address, r.state, r.lastError])).toEqual([
      ['a@example.org', 'delivered', 'written'],
      ['b@example.org', 'delivered', 'written'],
    ]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, delivered: 1 });
    expect(spool.unfinishedCount()).toBe(0);
    expect((await spool.stats()).targets['outbox']).toEqual({ queued: 0, deferred: 0 });
    // Out of the queue listing; still inspectable among finished messages.
    expect(await collect(spool.list({}))).toEqual([]);
    expect((await collect(spool.list({ states: ['delivered'] }))).map((m) => m.message.id)).toEqual([msg.queueId]);
  });

  it('makes a deferred delivery due at nextDueAt and not claimable before', async () => {
    const spool = await openSpool();
    const msg = message();
    await spool.accept(msg);
    await spool.claimDue('outbox', now, 1);
    const retryAt = now + 60_000;
    const { message: after } = await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', retryAt, now));
    expect(after.state).toBe('deferred');
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 1 });
    expect((await spool.stats()).targets['outbox']).toEqual({ queued: 0, deferred: 1 });
    expect(await spool.nextDueAt('outbox')).toBe(retryAt);
    expect(await spool.getBody(msg.queueId)).toEqual(msg.body);

    expect(await spool.claimDue('outbox', retryAt - 1, 10)).toEqual([]);
    now = retryAt;
    const [again] = await spool.claimDue('outbox', now, 10);
    expect(again?.delivery).toMatchObject({ attemptCount: 2, state: 'queued' });
    expect(again?.delivery.recipients[0]?.lastError).toBe('451 4.3.0 try later');
    expect(await spool.countsByState()).toMatchObject({ queued: 1, deferred: 0 });
  });

  it('hands out due deliveries in due-time order and respects the claim limit', async () => {
    const spool = await openSpool();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      now = T0 + i;
      const msg = message();
      ids.push(msg.queueId);
      await spool.accept(msg);
    }
    const first = await spool.claimDue('outbox', now, 2);
    const second = await spool.claimDue('outbox', now, 10);
    expect([...first, ...second].map((c) => c.message.id)).toEqual(ids);
    expect(first).toHaveLength(2);
    // Other lanes see nothing.
    expect(await spool.claimDue('elsewhere', now, 10)).toEqual([]);
  });

  it('holds, releases, retries and deletes messages through act', async () => {
    const spool = await openSpool();
    const msg = message();
    await spool.accept(msg);

    expect((await spool.act(msg.queueId, 'hold')).state).toBe('held');
    expect(await spool.claimDue('outbox', now + DAY, 10)).toEqual([]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, held: 1 });
    expect(spool.unfinishedCount()).toBe(1);
    expect((await spool.getDeliveries(msg.queueId))[0]?.recipients[0]?.state).toBe('held');

    now += 10;
    expect((await spool.act(msg.queueId, 'release')).state).toBe('queued');
    const [claimed] = await spool.claimDue('outbox', now, 10);
    expect(claimed?.message.id).toBe(msg.queueId);
    await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', now + DAY, now));
    expect(await spool.claimDue('outbox', now, 10)).toEqual([]);

    // retry: the deferred delivery is due now, like postqueue -i.
    now += 10;
    expect((await spool.act(msg.queueId, 'retry')).state).toBe('queued');
    expect(await spool.nextDueAt('outbox')).toBe(now);
    const [retried] = await spool.claimDue('outbox', now, 10);
    expect(retried?.delivery.attemptCount).toBe(2);
    await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', now + DAY, now));

    const deleted = await spool.act(msg.queueId, 'delete');
    expect(deleted).toMatchObject({ state: 'deleted', finishedAt: now });
    expect(await spool.getBody(msg.queueId)).toBeNull();
    expect(await spool.claimDue('outbox', now + 2 * DAY, 10)).toEqual([]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, held: 0, deleted: 1 });
    expect(spool.unfinishedCount()).toBe(0);
    expect((await spool.stats()).targets['outbox']).toEqual({ queued: 0, deferred: 0 });

    // Finished messages are left as they are; unknown ids are an error.
    expect((await spool.act(msg.queueId, 'hold')).state).toBe('deleted');
    const missing = await spool.act('0MWYW9NT0TQDE6J', 'hold').catch((err: unknown) => err);
    expect(isRelayError(missing, 'ONWARD_ERR_NOT_FOUND')).toBe(true);
  });

  it('makes a claimed but never completed delivery due again after a reopen (lease recovery)', async () => {
    const first = await openSpool();
    const msg = message();
    await first.accept(msg);
    const [claimed] = await first.claimDue('outbox', now, 10);
    expect(claimed?.delivery.attemptCount).toBe(1);
    await first.close(); // as if the process died mid-attempt

    now += 1000;
    const second = await openSpool();
    const [again] = await second.claimDue('outbox', now, 10);
    expect(again?.message.id).toBe(msg.queueId);
    expect(again?.body).toEqual(msg.body);
    // The interrupted attempt counts.
    expect(again?.delivery.attemptCount).toBe(2);
    expect(await second.countsByState()).toMatchObject({ queued: 1 });
  });

  it('keeps messages, bodies and counters across a reopen', async () => {
    const first = await openSpool();
    const msgs = [message(), message(), message()];
    for (const m of msgs) await first.accept(m);
    await first.act(msgs[1]!.queueId, 'hold');
    await first.close();

    const second = await openSpool();
    expect(await second.countsByState()).toMatchObject({ queued: 2, held: 1 });
    for (const m of msgs) expect(await second.getBody(m.queueId)).toEqual(m.body);
    expect((await collect(second.list({}))).map((e) => e.message.id).sort()).toEqual(msgs.map((m) => m.queueId).sort());
  });

  it('answers a repeated dedup key with the original id within the window and queues it anew after', async () => {
    const spool = await openSpool();
    const original = message({ dedupKey: 'k1' });
    expect(await spool.accept(original)).toEqual({ status: 'queued', queueId: original.queueId });
    const repeat = message({ dedupKey: 'k1' });
    expect(await spool.accept(repeat)).toEqual({ status: 'duplicate', queueId: original.queueId });
    expect(await spool.getMessage(repeat.queueId)).toBeNull();
    expect((await spool.countsByState()).queued).toBe(1);

    // Racing identical submissions: exactly one is queued.
    const racing = await Promise.all(Array.from({ length: 10 }, () => spool.accept(message({ dedupKey: 'k2' }))));
    expect(racing.filter((r) => r.status === 'queued')).toHaveLength(1);
    expect(new Set(racing.map((r) => r.queueId)).size).toBe(1);

    now += DAY + 1;
    const later = message({ dedupKey: 'k1' });
    expect(await spool.accept(later)).toEqual({ status: 'queued', queueId: later.queueId });
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

  it('splits recipients into one delivery per route and finishes the message only when all are final', async () => {
    const spool = await openSpool();
    const msg = twoRouteMessage();
    await spool.accept(msg);
    const [one] = await spool.claimDue('one', now, 10);
    const [two] = await spool.claimDue('two+backup', now, 10);
    expect([one?.delivery.id, two?.delivery.id]).toEqual([`${msg.queueId}.0`, `${msg.queueId}.1`]);
    const afterOne = await spool.completeAttempt(one!.delivery.id, outcome(['a@one.test'], 'delivered', null, now));
    expect(afterOne.message.state).toBe('queued');
    expect(await spool.getBody(msg.queueId)).not.toBeNull();
    const failed: AttemptUpdate = {
      attempts: [{ at: now, target: 'two', outcome: 'fail', reply: '550 5.1.1 no such user', durationMs: 1 }],
      recipients: [{ address: 'b@two.test', state: 'failed', reply: { kind: 'smtp', code: 550, enhancedStatus: '5.1.1', text: '550 5.1.1 no such user' } }],
      nextDueAt: null,
      reported: ['b@two.test'],
    };
    const afterTwo = await spool.completeAttempt(two!.delivery.id, failed);
    expect(afterTwo.message.state).toBe('bounced');
    expect(await spool.getBody(msg.queueId)).toBeNull();
    expect(await spool.countsByState()).toMatchObject({ queued: 0, bounced: 1 });
  });

  it('keeps a message bounced by the operator while its attempt was in flight bounced when the attempt then defers', async () => {
    const spool = await openSpool();
    const msg = message();
    await spool.accept(msg);
    const [claimed] = await spool.claimDue('outbox', now, 10);
    const reason: Reply = { kind: 'x-onward', code: null, enhancedStatus: '5.0.0', text: 'bounced by the operator' };
    expect((await spool.giveUp(msg.queueId, reason, () => Promise.resolve(null))).state).toBe('bounced');
    const after = await spool.completeAttempt(claimed!.delivery.id, outcome(msg.recipients, 'deferred', now + 60_000, now));
    expect([after.delivery.state, after.delivery.dueAt, after.message.state]).toEqual(['failed', null, 'bounced']);
    expect(after.delivery.attempts).toHaveLength(1);
    expect(await spool.claimDue('outbox', now + DAY, 10)).toEqual([]);
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0, bounced: 1 });
  });

  describe('dispatch at accept', () => {
    /** A dispatcher that grants `grants` slots and records what the spool does with them. */
    class RecordingDispatcher {
      readonly started: ClaimedDelivery[] = [];
      readonly lanes: string[] = [];
      cancelled = 0;
      constructor(private grants: number) {}
      readonly dispatcher: Dispatcher = (lane) => {
        this.lanes.push(lane);
        if (this.grants <= 0) return null;
        this.grants -= 1;
        return { start: (claimed) => this.started.push(claimed), cancel: () => (this.cancelled += 1) };
      };
    }

    it('writes a dispatched delivery leased and starts it with its body; the rest stay due', async () => {
      const spool = await openSpool();
      const probe = new RecordingDispatcher(1);
      spool.setDispatcher(probe.dispatcher);
      const msg = twoRouteMessage();
      await spool.accept(msg);
      expect(probe.lanes).toEqual(['one', 'two+backup']);
      expect(probe.started).toHaveLength(1);
      const [started] = probe.started;
      expect(started?.delivery).toMatchObject({ id: `${msg.queueId}.0`, state: 'queued', dueAt: null, attemptCount: 1 });
      expect(started?.body).toEqual(msg.body);
      // Leased: not in the due index; the undispatched one is.
      expect(await spool.claimDue('one', now, 10)).toEqual([]);
      expect((await spool.claimDue('two+backup', now, 10)).map((c) => c.delivery.id)).toEqual([`${msg.queueId}.1`]);
      const after = await spool.completeAttempt(started!.delivery.id, outcome(['a@one.test'], 'delivered', null, now));
      expect(after.delivery.state).toBe('delivered');
      expect((await spool.getDeliveries(msg.queueId))[0]?.state).toBe('delivered');
    });

    it('makes a dispatched delivery that never completed due again after a reopen', async () => {
      const first = await openSpool();
      const probe = new RecordingDispatcher(1);
      first.setDispatcher(probe.dispatcher);
      const msg = message();
      await first.accept(msg);
      expect(probe.started).toHaveLength(1);
      await first.close(); // as if the process died mid-attempt

      now += 1000;
      const second = await openSpool();
      const [again] = await second.claimDue('outbox', now, 10);
      expect(again?.delivery.id).toBe(`${msg.queueId}.0`);
      expect(again?.body).toEqual(msg.body);
      expect(again?.delivery.attemptCount).toBe(2);
    });

    it('gives the slot back when the accept cannot be written', async () => {
      const spool = await openSpool();
      const probe = new RecordingDispatcher(1);
      spool.setDispatcher(probe.dispatcher);
      await spool.close();
      const err = await spool.accept(message()).catch((e: unknown) => e);
      expect(isRelayError(err, 'ONWARD_ERR_SPOOL_WRITE')).toBe(true);
      expect(probe.cancelled).toBe(1);
      expect(probe.started).toEqual([]);
    });

    it('sees an operator hold made while a dispatched delivery is in flight (the record cache stays coherent)', async () => {
      const spool = await openSpool();
      const probe = new RecordingDispatcher(1);
      spool.setDispatcher(probe.dispatcher);
      const msg = message();
      await spool.accept(msg);
      expect((await spool.act(msg.queueId, 'hold')).state).toBe('held');
      // The attempt in flight ends with a temporary failure: the delivery stays held, not deferred.
      const after = await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', now + 60_000, now));
      expect(after.delivery.state).toBe('held');
      expect(after.message.state).toBe('held');
      expect((await spool.getMessage(msg.queueId))?.state).toBe('held');
      expect(await spool.claimDue('outbox', now + DAY, 10)).toEqual([]);
    });
  });
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
