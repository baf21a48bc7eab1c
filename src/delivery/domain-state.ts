/**
 * Per-domain live state of an mx target (SPEC 13): each recipient domain has its own adaptive
 * concurrency window (up to `concurrencyPerDomain`) and its own circuit, so one dead or slow
 * domain neither blocks nor slows the others. The target's overall `concurrency` still caps
 * the sum over its domains: every slot a domain takes is also taken from the target's state,
 * which for mx targets only counts (it is never marked down or halved — a dead domain must
 * not close the circuit of the whole internet).
 *
 * States are made on demand and kept in an LRU bounded at `max` entries: the least recently
 * used ones with nothing in flight are dropped (their circuit and window start afresh when
 * the domain comes back), so the number of domains ever seen does not grow memory.
 */
import type { MxTargetConfig, TargetConfig } from '../config/types.js';
import { TargetState } from './target-state.js';

export const MAX_DOMAIN_STATES = 4096;

export class DomainState extends TargetState {
  constructor(
    mx: MxTargetConfig,
    readonly domain: string,
    readonly overall: TargetState,
  ) {
    super(domainConfig(mx));
  }

  override available(now: number): number {
    return Math.min(super.available(now), this.overall.available(now));
  }

  override take(now: number, wanted: number): number {
    const room = this.overall.available(now);
    if (room < wanted && room < super.available(now)) this.overall.starved = true;
    const n = super.take(now, Math.min(wanted, room));
    if (n > 0) this.overall.take(now, n);
    return n;
  }

  override release(count: number): void {
    if (count <= 0) return;
    super.release(count);
    this.overall.release(count);
  }

  override end(now: number, worked: boolean, contention: boolean): void {
    super.end(now, worked, contention);
    this.overall.release(1);
  }

  /** Also resolves when the target's overall bound frees a slot. */
  override slotFreed(): Promise<void> {
    return Promise.race([super.slotFreed(), this.overall.slotFreed()]);
  }

  override reconfigure(config: TargetConfig): void {
    if (config.type === 'mx') super.reconfigure(domainConfig(config));
  }
}

/** The target-wide state of an mx target: a counter of slots under `concurrency`, never down, never adapted. */
export class OverallState extends TargetState {
  override end(): void {
    this.release(1);
  }
}

function domainConfig(mx: MxTargetConfig): MxTargetConfig {
  return { ...mx, concurrency: mx.concurrencyPerDomain };
}

/** The domain states of every mx target, keyed `target@domain`, LRU-bounded. */
export class DomainStates {
  private readonly states = new Map<string, DomainState>();

  constructor(
    private readonly onSlotFreed: (state: DomainState, target: string) => void,
    private readonly max = MAX_DOMAIN_STATES,
  ) {}

  get(mx: MxTargetConfig, overall: TargetState, domain: string): DomainState {
    const key = `${mx.name}@${domain}`;
    let state = this.states.get(key);
    if (state !== undefined && state.overall !== overall) state = undefined; // the target was replaced
    if (state === undefined) {
      state = new DomainState(mx, domain, overall);
      const made = state;
      state.onSlotFreed = () => this.onSlotFreed(made, mx.name);
      this.states.set(key, state);
      this.evict();
    } else {
      this.states.delete(key); // most recently used at the end
      this.states.set(key, state);
    }
    return state;
  }

  /** Every live domain state of `target` (stats, reload). */
  *of(target: string): Iterable<DomainState> {
    for (const [key, state] of this.states) if (key.startsWith(`${target}@`)) yield state;
  }

  forget(target: string): void {
    for (const key of [...this.states.keys()]) if (key.startsWith(`${target}@`)) this.states.delete(key);
  }

  get size(): number {
    return this.states.size;
  }

  private evict(): void {
    if (this.states.size <= this.max) return;
    for (const [key, state] of this.states) {
      if (this.states.size <= this.max) return;
      if (state.inFlight === 0) this.states.delete(key);
    }
  }
}
