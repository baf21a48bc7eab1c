import { statfsSync } from 'node:fs';

/** `unavailable`: the store does not answer now (a shared spool's database is down); the others: it is full. */
export type CapacityVerdict = 'ok' | 'unavailable' | 'disk-low' | 'queue-full';

/** How often free space is re-read: statfs per message would be wasted work. */
const DISK_CHECK_INTERVAL_MS = 1000;

/**
 * Whether the spool may take another message: the store answers, free disk above
 * `minFreeDiskBytes` and fewer than `maxQueued` unfinished messages. Acceptance resumes by
 * itself when the store or the space returns, since every call re-evaluates.
 */
export class SpoolCapacity {
  private checkedAt = 0;
  private diskLow = false;

  constructor(
    private readonly options: {
      /** The local spool's directory; null when the spool is not on this machine's disk. */
      readonly diskPath: string | null;
      readonly minFreeDiskBytes: number;
      readonly maxQueued: number;
      readonly unfinished: () => number;
      /** The spool's `available()`: false answers new messages at once instead of letting them wait on a dead store. */
      readonly available: () => boolean;
      readonly now?: () => number;
    },
  ) {}

  check(): CapacityVerdict {
    if (!this.options.available()) return 'unavailable';
    if (this.options.unfinished() >= this.options.maxQueued) return 'queue-full';
    const { diskPath } = this.options;
    if (diskPath === null) return 'ok';
    const now = (this.options.now ?? Date.now)();
    if (now - this.checkedAt >= DISK_CHECK_INTERVAL_MS) {
      this.checkedAt = now;
      const free = freeBytesOf(diskPath);
      this.diskLow = free < this.options.minFreeDiskBytes;
    }
    return this.diskLow ? 'disk-low' : 'ok';
  }
}

function freeBytesOf(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}
