/**
 * `spool check [--repair]` on the postgres spool against a real PostgreSQL: each seeded
 * problem is found (and only those), repair fixes what is repairable, and a second check
 * finds only what cannot be repaired.
 */
import { expect, it } from '@jest/globals';
import { CHECK_BATCH, STALE_LEASE_MARGIN_MS, checkSpool } from '../../../src/spool/postgres/check.js';
import { getMessage } from '../../../src/spool/postgres/queries.js';
import { useCleanup, waitForValue } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { finish, freshContext, newMessage, seed, singleTarget, updateDelivery, type TestContext } from './pg-context.js';

describePg('postgres spool check', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const fresh = (): Promise<TestContext> => freshContext(cluster(), defer, 'check');

  /** One healthy message of each kind, and one message per problem. */
  async function seedProblems(t: TestContext): Promise<void> {
    const { s } = t.ctx;
    await seed(
      t,
      newMessage('OK1'),
      singleTarget('OK2', 'hooks'),
      singleTarget('OK3', 'hooks'),
      singleTarget('OK4', 'hooks'),
      singleTarget('STATE', 'hooks'),
      singleTarget('LOST', 'hooks'),
      singleTarget('ORPHAN', 'hooks'),
      singleTarget('NODELIV', 'hooks'),
      singleTarget('NODUE', 'hooks'),
      singleTarget('LEASE', 'hooks'),
      singleTarget('DELDUE', 'hooks'),
    );
    // Healthy: delivered and swept of its body; in flight with a live lease; held.
    await finish(t, 'OK2', 'delivered');
    await updateDelivery(t, 'OK3.0', `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds', due_at = NULL`);
    await updateDelivery(t, 'OK4.0', `state = 'held', due_at = NULL`);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'held' WHERE id = 'OK4'`);
    // The problems.
    await t.pool.query(`UPDATE ${s}.messages SET state = 'deferred' WHERE id = 'STATE'`); // its delivery is queued
    await t.pool.query(`DELETE FROM ${s}.bodies WHERE queue_id = 'LOST'`);
    await t.pool.query(`UPDATE ${s}.deliveries SET state = 'delivered', due_at = NULL WHERE queue_id = 'ORPHAN'`);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'delivered', finished_at = now() WHERE id = 'ORPHAN'`); // body kept
    await t.pool.query(`DELETE FROM ${s}.deliveries WHERE queue_id = 'NODELIV'`);
    await updateDelivery(t, 'NODUE.0', 'due_at = NULL');
    await updateDelivery(t, 'LEASE.0', `lease_owner = 'gone', lease_epoch = 4, lease_expires_at = now() - $2::float8 * interval '1 millisecond'`, [STALE_LEASE_MARGIN_MS + 60_000]);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'deleted', finished_at = now() WHERE id = 'DELDUE'`); // its delivery keeps its due time
    await t.pool.query(`DELETE FROM ${s}.bodies WHERE queue_id = 'DELDUE'`);
  }

  const kindsByKey = (problems: readonly { kind: string; key: string; repaired: boolean }[]): string[] =>
    problems.map((p) => `${p.kind} ${p.key} ${p.repaired ? 'repaired' : 'left'}`).sort();

  it('finds each seeded problem and nothing on the healthy messages, changing nothing without repair', async () => {
    const t = await fresh();
    await seedProblems(t);
    const before = await t.pool.query(`SELECT * FROM ${t.ctx.s}.deliveries ORDER BY id`);

    const report = await checkSpool(t.ctx, false);

    expect(kindsByKey(report.problems)).toEqual([
      'lost-body messages/LOST left',
      'missing-due-time deliveries/NODUE.0 left',
      'no-deliveries messages/NODELIV left',
      'orphan-body bodies/ORPHAN left',
      'stale-due-time deliveries/DELDUE.0 left',
      'stale-lease deliveries/LEASE.0 left',
      'state-mismatch messages/STATE left',
    ]);
    expect(report.counts).toEqual({ 'lost-body': 1, 'missing-due-time': 1, 'no-deliveries': 1, 'orphan-body': 1, 'stale-due-time': 1, 'stale-lease': 1, 'state-mismatch': 1 });
    expect(report).toMatchObject({ messages: 11, deliveries: 11, repaired: false });
    expect((await t.pool.query(`SELECT * FROM ${t.ctx.s}.deliveries ORDER BY id`)).rows).toEqual(before.rows);
    expect(t.due).toEqual([]);
  });

  it('repairs what is repairable; a second check finds only what cannot be repaired', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    await seedProblems(t);

    const report = await checkSpool(t.ctx, true);
    expect(kindsByKey(report.problems)).toEqual([
      'lost-body messages/LOST left',
      'missing-due-time deliveries/NODUE.0 repaired',
      'no-deliveries messages/NODELIV left',
      'orphan-body bodies/ORPHAN repaired',
      'stale-due-time deliveries/DELDUE.0 repaired',
      'stale-lease deliveries/LEASE.0 repaired',
      'state-mismatch messages/STATE repaired',
    ]);
    expect(report.repaired).toBe(true);
    expect(t.due).toEqual(['hooks', 'hooks']); // NODUE and LEASE are due now

    expect((await getMessage(t.ctx, 'STATE'))?.state).toBe('queued');
    const rows = await t.pool.query<{ id: string; due_in_s: number | null; lease_owner: string | null }>(
      `SELECT id, extract(epoch FROM due_at - now())::float8 AS due_in_s, lease_owner FROM ${s}.deliveries WHERE id IN ('NODUE.0', 'LEASE.0', 'DELDUE.0', 'OK3.0') ORDER BY id`,
    );
    expect(rows.rows.map((r) => [r.id, r.due_in_s === null ? null : Math.abs(r.due_in_s) < 5, r.lease_owner])).toEqual([
      ['DELDUE.0', null, null],
      ['LEASE.0', true, null],
      ['NODUE.0', true, null],
      ['OK3.0', null, 'node-b'], // a live lease is left alone
    ]);
    expect((await t.pool.query(`SELECT queue_id FROM ${s}.bodies WHERE queue_id = 'ORPHAN'`)).rows).toEqual([]);

    const again = await checkSpool(t.ctx, true);
    expect(kindsByKey(again.problems)).toEqual(['lost-body messages/LOST left', 'no-deliveries messages/NODELIV left']);
  });

  it('walks a spool larger than one batch, reporting progress as it goes', async () => {
    const t = await fresh();
    const count = CHECK_BATCH * 2 + 10;
    await seed(t, ...Array.from({ length: count }, (_, i) => singleTarget(`C${String(i).padStart(5, '0')}`, 'hooks')));
    await updateDelivery(t, 'C01000.0', 'due_at = NULL'); // in the third batch
    const progress: number[] = [];

    const report = await checkSpool(t.ctx, false, (n) => progress.push(n));

    expect(report).toMatchObject({ messages: count, deliveries: count });
    expect(kindsByKey(report.problems)).toEqual(['missing-due-time deliveries/C01000.0 left']);
    expect(progress).toEqual([CHECK_BATCH, CHECK_BATCH * 2, count]);
  });

  it('confirms a suspect message on what its writer committed, not on the locked row beside an older snapshot (found by the chaos harness)', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    // The scan sees a problem (no due time); a writer holding the message's row lock is
    // finishing it meanwhile (delivery delivered, message delivered, body gone), as a node does.
    await seed(t, singleTarget('RACE', 'hooks'));
    await updateDelivery(t, 'RACE.0', 'due_at = NULL');
    const writer = await t.pool.connect();
    try {
      await writer.query('BEGIN');
      await writer.query(`SELECT 1 FROM ${s}.messages WHERE id = 'RACE' FOR UPDATE`);
      await writer.query(`UPDATE ${s}.deliveries SET state = 'delivered' WHERE id = 'RACE.0'`);
      await writer.query(`UPDATE ${s}.messages SET state = 'delivered', finished_at = now() WHERE id = 'RACE'`);
      await writer.query(`DELETE FROM ${s}.bodies WHERE queue_id = 'RACE'`);
      const checking = checkSpool(t.ctx, false);
      // The check's confirmation waits for the writer's row lock; then the writer commits.
      await waitForValue(
        async () => (await t.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0] as { n: number },
        (r) => r.n > 0,
        10_000,
        'the check waiting on the row lock',
      );
      await writer.query('COMMIT');
      const report = await checking;
      expect(report.problems).toEqual([]);
    } finally {
      writer.release();
    }
  });
});
