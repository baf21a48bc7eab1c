/**
 * Write-through cache of decoded message and delivery records while they are hot (just
 * accepted, or claimed and in flight), so an attempt's claim and completion do not read
 * back from LevelDB what this process wrote a moment ago. It is coherent because every
 * record write of the owning process goes through a SpoolTransaction, which updates or
 * evicts the cached copy once its batch is on disk. Records are immutable objects.
 */
export class RecordCache {
  private readonly entries = new Map<string, unknown>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached record; the caller names the type it stored under this key. */
  get<T>(key: string): T | undefined {
    return this.entries.get(key) as T | undefined;
  }

  /** After a committed put: refresh a cached key, and add it when `admit` (oldest out when full). */
  set(key: string, value: unknown, admit: boolean): void {
    if (!admit && !this.entries.has(key)) return;
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
