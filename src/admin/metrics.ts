/**
 * Prometheus metrics (SPEC section 6 names). Counters and histograms are fed by the
 * components' events; gauges are read from the spool counters and the scheduler when
 * scraped, so nothing is counted twice.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryScheduler } from '../delivery/index.js';
import type { EventEmitter } from 'node:events';
import type { IngressEvents } from '../smtp/index.js';
import type { MessageState, Spool } from '../spool/index.js';

const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Running totals on this node since start, read by the dashboard's history (plain integers, no labels). */
export interface RelayActivity {
  /** Messages accepted (queued) by the SMTP ingress. */
  readonly accepted: number;
  /** Delivery attempts that ended OK / FAIL. */
  readonly delivered: number;
  readonly failed: number;
  /** Writes carried by synced spool batches (accepts, claims, outcomes, operator actions). */
  readonly spoolWrites: number;
}

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly totals = { accepted: 0, delivered: 0, failed: 0, spoolWrites: 0 };
  private readonly received = new Counter({
    name: 'onward_messages_received_total',
    help: 'Mail transactions by result (queued, duplicate, rejected, error) and front door (smtp, http)',
    labelNames: ['result', 'via'],
    registers: [this.registry],
  });
  private readonly deliveries = new Counter({
    name: 'onward_deliveries_total',
    help: 'Delivery attempts by target and outcome',
    labelNames: ['target', 'outcome'],
    registers: [this.registry],
  });
  private readonly deliveryDuration = new Histogram({
    name: 'onward_delivery_duration_seconds',
    help: 'Duration of one delivery attempt to one target',
    labelNames: ['target'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly spoolWrite = new Histogram({
    name: 'onward_spool_write_duration_seconds',
    help: 'Time from end of DATA to the synced spool write',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  private readonly syncs = new Counter({
    name: 'onward_spool_syncs_total',
    help: 'Synced LevelDB batches (one fsync each); with group commit one carries many writes',
    registers: [this.registry],
  });
  private readonly syncedWrites = new Counter({
    name: 'onward_spool_synced_writes_total',
    help: 'Spool writes (accepts, claims, outcomes, admin actions) carried by those batches',
    registers: [this.registry],
  });
  private readonly janitorRemoved = new Counter({
    name: 'onward_spool_janitor_removed_total',
    help: 'Removed by housekeeping: expired dedup keys (dedup), finished messages past retainFinished (finished)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly janitorErrors = new Counter({
    name: 'onward_spool_janitor_errors_total',
    help: 'Failed housekeeping runs (retried) and corrupt records housekeeping removed',
    registers: [this.registry],
  });
  private readonly dedupHits = new Counter({
    name: 'onward_dedup_hits_total',
    help: 'Resubmissions answered with the original queue id',
    registers: [this.registry],
  });
  private readonly bounces = new Counter({
    name: 'onward_bounces_total',
    help: 'DSNs queued by action (failed, delayed)',
    labelNames: ['action'],
    registers: [this.registry],
  });

  /** A copy of the running totals. */
  activity(): RelayActivity {
    return { ...this.totals };
  }

  /** A DSN was queued (by the scheduler or an operator bounce). */
  countBounce(action: 'failed' | 'delayed'): void {
    this.bounces.inc({ action });
  }

  constructor(deps: {
    spool: Spool;
    /** The SMTP front door. */
    ingress: EventEmitter<IngressEvents>;
    /** The HTTP submission front door, when configured. */
    submission?: EventEmitter<IngressEvents> | null;
    scheduler: DeliveryScheduler;
  }) {
    const { spool, ingress, scheduler } = deps;
    // Unprefixed: the names the standard Node.js dashboards query (process_cpu_seconds_total, ...).
    collectDefaultMetrics({ register: this.registry });
    // prom-client's gauges named *_total break the Prometheus naming rules (promtool rejects them);
    // their per-type series stay, and the total is sum(nodejs_active_handles) etc.
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    const count = (via: 'smtp' | 'http') => (t: IngressEvents['transaction'][0]) => {
      this.received.inc({ result: t.result, via });
      if (t.result === 'queued') this.totals.accepted += 1;
      if (t.result === 'duplicate') this.dedupHits.inc();
      if (t.spoolSeconds !== null && t.result === 'queued') this.spoolWrite.observe(t.spoolSeconds);
    };
    ingress.on('transaction', count('smtp'));
    deps.submission?.on('transaction', count('http'));
    spool.on('batch', (b) => {
      this.syncs.inc();
      this.syncedWrites.inc(b.writes);
      this.totals.spoolWrites += b.writes;
    });
    spool.on('janitor', (j) => this.janitorRemoved.inc({ kind: j.kind }, j.removed));
    spool.on('janitorError', () => this.janitorErrors.inc());
    scheduler.on('attempt', (a) => {
      this.deliveries.inc({ target: a.target, outcome: a.outcome });
      if (a.outcome === 'ok') this.totals.delivered += 1;
      else if (a.outcome === 'fail') this.totals.failed += 1;
      this.deliveryDuration.observe({ target: a.target }, a.durationMs / 1000);
    });
    scheduler.on('dsn', (d) => this.countBounce(d.action));
    new Gauge({
      name: 'onward_queue_depth',
      help: 'Messages in the spool by state',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const states = await spool.countsByState();
        for (const state of Object.keys(states) as MessageState[]) this.set({ state }, states[state]);
      },
    });
    new Gauge({
      name: 'onward_target_up',
      help: '1 when the target circuit is closed (up), 0 when down',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        for (const t of scheduler.targetStatus()) this.set({ target: t.name }, t.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'onward_deliveries_in_flight',
      help: 'Delivery attempts holding a slot of the target',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        for (const t of scheduler.targetStatus()) this.set({ target: t.name }, t.inFlight);
      },
    });
    new Gauge({
      name: 'onward_leases_overdue',
      help: 'Leased deliveries held longer than their attempt timeouts plus a margin (stuck attempts or outcomes the spool would not take)',
      registers: [this.registry],
      collect() {
        this.set(scheduler.leasesOverdue());
      },
    });
    new Gauge({
      name: 'onward_target_concurrency',
      help: 'Current adaptive concurrency of the target',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        for (const t of scheduler.targetStatus()) this.set({ target: t.name }, t.concurrency);
      },
    });
  }
}
