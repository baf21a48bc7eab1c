/**
 * A PgContext built by hand on a fresh, migrated database, for the suites of the postgres
 * spool's parts (the class that builds the real one is tested on its own): `due` and `emit`
 * record what they are told, so tests assert on wake-ups and events.
 */
import type pg from 'pg';
import { createPool } from '../../../src/spool/postgres/connection.js';
import type { PgContext } from '../../../src/spool/postgres/context.js';
import { insertMessages } from '../../../src/spool/postgres/insert.js';
import { migrate, quoteSchema } from '../../../src/spool/postgres/migrations.js';
import type { NewMessage, SpoolEvents } from '../../../src/spool/types.js';
import type { PgCluster } from '../../helpers/postgres.js';

export interface TestContext {
  readonly ctx: PgContext;
  readonly pool: pg.Pool;
  readonly url: string;
  /** Lanes `ctx.due` was called with, in order. */
  readonly due: string[];
  readonly events: { event: keyof SpoolEvents; args: unknown[] }[];
  /** Another context on the same database (another node), with its own pool and records. */
  another(nodeId: string): TestContext;
}

let databases = 0;

/** A fresh database named after `prefix`, migrated, and a context on it; pools end through `defer`. */
export async function freshContext(cluster: PgCluster, defer: (cleanup: () => unknown) => void, prefix: string, overrides: Partial<PgContext> = {}): Promise<TestContext> {
  databases += 1;
  const name = `${prefix}_${String(databases)}`;
  await cluster.createDatabase(name);
  const url = cluster.passwordUrl.replace(/\/[^/]+$/, `/${name}`);
  const make = (nodeId: string): TestContext => {
    const pool = createPool({ url, pool: 3 });
    defer(() => pool.end());
    const due: string[] = [];
    const events: TestContext['events'] = [];
    const ctx: PgContext = {
      pool,
      s: quoteSchema('onward'),
      schemaName: 'onward',
      nodeId,
      leaseMs: 30_000,
      dedupWindowMs: 3_600_000,
      retainFinishedMs: 7 * 24 * 3_600_000,
      url,
      logger: null,
      leases: new Map(),
      due: (lane) => due.push(lane),
      emit: (event, ...args) => events.push({ event, args }),
      ...overrides,
    };
    return { ctx, pool, url, due, events, another: make };
  };
  const first = make('node-a');
  await migrate(first.pool, 'onward');
  return first;
}

/** A new message: two deliveries (`hooks`; `smtp` failing over to `backup`) unless told otherwise. */
export function newMessage(queueId: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    queueId,
    sender: 'app@client.test',
    recipients: ['a@x.test', 'b@y.test'],
    messageId: `${queueId}@client.test`,
    body: Buffer.from(`Subject: ${queueId}\r\n\r\nbody\r\n`),
    client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
    deliveries: [
      { targets: ['hooks'], recipients: ['a@x.test'] },
      { targets: ['smtp', 'backup'], recipients: ['b@y.test'] },
    ],
    dedupKey: null,
    bounceOf: null,
    ...extra,
  };
}

/** A message with one delivery to `target` for each recipient listed. */
export function singleTarget(queueId: string, target: string, recipients: readonly string[] = ['a@x.test'], extra: Partial<NewMessage> = {}): NewMessage {
  return newMessage(queueId, { recipients, deliveries: [{ targets: [target], recipients }], ...extra });
}

export async function seed(t: TestContext, ...messages: NewMessage[]): Promise<void> {
  await insertMessages(t.pool, t.ctx, messages.map((msg) => ({ msg })));
}

/**
 * Moves a message to a finished state the way the write path does: deliveries final,
 * message state and finished_at set (`agoMs` in the past), body gone.
 */
export async function finish(t: TestContext, queueId: string, state: 'delivered' | 'bounced' | 'deleted', agoMs = 0): Promise<void> {
  const { s } = t.ctx;
  const deliveryState = state === 'bounced' ? 'failed' : state === 'delivered' ? 'delivered' : null;
  if (deliveryState) await t.pool.query(`UPDATE ${s}.deliveries SET state = $2, due_at = NULL WHERE queue_id = $1`, [queueId, deliveryState]);
  else await t.pool.query(`UPDATE ${s}.deliveries SET due_at = NULL WHERE queue_id = $1`, [queueId]);
  await t.pool.query(`UPDATE ${s}.messages SET state = $2, finished_at = now() - $3::float8 * interval '1 millisecond' WHERE id = $1`, [queueId, state, agoMs]);
  await t.pool.query(`DELETE FROM ${s}.bodies WHERE queue_id = $1`, [queueId]);
}

/** Sets columns of one delivery with plain SQL (`set` is trusted test SQL, `params` from $2). */
export async function updateDelivery(t: TestContext, id: string, set: string, params: readonly unknown[] = []): Promise<void> {
  const res = await t.pool.query(`UPDATE ${t.ctx.s}.deliveries SET ${set} WHERE id = $1`, [id, ...params]);
  if (res.rowCount !== 1) throw new Error(`no delivery ${id}`);
}
