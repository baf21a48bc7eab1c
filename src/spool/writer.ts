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
 */
export class SpoolWriter {
  private queue: Pending[] = [];
  private writing = false;

  constructor(
    private readonly db: ClassicLevel<string, Buffer>,
    /** Ops appended to every group (e.g. the counters snapshot), computed at write time. */
    private readonly trailer: () => readonly SpoolOp[],
    private readonly onBatch: (seconds: number, size: number) => void = () => undefined,
    /** Off: every caller gets its own synced batch (only to measure what grouping buys). */
    private readonly groupCommit = true,
  ) {}

  write(ops: readonly SpoolOp[]): Promise<void> {
    if (!this.groupCommit) return this.db.batch(toBatch([...ops, ...this.trailer()]), { sync: true });
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const group: Pending[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && (group.length === 0 || bytes < MAX_GROUP_BYTES)) {
        const next = this.queue.shift() as Pending;
        group.push(next);
        for (const op of next.ops) bytes += op.key.length + (op.type === 'put' ? op.value.length : 0);
      }
      const ops = group.flatMap((p) => p.ops).concat(this.trailer());
      const started = process.hrtime.bigint();
      try {
        await this.db.batch(toBatch(ops), { sync: true });
        this.onBatch(Number(process.hrtime.bigint() - started) / 1e9, group.length);
        for (const p of group) p.resolve();
      } catch (err) {
        for (const p of group) p.reject(err);
      }
    }
    this.writing = false;
  }
}

function toBatch(ops: readonly SpoolOp[]): ({ type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string })[] {
  return ops.map((op) => (op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'del', key: op.key }));
}
