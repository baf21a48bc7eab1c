import type { ClassicLevel } from 'classic-level';

export type SpoolOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Buffer }
  | { readonly type: 'del'; readonly key: string };

interface Pending {
  readonly ops: readonly SpoolOp[];
  resolve(): void;
  reject(err: unknown): void;
}

/** Bounds one group so a burst of large bodies does not become one huge write. */
const MAX_GROUP_BYTES = 16 * 1024 * 1024;

/**
 * Group commit: every caller's ops wait while one synced batch is written, then all that
 * queued up meanwhile go in the next batch together. Durability stays "synced before
 * resolve", but the fsync cost is shared by every message in the group.
 *
 * After a failed batch (e.g. ENOSPC) LevelDB's log may end in a torn record that a later
 * recovery cannot read past, silently dropping every write after it. So a failure
 * reopens the database (recovery runs, a fresh log starts) before anything else is
 * written; while it cannot be reopened, writes are refused.
 */
export class SpoolWriter {
  private queue: Pending[] = [];
  private writing = false;
  private needsReopen = false;

  constructor(
    private readonly db: ClassicLevel<string, Buffer>,
    /** Ops appended to every group (e.g. the counters snapshot), computed at write time. */
    private readonly trailer: () => readonly SpoolOp[],
    private readonly reopen: () => Promise<void>,
    private readonly onBatch: (seconds: number, size: number) => void = () => undefined,
    /** Off: one caller per synced batch, one after another (only to measure what grouping buys). */
    private readonly groupCommit = true,
  ) {}

  write(ops: readonly SpoolOp[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      if (this.needsReopen && !(await this.tryReopen())) break;
      const group: Pending[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && (group.length === 0 || (this.groupCommit && bytes < MAX_GROUP_BYTES))) {
        const next = this.queue.shift() as Pending;
        group.push(next);
        for (const op of next.ops) bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
      }
      // The counters snapshot already holds every queued caller's change: write it only with
      // the group that takes the whole queue, so a crash never persists counts ahead of records.
      const ops = group.flatMap((p) => p.ops);
      if (this.queue.length === 0) ops.push(...this.trailer());
      const started = process.hrtime.bigint();
      try {
        await rawBatch(this.db, ops);
        this.onBatch(Number(process.hrtime.bigint() - started) / 1e9, group.length);
        for (const p of group) p.resolve();
      } catch (err) {
        for (const p of group) p.reject(err);
        this.needsReopen = true;
        // Let the callers undo their counter changes before the next group snapshots them.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    this.writing = false;
  }

  /** Reopens after a failed batch; on failure refuses everything queued (the next write tries again). */
  private async tryReopen(): Promise<boolean> {
    try {
      await this.reopen();
      this.needsReopen = false;
      return true;
    } catch (err) {
      const queued = this.queue;
      this.queue = [];
      for (const p of queued) p.reject(err);
      await new Promise((resolve) => setImmediate(resolve));
      return false;
    }
  }
}

function toBatch(ops: readonly SpoolOp[]): ({ type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string })[] {
  return ops.map((op) => (op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'del', key: op.key }));
}

/** The implementation method classic-level provides under abstract-level's public batch(). */
interface BatchImplementation {
  _batch(operations: readonly SpoolOp[], options: { readonly sync: boolean }): Promise<void>;
}

/**
 * abstract-level's public batch() prepares every op generically (option spreading, key and
 * value encodings, hooks, events): measured at ~6 % of the relay's main thread. Our ops are
 * already what classic-level stores (UTF-8 string keys, Buffer values) and use no hooks or
 * sublevels, so they go to classic-level's `_batch` directly, after the open-state check
 * the public method makes (the native side must never see a closed database).
 */
function rawBatch(db: ClassicLevel<string, Buffer>, ops: readonly SpoolOp[]): Promise<void> {
  if (db.status !== 'open') return db.batch(toBatch(ops), { sync: true }); // rejects with LEVEL_DATABASE_NOT_OPEN
  return (db as unknown as BatchImplementation)._batch(ops, { sync: true });
}
