/**
 * SPEC 9 "Database unavailable" against a real PostgreSQL that stops and comes back: accepts
 * fail fast (ONWARD_ERR_SPOOL_WRITE, well within 5 s), available() and the 'availability'
 * event follow the database, claims pause, and everything works again without reopening.
 */
import { expect, it } from '@jest/globals';
import { useCleanup, waitForValue } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshSpoolDb, newMessage } from './spool-fixture.js';

describePg('postgres spool availability', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  it('fails accepts fast while the database is down and recovers by itself when it is back', async () => {
    const db = await freshSpoolDb(cluster(), 'avail', defer);
    const spool = await db.open({ leaseMs: 2000 });
    const other = await db.open({ leaseMs: 2000 }); // a second node, to see NOTIFY arrive again
    const changes: boolean[] = [];
    spool.on('availability', (up) => changes.push(up));
    const before = newMessage();
    await spool.accept(before);
    expect(spool.available()).toBe(true);

    await cluster().stopServer();
    let restarted = false;
    defer(async () => {
      if (!restarted) await cluster().startServer();
    });

    const started = Date.now();
    const err: unknown = await spool.accept(newMessage()).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_WRITE' });
    expect(spool.available()).toBe(false);
    expect(changes).toEqual([false]);
    // While down: further accepts are refused at once, claims are not attempted.
    const fast = Date.now();
    await expect(spool.accept(newMessage())).rejects.toMatchObject({ code: 'ONWARD_ERR_SPOOL_WRITE' });
    expect(Date.now() - fast).toBeLessThan(100);
    expect(await spool.claimDue('hooks', Date.now(), 10)).toEqual([]);

    await cluster().startServer();
    restarted = true;
    await waitForValue(() => spool.available(), (up) => up, 10_000, 'the spool to see the database again');
    expect(changes).toEqual([false, true]);

    const after = newMessage();
    expect(await spool.accept(after)).toEqual({ status: 'queued', queueId: after.queueId });
    const claimed = await spool.claimDue('hooks', Date.now(), 10);
    expect(claimed.map((c) => c.delivery.id).sort()).toEqual([`${before.queueId}.0`, `${after.queueId}.0`].sort());
    // The claim counted one attempt each: none was counted while down.
    expect(claimed.map((c) => c.delivery.attemptCount)).toEqual([1, 1]);

    // The LISTEN connection came back: another node's accept wakes this one.
    const woken: string[] = [];
    spool.onDue((lane) => woken.push(lane));
    await waitForValue(
      async () => {
        await other.accept(newMessage({ deliveries: [{ targets: ['smtp'], recipients: ['a@x.test'] }] }));
        return woken;
      },
      (lanes) => lanes.includes('smtp'),
      10_000,
      "another node's NOTIFY to reach this node",
    );
  });
});
