/**
 * One run of a periodic task at a time: a tick that finds a run in progress joins it. The
 * slot is cleared when the run settles, asynchronously, so a run that returns before its
 * first `await` cannot leave a settled promise behind (which would turn every later tick
 * into a no-op: renewals, takeovers and polls that silently stop).
 */
export class SingleFlight {
  private current: Promise<void> | null = null;

  run(task: () => Promise<void>): Promise<void> {
    if (this.current) return this.current;
    const running = task().finally(() => {
      if (this.current === running) this.current = null;
    });
    this.current = running;
    return running;
  }

  /** The run in progress, if any (stop() waits for it). */
  get inProgress(): Promise<void> | null {
    return this.current;
  }
}
