/** Contract: accept and read back, dedup, dispatch at accept, due notifications. */
import { expect, it } from '@jest/globals';
import { isRelayError } from '../../src/errors.js';
import { waitForValue } from '../helpers/common.js';
import { claimSoon, message, outcome, RecordingDispatcher, twoRouteMessage } from './fixtures.js';
import type { OpenSpool } from './harness.js';

export function acceptContract(open: OpenSpool): void {
  it('stores an accepted message with its deliveries and body, read back as accepted', async () => {
    const spool = await open();
    const msg = twoRouteMessage({ messageId: 'm1@client.test', dedupKey: 'key-1' });
    const before = Date.now();
    expect(await spool.accept(msg)).toEqual({ status: 'queued', queueId: msg.queueId });
    expect(await spool.getMessage(msg.queueId)).toMatchObject({
      id: msg.queueId,
      sender: msg.sender,
      recipients: msg.recipients,
      messageId: 'm1@client.test',
      size: msg.body.length,
      client: msg.client,
      state: 'queued',
      deliveries: { [`${msg.queueId}.0`]: 'queued', [`${msg.queueId}.1`]: 'queued' },
      finishedAt: null,
      dedupKey: 'key-1',
      bounceOf: null,
    });
    const deliveries = await spool.getDeliveries(msg.queueId);
    expect(deliveries.map((d) => [d.id, d.queueId, d.targets, d.state, d.attempts, d.attemptCount, d.delayWarned])).toEqual([
      [`${msg.queueId}.0`, msg.queueId, ['one'], 'queued', [], 0, false],
      [`${msg.queueId}.1`, msg.queueId, ['two', 'backup'], 'queued', [], 0, false],
    ]);
    expect(deliveries[1]?.recipients).toEqual([{ address: 'b@two.test', state: 'queued', lastError: null, lastReply: null, reported: false }]);
    // Due now; record times are the backend's clock (the database's on a shared backend),
    // so they are compared with the test's clock with a tolerance only.
    for (const d of deliveries) expect(d.dueAt).not.toBeNull();
    expect((await spool.getMessage(msg.queueId))?.receivedAt).toBeGreaterThan(before - 1000);
    expect(await spool.getBody(msg.queueId)).toEqual(msg.body);
    // Unknown ids read as nothing.
    const unknown = message().queueId;
    expect([await spool.getMessage(unknown), await spool.getDeliveries(unknown), await spool.getBody(unknown)]).toEqual([null, [], null]);
  });

  it('answers a repeated dedup key within the window with the original and queues it anew after the window', async () => {
    const spool = await open({ dedupWindowMs: 300 });
    const original = message({ dedupKey: 'k1' });
    expect(await spool.accept(original)).toEqual({ status: 'queued', queueId: original.queueId });
    const repeat = message({ dedupKey: 'k1' });
    expect(await spool.accept(repeat)).toEqual({ status: 'duplicate', queueId: original.queueId });
    expect(await spool.getMessage(repeat.queueId)).toBeNull();
    expect((await spool.countsByState()).queued).toBe(1);
    // After the window the same key is a new message (each try until then is a duplicate).
    const later = await waitForValue(
      async () => {
        const m = message({ dedupKey: 'k1' });
        return { sent: m.queueId, result: await spool.accept(m) };
      },
      (r) => r.result.status === 'queued',
      5000,
      'the dedup window to pass',
    );
    expect(later.result).toEqual({ status: 'queued', queueId: later.sent });
    expect((await spool.getMessage(later.sent))?.dedupKey).toBe('k1');
  });

  it('queues exactly one of many identical concurrent accepts', async () => {
    const spool = await open();
    const racing = await Promise.all(Array.from({ length: 10 }, () => spool.accept(message({ dedupKey: 'k2' }))));
    expect(racing.filter((r) => r.status === 'queued')).toHaveLength(1);
    expect(new Set(racing.map((r) => r.queueId)).size).toBe(1);
    expect((await spool.countsByState()).queued).toBe(1);
  });

  it('calls onDue with the lane of new due work', async () => {
    const spool = await open();
    const lanes: string[] = [];
    spool.onDue((lane) => lanes.push(lane));
    await spool.accept(twoRouteMessage());
    await waitForValue(() => [...lanes].sort(), (l) => l.includes('one') && l.includes('two+backup'), 5000, 'onDue for both lanes');
  });

  it('starts a dispatched delivery after the durable write, leased, with its body; the rest stay due', async () => {
    const spool = await open();
    const seenAtStart: Promise<unknown>[] = [];
    // What start sees must already be stored: read it back from inside start.
    const probe = new RecordingDispatcher(1, (claimed) => seenAtStart.push(spool.getMessage(claimed.message.id)));
    spool.setDispatcher(probe.dispatcher);
    const msg = twoRouteMessage();
    await spool.accept(msg);
    expect(probe.lanes).toEqual(['one', 'two+backup']);
    expect(probe.started).toHaveLength(1);
    const [started] = probe.started;
    expect(started?.delivery).toMatchObject({ id: `${msg.queueId}.0`, state: 'queued', dueAt: null, attemptCount: 1 });
    expect(started?.message.id).toBe(msg.queueId);
    expect(started?.body).toEqual(msg.body);
    expect(await Promise.all(seenAtStart)).toEqual([expect.objectContaining({ id: msg.queueId })]);
    // Leased: not claimable; the undispatched one is.
    expect(await spool.claimDue('one', Date.now(), 10)).toEqual([]);
    expect((await claimSoon(spool, 'two+backup')).map((c) => c.delivery.id)).toEqual([`${msg.queueId}.1`]);
    const after = await spool.completeAttempt(started!.delivery.id, outcome(['a@one.test'], 'delivered', null, 'one'));
    expect(after.delivery.state).toBe('delivered');
    expect((await spool.getDeliveries(msg.queueId))[0]?.state).toBe('delivered');
  });

  it('gives the dispatch slot back for a duplicate', async () => {
    const spool = await open();
    const probe = new RecordingDispatcher(2);
    spool.setDispatcher(probe.dispatcher);
    const original = message({ dedupKey: 'k3' });
    await spool.accept(original);
    expect(await spool.accept(message({ dedupKey: 'k3' }))).toEqual({ status: 'duplicate', queueId: original.queueId });
    expect(probe.started.map((c) => c.message.id)).toEqual([original.queueId]);
    // A slot asked for the duplicate is returned, never started.
    expect(probe.cancelled).toBe(probe.lanes.length - 1);
  });

  it('gives the dispatch slot back when the accept cannot be written', async () => {
    const spool = await open();
    const probe = new RecordingDispatcher(1);
    spool.setDispatcher(probe.dispatcher);
    await spool.close();
    const err = await spool.accept(message()).catch((e: unknown) => e);
    // A closed local store fails the write; a closed pool has no connection: either code says "not stored".
    expect(isRelayError(err, 'ONWARD_ERR_SPOOL_WRITE') || isRelayError(err, 'ONWARD_ERR_SPOOL_UNAVAILABLE')).toBe(true);
    expect(probe.started).toEqual([]);
    expect(probe.cancelled).toBe(probe.lanes.length);
  });

  it('keeps an operator hold made while a dispatched delivery is in flight when the attempt then defers', async () => {
    const spool = await open();
    const probe = new RecordingDispatcher(1);
    spool.setDispatcher(probe.dispatcher);
    const msg = message();
    await spool.accept(msg);
    expect(probe.started).toHaveLength(1);
    expect((await spool.act(msg.queueId, 'hold')).state).toBe('held');
    const after = await spool.completeAttempt(`${msg.queueId}.0`, outcome(msg.recipients, 'deferred', Date.now() + 60_000));
    expect([after.delivery.state, after.message.state]).toEqual(['held', 'held']);
    expect((await spool.getMessage(msg.queueId))?.state).toBe('held');
    expect(await spool.claimDue('outbox', Date.now(), 10)).toEqual([]);
  });
}
