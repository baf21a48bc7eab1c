/**
 * Opening the shared spool: the options, the one-node-id-one-process lock, and the start-up
 * steps of each role (postgres-spool.ts composes them).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { RelayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { redactText, unavailable } from './connection.js';

export interface PostgresSpoolOptions {
  /** `spool.url`. */
  readonly url: string;
  /** `spool.schema`. */
  readonly schema: string;
  /** Connections per node (`spool.pool`). */
  readonly pool: number;
  readonly leaseMs: number;
  /** This node's name (`nodeId`, or `<hostname>-<pid>`). */
  readonly nodeId: string;
  /**
   * The node id was configured (not derived from host and pid): hold it exclusively (two live
   * processes with one id are refused) and release what its previous incarnation held leased.
   */
  readonly exclusiveNodeId?: boolean;
  readonly dedupWindowMs: number;
  readonly retainFinishedMs: number;
  /** `relay`: migrate, heartbeat, housekeeping, wake-ups, leases; `cli`: an operator command (schema must be current). */
  readonly role: 'relay' | 'cli';
  /** Accepts and outcomes grouped into shared transactions. @defaultValue true */
  readonly groupCommit?: boolean;
  /**
   * Outcome batches without a DSN or event commit without waiting for the WAL flush
   * (DESIGN.md "Outcome batches" says why that loses nothing). @defaultValue true
   */
  readonly asyncOutcomeCommit?: boolean;
  readonly logger?: Logger;
  /** Shown in `spool nodes`. @defaultValue the package's version */
  readonly version?: string;
  /** Bounds of every connection (connection.ts defaults: 5 s). */
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
  /** @defaultValue 60000 */
  readonly janitorIntervalMs?: number;
}

/** The advisory lock key of one node id in one schema. */
export function nodeLockKey(schema: string, nodeId: string): string {
  return createHash('sha256').update(`onward node ${schema} ${nodeId}`).digest().readBigInt64BE(0).toString();
}

/**
 * `pg_advisory_lock` on a session of its own, held while the process lives: a second live
 * process with the same node id is refused (it would release and steal this one's leases).
 */
export class NodeIdLock {
  private client: pg.Client | null = null;

  constructor(private readonly options: Pick<PostgresSpoolOptions, 'url' | 'schema' | 'nodeId' | 'connectTimeoutMs' | 'logger'>) {}

  async acquire(): Promise<void> {
    const { url, schema, nodeId } = this.options;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000, application_name: `${nodeId} node-lock`, keepAlive: true });
    client.on('error', (err) => {
      // The session (and with it the lock) is gone, e.g. a database restart. Leases stay
      // fenced by their epochs; a second process with this id could now start.
      this.options.logger?.error({ err: redactText(err.message, url), node: nodeId }, 'lost the session holding this node id; another process could now start with the same nodeId');
      if (this.client === client) this.client = null;
    });
    try {
      await client.connect();
    } catch (err) {
      throw unavailable(url, 'cannot connect', err);
    }
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [nodeLockKey(schema, nodeId)]);
    if (rows[0]?.locked !== true) {
      await client.end().catch(() => undefined);
      throw new RelayError('ONWARD_ERR_SPOOL_LOCKED', `another live process already runs with nodeId ${JSON.stringify(nodeId)} on spool schema ${schema}; give each node its own nodeId`);
    }
    this.client = client;
  }

  async release(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}

/** This onward's version (package.json; the same path from src/ and dist/), for `spool nodes`. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
