/**
 * The node registry of the postgres spool against a real PostgreSQL: registration and
 * heartbeats, alive judged by the database clock, deliveries in flight per node.
 */
import { expect, it } from '@jest/globals';
import { NODE_ALIVE_MS, heartbeat, listNodes, registerNode } from '../../../src/spool/postgres/nodes.js';
import { databaseNow } from '../../../src/spool/postgres/connection.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshContext, newMessage, seed, singleTarget, updateDelivery, type TestContext } from './pg-context.js';

describePg('postgres spool nodes', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const fresh = (): Promise<TestContext> => freshContext(cluster(), defer, 'nodes');

  it('lists the registered nodes by id with their facts, heartbeat targets, liveness and deliveries in flight', async () => {
    const a = await fresh();
    const b = a.another('node-b');
    const { s } = a.ctx;
    await registerNode(b.ctx, { host: 'host-b', pid: 202, version: '1.2.3' });
    const before = await databaseNow(a.pool);
    await registerNode(a.ctx, { host: 'host-a', pid: 101, version: '1.2.3' });
    await heartbeat(a.ctx, { hooks: { up: true, concurrency: 8 }, smtp: { up: false, concurrency: 0 } });
    await seed(a, newMessage('N1'), singleTarget('N2', 'hooks'));
    const lease = (owner: string): string => `lease_owner = '${owner}', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`;
    await updateDelivery(a, 'N1.0', lease('node-a'));
    await updateDelivery(a, 'N1.1', lease('node-a'));
    await updateDelivery(a, 'N2.0', lease('node-b'));

    const nodes = await listNodes(a.ctx);
    expect(nodes.map((n) => [n.id, n.host, n.pid, n.version, n.alive, n.inFlight])).toEqual([
      ['node-a', 'host-a', 101, '1.2.3', true, 2],
      ['node-b', 'host-b', 202, '1.2.3', true, 1],
    ]);
    expect(nodes[0]?.targets).toEqual({ hooks: { up: true, concurrency: 8 }, smtp: { up: false, concurrency: 0 } });
    expect(nodes[1]?.targets).toEqual({});
    expect(nodes[0]?.startedAt).toBeGreaterThanOrEqual(before - 1);
    expect(nodes[0]?.lastSeenAt).toBeGreaterThanOrEqual(nodes[0]?.startedAt ?? Infinity);

    // Silent for longer than NODE_ALIVE_MS by the database's clock: dead, still listed, its leases still counted.
    await b.pool.query(`UPDATE ${s}.nodes SET last_seen_at = now() - $1::float8 * interval '1 millisecond' WHERE id = 'node-b'`, [NODE_ALIVE_MS + 1000]);
    await a.pool.query(`UPDATE ${s}.nodes SET last_seen_at = now() - $1::float8 * interval '1 millisecond' WHERE id = 'node-a'`, [NODE_ALIVE_MS - 5000]);
    expect((await listNodes(a.ctx)).map((n) => [n.id, n.alive, n.inFlight])).toEqual([['node-a', true, 2], ['node-b', false, 1]]);

    // A heartbeat brings it back; a restart (register again) starts it anew.
    await heartbeat(b.ctx, {});
    await b.pool.query(`UPDATE ${s}.nodes SET started_at = now() - interval '1 day' WHERE id = 'node-b'`);
    expect((await listNodes(a.ctx)).find((n) => n.id === 'node-b')?.alive).toBe(true);
    const restartedAt = await databaseNow(b.pool);
    await registerNode(b.ctx, { host: 'host-b2', pid: 303, version: '1.3.0' });
    const restarted = (await listNodes(b.ctx)).find((n) => n.id === 'node-b');
    expect(restarted).toMatchObject({ host: 'host-b2', pid: 303, version: '1.3.0', alive: true });
    expect(restarted?.startedAt).toBeGreaterThanOrEqual(restartedAt - 1);
  });
});
