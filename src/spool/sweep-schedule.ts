/**
 * When housekeeping runs, for either backend's janitor: one sweep `intervalMs` after the
 * previous one ended (never two at once), failures handed to `failed` and retried at the
 * next interval, and a stop that waits for the sweep in progress to finish its slice.
 */
export class SweepSchedule {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private halted = false;

  constructor(
    private readonly sweep: () => Promise<void>,
    private readonly failed: (err: unknown) => void,
    private readonly intervalMs: number,
  ) {}

  /** True once stop() was called (a sweep in progress ends after its current slice). */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    this.halted = false;
    this.arm();
  }

  async stop(): Promise<void> {
    this.halted = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.halted) return;
    this.timer = setTimeout(() => void this.run(), this.intervalMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.running = this.sweep().catch((err: unknown) => this.failed(err));
    await this.running;
    this.running = null;
    this.arm();
  }
}
