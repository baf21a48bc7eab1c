import { encodeRecord } from './codec.js';
import type { SpoolCounters } from './counters.js';
import type { RecordCache } from './record-cache.js';
import type { DeliveryState, MessageState } from '../types.js';
import type { SpoolOp, SpoolWriter } from './writer.js';

/** A cache change to apply once the batch is on disk: a record put, or an eviction (null). */
interface CacheChange {
  readonly key: string;
  readonly record: object | null;
  readonly admit: boolean;
}

/**
 * One atomic spool change: its ops, the counter moves that go with them, and the record
 * cache changes. The counters move at once (the batch's snapshot must include them) and
 * move back if the write fails; the cache changes only after the write succeeded.
 */
export class SpoolTransaction {
  readonly ops: SpoolOp[] = [];
  private readonly undos: (() => void)[] = [];
  private readonly cacheChanges: CacheChange[] = [];

  constructor(
    private readonly counters: SpoolCounters,
    private readonly cache: RecordCache,
  ) {}

  /** Puts raw bytes (bodies, index entries); message and delivery records go through putRecord. */
  put(key: string, value: Buffer): this {
    this.ops.push({ type: 'put', key, value });
    return this;
  }

  /** Puts a message or delivery record; `admit` caches it (hot: about to be attempted). */
  putRecord(key: string, record: object, admit = false): this {
    this.ops.push({ type: 'put', key, value: encodeRecord(record) });
    this.cacheChanges.push({ key, record, admit });
    return this;
  }

  del(key: string): this {
    this.ops.push({ type: 'del', key });
    return this.evict(key);
  }

  /** Caches a record read from disk, after the commit (it is hot: about to be attempted). */
  admit(key: string, record: object): this {
    this.cacheChanges.push({ key, record, admit: true });
    return this;
  }

  /** Drops a record from the cache after the commit (it goes cold: deferred or finished). */
  evict(key: string): this {
    this.cacheChanges.push({ key, record: null, admit: false });
    return this;
  }

  /** Counts a state change of `message` (a delivery event counts apart from messages). */
  countMessage(message: { readonly eventOf: string | null }, from: MessageState | null, to: MessageState | null): void {
    if (from === to) return;
    const event = message.eventOf !== null;
    this.counters.message(from, to, event);
    this.undos.push(() => this.counters.message(to, from, event));
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
    for (const c of this.cacheChanges) {
      if (c.record === null) this.cache.delete(c.key);
      else this.cache.set(c.key, c.record, c.admit);
    }
  }
}
