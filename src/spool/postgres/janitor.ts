// PLACEHOLDER until the read path lands (helper pg-read replaces this whole file).
import type { PgContext } from './context.js';

/** Housekeeping of the shared tables: one node at a time, in small batches. */
export class PgJanitor {
  constructor(
    private readonly ctx: PgContext,
    private readonly intervalMs: number,
  ) {}
  start(): void {}
  stop(): Promise<void> {
    return Promise.resolve();
  }
  sweep(): Promise<void> {
    return Promise.resolve();
  }
}
