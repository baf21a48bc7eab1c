/**
 * Outcomes recorded by PostgresSpool against a real PostgreSQL: a deferral is due after its
 * delay on the database's clock, the retry's claim puts the message back to queued, and a
 * final failure writes its DSN in the same transaction; dispatch-at-accept writes the
 * delivery leased to this node and starts it after COMMIT; outcomes completing together are
 * written in one transaction, and one whose lease moved on is refused alone.
 */
import { expect, it } from '@jest/globals';
import type { ClaimedDelivery, DispatchSlot } from '../../../src/spool/types.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshSpoolDb, newMessage } from './spool-fixture.js';

describePg('postgres spool attempts', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  it('defers by a delay on the database clock, requeues at the retry, and writes the DSN with the final failure', async () => {
    const db = await freshSpoolDb(cluster(), 'att', defer);
    const spool = await db.open();
    const msg = newMessage();
    await spool.accept(msg);
    const id = `${msg.queueId}.0`;

    const [first] = await spool.claimDue('hooks', Date.now(), 1);
    const deferred = await spool.completeAttempt(id, {
      attempts: [{ at: Date.now() - 20, target: 'hooks', outcome: 'error', reply: 'HTTP 503', durationMs: 20 }],
      recipients: [{ address: 'a@x.test', state: 'deferred', reply: { kind: 'http', code: 503, enhancedStatus: null, text: 'HTTP 503' } }],
      nextDueAt: Date.now() + 60_000,
    });
    expect(first?.delivery.attemptCount).toBe(1);
    expect(deferred.delivery).toMatchObject({ state: 'deferred', attemptCount: 1, attempts: [{ target: 'hooks', outcome: 'error', reply: 'HTTP 503', durationMs: 20 }] });
    expect(deferred.message.state).toBe('deferred');
    const due = await db.observer.query<{ in_s: number }>(`SELECT extract(epoch FROM due_at - now())::float8 AS in_s FROM onward.deliveries WHERE id = $1`, [id]);
    expect(due.rows[0]!.in_s).toBeGreaterThan(55);
    expect(due.rows[0]!.in_s).toBeLessThanOrEqual(60);
    expect(await spool.claimDue('hooks', Date.now(), 1)).toEqual([]); // not due yet by the database's clock

    await db.observer.query(`UPDATE onward.deliveries SET due_at = now() WHERE id = $1`, [id]);
    const [retry] = await spool.claimDue('hooks', Date.now(), 1);
    expect(retry?.delivery).toMatchObject({ id, state: 'queued', attemptCount: 2, dueAt: null });
    expect(retry?.delivery.attempts).toHaveLength(1);
    expect(retry?.message.state).toBe('queued');

    const dsn = newMessage({ sender: '', recipients: ['app@client.test'], messageId: null, bounceOf: msg.queueId, deliveries: [{ targets: ['smtp'], recipients: ['app@client.test'] }] });
    const dueLanes: string[] = [];
    spool.onDue((lane) => dueLanes.push(lane));
    const failed = await spool.completeAttempt(id, {
      attempts: [{ at: Date.now(), target: 'hooks', outcome: 'fail', reply: 'HTTP 400', durationMs: 3 }],
      recipients: [{ address: 'a@x.test', state: 'failed', reply: { kind: 'http', code: 400, enhancedStatus: null, text: 'HTTP 400' } }],
      nextDueAt: null,
      reported: ['a@x.test'],
      dsn,
    });
    expect(failed.delivery).toMatchObject({ state: 'failed', dueAt: null, recipients: [{ address: 'a@x.test', state: 'failed', reported: true, lastError: 'HTTP 400' }] });
    expect(failed.delivery.attempts.map((a) => a.outcome)).toEqual(['error', 'fail']);
    expect(failed.message.state).toBe('bounced');
    const rows = await db.observer.query(`SELECT id, state, bounce_of FROM onward.messages ORDER BY id`);
    expect(rows.rows).toEqual(
      [
        { id: msg.queueId, state: 'bounced', bounce_of: null },
        { id: dsn.queueId, state: 'queued', bounce_of: msg.queueId },
      ].sort((a, b) => (a.id < b.id ? -1 : 1)),
    );
    expect(dueLanes).toContain('smtp');
  });

  it('writes a dispatched delivery leased to this node and starts it after COMMIT', async () => {
    const db = await freshSpoolDb(cluster(), 'att', defer);
    const spool = await db.open({ nodeId: 'node-d' });
    const started: { claimed: ClaimedDelivery }[] = [];
    let cancelled = 0;
    spool.setDispatcher((lane): DispatchSlot | null =>
      lane === 'hooks'
        ? {
            start: (claimed) => {
              started.push({ claimed });
            },
            cancel: () => {
              cancelled += 1;
            },
          }
        : null,
    );
    const msg = newMessage({ dedupKey: 'dispatch-1' });
    await spool.accept(msg);
    expect(started.map((s) => s.claimed.delivery)).toEqual([expect.objectContaining({ id: `${msg.queueId}.0`, attemptCount: 1, dueAt: null, state: 'queued' })]);
    expect(started[0]?.claimed.body.equals(msg.body)).toBe(true);
    const row = await db.observer.query(`SELECT lease_owner, lease_epoch, attempt_count, due_at FROM onward.deliveries WHERE id = $1`, [`${msg.queueId}.0`]);
    expect(row.rows).toEqual([{ lease_owner: 'node-d', lease_epoch: '1', attempt_count: 1, due_at: null }]);
    // Its completion is guarded by epoch 1 like any claim.
    const done = await spool.completeAttempt(`${msg.queueId}.0`, {
      attempts: [{ at: Date.now(), target: 'hooks', outcome: 'ok', reply: 'HTTP 200', durationMs: 1 }],
      recipients: [{ address: 'a@x.test', state: 'delivered', reply: null }],
      nextDueAt: null,
    });
    expect(done.message.state).toBe('delivered');

    // A duplicate gives its slot back.
    expect(await spool.accept(newMessage({ dedupKey: 'dispatch-1' }))).toEqual({ status: 'duplicate', queueId: msg.queueId });
    expect(cancelled).toBe(1);
    expect(started).toHaveLength(1);
  });
  it('writes outcomes that complete together in one transaction and refuses only the one whose lease moved on', async () => {
    const db = await freshSpoolDb(cluster(), 'att', defer);
    const spool = await db.open({ nodeId: 'node-b' });
    const msgs = [newMessage(), newMessage(), newMessage()];
    for (const m of msgs) await spool.accept(m);
    const claimed = await spool.claimDue('hooks', Date.now(), 3);
    expect(claimed).toHaveLength(3);
    const [a, b, c] = msgs.map((m) => `${m.queueId}.0`) as [string, string, string];
    // Another node claimed b since (its epoch moved on).
    await db.observer.query(`UPDATE onward.deliveries SET lease_epoch = lease_epoch + 1 WHERE id = $1`, [b]);
    const delivered = (id: string) =>
      spool.completeAttempt(id, {
        attempts: [{ at: Date.now(), target: 'hooks', outcome: 'ok', reply: 'HTTP 200', durationMs: 2 }],
        recipients: [{ address: 'a@x.test', state: 'delivered', reply: null }],
        nextDueAt: null,
      });
    const results = await Promise.allSettled([delivered(a), delivered(b), delivered(c)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(results[1]).toMatchObject({ reason: { code: 'ONWARD_ERR_LEASE_LOST' } });
    const first = results[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof delivered>>>;
    expect(first.value.message.state).toBe('delivered');
    expect(first.value.delivery).toMatchObject({ id: a, state: 'delivered', attempts: [{ outcome: 'ok', reply: 'HTTP 200' }] });
    const attempts = await db.observer.query<{ delivery_id: string; tx: string }>(`SELECT delivery_id, xmin::text AS tx FROM onward.attempts ORDER BY delivery_id`);
    expect(attempts.rows.map((r) => r.delivery_id)).toEqual([a, c].sort());
    expect(new Set(attempts.rows.map((r) => r.tx)).size).toBe(1); // one transaction
    const states = await db.observer.query<{ id: string; state: string; body: boolean }>(
      `SELECT m.id, m.state, EXISTS (SELECT 1 FROM onward.bodies b WHERE b.queue_id = m.id) AS body FROM onward.messages m ORDER BY m.id`,
    );
    expect(states.rows).toEqual(
      msgs.map((m) => ({ id: m.queueId, state: m.queueId === msgs[1]!.queueId ? 'queued' : 'delivered', body: m.queueId === msgs[1]!.queueId })).sort((x, y) => (x.id < y.id ? -1 : 1)),
    );
  });
});
