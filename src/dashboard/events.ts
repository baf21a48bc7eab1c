/**
 * GET /api/dashboard/events: server-sent events for the dashboard. `history` (the ring) on
 * connect, then one `tick` per history sample, built once and written to every client.
 * With no client connected nothing beyond the sample itself is read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { nodeView, type NodeView } from '../admin/views.js';
import type { Logger } from '../log.js';
import type { MessageState, Spool } from '../spool/index.js';
import type { QueueHistory, Sample, SampleTaken } from './history.js';

export interface TargetRow {
  readonly name: string;
  /** Live state on this node; null for a target only the spool still names (removed from the config). */
  readonly up: boolean | null;
  readonly inFlight: number | null;
  readonly limit: number | null;
  readonly queued: number;
  readonly deferred: number;
  readonly lastError: { at: string; text: string } | null;
}

export interface Tick {
  readonly sample: Sample;
  readonly states: Record<MessageState, number>;
  readonly targets: TargetRow[];
  readonly nodes: NodeView[] | null;
  readonly changed: number;
}

export interface LiveTargetStatus {
  readonly name: string;
  readonly up: boolean;
  readonly concurrency: number;
  readonly inFlight: number;
  readonly lastError: { at: number; text: string } | null;
}

export interface DashboardEventsDeps {
  readonly history: QueueHistory;
  readonly spool: Pick<Spool, 'stats' | 'nodes'>;
  readonly targetStatus: () => readonly LiveTargetStatus[];
  readonly logger: Logger;
  readonly keepaliveMs?: number;
}

/** Proxies and load balancers drop a stream that says nothing for long. */
const KEEPALIVE_MS = 15_000;

interface Client {
  readonly res: ServerResponse;
  /** write() said its buffer is full: ticks are skipped until 'drain'. */
  blocked: boolean;
}

export class DashboardEvents {
  private readonly clients = new Set<Client>();
  private keepalive: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private readonly onSample = (taken: SampleTaken): void => {
    if (this.clients.size === 0) return;
    this.tick(taken)
      .then((tick) => this.broadcast(`event: tick\ndata: ${JSON.stringify(tick)}\n\n`))
      .catch((err: unknown) => this.log.debug({ err }, 'dashboard tick skipped'));
  };

  constructor(private readonly deps: DashboardEventsDeps) {
    this.log = deps.logger.child({ component: 'dashboard' });
    deps.history.on('sample', this.onSample);
  }

  /** Connected clients (tests wait on it). */
  get size(): number {
    return this.clients.size;
  }

  open(_req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    const { history } = this.deps;
    const client: Client = { res, blocked: false };
    this.clients.add(client);
    res.on('close', () => {
      this.clients.delete(client);
      if (this.clients.size === 0 && this.keepalive) {
        clearInterval(this.keepalive);
        this.keepalive = null;
      }
    });
    res.on('drain', () => (client.blocked = false));
    this.send(client, `event: history\ndata: ${JSON.stringify({ intervalMs: history.intervalMs, samples: history.samples() })}\n\n`);
    if (!this.keepalive) {
      this.keepalive = setInterval(() => this.broadcast(': keepalive\n\n'), this.deps.keepaliveMs ?? KEEPALIVE_MS);
      this.keepalive.unref();
    }
  }

  /** Ends every stream (the admin listener is closing). */
  close(): void {
    this.deps.history.off('sample', this.onSample);
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private async tick(taken: SampleTaken): Promise<Tick> {
    const [stats, nodes] = await Promise.all([this.deps.spool.stats(), this.deps.spool.nodes()]);
    const live = new Map(this.deps.targetStatus().map((t) => [t.name, t]));
    const names = [...new Set([...live.keys(), ...Object.keys(stats.targets)])].sort();
    const targets = names.map((name): TargetRow => {
      const t = live.get(name);
      const counts = stats.targets[name] ?? { queued: 0, deferred: 0 };
      return {
        name,
        up: t?.up ?? null,
        inFlight: t?.inFlight ?? null,
        limit: t?.concurrency ?? null,
        queued: counts.queued,
        deferred: counts.deferred,
        lastError: t?.lastError ? { at: new Date(t.lastError.at).toISOString(), text: t.lastError.text } : null,
      };
    });
    return { sample: taken.sample, states: taken.states, targets, nodes: nodes === null ? null : nodes.map(nodeView), changed: taken.changed };
  }

  private broadcast(text: string): void {
    for (const c of this.clients) if (!c.blocked) this.send(c, text);
  }

  private send(client: Client, text: string): void {
    if (client.res.destroyed) return;
    if (!client.res.write(text)) client.blocked = true;
  }
}
