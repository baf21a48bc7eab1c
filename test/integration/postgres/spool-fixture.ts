/**
 * What the PostgresSpool suites share: a fresh database per test, spools opened on it (the
 * nodes of a cluster), a pool to observe the rows with, and messages to accept.
 */
import type pg from 'pg';
import { createPool } from '../../../src/spool/postgres/connection.js';
import { PostgresSpool, type PostgresSpoolOptions } from '../../../src/spool/postgres/postgres-spool.js';
import { newQueueId } from '../../../src/spool/ids.js';
import type { NewMessage } from '../../../src/spool/types.js';
import type { PgCluster } from '../../helpers/postgres.js';

let counter = 0;

export interface SpoolDb {
  readonly url: string;
  /** A spool (one node) on this database; closed by the caller's cleanup. */
  open(extra?: Partial<PostgresSpoolOptions>): Promise<PostgresSpool>;
  /** A plain pool on this database, to observe rows with SQL. */
  readonly observer: pg.Pool;
}

export async function freshSpoolDb(cluster: PgCluster, prefix: string, defer: (cleanup: () => unknown) => void): Promise<SpoolDb> {
  counter += 1;
  const name = `${prefix}_${String(process.pid)}_${String(counter)}`;
  await cluster.createDatabase(name);
  const url = cluster.passwordUrl.replace(/\/[^/]+$/, `/${name}`);
  const observer = createPool({ url, pool: 2 });
  defer(() => observer.end());
  let nodes = 0;
  return {
    url,
    observer,
    async open(extra = {}) {
      nodes += 1;
      const spool = await PostgresSpool.open({
        url,
        schema: 'onward',
        pool: 4,
        leaseMs: 30_000,
        nodeId: `node-${String(nodes)}`,
        dedupWindowMs: 3_600_000,
        retainFinishedMs: 3_600_000,
        role: 'relay',
        ...extra,
      });
      defer(() => spool.close());
      return spool;
    },
  };
}

export function newMessage(extra: Partial<NewMessage> = {}): NewMessage {
  const queueId = extra.queueId ?? newQueueId();
  return {
    queueId,
    sender: 'app@client.test',
    recipients: ['a@x.test'],
    messageId: `${queueId}@client.test`,
    body: Buffer.from(`Subject: ${queueId}\r\n\r\nhello\r\n`),
    client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
    deliveries: [{ targets: ['hooks'], recipients: ['a@x.test'] }],
    dedupKey: null,
    bounceOf: null,
    ...extra,
  };
}
