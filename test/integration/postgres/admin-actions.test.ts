/**
 * Operator actions on the postgres spool against a real PostgreSQL: hold, release, retry,
 * delete and bounce (giveUp) with the level backend's rules, deliveries leased by a node
 * treated as in flight, the DSN written in the same transaction, wake-ups after COMMIT.
 */
import { expect, it } from '@jest/globals';
import type { Reply } from '../../../src/delivery/types.js';
import { act, giveUp } from '../../../src/spool/postgres/admin-actions.js';
import { getBody, getDeliveries, getMessage } from '../../../src/spool/postgres/queries.js';
import type { MessageRecord, NewMessage, RecipientRecord } from '../../../src/spool/types.js';
import { useCleanup } from '../../helpers/common.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { freshContext, newMessage, seed, singleTarget, updateDelivery, type TestContext } from './pg-context.js';

interface DeliveryFacts {
  id: string;
  state: string;
  due: boolean;
  due_in_s: number | null;
  lease_owner: string | null;
  recipient_states: string[];
}

describePg('postgres spool operator actions', () => {
  const cluster = usePostgres();
  const defer = useCleanup();
  const fresh = (): Promise<TestContext> => freshContext(cluster(), defer, 'actions');
  const LEASE = `lease_owner = 'node-b', lease_epoch = 1, lease_expires_at = now() + interval '30 seconds'`;

  async function facts(t: TestContext, queueId: string): Promise<DeliveryFacts[]> {
    const { rows } = await t.pool.query<DeliveryFacts>(
      `SELECT id, state, due_at IS NOT NULL AS due, extract(epoch FROM due_at - now())::float8 AS due_in_s, lease_owner,
              (SELECT array_agg(r->>'state') FROM jsonb_array_elements(recipients) r) AS recipient_states
       FROM ${t.ctx.s}.deliveries WHERE queue_id = $1 ORDER BY id`,
      [queueId],
    );
    return rows;
  }

  it('holds and releases every waiting delivery; release makes them due now and wakes their lanes', async () => {
    const t = await fresh();
    await seed(t, newMessage('H1'));

    const held = await act(t.ctx, 'H1', 'hold');
    expect(held).toMatchObject({ state: 'held', deliveries: { 'H1.0': 'held', 'H1.1': 'held' }, finishedAt: null });
    expect((await facts(t, 'H1')).map((d) => [d.state, d.due, d.recipient_states])).toEqual([['held', false, ['held']], ['held', false, ['held']]]);
    expect(t.due).toEqual([]);
    expect(await act(t.ctx, 'H1', 'hold')).toMatchObject({ state: 'held' }); // nothing to do, no error

    const released = await act(t.ctx, 'H1', 'release');
    expect(released).toMatchObject({ state: 'queued', deliveries: { 'H1.0': 'queued', 'H1.1': 'queued' } });
    const after = await facts(t, 'H1');
    expect(after.map((d) => [d.state, d.due, d.recipient_states])).toEqual([['queued', true, ['queued']], ['queued', true, ['queued']]]);
    for (const d of after) expect(Math.abs(d.due_in_s ?? Infinity)).toBeLessThan(1);
    expect(t.due.sort()).toEqual(['hooks', 'smtp+backup']);
    expect(await getMessage(t.ctx, 'H1')).toEqual(released);
  });

  it('retries deferred deliveries now, but leaves held ones and ones leased by a node to be', async () => {
    const t = await fresh();
    await seed(
      t,
      newMessage('R1', {
        recipients: ['a@x.test', 'b@y.test', 'c@z.test'],
        deliveries: [
          { targets: ['hooks'], recipients: ['a@x.test'] },
          { targets: ['smtp'], recipients: ['b@y.test'] },
          { targets: ['archive'], recipients: ['c@z.test'] },
        ],
      }),
    );
    await updateDelivery(t, 'R1.0', `state = 'deferred', due_at = now() + interval '1 hour', recipients = jsonb_set(recipients, '{0,state}', '"deferred"')`);
    await updateDelivery(t, 'R1.1', `state = 'deferred', due_at = now() - interval '1 minute', ${LEASE}`);
    await updateDelivery(t, 'R1.2', `state = 'held', due_at = NULL`);

    const message = await act(t.ctx, 'R1', 'retry');
    const [retried, inFlight, held] = await facts(t, 'R1');
    expect([retried?.state, retried?.recipient_states, Math.abs(retried?.due_in_s ?? Infinity) < 1]).toEqual(['queued', ['queued'], true]);
    expect([inFlight?.state, inFlight?.lease_owner, (inFlight?.due_in_s ?? 0) < -50]).toEqual(['deferred', 'node-b', true]); // untouched
    expect([held?.state, held?.due]).toEqual(['held', false]);
    expect(message.state).toBe('queued');
    expect(t.due).toEqual(['hooks']);
  });

  it('holds a delivery in flight too (its holder keeps the lease), as level holds one', async () => {
    const t = await fresh();
    await seed(t, singleTarget('F1', 'hooks'));
    await updateDelivery(t, 'F1.0', LEASE);
    const message = await act(t.ctx, 'F1', 'hold');
    expect(message.state).toBe('held');
    expect((await facts(t, 'F1')).map((d) => [d.state, d.due, d.lease_owner])).toEqual([['held', false, 'node-b']]);
  });

  it('deletes a message: finished now, body gone, nothing due any more, and later actions change nothing', async () => {
    const t = await fresh();
    await seed(t, newMessage('D1'));
    await updateDelivery(t, 'D1.1', LEASE);

    const deleted = await act(t.ctx, 'D1', 'delete');
    expect(deleted.state).toBe('deleted');
    expect(deleted.finishedAt).not.toBeNull();
    expect(await getBody(t.ctx, 'D1')).toBeNull();
    const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM ${t.ctx.s}.bodies WHERE queue_id = 'D1'`);
    expect(rows[0]).toEqual({ n: 0 });
    expect((await facts(t, 'D1')).map((d) => [d.state, d.due, d.lease_owner])).toEqual([['queued', false, null], ['queued', false, 'node-b']]);
    expect(t.due).toEqual([]);

    expect(await act(t.ctx, 'D1', 'retry')).toEqual(deleted);
    expect((await facts(t, 'D1')).every((d) => !d.due)).toBe(true);
  });

  it('refuses an unknown queue id with ONWARD_ERR_NOT_FOUND', async () => {
    const t = await fresh();
    await expect(act(t.ctx, 'NOPE', 'retry')).rejects.toMatchObject({ code: 'ONWARD_ERR_NOT_FOUND' });
    await expect(giveUp(t.ctx, 'NOPE', reason, () => Promise.resolve(null))).rejects.toMatchObject({ code: 'ONWARD_ERR_NOT_FOUND' });
  });

  const reason: Reply = { kind: 'x-onward', code: 550, enhancedStatus: '5.0.0', text: '550 5.0.0 given up by the operator' };

  it('gives up: unfinished recipients fail, the message bounces, and the DSN is queued in the same commit', async () => {
    const t = await fresh();
    await seed(t, newMessage('G1'));
    await t.pool.query(`UPDATE ${t.ctx.s}.deliveries SET state = 'delivered', due_at = NULL, recipients = jsonb_set(recipients, '{0,state}', '"delivered"') WHERE id = 'G1.0'`);
    const seen: { message: MessageRecord; failed: readonly RecipientRecord[]; body: Buffer | null }[] = [];
    const dsn: NewMessage = singleTarget('DSN1', 'smtp', ['app@client.test'], { sender: '', bounceOf: 'G1' });

    const result = await giveUp(t.ctx, 'G1', reason, (message, failed, body) => {
      seen.push({ message, failed, body });
      return Promise.resolve(dsn);
    });

    expect(seen).toHaveLength(1);
    expect(seen[0]?.message.state).toBe('queued');
    expect(seen[0]?.failed).toEqual([{ address: 'b@y.test', state: 'failed', lastError: reason.text, lastReply: reason, reported: true }]);
    expect(seen[0]?.body?.equals(newMessage('G1').body)).toBe(true);
    expect(result).toMatchObject({ id: 'G1', state: 'bounced', deliveries: { 'G1.0': 'delivered', 'G1.1': 'failed' } });
    expect(result.finishedAt).not.toBeNull();
    const deliveries = await getDeliveries(t.ctx, 'G1');
    expect(deliveries.map((d) => [d.state, d.dueAt, d.recipients.map((r) => [r.state, r.reported])])).toEqual([
      ['delivered', null, [['delivered', false]]],
      ['failed', null, [['failed', true]]],
    ]);
    expect(await getBody(t.ctx, 'G1')).toBeNull();
    expect(await getMessage(t.ctx, 'DSN1')).toMatchObject({ state: 'queued', sender: '', bounceOf: 'G1' });
    expect(t.due).toEqual(['smtp']);

    // Already finished: returned as it is, no second report.
    expect(await giveUp(t.ctx, 'G1', reason, () => Promise.reject(new Error('must not be asked')))).toEqual(result);
  });

  it('writes nothing when the DSN cannot be written: the bounce and the report are one transaction', async () => {
    const t = await fresh();
    await seed(t, singleTarget('G2', 'hooks'), singleTarget('TAKEN', 'smtp'));
    const clash = singleTarget('TAKEN', 'smtp', ['app@client.test'], { sender: '', bounceOf: 'G2' }); // queue id already used

    await expect(giveUp(t.ctx, 'G2', reason, () => Promise.resolve(clash))).rejects.toThrow(/duplicate key/);

    expect(await getMessage(t.ctx, 'G2')).toMatchObject({ state: 'queued', finishedAt: null });
    expect((await facts(t, 'G2')).map((d) => [d.state, d.due])).toEqual([['queued', true]]);
    expect(await getBody(t.ctx, 'G2')).not.toBeNull();
    expect(t.due).toEqual([]);
  });

  it('gives up without a DSN when the report declines, and fails a delivery in flight (its holder only records the attempt)', async () => {
    const t = await fresh();
    await seed(t, singleTarget('G3', 'hooks'));
    await updateDelivery(t, 'G3.0', LEASE);
    const result = await giveUp(t.ctx, 'G3', reason, () => Promise.resolve(null));
    expect(result.state).toBe('bounced');
    expect((await facts(t, 'G3')).map((d) => [d.state, d.due, d.lease_owner])).toEqual([['failed', false, 'node-b']]);
    const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM ${t.ctx.s}.messages`);
    expect(rows[0]).toEqual({ n: 1 });
  });
});
