/**
 * The group-commit loop of the accept and outcome batchers: items queued while a batch is
 * being written go into the next batch, so a slower database makes batches larger, not
 * queues longer.
 */
export class BatchQueue<T> {
  private readonly queue: T[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    /** Removes the next batch from the front of `queue` (at least one item when it is not empty; an empty batch is skipped). */
    private readonly take: (queue: T[]) => T[],
    /** Writes one batch and answers its items; must not reject. */
    private readonly write: (batch: T[]) => Promise<void>,
  ) {}

  push(item: T): void {
    this.queue.push(item);
    this.flushing ??= this.flush();
  }

  /** Resolves once everything queued so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      // Yield once first: `this.flushing` is assigned from this call, and a run that ended
      // before its first await would clear it before the assignment, leaving a settled promise.
      await Promise.resolve();
      while (this.queue.length > 0) {
        const batch = this.take(this.queue);
        if (batch.length > 0) await this.write(batch);
      }
    } finally {
      this.flushing = null;
    }
  }
}
