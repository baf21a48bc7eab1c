import type { DeliveryState, MessageState } from '../types.js';

export interface CounterSnapshot {
  states: Record<MessageState, number>;
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
  private snapshot: CounterSnapshot = { states: emptyStates(), targets: {} };

  load(saved: CounterSnapshot | null): void {
    this.snapshot = { states: { ...emptyStates(), ...saved?.states }, targets: { ...saved?.targets } };
  }

  message(from: MessageState | null, to: MessageState | null): void {
    if (from === to) return;
    if (from) this.snapshot.states[from] -= 1;
    if (to) this.snapshot.states[to] += 1;
  }

  delivery(target: string, from: DeliveryState | null, to: DeliveryState | null): void {
    if (from === to) return;
    const t = (this.snapshot.targets[target] ??= { queued: 0, deferred: 0 });
    if (from === 'queued' || from === 'deferred') t[from] -= 1;
    if (to === 'queued' || to === 'deferred') t[to] += 1;
  }

  unfinished(): number {
    const s = this.snapshot.states;
    return s.queued + s.deferred + s.held;
  }

  read(): CounterSnapshot {
    return structuredClone(this.snapshot);
  }

  encode(): Buffer {
    return Buffer.from(JSON.stringify(this.snapshot));
  }
}
