/**
 * The JSON shapes of SPEC section 1 (`list`, `show`, `stats`), built from spool records.
 * Field names here are a public contract: scripts parse them.
 */
import type { DeliveryRecord, MessageRecord, MessageState, NodeRecord, SpoolStats } from '../spool/index.js';

export interface ListEntry {
  id: string;
  state: MessageState;
  sender: string;
  /** `domain`: the recipient domain of an mx delivery (SPEC 13); absent otherwise. */
  recipients: { address: string; state: string; target: string; domain?: string; lastError: string | null }[];
  size: number;
  receivedAt: string;
  nextAttemptAt: string | null;
  messageId: string | null;
}

export interface ShowView extends ListEntry {
  client: MessageRecord['client'];
  finishedAt: string | null;
  bounceOf: string | null;
  /** A delivery event (SPEC 11): the queue id it reports on; its messageId is the event id. */
  eventOf: string | null;
  headers: [string, string][];
  deliveries: {
    id: string;
    target: string;
    targets: readonly string[];
    /** mx deliveries: the recipients' domain. */
    domain?: string;
    recipients: { address: string; state: string; lastError: string | null }[];
    state: string;
    attemptCount: number;
    nextAttemptAt: string | null;
    attempts: { at: string; target: string; outcome: string; reply: string; durationMs: number }[];
  }[];
}

export interface TargetStatus {
  readonly name: string;
  readonly up: boolean;
  readonly concurrency: number;
}

export interface StatsView {
  /** Messages by state (SPEC 1). */
  states: Record<MessageState, number>;
  /** Delivery events (SPEC 11) by state, counted apart from messages. */
  events: Record<MessageState, number>;
  targets: Record<string, { queued: number; deferred: number; up: boolean | null; concurrency: number | null }>;
  oldestQueuedAgeSeconds: number | null;
  spoolBytes: number;
  /** Whether the figures came from the running relay (live target state) or a stopped spool. */
  source: 'relay' | 'spool';
  /** A shared spool only: how many nodes are alive (target state is then the cluster's). */
  nodes?: number;
  /**
   * mx targets of the running relay: the live state of the busiest domains (at most 100 per
   * target, by attempts in flight): `{ internet: { "example.com": { up, concurrency, inFlight } } }`.
   */
  domains?: Record<string, Record<string, { up: boolean; concurrency: number; inFlight: number }>>;
}

export interface DomainStatus {
  readonly target: string;
  readonly domain: string;
  readonly up: boolean;
  readonly concurrency: number;
  readonly inFlight: number;
}

/** The `domains` part of the stats view. */
export function domainsView(status: readonly DomainStatus[]): NonNullable<StatsView['domains']> {
  const out: NonNullable<StatsView['domains']> = {};
  for (const d of status) (out[d.target] ??= {})[d.domain] = { up: d.up, concurrency: d.concurrency, inFlight: d.inFlight };
  return out;
}

/** One node of a shared spool as `spool nodes --json` prints it (SPEC 9). */
export interface NodeView {
  id: string;
  host: string;
  pid: number;
  version: string;
  startedAt: string;
  lastSeenAt: string;
  alive: boolean;
  inFlight: number;
  /** Its targets as its last heartbeat reported them. */
  targets: Record<string, { up: boolean; concurrency: number }>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function listEntry(message: MessageRecord, deliveries: readonly DeliveryRecord[]): ListEntry {
  const due = deliveries.map((d) => d.dueAt).filter((t): t is number => t !== null);
  return {
    id: message.id,
    state: message.state,
    sender: message.sender,
    recipients: deliveries.flatMap((d) =>
      d.recipients.map((r) => ({ address: r.address, state: r.state, target: d.targets[0] ?? '', ...(d.domain ? { domain: d.domain } : {}), lastError: r.lastError })),
    ),
    size: message.size,
    receivedAt: new Date(message.receivedAt).toISOString(),
    nextAttemptAt: due.length > 0 ? iso(Math.min(...due)) : null,
    messageId: message.messageId,
  };
}

export function showView(message: MessageRecord, deliveries: readonly DeliveryRecord[], headers: [string, string][]): ShowView {
  return {
    ...listEntry(message, deliveries),
    client: message.client,
    finishedAt: iso(message.finishedAt),
    bounceOf: message.bounceOf,
    eventOf: message.eventOf,
    headers,
    deliveries: deliveries.map((d) => ({
      id: d.id,
      target: d.targets[0] ?? '',
      targets: d.targets,
      ...(d.domain ? { domain: d.domain } : {}),
      recipients: d.recipients.map((r) => ({ address: r.address, state: r.state, lastError: r.lastError })),
      state: d.state,
      attemptCount: d.attemptCount,
      nextAttemptAt: iso(d.dueAt),
      attempts: d.attempts.map((a) => ({ at: new Date(a.at).toISOString(), target: a.target, outcome: a.outcome, reply: a.reply, durationMs: a.durationMs })),
    })),
  };
}

export function nodeView(node: NodeRecord): NodeView {
  return {
    id: node.id,
    host: node.host,
    pid: node.pid,
    version: node.version,
    startedAt: new Date(node.startedAt).toISOString(),
    lastSeenAt: new Date(node.lastSeenAt).toISOString(),
    alive: node.alive,
    inFlight: node.inFlight,
    targets: Object.fromEntries(Object.entries(node.targets).map(([name, t]) => [name, { up: t.up, concurrency: t.concurrency }])),
  };
}

/**
 * The cluster's view of its targets (SPEC 9): a target is up when any live node has it up,
 * and its concurrency is the sum over the live nodes that run it. Targets no live node
 * reports are absent (a stopped cluster has no live state).
 */
export function clusterTargets(nodes: readonly NodeRecord[]): TargetStatus[] {
  const merged = new Map<string, { up: boolean; concurrency: number }>();
  for (const node of nodes) {
    if (!node.alive) continue;
    for (const [name, t] of Object.entries(node.targets)) {
      const sum = merged.get(name) ?? { up: false, concurrency: 0 };
      merged.set(name, { up: sum.up || t.up, concurrency: sum.concurrency + t.concurrency });
    }
  }
  return [...merged].map(([name, t]) => ({ name, up: t.up, concurrency: t.concurrency }));
}

/**
 * `live` is this relay's own target state (null on a stopped spool); `nodes` the nodes of a
 * shared spool (null for level), whose heartbeats then give the target state instead.
 */
export function statsView(
  stats: SpoolStats,
  configured: readonly string[],
  live: readonly TargetStatus[] | null,
  now: number,
  nodes: readonly NodeRecord[] | null = null,
): StatsView {
  const targetState = nodes === null ? live : clusterTargets(nodes);
  const targets: StatsView['targets'] = {};
  for (const name of configured) targets[name] = { queued: 0, deferred: 0, up: null, concurrency: null };
  for (const [name, counts] of Object.entries(stats.targets)) targets[name] = { ...counts, up: null, concurrency: null };
  for (const t of targetState ?? []) {
    const counts = targets[t.name] ?? { queued: 0, deferred: 0 };
    targets[t.name] = { queued: counts.queued, deferred: counts.deferred, up: t.up, concurrency: t.concurrency };
  }
  return {
    states: stats.states,
    events: stats.events,
    targets,
    oldestQueuedAgeSeconds: stats.oldestQueuedAt === null ? null : Math.max(0, Math.round((now - stats.oldestQueuedAt) / 1000)),
    spoolBytes: stats.spoolBytes,
    source: live === null ? 'spool' : 'relay',
    ...(nodes === null ? {} : { nodes: nodes.filter((n) => n.alive).length }),
  };
}
