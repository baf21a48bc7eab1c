import type { TargetConfig } from '../config/types.js';

/**
 * Live state of one downstream target: adaptive concurrency (halve on contention, +1 on
 * success, between 1 and the configured bound), the slots in use, and a circuit breaker
 * (down after `circuit.failures` consecutive ERRORs; then one probe every `circuit.probe`).
 * Slots are taken before a claim is awaited, so lanes sharing a target never exceed it.
 */
export class TargetState {
  limit: number;
  inFlight = 0;
  /** The reply of the last attempt that ended ERROR or FAIL here (the dashboard shows it). */
  lastError: { at: number; text: string } | null = null;
  /** mx targets: a domain wanted a slot that this (overall) bound did not have (see DomainState). */
  starved = false;
  private consecutiveErrors = 0;
  private downUntil: number | null = null;
  private probing = false;
  private waiters: (() => void)[] = [];
  /**
   * Called, synchronously, whenever a slot comes free: the scheduler gives it to lanes with
   * due work waiting before any new message can take it at accept.
   */
  onSlotFreed: () => void = () => undefined;

  constructor(public config: TargetConfig) {
    this.limit = config.concurrency;
  }

  get up(): boolean {
    return this.downUntil === null;
  }

  /** When the circuit will let a probe through, or null while up. */
  get nextProbeAt(): number | null {
    return this.downUntil;
  }

  /** Slots that could be taken now, without taking them: while down, 1 when a probe is due. */
  available(now: number): number {
    if (this.downUntil !== null) return !this.probing && now >= this.downUntil ? 1 : 0;
    return Math.max(0, this.limit - this.inFlight);
  }

  /** Takes up to `wanted` slots now and returns how many it took: while down, only a due probe (1). */
  take(now: number, wanted: number): number {
    if (this.downUntil !== null) {
      if (this.probing || now < this.downUntil || wanted < 1) return 0;
      this.probing = true;
      this.inFlight += 1;
      return 1;
    }
    const n = Math.max(0, Math.min(wanted, this.limit - this.inFlight));
    this.inFlight += n;
    return n;
  }

  /** Gives back slots that were taken but not used (a claim found fewer due deliveries). */
  release(count: number): void {
    if (count <= 0) return;
    this.inFlight -= count;
    if (this.downUntil !== null) this.probing = false;
    this.wakeWaiters();
  }

  /** Resolves when a slot may have come free (an attempt ended or slots were released). */
  slotFreed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends an attempt that held a slot: any recipient answered (ok/fail) counts as the target working. */
  end(now: number, worked: boolean, contention: boolean): void {
    this.inFlight -= 1;
    this.probing = false;
    if (worked) {
      this.consecutiveErrors = 0;
      this.downUntil = null;
      this.limit = Math.min(this.config.concurrency, this.limit + 1);
    } else {
      if (contention) this.limit = Math.max(1, Math.floor(this.limit / 2));
      this.consecutiveErrors += 1;
      if (this.consecutiveErrors >= this.config.circuit.failures) this.downUntil = now + this.config.circuit.probeMs;
    }
    this.wakeWaiters();
  }

  /** New config on reload keeps the live state, with the limit clamped to the new bound. */
  reconfigure(config: TargetConfig): void {
    this.config = config;
    this.limit = Math.min(this.limit, config.concurrency);
  }

  private wakeWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
    this.onSlotFreed();
  }
}
