/**
 * The dashboard's last hour on this node: one Sample every interval in a bounded ring,
 * in memory only. Each sample reads the spool's counts by state (cluster-wide on postgres)
 * and this node's running totals; nothing here runs per message.
 */
import { EventEmitter } from 'node:events';
import type { RelayActivity } from '../admin/metrics.js';
import type { Logger } from '../log.js';
import type { MessageState, Spool } from '../spool/index.js';

export interface Sample {
  /** Epoch ms of the reading. */
  readonly t: number;
  readonly queued: number;
  readonly deferred: number;
  readonly held: number;
  /** Per second over the interval before t, on this node: messages accepted, deliveries OK, deliveries FAIL. */
  readonly received: number;
  readonly delivered: number;
  readonly failed: number;
}

export interface SampleTaken {
  readonly sample: Sample;
  readonly states: Record<MessageState, number>;
  /** Moves whenever the counts or this node's totals differ from the previous sample. */
  readonly changed: number;
}

export interface HistoryEvents {
  sample: [SampleTaken];
}

export interface QueueHistoryDeps {
  readonly spool: Pick<Spool, 'countsByState'>;
  readonly activity: () => RelayActivity;
  readonly logger: Logger;
  /** Samples kept (default 1800: an hour at 2 s). */
  readonly capacity?: number;
  readonly intervalMs?: number;
  readonly now?: () => number;
}

export const HISTORY_INTERVAL_MS = 2000;
export const HISTORY_CAPACITY = 1800;

const perSecond = (delta: number, ms: number): number => (ms > 0 ? Math.round((delta * 1000 * 100) / ms) / 100 : 0);

export class QueueHistory extends EventEmitter<HistoryEvents> {
  readonly intervalMs: number;
  readonly capacity: number;
  private readonly ring: Sample[] = [];
  /** Index of the oldest sample once the ring is full. */
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;
  private previous: { at: number; activity: RelayActivity; fingerprint: string } | null = null;
  private changedCount = 0;
  private last: SampleTaken | null = null;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly deps: QueueHistoryDeps) {
    super();
    this.intervalMs = deps.intervalMs ?? HISTORY_INTERVAL_MS;
    this.capacity = deps.capacity ?? HISTORY_CAPACITY;
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ component: 'dashboard' });
  }

  start(): void {
    if (this.timer) return;
    this.previous = { at: this.now(), activity: this.deps.activity(), fingerprint: '' };
    this.timer = setInterval(() => void this.take(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The ring, oldest first. */
  samples(): Sample[] {
    return [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
  }

  /** The newest reading, or null before the first. */
  latest(): SampleTaken | null {
    return this.last;
  }

  /** One reading; a spool that cannot answer skips it (the next interval tries again). */
  private async take(): Promise<void> {
    if (this.sampling) return; // a slow spool: never more than one reading in flight
    this.sampling = true;
    try {
      const states = await this.deps.spool.countsByState();
      const at = this.now();
      const activity = this.deps.activity();
      const prev = this.previous ?? { at, activity, fingerprint: '' };
      const ms = at - prev.at;
      const sample: Sample = {
        t: at,
        queued: states.queued,
        deferred: states.deferred,
        held: states.held,
        received: perSecond(activity.accepted - prev.activity.accepted, ms),
        delivered: perSecond(activity.delivered - prev.activity.delivered, ms),
        failed: perSecond(activity.failed - prev.activity.failed, ms),
      };
      const fingerprint = JSON.stringify([states, activity]);
      if (fingerprint !== prev.fingerprint) this.changedCount += 1;
      this.previous = { at, activity, fingerprint };
      this.push(sample);
      this.last = { sample, states, changed: this.changedCount };
      this.emit('sample', this.last);
    } catch (err) {
      this.log.debug({ err }, 'dashboard sample skipped');
    } finally {
      this.sampling = false;
    }
  }

  private push(sample: Sample): void {
    if (this.ring.length < this.capacity) {
      this.ring.push(sample);
      return;
    }
    this.ring[this.head] = sample;
    this.head = (this.head + 1) % this.capacity;
  }
}
