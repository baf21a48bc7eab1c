import type { SpoolCounters } from './counters.js';
import type { DeliveryState, MessageState } from './types.js';
import type { SpoolOp, SpoolWriter } from './writer.js';

/**
 * One atomic spool change: its ops and the counter moves that go with them. The counters
 * move at once (the batch's snapshot must include them) and move back if the write fails.
 */
export class SpoolTransaction {
  readonly ops: SpoolOp[] = [];
  private readonly undos: (() => void)[] = [];

  constructor(private readonly counters: SpoolCounters) {}

  put(key: string, value: Buffer): this {
    this.ops.push({ type: 'put', key, value });
    return this;
  }

  del(key: string): this {
    this.ops.push({ type: 'del', key });
    return this;
  }

  countMessage(from: MessageState | null, to: MessageState | null): void {
    if (from === to) return;
    this.counters.message(from, to);
    this.undos.push(() => this.counters.message(to, from));
  }

  countDelivery(target: string, from: DeliveryState | null, to: DeliveryState | null): void {
    if (from === to) return;
    this.counters.delivery(target, from, to);
    this.undos.push(() => this.counters.delivery(target, to, from));
  }

  async commit(writer: SpoolWriter): Promise<void> {
    try {
      await writer.write(this.ops);
    } catch (err) {
      for (const undo of this.undos.reverse()) undo();
      throw err;
    }
  }
}
