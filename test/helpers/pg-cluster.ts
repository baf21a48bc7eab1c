/**
 * Several `onward serve` processes (real child processes, killed by PID) sharing one
 * PostgreSQL spool, delivering to one HTTP sink, for the cluster suites. Each node has its
 * own SMTP and admin port and its own `nodeId` (`node-1`, `node-2`, ...).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, mergeConfig, spawnServeChild, type ServeChild, type Teardown, type Yamlish } from './common.js';

export interface ClusterNode {
  readonly nodeId: string;
  readonly smtpPort: number;
  readonly adminPort: number;
  readonly configPath: string;
  readonly serve: ServeChild;
}

export interface NodeSetOptions {
  /** The shared spool's URL (a database of the test's PostgreSQL). */
  readonly url: string;
  /** Where every node delivers (`hook` target, raw format). */
  readonly sinkUrl: string;
  readonly nodes: number;
  /** `spool.lease`, e.g. `3s`: how long a dead node's deliveries stay leased. */
  readonly lease: string;
  /** Merged over every node's config. */
  readonly extra?: Yamlish;
}

/** The YAML of one node: loopback listeners, the postgres spool, one HTTP target, fast retries. */
function nodeConfig(options: NodeSetOptions, nodeId: string, smtpPort: number, adminPort: number): Yamlish {
  return mergeConfig(
    {
      listen: [{ host: '127.0.0.1', port: smtpPort }],
      hostname: `${nodeId}.relay.test`,
      nodeId,
      spool: { backend: 'postgres', url: options.url, lease: options.lease, pool: 4 },
      limits: { maxConnections: 200, maxConnectionsPerIp: 200 },
      targets: { hook: { type: 'http', url: options.sinkUrl, format: 'raw', timeout: '5s' } },
      routes: [{ match: '*', target: 'hook' }],
      retry: { schedule: ['200ms', '500ms'], jitter: 0 },
      admin: { host: '127.0.0.1', port: adminPort },
      shutdownGrace: '2s',
      log: { level: 'info' },
    },
    options.extra ?? {},
  );
}

/** Starts the nodes one after another (each migrates or finds the schema current) and registers their kill with `teardown`. */
export async function startNodes(teardown: Teardown, dir: string, options: NodeSetOptions): Promise<ClusterNode[]> {
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= options.nodes; i++) {
    const nodeId = `node-${String(i)}`;
    const [smtpPort, adminPort] = [await freePort(), await freePort()];
    const configPath = join(dir, `${nodeId}.yaml`);
    await writeFile(configPath, stringify(nodeConfig(options, nodeId, smtpPort, adminPort)));
    const serve = await spawnServeChild(configPath, { timeoutMs: 30_000 });
    teardown.add(() => serve.kill());
    nodes.push({ nodeId, smtpPort, adminPort, configPath, serve });
  }
  return nodes;
}

/** `GET http://127.0.0.1:<adminPort><path>`: status and parsed JSON body (null when not JSON). */
export async function adminGet(adminPort: number, path: string, timeoutMs = 3000): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${String(adminPort)}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body };
}
