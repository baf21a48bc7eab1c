import type { TargetConfig } from '../config/types.js';

/**
 * Live state of one downstream target: adaptive concurrency (halve on contention, +1 on
 * success, between 1 and the configured bound) and a circuit breaker (down after
 * `circuit.failures` consecutive ERRORs; then one probe every `circuit.probe`).
 */
export class TargetState {
  limit: number;
  inFlight = 0;
  private consecutiveErrors = 0;
  private downUntil: number | null = null;
  private probing = false;

  constructor(public config: TargetConfig) {
    this.limit = config.concurrency;
  }

  get up(): boolean {
    return this.downUntil === null;
  }

  /** How many more deliveries may start now (0 while down, 1 when a probe is due). */
  available(now: number): number {
    if (this.downUntil !== null) return !this.probing && now >= this.downUntil ? 1 : 0;
    return Math.max(0, this.limit - this.inFlight);
  }

  /** Marks the start of an attempt; true when it is the circuit's probe. */
  begin(now: number): boolean {
    this.inFlight += 1;
    if (this.downUntil !== null && now >= this.downUntil && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  /** Records how an attempt went: any recipient answered (ok/fail) counts as the target working. */
  end(now: number, worked: boolean, contention: boolean): void {
    this.inFlight -= 1;
    this.probing = false;
    if (worked) {
      this.consecutiveErrors = 0;
      this.downUntil = null;
      this.limit = Math.min(this.config.concurrency, this.limit + 1);
      return;
    }
    if (contention) this.limit = Math.max(1, Math.floor(this.limit / 2));
    this.consecutiveErrors += 1;
    if (this.consecutiveErrors >= this.config.circuit.failures) this.downUntil = now + this.config.circuit.probeMs;
  }

  /** When the circuit will let a probe through, or null while up. */
  get nextProbeAt(): number | null {
    return this.downUntil;
  }

  /** New config on reload keeps the live state, with the limit clamped to the new bound. */
  reconfigure(config: TargetConfig): void {
    this.config = config;
    this.limit = Math.min(this.limit, config.concurrency);
  }
}
