/**
 * PostgresSpool.accept against a real PostgreSQL: rows are durable when it resolves, concurrent
 * accepts share transactions (group commit), and dedup holds across nodes, within a batch and
 * after a key expired.
 */
import { expect, it } from '@jest/globals';
import { waitForValue, useCleanup } from '../../helpers/common.js';
import { describePg, startPostgres, usePostgres } from '../../helpers/postgres.js';
import type { AcceptResult } from '../../../src/spool/types.js';
import { PostgresSpool } from '../../../src/spool/postgres/postgres-spool.js';
import { freshSpoolDb, newMessage } from './spool-fixture.js';

describePg('postgres spool accept', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  it('has the message, body and due delivery in the database when accept resolves', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const spool = await db.open();
    const due: string[] = [];
    spool.onDue((lane) => due.push(lane));
    const msg = newMessage({ deliveries: [{ targets: ['hooks'], recipients: ['a@x.test'] }, { targets: ['smtp', 'backup'], recipients: ['b@y.test'] }], recipients: ['a@x.test', 'b@y.test'] });

    expect(await spool.accept(msg)).toEqual({ status: 'queued', queueId: msg.queueId });

    const m = await db.observer.query(`SELECT state, accepted_by FROM onward.messages WHERE id = $1`, [msg.queueId]);
    expect(m.rows).toEqual([{ state: 'queued', accepted_by: 'node-1' }]);
    const b = await db.observer.query<{ body: Buffer }>(`SELECT body FROM onward.bodies WHERE queue_id = $1`, [msg.queueId]);
    expect(b.rows[0]?.body.equals(msg.body)).toBe(true);
    const d = await db.observer.query(`SELECT id, lane, state, lease_owner, due_at <= now() AS due FROM onward.deliveries WHERE queue_id = $1 ORDER BY id`, [msg.queueId]);
    expect(d.rows).toEqual([
      { id: `${msg.queueId}.0`, lane: 'hooks', state: 'queued', lease_owner: null, due: true },
      { id: `${msg.queueId}.1`, lane: 'smtp+backup', state: 'queued', lease_owner: null, due: true },
    ]);
    // At once, locally (this node's own NOTIFY may say it once more: harmless).
    expect([...new Set(due)].sort()).toEqual(['hooks', 'smtp+backup']);
  });

  it('puts 50 concurrent accepts into fewer transactions than messages', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const spool = await db.open();
    const batches: number[] = [];
    spool.on('batch', ({ writes }) => batches.push(writes));
    const msgs = Array.from({ length: 50 }, () => newMessage());

    const results = await Promise.all(msgs.map((m) => spool.accept(m)));

    expect(results.every((r) => r.status === 'queued')).toBe(true);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(50);
    expect(batches.length).toBeLessThan(50);
    const count = await db.observer.query<{ n: string }>(`SELECT count(*) AS n FROM onward.messages`);
    expect(Number(count.rows[0]?.n)).toBe(50);
  });

  it('keeps one message when two nodes accept the same dedup key at the same moment, both naming it', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const [a, b] = [await db.open(), await db.open()];
    // Several rounds: each a race between two nodes on a fresh key.
    for (let round = 0; round < 5; round++) {
      const key = `race-key-${String(round)}`;
      const [ra, rb] = await Promise.all([a.accept(newMessage({ dedupKey: key })), b.accept(newMessage({ dedupKey: key }))]);
      const rows = await db.observer.query<{ id: string }>(`SELECT id FROM onward.messages WHERE dedup_key = $1`, [key]);
      expect(rows.rows).toHaveLength(1);
      expect(ra.queueId).toBe(rows.rows[0]?.id);
      expect(rb.queueId).toBe(rows.rows[0]?.id);
      expect([ra.status, rb.status].sort()).toEqual(['duplicate', 'queued']);
    }
  });

  it('answers an in-batch duplicate with the first copy, and a later one from the database', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const spool = await db.open();
    const batches: number[] = [];
    spool.on('batch', ({ writes }) => batches.push(writes));
    // Accepts made in one tick share one transaction: the three copies meet inside the batch.
    const first = spool.accept(newMessage());
    const copies = [newMessage({ dedupKey: 'same' }), newMessage({ dedupKey: 'same' }), newMessage({ dedupKey: 'same' })];
    const results: AcceptResult[] = await Promise.all([first, ...copies.map((m) => spool.accept(m))]);

    expect(batches).toEqual([4]);
    const winner = copies[0]!.queueId;
    expect(results.slice(1)).toEqual([
      { status: 'queued', queueId: winner },
      { status: 'duplicate', queueId: winner },
      { status: 'duplicate', queueId: winner },
    ]);
    expect(await spool.accept(newMessage({ dedupKey: 'same' }))).toEqual({ status: 'duplicate', queueId: winner });
    const rows = await db.observer.query(`SELECT id FROM onward.messages WHERE dedup_key = 'same'`);
    expect(rows.rows).toEqual([{ id: winner }]);
  });

  it('takes over an expired dedup key that was not swept yet', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const spool = await db.open({ dedupWindowMs: 200 });
    const old = newMessage({ dedupKey: 'expiring' });
    expect(await spool.accept(old)).toEqual({ status: 'queued', queueId: old.queueId });
    expect(await spool.accept(newMessage({ dedupKey: 'expiring' }))).toEqual({ status: 'duplicate', queueId: old.queueId });
    await waitForValue(
      async () => (await db.observer.query<{ live: boolean }>(`SELECT expires_at > now() AS live FROM onward.dedup_keys WHERE key = 'expiring'`)).rows[0]?.live,
      (live) => live === false,
      5000,
      'the dedup key to expire',
    );

    const fresh = newMessage({ dedupKey: 'expiring' });
    expect(await spool.accept(fresh)).toEqual({ status: 'queued', queueId: fresh.queueId });
    const key = await db.observer.query(`SELECT queue_id FROM onward.dedup_keys WHERE key = 'expiring'`);
    expect(key.rows).toEqual([{ queue_id: fresh.queueId }]);
  });

  it('answers 451 within 5 s when the database does not answer, and the retry finds the message if it landed', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    // Statements may wait 20 s here: only the accept's own deadline can answer in time.
    const spool = await db.open({ statementTimeoutMs: 20_000 });
    const blocker = await db.observer.connect();
    defer(() => blocker.release());
    await blocker.query('BEGIN');
    await blocker.query(`INSERT INTO onward.dedup_keys (key, queue_id, expires_at) VALUES ('stuck', 'nobody', now() + interval '1 hour')`);

    const msg = newMessage({ dedupKey: 'stuck' });
    const started = Date.now();
    const err: unknown = await spool.accept(msg).catch((e: unknown) => e);
    const waited = Date.now() - started;
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_WRITE' });
    expect(waited).toBeGreaterThanOrEqual(4900);
    expect(waited).toBeLessThan(6000);

    await blocker.query('ROLLBACK'); // the stalled batch now goes on and commits
    const retried = await waitForValue(() => spool.accept(newMessage({ dedupKey: 'stuck' })), (r) => r.status === 'duplicate', 5000, 'the retry to meet the landed message');
    expect(retried).toEqual({ status: 'duplicate', queueId: msg.queueId });
  });

  it('writes the accepts queued when close() is called, and refuses new ones after', async () => {
    const db = await freshSpoolDb(cluster(), 'acc', defer);
    const spool = await db.open();
    const msgs = Array.from({ length: 10 }, () => newMessage());
    const pending = msgs.map((m) => spool.accept(m));

    const closed = spool.close();
    await expect(spool.accept(newMessage())).rejects.toMatchObject({ code: 'ONWARD_ERR_SPOOL_WRITE' });
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual(msgs.map(() => 'queued'));
    await closed;
    const count = await db.observer.query<{ n: number }>(`SELECT count(*)::int AS n FROM onward.messages`);
    expect(count.rows[0]?.n).toBe(10);
  });

  it('refuses to open on a server with fsync = off, naming the setting', async () => {
    const unsafe = await startPostgres({ settings: { fsync: 'off' } });
    defer(() => unsafe.stop());
    const err: unknown = await PostgresSpool.open({
      url: unsafe.url,
      schema: 'onward',
      pool: 2,
      leaseMs: 30_000,
      nodeId: 'n',
      dedupWindowMs: 1000,
      retainFinishedMs: 1000,
      role: 'relay',
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_REFUSED', message: expect.stringContaining('fsync = off') });
    // Nothing was created: the refusal comes before the migration.
    const probe = await unsafe.sql(`SELECT to_regclass('onward.messages') AS t`);
    expect(probe.rows).toEqual([{ t: null }]);
  });
});
