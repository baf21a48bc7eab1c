// The relays under test as one set: their configuration, start / stop, the node a kill hits and
// the spool the CLI checks. Today the set is one node with its own LevelDB spool; more nodes (on
// one shared spool backend) extend `Cluster.create` and `victim`, and the rest iterates `nodes`.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../lib/net.mjs';
import { HOOKS, MAX_MESSAGE_SIZE } from './messages.mjs';
import { RelayNode } from './relay-node.mjs';

/** One node's configuration: the three sinks as targets, fast retries, loopback only. */
function relayConfig({ dir, smtpPort, adminPort, sinks }) {
  const circuit = { failures: 5, probe: '1s' };
  return {
    listen: [{ host: '127.0.0.1', port: smtpPort }],
    hostname: 'relay.chaos',
    limits: { maxMessageSize: MAX_MESSAGE_SIZE, maxRecipients: 10, maxConnections: 500, maxConnectionsPerIp: 500 },
    relay: { allowNetworks: ['127.0.0.0/8'] },
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
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
  /** Writes the configuration into `dir` and prepares the node(s); nothing runs yet. */
  static async create({ dir, sinks }) {
    const [smtpPort, adminPort] = [await freePort(), await freePort()];
    const configPath = join(dir, 'onward.yaml');
    await writeFile(configPath, stringify(relayConfig({ dir, smtpPort, adminPort, sinks })));
    return new Cluster([new RelayNode({ configPath, smtpPort, adminPort, logPath: join(dir, 'relay.log') })]);
  }

  constructor(nodes) {
    this.nodes = nodes;
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
    return this.nodes[0];
  }

  /** Admin spool stats from a live node (the queue is the spool's, whichever node answers). */
  stats() {
    return (this.nodes.find((n) => n.alive) ?? this.nodes[0]).stats();
  }

  /** The spool as the CLI sees it, through the first node's configuration (one spool today). */
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
