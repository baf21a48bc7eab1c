/**
 * Housekeeping of the postgres spool against a real PostgreSQL: exactly the expired dedup
 * keys, finished messages past retention (with their deliveries and attempts) and nodes
 * gone for a week are removed, in bounded slices until caught up, by one node at a time.
 */
import { expect, it } from '@jest/globals';
import { PgJanitor, JANITOR_SLICE } from '../../../src/spool/postgres/janitor.js';
import { janitorLockKey, quoteSchema } from '../../../src/spool/postgres/migrations.js';
import { useCleanup, waitForValue } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { finish, freshContext, seed, singleTarget, type TestContext } from './pg-context.js';

const DAY_MS = 24 * 3600 * 1000;

describePg('postgres spool janitor', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const fresh = (): Promise<TestContext> => freshContext(cluster(), defer, 'janitor');

  async function addDedupKeys(t: TestContext, prefix: string, count: number, expiresIn: string): Promise<void> {
    await t.pool.query(
      `INSERT INTO ${t.ctx.s}.dedup_keys (key, queue_id, expires_at) SELECT $1 || i, 'Q' || i, now() + $3::interval FROM generate_series(1, $2::int) AS i`,
      [prefix, count, expiresIn],
    );
  }

  const column = async (t: TestContext, sql: string): Promise<string[]> => (await t.pool.query<{ v: string }>(sql)).rows.map((r) => r.v);
  const removals = (t: TestContext): unknown[] => t.events.filter((e) => e.event === 'janitor').map((e) => e.args[0]);

  it('removes exactly the expired dedup keys, finished messages past retention and nodes gone for a week', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    await addDedupKeys(t, 'old-', 3, '-1 second');
    await addDedupKeys(t, 'live-', 2, '1 hour');
    await seed(t, singleTarget('OLD1', 'hooks'), singleTarget('OLD2', 'hooks'), singleTarget('RECENT', 'hooks'), singleTarget('OPEN', 'hooks'));
    await t.pool.query(
      `INSERT INTO ${s}.attempts (delivery_id, n, lease_epoch, node, at, target, outcome, reply, duration_ms) VALUES ('OLD1.0', 1, 1, 'node-a', now(), 'hooks', 'delivered', '200 OK', 5)`,
    );
    await finish(t, 'OLD1', 'delivered', 8 * DAY_MS);
    await finish(t, 'OLD2', 'deleted', 7 * DAY_MS + 60_000);
    await finish(t, 'RECENT', 'bounced', 6 * DAY_MS);
    await t.pool.query(`UPDATE ${s}.messages SET received_at = now() - interval '30 days' WHERE id = 'OPEN'`); // old but unfinished: kept
    await t.pool.query(
      `INSERT INTO ${s}.nodes (id, host, pid, version, last_seen_at) VALUES ('gone', 'h', 1, 'v', now() - interval '8 days'), ('quiet', 'h', 2, 'v', now() - interval '6 days')`,
    );

    await new PgJanitor(t.ctx, 60_000).sweep();

    expect(await column(t, `SELECT key AS v FROM ${s}.dedup_keys ORDER BY key`)).toEqual(['live-1', 'live-2']);
    expect(await column(t, `SELECT id AS v FROM ${s}.messages ORDER BY id`)).toEqual(['OPEN', 'RECENT']);
    expect(await column(t, `SELECT id AS v FROM ${s}.deliveries ORDER BY id`)).toEqual(['OPEN.0', 'RECENT.0']);
    expect(await column(t, `SELECT delivery_id AS v FROM ${s}.attempts`)).toEqual([]);
    expect(await column(t, `SELECT queue_id AS v FROM ${s}.bodies`)).toEqual(['OPEN']);
    expect(await column(t, `SELECT id AS v FROM ${s}.nodes ORDER BY id`)).toEqual(['quiet']);
    expect(removals(t)).toEqual([{ kind: 'dedup', removed: 3 }, { kind: 'finished', removed: 2 }]);

    t.events.length = 0;
    await new PgJanitor(t.ctx, 60_000).sweep();
    expect(t.events).toEqual([]); // caught up: nothing to say
  });

  it('works in bounded slices and sweeps until caught up', async () => {
    const t = await fresh();
    const { s } = t.ctx;
    await addDedupKeys(t, 'old-', JANITOR_SLICE.dedup + 1000, '-1 minute');
    const ids = Array.from({ length: JANITOR_SLICE.finished + 200 }, (_, i) => `F${String(i).padStart(5, '0')}`);
    await seed(t, ...ids.map((id) => singleTarget(id, 'hooks')));
    await t.pool.query(`UPDATE ${s}.deliveries SET state = 'delivered', due_at = NULL`);
    await t.pool.query(`UPDATE ${s}.messages SET state = 'delivered', finished_at = now() - interval '8 days'`);

    await new PgJanitor(t.ctx, 60_000).sweep();

    expect(removals(t)).toEqual([
      { kind: 'dedup', removed: JANITOR_SLICE.dedup },
      { kind: 'finished', removed: JANITOR_SLICE.finished },
      { kind: 'dedup', removed: 1000 },
      { kind: 'finished', removed: 200 },
    ]);
    expect(await column(t, `SELECT (SELECT count(*) FROM ${s}.dedup_keys) + (SELECT count(*) FROM ${s}.messages) AS v`)).toEqual(['0']);
  });

  it('leaves the run to the node holding the janitor lock, and two janitors at once remove each row once', async () => {
    const t = await fresh();
    const other = t.another('node-b');
    await addDedupKeys(t, 'old-', 12_000, '-1 minute');
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1::bigint)', [janitorLockKey('onward').toString()]);
      await new PgJanitor(t.ctx, 60_000).sweep();
      expect(t.events).toEqual([]);
      expect(await column(t, `SELECT count(*)::text AS v FROM ${t.ctx.s}.dedup_keys`)).toEqual(['12000']);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }

    await Promise.all([new PgJanitor(t.ctx, 60_000).sweep(), new PgJanitor(other.ctx, 60_000).sweep()]);
    const removed = [...removals(t), ...removals(other)] as { removed: number }[];
    expect(removed.reduce((sum, r) => sum + r.removed, 0)).toBe(12_000);
    expect(removed.every((r) => r.removed <= JANITOR_SLICE.dedup)).toBe(true);
    expect(await column(t, `SELECT count(*)::text AS v FROM ${t.ctx.s}.dedup_keys`)).toEqual(['0']);
  });

  it('runs every interval once started, and reports a failed run as janitorError, retried at the next interval', async () => {
    const t = await fresh();
    await addDedupKeys(t, 'old-', 5, '-1 minute');
    const janitor = new PgJanitor(t.ctx, 30);
    janitor.start();
    await waitForValue(() => removals(t), (r) => r.length > 0, 5000, 'a scheduled janitor run');
    await janitor.stop();
    expect(removals(t)).toEqual([{ kind: 'dedup', removed: 5 }]);

    // A schema that does not exist: every run fails, is reported, and is tried again at the next interval.
    const failing = new PgJanitor({ ...t.ctx, s: quoteSchema('no_such_schema') }, 30);
    failing.start();
    const errors = await waitForValue(() => t.events.filter((e) => e.event === 'janitorError'), (e) => e.length >= 2, 5000, 'janitorError twice (retried)');
    await failing.stop();
    expect(String(errors[0]?.args[0])).toMatch(/no_such_schema/);
  });
});
