// The relays under test as one set: their configuration, start / stop, the node a kill hits and
// the spool the CLI checks. `--backend level` (the default): one node with its own LevelDB spool.
// `--backend postgres`: a throwaway PostgreSQL (bench/lib/postgres.mjs) and `--nodes` nodes on
// it (same url and schema, distinct nodeId, own ports, a short lease so a killed node's
// deliveries are taken over quickly); the database can be restarted under them.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, sleep } from '../lib/net.mjs';
import { startPostgres } from '../lib/postgres.mjs';
import { HOOKS, MAX_MESSAGE_SIZE } from './messages.mjs';
import { rngStream } from './random.mjs';
import { RelayNode } from './relay-node.mjs';

/** `spool.lease` of the postgres nodes: a SIGKILLed node's deliveries wait this long (plus a poll). */
export const PG_LEASE = '3s';
const PG_SCHEMA = 'onward';

/** The spool section (and nodeId) of one node. */
function spoolConfig({ dir, db, nodeId }) {
  if (db === null) return { spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' } };
  return { nodeId, spool: { backend: 'postgres', url: db.url, schema: PG_SCHEMA, lease: PG_LEASE, pool: 8 } };
}

/** One node's configuration: the three sinks as targets, fast retries, loopback only. */
function relayConfig({ dir, smtpPort, adminPort, sinks, db, nodeId }) {
  const circuit = { failures: 5, probe: '1s' };
  return {
    listen: [{ host: '127.0.0.1', port: smtpPort }],
    hostname: db === null ? 'relay.chaos' : `${nodeId}.relay.chaos`,
    limits: { maxMessageSize: MAX_MESSAGE_SIZE, maxRecipients: 10, maxConnections: 500, maxConnectionsPerIp: 500 },
    relay: { allowNetworks: ['127.0.0.0/8'] },
    ...spoolConfig({ dir, db, nodeId }),
    retry: { schedule: ['200ms', '500ms', '1s'], jitter: 0.2, maxAge: '7d' },
    targets: {
      hooks: { type: 'http', url: `http://127.0.0.1:${sinks.http.port}/hook`, format: 'raw', timeout: '1s', circuit },
      mx: { type: 'smtp', host: '127.0.0.1', port: sinks.smtp.port, secure: 'none', timeout: '2s', pool: { maxConnections: 16 }, circuit },
      bounces: { type: 'smtp', host: '127.0.0.1', port: sinks.bounce.port, secure: 'none', timeout: '5s' },
    },
    routes: [
      { match: `*@${HOOKS}`, target: 'hooks' },
      { match: '*', target: 'mx' },
    ],
    bounces: { from: 'MAILER-DAEMON@relay.chaos', via: 'bounces' },
    admin: { host: '127.0.0.1', port: adminPort },
    shutdownGrace: '10s',
    log: { level: 'warn' },
  };
}

export class Cluster {
  /**
   * Writes the configuration(s) into `dir` and prepares the node(s); no relay runs yet (with
   * postgres, the database does). `opts`: backend, nodes, seed (the victim's random stream).
   */
  static async create({ dir, sinks, opts = { backend: 'level', nodes: 1, seed: 0 } }) {
    const db = opts.backend === 'postgres' ? await startPostgres({ database: 'onward_chaos', settings: { max_connections: '100' } }) : null;
    const nodes = [];
    for (let i = 1; i <= opts.nodes; i++) {
      const nodeId = db === null ? null : `node-${i}`;
      const [smtpPort, adminPort] = [await freePort(), await freePort()];
      const configPath = join(dir, db === null ? 'onward.yaml' : `${nodeId}.yaml`);
      await writeFile(configPath, stringify(relayConfig({ dir, smtpPort, adminPort, sinks, db, nodeId })));
      nodes.push(new RelayNode({ configPath, smtpPort, adminPort, logPath: join(dir, db === null ? 'relay.log' : `${nodeId}.log`), nodeId, mallocArenaMax: opts.mallocArenaMax ?? null }));
    }
    return new Cluster(nodes, db, rngStream(opts.seed, 'victim'));
  }

  constructor(nodes, db = null, victimRng = Math.random) {
    this.nodes = nodes;
    this.db = db; // the throwaway PostgreSQL, or null (level)
    this.victimRng = victimRng;
  }

  get backend() {
    return this.db === null ? 'level' : 'postgres';
  }

  /** The SMTP ports clients submit to, one per node. */
  get submitPorts() {
    return this.nodes.map((n) => n.smtpPort);
  }

  get anyAlive() {
    return this.nodes.some((n) => n.alive);
  }

  async start() {
    for (const node of this.nodes) await node.start();
  }

  /** The node the next kill hits (with more nodes: a draw from its own random stream). */
  victim() {
    if (this.nodes.length === 1) return this.nodes[0];
    return this.nodes[Math.floor(this.victimRng() * this.nodes.length) % this.nodes.length];
  }

  /** PostgreSQL crashes and comes back: `pg_ctl stop -m immediate`, `downMs` down, start. */
  async restartDatabase(downMs) {
    await this.db.stopServer();
    await sleep(downMs);
    await this.db.startServer();
  }

  /**
   * What the database still holds unfinished (postgres only, after the final stop): deliveries
   * leased or not in a final state, messages not finished. All must be 0.
   */
  async leftovers() {
    const d = await this.db.sql(
      `SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL)::int AS leased,
              count(*) FILTER (WHERE state NOT IN ('delivered', 'failed'))::int AS unfinished
         FROM ${PG_SCHEMA}.deliveries`,
    );
    return d.rows[0];
  }

  /** Admin spool stats from a live node (the queue is the spool's, whichever node answers). */
  stats() {
    return (this.nodes.find((n) => n.alive) ?? this.nodes[0]).stats();
  }

  /** The spool as the CLI sees it, through the first node's configuration (one spool, however many nodes). */
  spoolCheck() {
    return this.nodes[0].spoolCheck();
  }

  cli(args, timeoutMs) {
    return this.nodes[0].cli(args, timeoutMs);
  }

  /** SIGTERM every node and wait; one exit per node. */
  stop(graceMs) {
    return Promise.all(this.nodes.map((n) => n.stop(graceMs)));
  }

  /** Best-effort stop of whatever still runs (the harness is ending). */
  async stopLive(graceMs) {
    await Promise.all(this.nodes.filter((n) => n.alive).map((n) => n.stop(graceMs).catch(() => undefined)));
  }

  /** SIGKILL every live node at once, synchronously (an interrupted harness). */
  killNow() {
    for (const node of this.nodes) if (node.pid !== null) process.kill(node.pid, 'SIGKILL');
  }

  close() {
    for (const node of this.nodes) node.close();
  }

  /** Stops the database (postgres): removed, or with `keep` only stopped (its folder stays for a look). */
  async closeDatabase({ keep }) {
    if (this.db === null) return;
    if (keep) await this.db.stopServer().catch(() => undefined);
    else await this.db.stop();
  }

  get crashes() {
    return this.nodes.flatMap((n) => n.crashes);
  }

  get errorLines() {
    return this.nodes.reduce((sum, n) => sum + n.errorLines, 0);
  }

  get errorSamples() {
    return this.nodes.flatMap((n) => n.errorSamples);
  }

  get tail() {
    return this.nodes.map((n) => n.tail).join('\n');
  }
}
