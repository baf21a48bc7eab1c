import type { DeliveryState, MessageState } from '../types.js';

export interface CounterSnapshot {
  /** Messages by state (what people sent; delivery events are not messages). */
  states: Record<MessageState, number>;
  /** Delivery events (spool messages of their own, SPEC 11) by state. */
  events: Record<MessageState, number>;
  /** Deliveries waiting per primary target, by state. */
  targets: Record<string, { queued: number; deferred: number }>;
}

function emptyStates(): Record<MessageState, number> {
  return { queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 };
}

/**
 * Counts kept up to date with every transition and persisted in the same batch, so
 * `spool stats` answers without scanning. The spool is the only writer, so the
 * in-memory copy is authoritative while it runs.
 */
export class SpoolCounters {
  private snapshot: CounterSnapshot = { states: emptyStates(), events: emptyStates(), targets: {} };

  load(saved: CounterSnapshot | null): void {
    this.snapshot = { states: { ...emptyStates(), ...saved?.states }, events: { ...emptyStates(), ...saved?.events }, targets: { ...saved?.targets } };
  }

  /** A message (or, with `event`, a delivery event) moved from one state to another; null is "not there". */
  message(from: MessageState | null, to: MessageState | null, event: boolean): void {
    if (from === to) return;
    const counts = event ? this.snapshot.events : this.snapshot.states;
    if (from) counts[from] -= 1;
    if (to) counts[to] += 1;
  }

  delivery(target: string, from: DeliveryState | null, to: DeliveryState | null): void {
    if (from === to) return;
    const t = (this.snapshot.targets[target] ??= { queued: 0, deferred: 0 });
    if (from === 'queued' || from === 'deferred') t[from] -= 1;
    if (to === 'queued' || to === 'deferred') t[to] += 1;
  }

  /** The `maxQueued` measure: unfinished messages and events alike (both take spool space). */
  unfinished(): number {
    const { states: s, events: e } = this.snapshot;
    return s.queued + s.deferred + s.held + e.queued + e.deferred + e.held;
  }

  read(): CounterSnapshot {
    return structuredClone(this.snapshot);
  }

  encode(): Buffer {
    return Buffer.from(JSON.stringify(this.snapshot));
  }
}
