/**
 * New messages written by `insertMessages` and read back through `rows.ts` against a real
 * PostgreSQL: every field of the records round-trips, leased deliveries are written as
 * claimed by this node, and times come from the database's clock.
 */
import { expect, it } from '@jest/globals';
import type pg from 'pg';
import { createPool, databaseNow } from '../../../src/spool/postgres/connection.js';
import { insertMessages } from '../../../src/spool/postgres/insert.js';
import { migrate, quoteSchema } from '../../../src/spool/postgres/migrations.js';
import { attemptRowsByDelivery, deliveryColumns, deliveryFromRow, messageColumns, messageFromRow, type DeliveryRow, type MessageRow } from '../../../src/spool/postgres/rows.js';
import type { NewMessage } from '../../../src/spool/types.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';

describePg('postgres spool rows', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const s = quoteSchema('onward');
  const ctx = { s, nodeId: 'node-a', leaseMs: 30_000 };

  async function freshPool(): Promise<pg.Pool> {
    await cluster().createDatabase('rows');
    const pool = createPool({ url: cluster().passwordUrl.replace(/\/[^/]+$/, '/rows'), pool: 2 });
    defer(() => pool.end());
    await migrate(pool, 'onward');
    return pool;
  }

  const message = (queueId: string, extra: Partial<NewMessage> = {}): NewMessage => ({
    queueId,
    sender: 'app@client.test',
    recipients: ['a@x.test', 'b@y.test'],
    messageId: `${queueId}@client.test`,
    body: Buffer.from(`Subject: ${queueId}\r\n\r\nbody \u00e9\r\n`),
    client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
    deliveries: [
      { targets: ['hooks'], recipients: ['a@x.test'] },
      { targets: ['smtp', 'backup'], recipients: ['b@y.test'] },
    ],
    dedupKey: `key-${queueId}`,
    bounceOf: null,
    ...extra,
  });

  it('writes messages, bodies and deliveries in one call, read back as records (leased ones claimed by this node)', async () => {
    const pool = await freshPool();
    const before = await databaseNow(pool);
    await insertMessages(pool, ctx, [{ msg: message('M1') }, { msg: message('M2', { sender: '', dedupKey: null, bounceOf: 'M1' }), leased: [false, true] }]);
    const after = await databaseNow(pool);

    const messages = await pool.query<MessageRow>(`SELECT ${messageColumns(s)} FROM ${s}.messages m ORDER BY id`);
    const [m1, m2] = messages.rows.map(messageFromRow);
    expect(m1).toMatchObject({
      id: 'M1', sender: 'app@client.test', recipients: ['a@x.test', 'b@y.test'], messageId: 'M1@client.test', state: 'queued',
      deliveries: { 'M1.0': 'queued', 'M1.1': 'queued' }, finishedAt: null, dedupKey: 'key-M1', bounceOf: null,
      client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
    });
    expect(m1?.size).toBe(message('M1').body.length);
    expect(m1?.receivedAt).toBeGreaterThanOrEqual(before - 1);
    expect(m1?.receivedAt).toBeLessThanOrEqual(after + 1);
    expect(m2).toMatchObject({ sender: '', dedupKey: null, bounceOf: 'M1' });

    const bodies = await pool.query<{ queue_id: string; body: Buffer }>(`SELECT queue_id, body FROM ${s}.bodies ORDER BY queue_id`);
    expect(bodies.rows.map((r) => r.body.equals(message(r.queue_id).body))).toEqual([true, true]);

    const rows = await pool.query<DeliveryRow>(`SELECT ${deliveryColumns()} FROM ${s}.deliveries d ORDER BY id`);
    const attempts = attemptRowsByDelivery([]);
    const deliveries = rows.rows.map((r) => deliveryFromRow(r, attempts.get(r.id) ?? []));
    expect(deliveries.map((d) => [d.id, d.targets, d.state, d.attemptCount, d.dueAt === null])).toEqual([
      ['M1.0', ['hooks'], 'queued', 0, false],
      ['M1.1', ['smtp', 'backup'], 'queued', 0, false],
      ['M2.0', ['hooks'], 'queued', 0, false],
      ['M2.1', ['smtp', 'backup'], 'queued', 1, true],
    ]);
    expect(deliveries[1]?.recipients).toEqual([{ address: 'b@y.test', state: 'queued', lastError: null, lastReply: null, reported: false }]);
    expect(rows.rows.map((r) => [r.lane, r.lease_owner, Number(r.lease_epoch)])).toEqual([
      ['hooks', null, 0],
      ['smtp+backup', null, 0],
      ['hooks', null, 0],
      ['smtp+backup', 'node-a', 1],
    ]);
    const leased = rows.rows[3];
    expect((leased?.lease_expires_at_ms ?? 0) - after).toBeGreaterThan(29_000);
  });
});
