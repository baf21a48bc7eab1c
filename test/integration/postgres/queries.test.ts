/**
 * The read path of the postgres spool against a real PostgreSQL: records, listings with
 * every filter and keyset paging across batches, stats and counts, due times and lanes.
 * Rows are seeded with insertMessages and moved to other states with plain SQL, where the
 * write path would move them.
 */
import { expect, it } from '@jest/globals';
import { countUnfinished, countsByState, getBody, getDeliveries, getMessage, lanes, list, nextDueIn, stats } from '../../../src/spool/postgres/queries.js';
import type { DeliveryRecord, ListFilter, MessageRecord, MessageState } from '../../../src/spool/types.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { finish, freshContext, newMessage, seed, singleTarget, updateDelivery, type TestContext } from './pg-context.js';

async function collect(iterable: AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }>): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }[]> {
  const out: { message: MessageRecord; deliveries: DeliveryRecord[] }[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describePg('postgres spool reads', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const fresh = (): Promise<TestContext> => freshContext(cluster(), defer, 'reads');

  async function setMessageState(t: TestContext, queueId: string, state: MessageState, deliveryState: 'queued' | 'deferred' | 'held'): Promise<void> {
    const { s } = t.ctx;
    const due = deliveryState === 'held' ? 'NULL' : deliveryState === 'deferred' ? `now() + interval '10 minutes'` : 'now()';
    await t.pool.query(`UPDATE ${s}.deliveries SET state = $2, due_at = ${due} WHERE queue_id = $1`, [queueId, deliveryState]);
    await t.pool.query(`UPDATE ${s}.messages SET state = $2 WHERE id = $1`, [queueId, state]);
  }

  it('reads a message, its deliveries with attempts in order, and its body until it is finished', async () => {
    const t = await fresh();
    await seed(t, newMessage('M1'));
    const { s } = t.ctx;
    await t.pool.query(
      `INSERT INTO ${s}.attempts (delivery_id, n, lease_epoch, node, at, target, outcome, reply, duration_ms)
       VALUES ('M1.1', 2, 2, 'node-b', now(), 'backup', 'transient', '451 later', 20), ('M1.1', 1, 1, 'node-a', now(), 'smtp', 'transient', '421 busy', 10)`,
    );
    await updateDelivery(t, 'M1.1', `state = 'deferred', attempt_count = 2, lease_owner = 'node-b', lease_epoch = 3, lease_expires_at = now() + interval '30 seconds'`);

    const message = await getMessage(t.ctx, 'M1');
    expect(message).toMatchObject({ id: 'M1', state: 'queued', sender: 'app@client.test', deliveries: { 'M1.0': 'queued', 'M1.1': 'deferred' }, finishedAt: null });
    const deliveries = await getDeliveries(t.ctx, 'M1');
    expect(deliveries.map((d) => d.id)).toEqual(['M1.0', 'M1.1']);
    expect(deliveries[0]).toMatchObject({ state: 'queued', attempts: [], attemptCount: 0 });
    expect(deliveries[0]?.dueAt).not.toBeNull();
    // Leased: shown as the level backend shows a delivery in flight.
    expect(deliveries[1]).toMatchObject({ state: 'queued', dueAt: null, attemptCount: 2 });
    expect(deliveries[1]?.attempts.map((a) => [a.target, a.reply, a.durationMs])).toEqual([['smtp', '421 busy', 10], ['backup', '451 later', 20]]);
    expect((await getBody(t.ctx, 'M1'))?.equals(newMessage('M1').body)).toBe(true);

    await t.pool.query(`UPDATE ${s}.deliveries SET state = 'delivered', due_at = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE queue_id = 'M1'`);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'delivered', finished_at = now() WHERE id = 'M1'`);
    expect(await getBody(t.ctx, 'M1')).toBeNull(); // finished: null even while the row is still there
    expect(await getMessage(t.ctx, 'NOPE')).toBeNull();
    expect(await getDeliveries(t.ctx, 'NOPE')).toEqual([]);
    expect(await getBody(t.ctx, 'NOPE')).toBeNull();
  });

  it('lists with every filter, in arrival order, unfinished states by default', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    await seed(
      t,
      singleTarget('A1', 'hooks', ['a@x.test']),
      newMessage('B2', { sender: 'Other@Else.test', recipients: ['c@z.test'], deliveries: [{ targets: ['smtp', 'backup'], recipients: ['c@z.test'] }] }),
      singleTarget('C3', 'hooks', ['d@x.test']),
      singleTarget('D4', 'hooks', ['e@x.test']),
      singleTarget('E5', 'archive', ['f@x.test']),
    );
    await t.pool.query(`UPDATE ${s}.messages SET received_at = now() - interval '2 hours' WHERE id = 'A1'`);
    await setMessageState(t, 'B2', 'deferred', 'deferred');
    await setMessageState(t, 'C3', 'held', 'held');
    await finish(t, 'D4', 'delivered');
    const ids = async (filter: ListFilter): Promise<string[]> => (await collect(list(t.ctx, filter))).map((x) => x.message.id);

    expect(await ids({})).toEqual(['A1', 'B2', 'C3', 'E5']);
    expect(await ids({ states: ['held'] })).toEqual(['C3']);
    expect(await ids({ states: ['delivered'] })).toEqual(['D4']);
    expect(await ids({ states: ['queued', 'delivered'] })).toEqual(['A1', 'D4', 'E5']);
    expect(await ids({ states: ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'] })).toEqual(['A1', 'B2', 'C3', 'D4', 'E5']);
    expect(await ids({ states: [] })).toEqual([]);
    expect(await ids({ target: 'backup' })).toEqual(['B2']); // any target of the failover list
    expect(await ids({ target: 'hooks' })).toEqual(['A1', 'C3']);
    expect(await ids({ target: 'hooks', states: ['delivered'] })).toEqual(['D4']);
    expect(await ids({ sender: '*@else.test' })).toEqual(['B2']); // globs ignore case, as on level
    expect(await ids({ sender: 'app@*' })).toEqual(['A1', 'C3', 'E5']);
    expect(await ids({ recipient: 'c@*' })).toEqual(['B2']);
    expect(await ids({ recipient: '*@x.test', states: ['held', 'delivered'] })).toEqual(['C3', 'D4']);
    expect(await ids({ olderThanMs: 3_600_000 })).toEqual(['A1']);
    expect(await ids({ olderThanMs: 0 })).toEqual(['A1', 'B2', 'C3', 'E5']);
    expect(await ids({ limit: 2 })).toEqual(['A1', 'B2']);
    expect(await ids({ limit: 0 })).toEqual([]);

    const [b2] = await collect(list(t.ctx, { target: 'smtp' }));
    expect(b2?.message).toMatchObject({ id: 'B2', state: 'deferred', recipients: ['c@z.test'] });
    expect(b2?.deliveries.map((d) => [d.id, d.state, d.targets])).toEqual([['B2.0', 'deferred', ['smtp', 'backup']]]);
  });

  it('pages by keyset across batches: every message once, in order, limits honoured across batch ends', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    const id = (i: number): string => `K${String(i).padStart(5, '0')}`;
    // One insert: every message has the same received_at, so order rests on the id tie-break.
    await seed(t, ...Array.from({ length: 1200 }, (_, i) => singleTarget(id(i), 'hooks', ['a@x.test'], { sender: i % 3 === 0 ? 'third@glob.test' : 'app@client.test' })));
    await t.pool.query(`UPDATE ${s}.messages SET received_at = now() - interval '1 hour' WHERE id >= 'K00600'`);
    // Now the arrival order is K00600..K01199 first, then K00000..K00599.
    const arrival = [...Array.from({ length: 600 }, (_, i) => id(i + 600)), ...Array.from({ length: 600 }, (_, i) => id(i))];

    const all = (await collect(list(t.ctx, {}, 500))).map((x) => x.message.id);
    expect(all).toEqual(arrival);
    expect((await collect(list(t.ctx, { limit: 700 }, 500))).map((x) => x.message.id)).toEqual(arrival.slice(0, 700));
    const thirds = (await collect(list(t.ctx, { sender: 'third@*' }, 500))).map((x) => x.message.id);
    expect(thirds).toEqual(arrival.filter((q) => Number(q.slice(1)) % 3 === 0));
    expect(thirds).toHaveLength(400);

    // Including finished states walks the primary key: id order, every message once.
    await t.pool.query(`UPDATE ${s}.deliveries SET state = 'delivered', due_at = NULL WHERE queue_id < 'K00100'`);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'delivered', finished_at = now() WHERE id < 'K00100'`);
    const everything = (await collect(list(t.ctx, { states: ['queued', 'delivered'] }, 500))).map((x) => x.message.id);
    expect(everything).toEqual(Array.from({ length: 1200 }, (_, i) => id(i)));
    expect((await collect(list(t.ctx, { states: ['delivered'] }, 500))).map((x) => x.message.id)).toEqual(Array.from({ length: 100 }, (_, i) => id(i)));
    expect((await collect(list(t.ctx, {}, 500))).map((x) => x.message.id)).toEqual(arrival.filter((q) => q >= 'K00100'));
  });

  it('counts states and waiting deliveries per first target exactly, with the oldest waiting arrival and the tables size', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    await seed(
      t,
      newMessage('S1'), // hooks queued, smtp (+backup) queued
      singleTarget('S2', 'hooks'),
      singleTarget('S3', 'hooks'),
      singleTarget('S4', 'hooks'),
      singleTarget('S5', 'slow'),
      singleTarget('S6', 'smtp'),
    );
    await setMessageState(t, 'S2', 'deferred', 'deferred');
    await t.pool.query(`UPDATE ${s}.messages SET received_at = now() - interval '1 hour' WHERE id = 'S2'`);
    await setMessageState(t, 'S3', 'held', 'held');
    await t.pool.query(`UPDATE ${s}.messages SET received_at = now() - interval '2 hours' WHERE id = 'S3'`); // held: not "queued"
    await finish(t, 'S4', 'delivered');
    await setMessageState(t, 'S5', 'deferred', 'deferred');
    await updateDelivery(t, 'S5.0', `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`); // in flight: queued
    await finish(t, 'S6', 'deleted'); // its delivery stays "queued" but its message is finished: not counted

    const result = await stats(t.ctx);
    expect(result.states).toEqual({ queued: 1, deferred: 2, held: 1, delivered: 1, bounced: 0, deleted: 1 });
    expect(result.targets).toEqual({ hooks: { queued: 1, deferred: 1 }, smtp: { queued: 1, deferred: 0 }, slow: { queued: 1, deferred: 0 } });
    expect(result.oldestQueuedAt).toBe((await getMessage(t.ctx, 'S2'))?.receivedAt);
    const tables = await t.pool.query<{ bytes: string }>(
      `SELECT (${['messages', 'bodies', 'deliveries', 'attempts', 'dedup_keys', 'nodes', 'onward_schema'].map((n) => `pg_total_relation_size('onward.${n}')`).join(' + ')})::text AS bytes`,
    );
    expect(result.spoolBytes).toBe(Number(tables.rows[0]?.bytes));
    expect(result.spoolBytes).toBeGreaterThan(0);
    expect(await countsByState(t.ctx)).toEqual(result.states);
    expect(await countUnfinished(t.ctx)).toBe(4);
  });

  it('says nothing is waiting on an empty spool', async () => {
    const t = await fresh();
    expect(await stats(t.ctx)).toMatchObject({ states: { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 }, targets: {}, oldestQueuedAt: null });
    expect(await countUnfinished(t.ctx)).toBe(0);
    expect(await lanes(t.ctx)).toEqual([]);
    expect(await nextDueIn(t.ctx, 'hooks')).toBeNull();
  });

  it('tells how long until a lane is due by the database clock, ignoring leased and held deliveries', async () => {
    const t = await fresh();
    await seed(t, singleTarget('N1', 'hooks'), singleTarget('N2', 'hooks'), singleTarget('N3', 'hooks'));
    await updateDelivery(t, 'N1.0', `due_at = now() - interval '5 seconds'`);
    await updateDelivery(t, 'N2.0', `state = 'deferred', due_at = now() + interval '60 seconds'`);
    await updateDelivery(t, 'N3.0', `state = 'deferred', due_at = now() + interval '120 seconds'`);

    const overdue = await nextDueIn(t.ctx, 'hooks');
    expect(overdue).toBeLessThanOrEqual(-5000);
    expect(overdue).toBeGreaterThan(-15_000);

    await updateDelivery(t, 'N1.0', `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`);
    const ahead = await nextDueIn(t.ctx, 'hooks');
    expect(ahead).toBeGreaterThan(50_000);
    expect(ahead).toBeLessThanOrEqual(60_000);

    await updateDelivery(t, 'N2.0', `state = 'held', due_at = NULL`);
    expect(await nextDueIn(t.ctx, 'hooks')).toBeGreaterThan(110_000);
    await updateDelivery(t, 'N3.0', `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`);
    expect(await nextDueIn(t.ctx, 'hooks')).toBeNull();
    expect(await nextDueIn(t.ctx, 'no-such-lane')).toBeNull();
  });

  it('lists the lanes with waiting work, not those only held or in flight', async () => {
    const t = await fresh();
    await seed(t, newMessage('L1'), singleTarget('L2', 'parked'), singleTarget('L3', 'busy'), singleTarget('L4', 'archive'), singleTarget('L5', 'later'));
    await updateDelivery(t, 'L2.0', `state = 'held', due_at = NULL`);
    await updateDelivery(t, 'L3.0', `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`);
    await updateDelivery(t, 'L5.0', `state = 'deferred', due_at = now() + interval '1 hour'`);
    expect(await lanes(t.ctx)).toEqual(['archive', 'hooks', 'later', 'smtp+backup']);
  });
});
