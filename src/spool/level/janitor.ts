/**
 * Housekeeping (SPEC 7): expired dedup keys (`y!` expiry index) and finished messages past
 * `retainFinished` (`r!` retention index). A run sweeps until it is caught up, in slices of
 * at most SLICE index entries: one read, one batch through the writer (sharing its group
 * commit with accepts and outcomes), then a turn of the event loop before the next slice.
 * A run starts every `intervalMs` and at once again while slices come back full, so removal
 * outpaces any rate the writer can accept.
 */
import type { KeyedMutex } from '../mutex.js';
import { FINISHED_MESSAGE_STATES } from '../state.js';
import { SweepSchedule } from '../sweep-schedule.js';
import type { JanitorKind, MessageRecord } from '../types.js';
import { decodeRecord } from './codec.js';
import { transaction, type DedupEntry, type LevelContext } from './context.js';
import { keys, lastPart } from './keys.js';

/** Index entries per slice: one read and one batch of about 2-4 deletes each. */
export const SLICE = 500;


export interface JanitorHooks {
  /** A slice was committed: `removed` dedup keys or finished messages are gone. */
  readonly removed: (kind: JanitorKind, removed: number) => void;
  /** A run failed (it is retried at the next interval), or a corrupt record was removed. */
  readonly failed: (err: unknown) => void;
}

export class Janitor {
  private readonly runs: SweepSchedule;

  constructor(
    private readonly ctx: LevelContext,
    private readonly hooks: JanitorHooks,
    intervalMs: number,
  ) {
    this.runs = new SweepSchedule(() => this.sweep(), (err) => this.hooks.failed(err), intervalMs);
  }

  start(): void {
    this.runs.start();
  }

  /** Stops scheduling and waits for a run in progress to finish its current slice. */
  stop(): Promise<void> {
    return this.runs.stop();
  }

  /** One run: slices until both indexes are caught up (or the janitor is stopped). Throws what a read or write throws. */
  async sweep(): Promise<void> {
    for (;;) {
      const now = this.ctx.now();
      const dedup = await this.dedupSlice(now);
      const finished = await this.finishedSlice(now - this.ctx.options.retainFinishedMs);
      if ((dedup < SLICE && finished < SLICE) || this.runs.stopped) return;
      // Let accepts and deliveries queued meanwhile reach the writer before the next slice.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Removes up to SLICE expired dedup keys; returns how many index entries it read. */
  private async dedupSlice(now: number): Promise<number> {
    const expiryKeys = await this.ctx.db.keys({ ...keys.dedupExpiryUpTo(now), limit: SLICE }).all();
    if (expiryKeys.length === 0) return 0;
    const hashes = expiryKeys.map(lastPart);
    // Under the accept's dedup locks: an accept reusing an expired key writes a fresh entry
    // that this slice must not delete.
    await underLocks(this.ctx.locks, hashes.map((h) => `x:${h}`), async () => {
      const entries = await this.ctx.db.getMany(hashes.map((h) => keys.dedup(h)));
      const txn = transaction(this.ctx);
      let removed = 0;
      expiryKeys.forEach((key, i) => {
        const hash = hashes[i] ?? '';
        txn.del(key);
        const raw = entries[i];
        if (raw === undefined) return;
        const entry = decodeOrNull<DedupEntry>(raw);
        if (entry === null) this.hooks.failed(new Error(`corrupt dedup entry ${keys.dedup(hash)} removed`));
        if (entry === null || entry.expiresAt <= now) {
          txn.del(keys.dedup(hash));
          removed += 1;
        }
      });
      await txn.commit(this.ctx.writer);
      this.hooks.removed('dedup', removed);
    });
    return expiryKeys.length;
  }

  /** Removes up to SLICE finished messages retained past `horizon`; returns how many it read. */
  private async finishedSlice(horizon: number): Promise<number> {
    const retentionKeys = await this.ctx.db.keys({ ...keys.finishedUpTo(horizon), limit: SLICE }).all();
    if (retentionKeys.length === 0) return 0;
    const queueIds = retentionKeys.map(lastPart);
    await underLocks(this.ctx.locks, queueIds, async () => {
      const records = await this.ctx.db.getMany(queueIds.map((id) => keys.message(id)));
      const txn = transaction(this.ctx);
      let removed = 0;
      for (const [i, key] of retentionKeys.entries()) {
        const queueId = queueIds[i] ?? '';
        txn.del(key);
        const raw = records[i];
        if (raw === undefined) continue;
        const message = messageOrNull(raw);
        if (message && !FINISHED_MESSAGE_STATES.has(message.state)) {
          // Never removes a message that is not finished (or of unknown state): only the index entry was wrong.
          this.hooks.failed(new Error(`retention entry ${key} of unfinished message ${queueId} removed`));
          continue;
        }
        removed += 1;
        txn.del(keys.message(queueId));
        if (message) {
          for (const id of Object.keys(message.deliveries)) txn.del(keys.delivery(id));
          txn.countMessage(message, message.state, null);
        } else {
          // Past retention anyway: remove it with whatever deliveries it has; the counters
          // cannot say what it was (`spool check --repair` recounts them).
          for (const d of await this.ctx.db.keys(keys.deliveriesOf(queueId)).all()) txn.del(d);
          this.hooks.failed(new Error(`corrupt message record ${keys.message(queueId)} removed; counters may need onward spool check --repair`));
        }
      }
      await txn.commit(this.ctx.writer);
      this.hooks.removed('finished', removed);
    });
    return retentionKeys.length;
  }
}

/** Runs `work` holding every named lock (nested in order; no other holder takes two of them). */
function underLocks<T>(locks: KeyedMutex, names: readonly string[], work: () => Promise<T>): Promise<T> {
  return names.reduceRight<() => Promise<T>>((inner, name) => () => locks.run(name, inner), work)();
}

function decodeOrNull<T>(raw: Buffer): T | null {
  try {
    return decodeRecord<T>(raw);
  } catch {
    return null;
  }
}

/** The record when it has the shape of a message record, else null (corrupt). */
function messageOrNull(raw: Buffer): MessageRecord | null {
  const m = decodeOrNull<Partial<MessageRecord>>(raw);
  if (m === null || typeof m !== 'object' || typeof m.deliveries !== 'object' || m.deliveries === null) return null;
  return m as MessageRecord;
}
