/**
 * The PostgreSQL side of `spool transfer` (src/spool/postgres/transfer.ts) against a real
 * PostgreSQL: messages exported from a real LevelDB spool are imported with every field (times
 * moved onto the database's clock), a second import is `present`, export gives them back with
 * live leases marked in flight, and forget removes every row of a message.
 */
import { expect, it } from '@jest/globals';
import type pg from 'pg';
import { createPool } from '../../../src/spool/postgres/connection.js';
import { lockMessage, readDeliveries } from '../../../src/spool/postgres/message-rows.js';
import { migrate, quoteSchema } from '../../../src/spool/postgres/migrations.js';
import { exportUnfinished, forget, importMessage } from '../../../src/spool/postgres/transfer.js';
import type { DeliveryRecord, TransferItem } from '../../../src/spool/types.js';
import { makeTempDir, openSpool, removeDir, useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { seedDeferred, unfinishedById } from '../../helpers/transfer.js';

/** Times cross from this process's clock to the database's as delays: equal up to the time a call takes. */
const CLOCK_SLACK_MS = 250;

describePg('postgres spool transfer rows', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const s = quoteSchema('onward');
  let databases = 0;

  async function freshContext(): Promise<{ pool: pg.Pool; ctx: Parameters<typeof importMessage>[0]; dueLanes: string[] }> {
    databases += 1;
    const name = `transfer${databases}`;
    await cluster().createDatabase(name);
    const pool = createPool({ url: cluster().passwordUrl.replace(/\/[^/]+$/, `/${name}`), pool: 4 });
    defer(() => pool.end());
    await migrate(pool, 'onward');
    const dueLanes: string[] = [];
    return { pool, ctx: { pool, s, nodeId: 'node-t', due: (lane: string) => dueLanes.push(lane) }, dueLanes };
  }

  /** Deferred messages as a real LevelDB spool exports them (the other side of a transfer). */
  async function exportedFromLevel(count: number, retryInMs: number): Promise<TransferItem[]> {
    const dir = await makeTempDir('onward-transfer-rows-');
    defer(() => removeDir(dir));
    const spool = await openSpool(`${dir}/spool`, { create: true });
    try {
      await seedDeferred(spool, { count, target: 'hook', retryInMs });
      return [...(await unfinishedById(spool)).values()];
    } finally {
      await spool.close();
    }
  }

  function expectSameTimes(actual: DeliveryRecord, expected: DeliveryRecord): void {
    expect(Math.abs((actual.dueAt ?? NaN) - (expected.dueAt ?? NaN))).toBeLessThan(CLOCK_SLACK_MS);
    expect(Math.abs(actual.createdAt - expected.createdAt)).toBeLessThan(CLOCK_SLACK_MS);
    actual.attempts.forEach((a, i) => expect(Math.abs(a.at - (expected.attempts[i]?.at ?? NaN))).toBeLessThan(CLOCK_SLACK_MS));
  }

  /** A delivery without its times (compared apart, with slack). */
  const timeless = (d: DeliveryRecord): object => ({ ...d, dueAt: 0, createdAt: 0, attempts: d.attempts.map((a) => ({ ...a, at: 0 })) });

  it('imports every field of an exported message in one transaction, and a second import is present', async () => {
    const { pool, ctx, dueLanes } = await freshContext();
    const items = await exportedFromLevel(10, 3_600_000);
    for (const item of items) expect(await importMessage(ctx, item)).toBe('imported');
    expect(dueLanes).toEqual([]); // deferred for an hour: nothing became due now

    for (const item of items) {
      const message = await lockMessage(pool, ctx, item.message.id);
      expect({ ...message, receivedAt: 0 }).toEqual({ ...item.message, receivedAt: 0 });
      expect(Math.abs((message?.receivedAt ?? NaN) - item.message.receivedAt)).toBeLessThan(CLOCK_SLACK_MS);
      const deliveries = await readDeliveries(pool, ctx, item.message.id);
      expect(deliveries.map(timeless)).toEqual(item.deliveries.map(timeless));
      deliveries.forEach((d, i) => expectSameTimes(d, item.deliveries[i] as DeliveryRecord));
      const body = await pool.query<{ body: Buffer }>(`SELECT body FROM ${s}.bodies WHERE queue_id = $1`, [item.message.id]);
      expect(body.rows[0]?.body.equals(item.body)).toBe(true);
      const dedup = await pool.query<{ queue_id: string; expires_ms: number }>(
        `SELECT queue_id, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_ms FROM ${s}.dedup_keys WHERE key = $1`,
        [item.message.dedupKey ?? ''],
      );
      if (item.dedup) {
        expect(dedup.rows[0]?.queue_id).toBe(item.message.id);
        expect(Math.abs((dedup.rows[0]?.expires_ms ?? NaN) - item.dedup.expiresAt)).toBeLessThan(CLOCK_SLACK_MS);
      } else expect(dedup.rows).toEqual([]);
    }
    expect(items.some((i) => i.dedup === null) && items.some((i) => i.deliveries.length === 2)).toBe(true); // both shapes covered

    const changed = { ...items[0], message: { ...items[0]?.message, sender: 'other@x.test' } } as TransferItem;
    expect(await importMessage(ctx, changed)).toBe('present');
    expect((await lockMessage(pool, ctx, changed.message.id))?.sender).toBe(items[0]?.message.sender);
    const counts = await pool.query<{ m: string; d: string; a: string }>(
      `SELECT (SELECT count(*) FROM ${s}.messages) AS m, (SELECT count(*) FROM ${s}.deliveries) AS d, (SELECT count(*) FROM ${s}.attempts) AS a`,
    );
    const deliveries = items.reduce((n, i) => n + i.deliveries.length, 0);
    expect(counts.rows[0]).toEqual({ m: String(items.length), d: String(deliveries), a: String(deliveries) });
  });

  it('exports what it imported, marks a delivery under a live lease in flight, and tells a due import to the scheduler', async () => {
    const { pool, ctx, dueLanes } = await freshContext();
    const items = await exportedFromLevel(3, -60_000); // retry time already passed: due now
    for (const item of items) await importMessage(ctx, item);
    expect(dueLanes).toEqual(['hook', 'hook', 'hook']);
    const [leasedItem] = items;
    await pool.query(`UPDATE ${s}.deliveries SET lease_owner = 'node-b', lease_expires_at = now() + interval '30 seconds', lease_epoch = lease_epoch + 1 WHERE queue_id = $1`, [
      leasedItem?.message.id,
    ]);
    const exported = new Map<string, TransferItem>();
    for await (const item of exportUnfinished(ctx)) exported.set(item.message.id, item);
    expect([...exported.keys()]).toEqual(items.map((i) => i.message.id).sort());
    for (const item of items) {
      const back = exported.get(item.message.id);
      expect(back?.inFlight).toBe(item === leasedItem);
      expect({ ...back?.message, receivedAt: 0 }).toEqual({ ...item.message, receivedAt: 0 });
      expect(back?.deliveries.map(timeless)).toEqual(item.deliveries.map(timeless));
      expect(back?.body.equals(item.body)).toBe(true);
      expect(back?.dedup?.key).toBe(item.dedup?.key);
    }
    // Leased by a live node: forget as exported refuses, nothing removed.
    expect(await forget(ctx, leasedItem?.message.id ?? '', exported.get(leasedItem?.message.id ?? ''))).toBe('changed');
    expect(await lockMessage(pool, ctx, leasedItem?.message.id ?? '')).not.toBeNull();
  });

  it('forgets a message with every row of it (deliveries, attempts, body, its dedup key), only while it is as exported', async () => {
    const { pool, ctx } = await freshContext();
    const [a, b] = (await exportedFromLevel(3, 3_600_000)).filter((i) => i.dedup !== null); // seeds 1 and 2 (seed 0 has no Message-ID)
    if (!a?.dedup || !b) throw new Error('seeds 1 and 2 have Message-IDs');
    for (const item of [a, b]) await importMessage(ctx, item);
    const asExported = new Map<string, TransferItem>();
    for await (const item of exportUnfinished(ctx)) asExported.set(item.message.id, item);

    // A retry made it due now after the export: forget as exported leaves it.
    await pool.query(`UPDATE ${s}.deliveries SET due_at = now() WHERE queue_id = $1`, [b.message.id]);
    expect(await forget(ctx, b.message.id, asExported.get(b.message.id))).toBe('changed');

    expect(await forget(ctx, a.message.id, asExported.get(a.message.id))).toBe('forgotten');
    expect(await forget(ctx, a.message.id)).toBe('absent');
    const left = await pool.query<{ t: string; n: string }>(
      `SELECT 'messages' AS t, count(*) AS n FROM ${s}.messages WHERE id = $1
       UNION ALL SELECT 'deliveries', count(*) FROM ${s}.deliveries WHERE queue_id = $1
       UNION ALL SELECT 'attempts', count(*) FROM ${s}.attempts WHERE delivery_id LIKE $1 || '.%'
       UNION ALL SELECT 'bodies', count(*) FROM ${s}.bodies WHERE queue_id = $1
       UNION ALL SELECT 'dedup_keys', count(*) FROM ${s}.dedup_keys WHERE key = $2`,
      [a.message.id, a.dedup.key],
    );
    expect(Object.fromEntries(left.rows.map((r) => [r.t, Number(r.n)]))).toEqual({ messages: 0, deliveries: 0, attempts: 0, bodies: 0, dedup_keys: 0 });
    expect(await lockMessage(pool, ctx, b.message.id)).not.toBeNull();
    // Unconditional forget (undoing a copy) removes it whatever changed.
    expect(await forget(ctx, b.message.id)).toBe('forgotten');
    expect((await pool.query(`SELECT 1 FROM ${s}.messages`)).rowCount).toBe(0);
  });
});
