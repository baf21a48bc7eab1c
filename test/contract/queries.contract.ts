/** Contract: listing with filters, stats and counts, due times and lanes. */
import { expect, it } from '@jest/globals';
import type { MessageState, Spool } from '../../src/spool/index.js';
import { waitForValue } from '../helpers/common.js';
import { claimSoon, LATER, listedIds, message, near, outcome } from './fixtures.js';
import type { OpenSpool } from './harness.js';

const NO_MESSAGES: Record<MessageState, number> = { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 };

/** Accepts one message per builder, each after the clock has moved on (distinct arrival times). */
async function acceptInOrder(spool: Spool, builds: readonly (() => ReturnType<typeof message>)[]): Promise<string[]> {
  const ids: string[] = [];
  for (const build of builds) {
    const last = Date.now();
    await waitForValue(() => Date.now(), (t) => t > last + 1, 1000, 'the clock to tick');
    const msg = build();
    await spool.accept(msg);
    ids.push(msg.queueId);
  }
  return ids;
}

export function queryContract(open: OpenSpool): void {
  it('lists the queue by default in arrival order and filters by state, target, sender, recipient, age and limit', async () => {
    const spool = await open();
    const [alice, bob, held, done] = await acceptInOrder(spool, [
      () => message({ sender: 'alice@a.test', recipients: ['x@one.test'], deliveries: [{ targets: ['one'], recipients: ['x@one.test'] }] }),
      () => message({ sender: 'bob@b.test', recipients: ['y@two.test'], deliveries: [{ targets: ['two', 'backup'], recipients: ['y@two.test'] }] }),
      () => message({ sender: 'carol@c.test', recipients: ['z@one.test'], deliveries: [{ targets: ['one'], recipients: ['z@one.test'] }] }),
      () => message({ sender: 'dave@d.test' }),
    ]);
    await spool.act(held!, 'hold');
    const [claimed] = await claimSoon(spool, 'outbox', 1);
    expect(claimed?.message.id).toBe(done);
    await spool.completeAttempt(claimed!.delivery.id, outcome(['rcpt@example.org'], 'delivered', null));

    // Default: the queue view (queued, deferred, held), finished messages left out.
    expect(await listedIds(spool, {})).toEqual([alice, bob, held]);
    expect(await listedIds(spool, { states: ['delivered'] })).toEqual([done]);
    expect(await listedIds(spool, { states: ['held', 'delivered'] })).toEqual([held, done]);
    expect(await listedIds(spool, { states: ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'] })).toEqual([alice, bob, held, done]);
    // A target matches any of a delivery's failover targets.
    expect(await listedIds(spool, { target: 'one' })).toEqual([alice, held]);
    expect(await listedIds(spool, { target: 'backup' })).toEqual([bob]);
    // Globs, case-insensitive.
    expect(await listedIds(spool, { sender: '*@B.TEST' })).toEqual([bob]);
    expect(await listedIds(spool, { recipient: '*@one.test' })).toEqual([alice, held]);
    expect(await listedIds(spool, { sender: 'nobody@*' })).toEqual([]);
    expect(await listedIds(spool, { olderThanMs: LATER })).toEqual([]);
    expect(await listedIds(spool, { olderThanMs: 0 })).toEqual([alice, bob, held]);
    expect(await listedIds(spool, { limit: 2 })).toEqual([alice, bob]);
    expect(await listedIds(spool, { recipient: '*@one.test', limit: 1 })).toEqual([alice]);
    const [entry] = await collectOne(spool, alice!);
    expect(entry?.deliveries.map((d) => d.id)).toEqual([`${alice!}.0`]);
  });

  it('filters by Message-ID glob and pages by cursor: every message once, in order, while states change between pages', async () => {
    const spool = await open();
    const ids = await acceptInOrder(
      spool,
      Array.from({ length: 7 }, (_, i) => () => message({ messageId: i < 3 ? `order-${String(i)}@shop.test` : i === 3 ? null : `news-${String(i)}@shop.test` })),
    );
    expect(await listedIds(spool, { messageId: 'ORDER-*@shop.test' })).toEqual(ids.slice(0, 3));
    expect(await listedIds(spool, { messageId: '*' })).toEqual([...ids.slice(0, 3), ...ids.slice(4)]); // no Message-ID never matches
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await listedIds(spool, { limit: 3, ...(after === undefined ? {} : { after }) });
      seen.push(...page);
      // An operator acts between pages: held messages stay in the queue listing, a deleted one leaves it.
      for (const id of page) await spool.act(id, id === ids[5] ? 'delete' : 'hold');
      if (page.length < 3) break;
      after = page[page.length - 1];
    }
    expect(seen).toEqual(ids);
    expect(await listedIds(spool, { after: ids[2]!, limit: 2 })).toEqual([ids[3], ids[4]]);
    expect(await listedIds(spool, { after: ids[6]! })).toEqual([]);
    // A cursor whose message is gone still resumes where it was (finished messages, all states).
    await spool.forget(ids[5]!);
    expect(await listedIds(spool, { after: ids[5]!, states: ['held', 'deleted'] })).toEqual([ids[6]]);
  });

  it('counts messages by state and deliveries by target, with the oldest queued time and the spool size', async () => {
    const spool = await open();
    expect(await spool.countsByState()).toEqual(NO_MESSAGES);
    expect((await spool.stats()).oldestQueuedAt).toBeNull();
    const [heldId, first, second] = await acceptInOrder(spool, [() => message(), () => message(), () => message()]);
    await spool.act(heldId!, 'hold');
    const [claimed] = await claimSoon(spool, 'outbox', 1);
    expect(claimed?.message.id).toBe(first);
    await spool.completeAttempt(claimed!.delivery.id, outcome(['rcpt@example.org'], 'deferred', Date.now() + LATER));

    expect(await spool.countsByState()).toEqual({ ...NO_MESSAGES, queued: 1, deferred: 1, held: 1 });
    const stats = await spool.stats();
    expect(stats.states).toEqual(await spool.countsByState());
    expect(stats.targets['outbox']).toEqual({ queued: 1, deferred: 1 });
    // The oldest waiting (queued or deferred) message: the held one does not count.
    const firstReceived = (await spool.getMessage(first!))!.receivedAt;
    expect(stats.oldestQueuedAt).toBe(firstReceived);
    expect(stats.spoolBytes).toBeGreaterThan(0);
    expect((await spool.getMessage(second!))?.state).toBe('queued');
  });

  it('reports unfinishedCount after accepts and finishes', async () => {
    const spool = await open();
    expect(spool.unfinishedCount()).toBe(0);
    const msgs = [message(), message(), message()];
    for (const m of msgs) await spool.accept(m);
    await spool.act(msgs[0]!.queueId, 'hold');
    // Exact at once on a local spool; a shared backend refreshes it about once a second.
    await waitForValue(() => spool.unfinishedCount(), (n) => n === 3, 5000, 'unfinishedCount 3');
    await spool.act(msgs[1]!.queueId, 'delete');
    await waitForValue(() => spool.unfinishedCount(), (n) => n === 2, 5000, 'unfinishedCount 2');
  });

  it('answers nextDueAt and lanes from the due work', async () => {
    const spool = await open();
    expect(await spool.nextDueAt('outbox')).toBeNull();
    expect(await spool.lanes()).toEqual([]);
    const acceptedAt = Date.now();
    await spool.accept(message());
    await spool.accept(message({ deliveries: [{ targets: ['two', 'backup'], recipients: ['rcpt@example.org'] }] }));
    expect(near(await spool.nextDueAt('outbox'), acceptedAt)).toBe(true);
    expect((await spool.lanes()).sort()).toEqual(['outbox', 'two+backup']);
    expect(await spool.nextDueAt('elsewhere')).toBeNull();
    // Claimed work is leased, not due.
    await claimSoon(spool, 'two+backup');
    expect(await spool.nextDueAt('two+backup')).toBeNull();
  });
}

async function collectOne(spool: Spool, queueId: string): Promise<{ deliveries: readonly { id: string }[] }[]> {
  const out: { deliveries: readonly { id: string }[] }[] = [];
  for await (const e of spool.list({})) if (e.message.id === queueId) out.push(e);
  return out;
}
