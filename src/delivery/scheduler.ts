import { EventEmitter } from 'node:events';
import type { Config, TargetConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { laneOf, type ClaimedDelivery, type DeliveryRecord, type DispatchSlot, type Spool } from '../spool/index.js';
import { brokenAttempt, leaseBoundMs, runAttempt, type AttemptOutcome, type LiveTarget, type TargetLookup } from './attempt.js';
import { DomainStates, OverallState } from './domain-state.js';
import { LaneTable, type Lane } from './lanes.js';
import { OutcomeRecorder, type EventReporter, type FailureReporter } from './record.js';
import { TargetState } from './target-state.js';
import { createTransport, type TransportFactory } from './transports.js';
import type { Outcome } from './types.js';

export type { EventReporter, FailureReport, FailureReporter } from './record.js';

export interface SchedulerEvents {
  attempt: [{ target: string; outcome: Outcome; durationMs: number; deliveryId: string }];
  settled: [{ deliveryId: string; queueId: string; state: string; dsn: boolean }];
  /** A DSN was written with an outcome: `failed` when any recipient failed, else `delayed`. */
  dsn: [{ queueId: string; action: 'failed' | 'delayed' }];
}

export interface SchedulerDeps {
  readonly config: Config;
  readonly spool: Spool;
  readonly logger: Logger;
  readonly reporter: FailureReporter | null;
  /** Delivery events (SPEC 11) written with each outcome; absent: none. */
  readonly events?: EventReporter | null;
  readonly now?: () => number;
  /** Where transports run; default this thread (the relay passes the delivery thread's). */
  readonly transports?: TransportFactory;
}

/** Safety net: lanes are woken by spool events and timers; this catches anything missed. */
const IDLE_POLL_MS = 5000;
/** Due deliveries of a lane whose targets are all down, taken per pass to bounce expired ones. */
const DOWN_SWEEP_BATCH = 64;

/**
 * Drives deliveries from the spool's due index to the transports. Each lane (a failover
 * list of targets) is pumped independently: claim as many due deliveries as its first
 * usable target may run, run them, pump again when one finishes. Nothing scans the
 * spool: the next wake-up is the lane's earliest due key. A new message whose target has
 * a free slot skips the index: the spool writes it leased and hands it straight over (see
 * DispatchSlot). A slot that comes free goes to lanes with due work first (pumpUsing).
 */
export class DeliveryScheduler extends EventEmitter<SchedulerEvents> {
  private readonly targets = new Map<string, LiveTarget>();
  private readonly lanes = new LaneTable();
  /** Per-domain state of mx targets (created on demand, LRU-bounded). */
  private readonly domains = new DomainStates((state, target) => this.pumpDomain(target, state.domain));
  /** Domain lanes by `target@domain`, for each mx target in their list: a freed domain slot pumps only them. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Deliveries this scheduler holds leased, with the time by which each should be over (leaseBoundMs). */
  private readonly held = new Map<string, number>();
  private readonly log: Logger;
  private readonly now: () => number;
  private stopping = false;
  private poller: NodeJS.Timeout | null = null;
  private config: Config;
  private readonly recorder: OutcomeRecorder;

  constructor(private readonly deps: SchedulerDeps) {
    super();
    this.log = deps.logger.child({ component: 'delivery' });
    this.now = deps.now ?? Date.now;
    this.recorder = new OutcomeRecorder({ ...deps, log: this.log, now: this.now, stopping: () => this.stopping });
    this.config = deps.config;
    for (const target of Object.values(deps.config.targets)) this.targets.set(target.name, this.liveTarget(target));
  }

  private liveTarget(target: TargetConfig, state?: TargetState): LiveTarget {
    const create = this.deps.transports ?? createTransport;
    const made = state ?? (target.type === 'mx' ? new OverallState(target) : new TargetState(target));
    const live = { state: made, transport: create(target, { heloName: this.config.hostname }) };
    live.state.onSlotFreed =
      target.type === 'mx'
        ? () => {
            // Domain slots wake their own lanes; the overall bound only matters when it held some back.
            if (!made.starved) return;
            made.starved = false;
            this.pumpUsing(target.name);
          }
        : () => this.pumpUsing(target.name);
    return live;
  }

  /**
   * SIGHUP: targets whose settings changed get a new transport (the old one is closed once
   * its attempts finish); live state (concurrency, circuit) carries over by name.
   */
  reconfigure(config: Config): void {
    const previous = this.config;
    this.config = config;
    for (const [name, live] of this.targets) {
      const next = config.targets[name];
      if (!next) {
        this.targets.delete(name);
        void live.transport.close();
      } else if (JSON.stringify(next) !== JSON.stringify(previous.targets[name])) {
        if (next.type !== live.state.config.type) {
          // Another kind of target under the same name: start its live state afresh.
          this.domains.forget(name);
          this.targets.set(name, this.liveTarget(next));
          void live.transport.close();
          continue;
        }
        live.state.reconfigure(next);
        for (const d of this.domains.of(name)) d.reconfigure(next);
        this.targets.set(name, this.liveTarget(next, live.state));
        void live.transport.close();
      }
    }
    for (const target of Object.values(config.targets)) if (!this.targets.has(target.name)) this.targets.set(target.name, this.liveTarget(target));
    for (const route of config.routes) this.wake(laneOf(route.targets));
  }

  async start(): Promise<void> {
    this.deps.spool.onDue((lane) => this.wake(lane));
    this.deps.spool.setDispatcher((lane) => this.offer(lane));
    for (const route of this.config.routes) this.lane(laneOf(route.targets));
    for (const lane of await this.deps.spool.lanes()) this.lane(lane);
    for (const lane of this.lanes.all()) this.pump(lane);
    this.poller = setInterval(() => {
      for (const lane of this.lanes.all()) this.wake(lane.name);
    }, IDLE_POLL_MS);
    this.poller.unref();
  }

  /** Stops claiming; waits for attempts in flight up to `graceMs` (the rest stay leased). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.deps.spool.setDispatcher(null);
    if (this.poller) clearInterval(this.poller);
    for (const lane of this.lanes.all()) if (lane.timer) clearTimeout(lane.timer);
    const deadline = Date.now() + graceMs;
    // Claims in progress may still start attempts: wait until nothing is in flight.
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadline - Date.now())));
      await Promise.race([Promise.allSettled([...this.inFlight]), timeout]);
      clearTimeout(timer);
    }
    await Promise.all([...this.targets.values()].map((t) => t.transport.close()));
  }

  /** No claim, attempt or outcome write in progress (tests wait on it instead of sleeping). */
  idle(): boolean {
    return this.inFlight.size === 0;
  }

  /** Leases held past their bound (leaseBoundMs): attempts or records that are stuck. */
  leasesOverdue(): number {
    const now = this.now();
    let n = 0;
    for (const deadline of this.held.values()) if (deadline < now) n += 1;
    return n;
  }

  /** Live target state for stats, metrics and the dashboard. */
  targetStatus(): { name: string; up: boolean; concurrency: number; inFlight: number; lastError: { at: number; text: string } | null }[] {
    return [...this.targets.entries()].map(([name, t]) => ({
      name,
      up: t.state.up,
      concurrency: t.state.limit,
      inFlight: t.state.inFlight,
      lastError: t.state.lastError,
    }));
  }

  /**
   * Per-domain live state of mx targets: `up` and `concurrency` of the busiest domains (by
   * attempts in flight), at most `limit` per target.
   */
  domainStatus(limit = 100): { target: string; domain: string; up: boolean; concurrency: number; inFlight: number }[] {
    const out: { target: string; domain: string; up: boolean; concurrency: number; inFlight: number }[] = [];
    for (const [name, t] of this.targets) {
      if (t.state.config.type !== 'mx') continue;
      const states = [...this.domains.of(name)].sort((a, b) => b.inFlight - a.inFlight).slice(0, limit);
      for (const d of states) out.push({ target: name, domain: d.domain, up: d.up, concurrency: d.limit, inFlight: d.inFlight });
    }
    return out;
  }

  /** The live target `name` as seen by a delivery to `domain`: an mx target's domain state, else the target's. */
  private live(name: string, domain: string | null): LiveTarget | undefined {
    const t = this.targets.get(name);
    if (t === undefined || domain === null || t.state.config.type !== 'mx') return t;
    return { state: this.domains.get(t.state.config, t.state, domain), transport: t.transport };
  }

  private lookup(domain: string | null): TargetLookup {
    return { get: (name) => this.live(name, domain) };
  }

  private lane(name: string): Lane {
    return this.lanes.get(name);
  }

  /** A slot of one domain of an mx target came free: pump that domain's lanes. */
  private pumpDomain(target: string, domain: string): void {
    for (const lane of this.lanes.ofDomain(target, domain)) if (lane.needsScan) this.pump(lane);
  }

  private wake(name: string): void {
    const lane = this.lane(name);
    lane.needsScan = true;
    this.pump(lane);
  }

  /**
   * A slot for a new delivery of `name`, when the lane's first usable target has room.
   * Nothing older is overtaken: a freed slot goes, synchronously, to the pumps of lanes
   * with due work waiting (TargetState.onSlotFreed), so one is free here only when no
   * waiting lane could take it.
   */
  private offer(name: string): DispatchSlot | null {
    const lane = this.lane(name);
    if (this.stopping) return null;
    const { target, count } = this.reserve(lane, this.now(), 1);
    const slots = target === null ? undefined : this.live(target, lane.domain)?.state;
    if (!slots || count === 0) return null;
    return {
      start: (claimed) => {
        if (!this.stopping) {
          this.track(this.deliver(this.lane(name), claimed, target));
          return;
        }
        slots.release(1); // stop() began during the accept: leave it due for the next start
        const handBack = this.deps.spool.postpone(claimed.delivery.id, this.now());
        this.track(handBack.catch((err: unknown) => this.log.error({ err, deliveryId: claimed.delivery.id }, 'left leased for the next start')));
      },
      cancel: () => slots.release(1), // the freed slot goes to waiting lanes (pumpUsing)
    };
  }

  /**
   * Takes the slots the lane may use now (at most `want`), on its first usable target (so lanes sharing a
   * target never exceed it between deciding and claiming). A busy target makes the lane
   * wait rather than spill to its backup. When every target is down, due deliveries are
   * still taken in batches (no slots) so that expired ones bounce; the rest are postponed
   * to the next probe without spending a schedule step.
   */
  private reserve(lane: Lane, now: number, want?: number): { target: string | null; count: number } {
    for (const name of lane.targets) {
      const live = this.live(name, lane.domain);
      if (!live) return { target: null, count: 1 }; // unknown target: let the attempt record the error
      const taken = live.state.take(now, want ?? live.state.limit);
      if (taken > 0 || live.state.up) return { target: name, count: taken };
    }
    return { target: null, count: DOWN_SWEEP_BATCH };
  }

  private pump(lane: Lane): void {
    if (this.stopping || !lane.needsScan) return;
    if (lane.pumping) {
      lane.again = true;
      return;
    }
    lane.pumping = true;
    const filling = this.fill(lane);
    this.track(filling.catch(() => undefined));
    void filling
      .catch((err: unknown) => this.log.error({ err, lane: lane.name }, 'scheduler error'))
      .finally(() => {
        lane.pumping = false;
        if (lane.again) {
          lane.again = false;
          this.pump(lane);
        } else this.lanes.dropIfIdle(lane);
      });
  }

  private async fill(lane: Lane): Promise<void> {
    const now = this.now();
    const { target, count } = this.reserve(lane, now);
    if (count === 0) {
      // Busy lanes are pumped again as attempts on their targets end; down ones at their probe.
      const probeAt = this.nextProbe(lane);
      if (probeAt !== null) this.arm(lane, probeAt);
      return;
    }
    const slots = target === null ? null : this.live(target, lane.domain)?.state;
    let claimed: ClaimedDelivery[] = [];
    lane.needsScan = false; // a wake-up from here on asks for another scan
    try {
      claimed = await this.deps.spool.claimDue(lane.name, now, count);
    } catch (err) {
      lane.needsScan = true; // the next pump tries again
      throw err;
    } finally {
      const unused = count - claimed.length;
      slots?.release(unused); // what this lane did not need goes to waiting lanes (pumpUsing)
    }
    if (this.stopping) {
      // stop() began while we were claiming: hand these back untouched, due now.
      slots?.release(claimed.length);
      await Promise.all(claimed.map((c) => this.deps.spool.postpone(c.delivery.id, this.now())));
      return;
    }
    for (const c of claimed) this.track(this.deliver(lane, c, target));
    if (claimed.length === count) {
      lane.needsScan = true; // more may be due: finishing attempts pump again
      return;
    }
    const nextDue = await this.deps.spool.nextDueAt(lane.name).catch((err: unknown) => {
      lane.needsScan = true;
      throw err;
    });
    if (nextDue !== null) this.arm(lane, nextDue);
    else lane.drained = claimed.length === 0;
  }

  private nextProbe(lane: Lane): number | null {
    const probes = lane.targets.map((t) => this.live(t, lane.domain)?.state.nextProbeAt ?? null).filter((t): t is number => t !== null);
    return probes.length > 0 ? Math.min(...probes) : null;
  }

  private arm(lane: Lane, at: number): void {
    if (!Number.isFinite(at)) return;
    if (lane.timer && lane.timerAt <= at) return;
    if (lane.timer) clearTimeout(lane.timer);
    lane.timerAt = at;
    lane.timer = setTimeout(() => {
      lane.timer = null;
      lane.timerAt = Infinity;
      this.wake(lane.name);
    }, Math.max(0, at - this.now()));
    lane.timer.unref();
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /**
   * Runs one attempt and records it. Every path ends as data: an attempt that throws is an
   * ERROR outcome, an outcome that cannot be written gives the delivery back to the due
   * index (OutcomeRecorder), and runAttempt releases its slots whatever happens.
   */
  private async deliver(lane: Lane, claimed: ClaimedDelivery, reserved: string | null): Promise<void> {
    const { delivery } = claimed;
    const targets = delivery.targets.map((t) => this.targets.get(t)?.state.config);
    this.held.set(delivery.id, this.now() + leaseBoundMs(targets, claimed.body.length));
    lane.active += 1;
    lane.drained = false;
    try {
      const outcome = await runAttempt(claimed, this.lookup(delivery.domain ?? null), this.config.retry, this.now, reserved).catch((err: unknown) => {
        this.log.error({ err, deliveryId: delivery.id }, 'delivery attempt failed unexpectedly; recorded as ERROR');
        return brokenAttempt(claimed, this.config.retry, this.now(), err);
      });
      // Stopping cut the attempt short (the delivery thread was stopped): the lease keeps it
      // due at the next start, without spending a schedule step.
      if (outcome.interrupted && this.stopping) return;
      if (outcome.skipped) {
        // Back at the next probe, or when the queue lifetime ends if that comes first.
        const probeAt = outcome.earliestProbeAt ?? this.now() + 1000;
        await this.recorder.giveBack(delivery.id, Math.min(probeAt, delivery.createdAt + this.config.retry.maxAgeMs), (at) => this.arm(lane, at));
        return;
      }
      const recorded = await this.recorder.record(claimed, outcome, (at) => this.arm(lane, at));
      if (recorded) this.announce(claimed, outcome, recorded.after, recorded.dsn);
    } finally {
      lane.active -= 1;
      this.held.delete(delivery.id);
      // The freed slot already went to lanes with due work (pumpUsing); this catches a
      // wake-up that came while this lane's pump was busy.
      this.pump(lane);
    }
  }

  /** Events and the log line of a recorded attempt; a failing listener cannot undo the record. */
  private announce(claimed: ClaimedDelivery, outcome: AttemptOutcome, after: DeliveryRecord, dsn: boolean): void {
    const { delivery } = claimed;
    try {
      for (const a of outcome.attempts) {
        if (a.outcome !== 'ok') {
          const lastError = { at: a.at + a.durationMs, text: a.reply };
          const target = this.targets.get(a.target)?.state;
          if (target) target.lastError = lastError;
          const domainState = this.live(a.target, delivery.domain ?? null)?.state;
          if (domainState && domainState !== target) domainState.lastError = lastError;
        }
        this.emit('attempt', { target: a.target, outcome: a.outcome, durationMs: a.durationMs, deliveryId: delivery.id });
        this.log.info(
          {
            queueId: delivery.queueId,
            deliveryId: delivery.id,
            attempt: delivery.attemptCount,
            target: a.target,
            recipients: outcome.recipients.map((r) => ({ address: r.address, state: r.state })),
            outcome: a.outcome,
            reply: a.reply,
            durationMs: a.durationMs,
            nextAttemptAt: after.dueAt === null ? null : new Date(after.dueAt).toISOString(),
          },
          'delivery attempt',
        );
      }
      if (dsn) {
        const action = outcome.recipients.some((r) => r.state === 'failed') ? 'failed' : 'delayed';
        this.emit('dsn', { queueId: delivery.queueId, action });
      }
      this.emit('settled', { deliveryId: delivery.id, queueId: delivery.queueId, state: after.state, dsn });
    } catch (err) {
      this.log.error({ err, deliveryId: delivery.id }, 'delivery event listener failed');
    }
  }

  /**
   * A slot of `target` came free (TargetState.onSlotFreed): lanes with due work that use it
   * are pumped at once, before a new message could take the slot at accept. Lanes take
   * turns: the first one served moves to the back, so a busy lane cannot keep retaking
   * every slot it frees from another that shares its target.
   */
  private pumpUsing(target: string): void {
    let served: Lane | null = null;
    for (const lane of this.lanes.waitingFor(target)) {
      served ??= lane;
      this.pump(lane);
    }
    if (served) this.lanes.rotate(served);
  }
}
