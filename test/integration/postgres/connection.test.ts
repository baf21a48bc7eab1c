/**
 * The postgres spool's connections against real servers: the start-up refusal of servers
 * that can lose acknowledged commits (fsync, synchronous_commit), bounded waits when the
 * database is not there, passwords kept out of errors, and a pool that lives through a
 * server crash.
 */
import net from 'node:net';
import { expect, it } from '@jest/globals';
import type pg from 'pg';
import { checkServer, createPool, databaseNow, type PgConnectionOptions } from '../../../src/spool/postgres/connection.js';
import { closedPort, useCleanup } from '../../helpers/common.js';
import { describePg, startPostgres, usePostgres } from '../../helpers/postgres.js';

const SECRET = 'hunter2-not-logged';

describePg('postgres spool connections', () => {
  const cluster = usePostgres();
  const defer = useCleanup();

  function pool(options: Partial<PgConnectionOptions> & { url: string }): pg.Pool {
    const p = createPool({ pool: 2, ...options });
    defer(() => p.end());
    return p;
  }

  /** Settles with the promise's error, or fails when it takes longer than `boundMs`. */
  async function rejectionWithin(promise: Promise<unknown>, boundMs: number): Promise<Error> {
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${String(boundMs)} ms`)), boundMs);
    });
    try {
      await Promise.race([promise.then(() => { throw new Error('expected a rejection'); }), guard]);
    } catch (err) {
      if (err instanceof Error && /^no answer within|^expected a rejection/.test(err.message)) throw err;
      return err as Error;
    } finally {
      clearTimeout(timer);
    }
    throw new Error('unreachable');
  }

  it('accepts a server with fsync and synchronous_commit on, and reports its clock', async () => {
    const p = pool({ url: cluster().passwordUrl });
    const facts = await checkServer(p, cluster().passwordUrl);
    expect(facts).toMatchObject({ fsync: 'on', synchronousCommit: 'on' });
    expect(facts.versionNum).toBeGreaterThanOrEqual(150000);
    const before = await databaseNow(p);
    const after = await databaseNow(p);
    expect(after).toBeGreaterThanOrEqual(before);
  });

  it('refuses a server running with fsync = off, naming the setting', async () => {
    const unsafe = await startPostgres({ settings: { fsync: 'off' } });
    defer(() => unsafe.stop());
    const err = await rejectionWithin(checkServer(pool({ url: unsafe.passwordUrl }), unsafe.passwordUrl), 10_000);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_REFUSED', message: expect.stringContaining('fsync = off') });
    expect(err.message).not.toContain(unsafe.password);
  }, 60_000);

  it('refuses synchronous_commit = off set on the role or on the database, naming the setting', async () => {
    await cluster().createDatabase('sc_role');
    await cluster().sql(`ALTER ROLE onward IN DATABASE sc_role SET synchronous_commit = off`);
    const roleUrl = cluster().passwordUrl.replace(/\/[^/]+$/, '/sc_role');
    await expect(checkServer(pool({ url: roleUrl }), roleUrl)).rejects.toMatchObject({ message: expect.stringContaining('synchronous_commit = off') });

    await cluster().createDatabase('sc_db');
    await cluster().sql(`ALTER DATABASE sc_db SET synchronous_commit = off`);
    const dbUrl = cluster().passwordUrl.replace(/\/[^/]+$/, '/sc_db');
    await expect(checkServer(pool({ url: dbUrl }), dbUrl)).rejects.toMatchObject({ message: expect.stringContaining('synchronous_commit = off') });

    // `local` still waits for the local WAL flush: durable, so accepted.
    await cluster().sql(`ALTER DATABASE sc_db SET synchronous_commit = local`);
    await expect(checkServer(pool({ url: dbUrl }), dbUrl)).resolves.toMatchObject({ synchronousCommit: 'local' });
  });

  it('answers at once, without the password, when nothing listens on the port', async () => {
    const url = `postgres://onward:${SECRET}@127.0.0.1:${String(await closedPort())}/onward`;
    const err = await rejectionWithin(checkServer(pool({ url, connectTimeoutMs: 1000 }), url), 5000);
    expect(err).toMatchObject({ code: 'ONWARD_ERR_SPOOL_UNAVAILABLE', message: expect.stringContaining('cannot connect') });
    expect(err.message).toContain('postgres://onward:***@127.0.0.1');
    expect(err.message).not.toContain(SECRET);
  });

  it('gives up within the connect timeout on a server that accepts TCP but never answers', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    defer(() => new Promise((r) => { sockets.forEach((s) => s.destroy()); silent.close(r); }));
    const url = `postgres://onward:${SECRET}@127.0.0.1:${String((silent.address() as net.AddressInfo).port)}/onward`;

    const err = await rejectionWithin(checkServer(pool({ url, connectTimeoutMs: 300 }), url), 5000);

    expect(err.message).toMatch(/timeout/i);
    expect(sockets.length).toBeGreaterThan(0); // it did reach the listener: the bound, not a refusal, ended it
    expect(err.message).not.toContain(SECRET);
  });

  it('keeps the password out of an authentication failure', async () => {
    const wrong = cluster().passwordUrl.replace(cluster().password, SECRET);
    const err = await rejectionWithin(checkServer(pool({ url: wrong }), wrong), 10_000);
    expect(err.message).toMatch(/password authentication failed/);
    expect(err.message).not.toContain(SECRET);
  });

  it('cancels a statement at the statement timeout', async () => {
    const p = pool({ url: cluster().passwordUrl, statementTimeoutMs: 200 });
    await expect(p.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' }); // query_canceled
  });

  it('lives through a server crash: idle connections report, the next query reconnects', async () => {
    const idleErrors: Error[] = [];
    let sawIdleError: () => void = () => undefined;
    const reported = new Promise<void>((r) => (sawIdleError = r));
    const p = pool({ url: cluster().passwordUrl, onIdleError: (err) => { idleErrors.push(err); sawIdleError(); } });
    await p.query('SELECT 1'); // one idle connection in the pool

    await cluster().restartImmediate();
    await reported;

    expect(idleErrors.length).toBeGreaterThan(0);
    await expect(p.query<{ one: number }>('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
  });
});
