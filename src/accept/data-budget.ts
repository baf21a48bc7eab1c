/**
 * A cap on message bytes held in memory by both front doors together (`limits.maxDataMemory`):
 * SMTP sessions in DATA and HTTP uploads. A message that would cross it is not kept: SMTP
 * reads it to the end and answers 452, HTTP answers 503 with Retry-After; the client retries.
 */
export class DataBudget {
  private used = 0;

  constructor(private limitBytes: number) {}

  setLimit(limitBytes: number): void {
    this.limitBytes = limitBytes;
  }

  /** Takes `bytes` from the budget; false (nothing taken) when they do not fit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
