/**
 * Claims and leases of PostgresSpool across nodes against a real PostgreSQL: a node that
 * stops renewing loses its delivery to another node, whose outcome is the one kept (the
 * stale holder's completion is refused with ONWARD_ERR_LEASE_LOST); concurrent claims never
 * hand one delivery to two nodes; a renewed lease outlives its lease time.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from '@jest/globals';
import type { Reply } from '../../../src/delivery/types.js';
import type { AttemptUpdate } from '../../../src/spool/types.js';
import { REPO_ROOT, useCleanup, waitForValue } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshSpoolDb, newMessage } from './spool-fixture.js';

const reply = (text: string, code: number): Reply => ({ kind: 'http', code, enhancedStatus: null, text });

function outcome(target: string, state: 'delivered' | 'deferred', text: string, nextDueAt: number | null = null): AttemptUpdate {
  return {
    attempts: [{ at: Date.now() - 5, target, outcome: state === 'delivered' ? 'ok' : 'error', reply: text, durationMs: 5 }],
    recipients: [{ address: 'a@x.test', state, reply: reply(text, state === 'delivered' ? 200 : 503) }],
    nextDueAt,
  };
}

describePg('postgres spool leases', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  it('lets node B take over a delivery whose holder A stopped renewing; A’s late outcome is refused', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const a = await db.open({ leaseMs: 1000, nodeId: 'node-a' });
    const b = await db.open({ leaseMs: 1000, nodeId: 'node-b' });
    const msg = newMessage();
    await a.accept(msg);
    const [claimedByA] = await a.claimDue('hooks', Date.now(), 10);
    expect(claimedByA?.delivery.id).toBe(`${msg.queueId}.0`);
    await a.pauseLeaseRenewal(); // A lives on but can no longer renew (a paused or cut-off node)
    const dueOnB: string[] = [];
    b.onDue((lane) => dueOnB.push(lane));

    // B's takeover poll frees the lease once it expired; then B can claim it.
    const claimedByB = await waitForValue(() => b.claimDue('hooks', Date.now(), 10), (c) => c.length === 1, 8000, 'node B to claim the expired delivery');
    expect(claimedByB[0]?.delivery.id).toBe(claimedByA?.delivery.id);
    expect(claimedByB[0]?.delivery.attemptCount).toBe(2);
    expect(dueOnB).toContain('hooks');
    const done = await b.completeAttempt(claimedByB[0]!.delivery.id, outcome('hooks', 'delivered', 'HTTP 200 by B'));
    expect(done.delivery.state).toBe('delivered');
    expect(done.message.state).toBe('delivered');

    const late: unknown = await a.completeAttempt(claimedByA!.delivery.id, outcome('hooks', 'deferred', 'HTTP 503 by A', Date.now() + 60_000)).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'ONWARD_ERR_LEASE_LOST' });

    const row = await db.observer.query(`SELECT state, lease_owner, lease_epoch, recipients->0->>'lastError' AS last FROM onward.deliveries WHERE id = $1`, [claimedByA!.delivery.id]);
    // B's claim raised the epoch to 2, B's completion to 3 (a repeated write finds no row).
    expect(row.rows).toEqual([{ state: 'delivered', lease_owner: null, lease_epoch: '3', last: 'HTTP 200 by B' }]);
    const attempts = await db.observer.query(`SELECT n, lease_epoch, node, reply FROM onward.attempts WHERE delivery_id = $1 ORDER BY n`, [claimedByA!.delivery.id]);
    expect(attempts.rows).toEqual([{ n: 1, lease_epoch: '2', node: 'node-b', reply: 'HTTP 200 by B' }]);
    const m = await db.observer.query(`SELECT state, finished_at IS NOT NULL AS finished, (SELECT count(*) FROM onward.bodies WHERE queue_id = $1)::int AS bodies FROM onward.messages WHERE id = $1`, [msg.queueId]);
    expect(m.rows).toEqual([{ state: 'delivered', finished: true, bodies: 0 }]);
  });

  it('makes a SIGKILLed node’s delivery due within its lease and one poll', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const b = await db.open({ leaseMs: 1000, nodeId: 'node-b' });
    const msg = newMessage();
    await b.accept(msg);
    // Node A is a real process: it claims the delivery, says so, and is killed mid-attempt.
    const script = `
      const { PostgresSpool } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'spool', 'postgres', 'postgres-spool.js'))});
      const spool = await PostgresSpool.open({ url: process.env.URL, schema: 'onward', pool: 2, leaseMs: 1000, nodeId: 'node-a',
        dedupWindowMs: 60000, retainFinishedMs: 60000, role: 'relay' });
      const claimed = await spool.claimDue('hooks', Date.now(), 10);
      process.stdout.write('claimed ' + claimed.map((c) => c.delivery.id).join(',') + '\\n');
      setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    defer(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await waitForValue(() => out, (o) => o.includes('claimed'), 15_000, 'node A to claim');
    expect(out).toContain(`claimed ${msg.queueId}.0`);
    const leased = await db.observer.query(`SELECT lease_owner FROM onward.deliveries`);
    expect(leased.rows).toEqual([{ lease_owner: 'node-a' }]);

    child.kill('SIGKILL');
    const killedAt = Date.now();
    const claimed = await waitForValue(() => b.claimDue('hooks', Date.now(), 10), (c) => c.length === 1, 8000, 'node B to claim the dead node’s delivery');
    // Lease (1 s, renewed until the kill) + one takeover poll (1 s), with room for a loaded machine.
    expect(Date.now() - killedAt).toBeLessThan(1000 + 1000 + 1500);
    expect(claimed[0]?.delivery).toMatchObject({ id: `${msg.queueId}.0`, attemptCount: 2 });
  });

  it('never hands one delivery to two nodes claiming the same lane at once', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const a = await db.open({ nodeId: 'node-a' });
    const b = await db.open({ nodeId: 'node-b' });
    const msgs = Array.from({ length: 60 }, () => newMessage());
    await Promise.all(msgs.map((m) => a.accept(m)));
    const byA: string[] = [];
    const byB: string[] = [];

    for (let round = 0; round < 20 && byA.length + byB.length < msgs.length; round++) {
      const [ca, cb] = await Promise.all([a.claimDue('hooks', Date.now(), 4), b.claimDue('hooks', Date.now(), 4)]);
      byA.push(...ca.map((c) => c.delivery.id));
      byB.push(...cb.map((c) => c.delivery.id));
    }

    const all = [...byA, ...byB];
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort()).toEqual(msgs.map((m) => `${m.queueId}.0`).sort());
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    const owners = await db.observer.query<{ lease_owner: string; n: number }>(`SELECT lease_owner, count(*)::int AS n FROM onward.deliveries GROUP BY lease_owner ORDER BY lease_owner`);
    expect(owners.rows).toEqual([
      { lease_owner: 'node-a', n: byA.length },
      { lease_owner: 'node-b', n: byB.length },
    ]);
  });

  it('keeps a renewed lease past its lease time while its holder lives, also when it claims after idle ticks', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const a = await db.open({ leaseMs: 600, nodeId: 'node-a' });
    const b = await db.open({ leaseMs: 600, nodeId: 'node-b' });
    const dbNow = async (): Promise<number> => (await db.observer.query<{ now: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`)).rows[0]!.now;
    // Idle first, for several renewal ticks (every lease / 3) with nothing to renew and
    // several takeover polls: ticks that find nothing to do must not stop the keeper.
    const openedAt = await dbNow();
    await waitForValue(dbNow, (now) => now > openedAt + 2 * 600 + 1000, 10_000, 'idle ticks to pass');
    const msg = newMessage();
    await a.accept(msg);
    const [claimed] = await a.claimDue('hooks', Date.now(), 1);
    const id = claimed!.delivery.id;
    const first = await db.observer.query<{ claimed_at: number }>(`SELECT (extract(epoch FROM now()) * 1000)::float8 AS claimed_at`);
    const claimedAt = first.rows[0]!.claimed_at;

    // Four lease times pass (B's takeover polls every second meanwhile).
    await waitForValue(
      async () => (await db.observer.query<{ now: number }>(`SELECT (extract(epoch FROM now()) * 1000)::float8 AS now`)).rows[0]!.now,
      (now) => now > claimedAt + 4 * 600 + 1000,
      10_000,
      'four lease times and a poll to pass',
    );

    const row = await db.observer.query(`SELECT lease_owner, lease_epoch, lease_expires_at > now() AS live FROM onward.deliveries WHERE id = $1`, [id]);
    expect(row.rows).toEqual([{ lease_owner: 'node-a', lease_epoch: '1', live: true }]);
    expect(await b.claimDue('hooks', Date.now(), 10)).toEqual([]);
    const done = await a.completeAttempt(id, outcome('hooks', 'delivered', 'HTTP 200'));
    expect(done.delivery.state).toBe('delivered');
  });

  it('refuses a second live process with the same configured nodeId, and releases the leases of its previous incarnation', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const first = await db.open({ nodeId: 'fixed', exclusiveNodeId: true });
    const err: unknown = await db.open({ nodeId: 'fixed', exclusiveNodeId: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_LOCKED', message: expect.stringContaining('fixed') });

    const msg = newMessage();
    await first.accept(msg);
    expect(await first.claimDue('hooks', Date.now(), 1)).toHaveLength(1);
    await first.close(); // the delivery stays leased to 'fixed' (as after a crash)
    const leased = await db.observer.query(`SELECT lease_owner FROM onward.deliveries`);
    expect(leased.rows).toEqual([{ lease_owner: 'fixed' }]);

    const again = await db.open({ nodeId: 'fixed', exclusiveNodeId: true });
    const claimed = await again.claimDue('hooks', Date.now(), 1);
    expect(claimed.map((c) => c.delivery.id)).toEqual([`${msg.queueId}.0`]);
    expect(claimed[0]?.delivery.attemptCount).toBe(2);
  });

  it('postpones a claimed delivery without counting the attempt, and refuses a postpone after the lease moved on', async () => {
    const db = await freshSpoolDb(cluster(), 'lease', defer);
    const a = await db.open({ nodeId: 'node-a' });
    const msg = newMessage();
    await a.accept(msg);
    const [c] = await a.claimDue('hooks', Date.now(), 1);
    await a.postpone(c!.delivery.id, Date.now() + 60_000);
    const row = await db.observer.query(
      `SELECT d.state, d.attempt_count, d.lease_owner, d.due_at > now() + interval '50 seconds' AS later, m.state AS message FROM onward.deliveries d JOIN onward.messages m ON m.id = d.queue_id`,
    );
    expect(row.rows).toEqual([{ state: 'deferred', attempt_count: 0, lease_owner: null, later: true, message: 'deferred' }]);
    const again: unknown = await a.postpone(c!.delivery.id, Date.now()).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'ONWARD_ERR_LEASE_LOST' });
  });
});
