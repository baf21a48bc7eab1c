/**
 * A cap on message bytes held in memory by all sessions in DATA together. A message that
 * would cross it is read to the end but not kept, and answered 452 so the client retries.
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
