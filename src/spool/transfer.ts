/**
 * Moving a queue from one spool to another (SPEC 9, `onward spool transfer`, like KumoMTA's
 * `kcli xfer`). The source stays the owner of a message until its copy is durable in the
 * target: import (one durable write) → forget in the source (one durable write). A crash
 * between the two leaves it in both; the rerun finds it `present` in the target and
 * forgets it in the source, so a message is neither lost nor doubled.
 */
import type { DeliveryRecord, MessageRecord, Spool, TransferItem } from './types.js';

export interface TransferProgress {
  /** Messages copied to the target and removed from the source. */
  readonly moved: number;
  /** Of those, how many the target already held (an interrupted earlier run). */
  readonly alreadyThere: number;
  /** Left in the source: a delivery in flight, or changed while being moved (a rerun moves them). */
  readonly inFlightSkipped: number;
}

export interface TransferOptions {
  /** Count what would move; change nothing. */
  readonly dryRun?: boolean;
  /** Called every `progressEvery` messages looked at, and once at the end. */
  readonly onProgress?: (progress: TransferProgress) => void;
  /** @defaultValue 100 */
  readonly progressEvery?: number;
}

/** Moves every unfinished message of `from` into `to`; `to` may be null only in a dry run (a target not created yet). */
export async function transferQueue(from: Spool, to: Spool | null, options: TransferOptions = {}): Promise<TransferProgress> {
  const every = options.progressEvery ?? 100;
  let moved = 0;
  let alreadyThere = 0;
  let inFlightSkipped = 0;
  let seen = 0;
  const progress = (): TransferProgress => ({ moved, alreadyThere, inFlightSkipped });
  for await (const item of from.exportUnfinished()) {
    const id = item.message.id;
    if (options.dryRun) {
      if (item.inFlight) inFlightSkipped += 1;
      else {
        moved += 1;
        if (await to?.getMessage(id)) alreadyThere += 1;
      }
    } else if (!to) {
      throw new Error('transferQueue: a target spool is needed unless it is a dry run');
    } else if (item.inFlight) {
      // The source keeps it; a copy an interrupted run left in the target must not live on beside it.
      await to.forget(id);
      inFlightSkipped += 1;
    } else {
      const imported = await to.importMessage(item);
      const forgotten = await from.forget(id, item);
      if (forgotten === 'changed') {
        // A node took it up after the export: the source's newer state wins, the copy goes.
        await to.forget(id);
        inFlightSkipped += 1;
      } else {
        moved += 1;
        if (imported === 'present') alreadyThere += 1;
      }
    }
    seen += 1;
    if (seen % every === 0) options.onProgress?.(progress());
  }
  options.onProgress?.(progress());
  return progress();
}

/**
 * Whether a message still is as it was exported: same message state, and each delivery in
 * the same state with the same attempt count and due time (a claim, an outcome or an
 * operator action since would change one of them). Backends' `forget(id, asExported)` use it.
 */
export function unchangedSinceExport(item: TransferItem, message: MessageRecord, deliveries: readonly DeliveryRecord[]): boolean {
  if (message.state !== item.message.state || deliveries.length !== item.deliveries.length) return false;
  const now = new Map(deliveries.map((d) => [d.id, d]));
  return item.deliveries.every((d) => {
    const current = now.get(d.id);
    return current !== undefined && current.state === d.state && current.attemptCount === d.attemptCount && current.dueAt === d.dueAt;
  });
}
