/**
 * Writing an attempt's outcome to the spool, with the DSN the bounce step adds. A lease
 * must never wait for a restart: an outcome the spool will not take gives the delivery
 * back to the due index instead, retried until the spool accepts the write.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isRelayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AttemptUpdate, ClaimedDelivery, DeliveryRecord, NewMessage, Spool } from '../spool/index.js';
import type { AttemptOutcome } from './attempt.js';

/** What the bounce step adds to an outcome: the DSN to spool with it, and whom it covers. */
export interface FailureReport {
  readonly dsn: NewMessage | null;
  readonly reported: readonly string[];
  readonly delayWarned: boolean;
}

export interface FailureReporter {
  prepare(claimed: ClaimedDelivery, outcome: AttemptOutcome, now: number): Promise<FailureReport>;
}

/** Builds the delivery events (SPEC 11) of a recorded attempt, written in the same atomic write. */
export interface EventReporter {
  forAttempt(claimed: ClaimedDelivery, outcome: AttemptOutcome, now: number): readonly NewMessage[];
}

export interface RecorderDeps {
  readonly spool: Spool;
  readonly reporter: FailureReporter | null;
  /** Delivery events; absent or null: none. */
  readonly events?: EventReporter | null;
  readonly log: Logger;
  readonly now: () => number;
  /** True once the scheduler stops: a failed write then leaves the lease for the next start. */
  readonly stopping: () => boolean;
}

/** A completion the spool could not write is retried this often (the lease holds meanwhile)... */
const COMPLETE_RETRY_MS = 1000;
/** ...this many times, before the delivery is given back unrecorded. */
const COMPLETE_TRIES = 3;
/** Longest pause between tries to give a delivery back while the spool refuses writes. */
const MAX_GIVE_BACK_WAIT_MS = 30_000;

export class OutcomeRecorder {
  constructor(private readonly deps: RecorderDeps) {}

  /**
   * Writes the outcome (with its DSN; one that cannot be built is left out and logged). A
   * write that keeps failing — disk full, a record the spool will not take — gives the
   * delivery back unrecorded after COMPLETE_TRIES, due at its next attempt (at-least-once).
   * `wake(at)` is told when the delivery is due again. Null when nothing was recorded.
   */
  async record(claimed: ClaimedDelivery, outcome: AttemptOutcome, wake: (at: number) => void): Promise<{ after: DeliveryRecord; dsn: boolean } | null> {
    const { spool, reporter, log, now } = this.deps;
    const { delivery } = claimed;
    let report: FailureReport | null = null;
    try {
      report = reporter ? await reporter.prepare(claimed, outcome, now()) : null;
    } catch (err) {
      log.error({ err, deliveryId: delivery.id }, 'cannot build the DSN; outcome recorded without it');
    }
    let events: readonly NewMessage[] = [];
    try {
      events = this.deps.events?.forAttempt(claimed, outcome, now()) ?? [];
    } catch (err) {
      log.error({ err, deliveryId: delivery.id }, 'cannot build the delivery events; outcome recorded without them');
    }
    const update: AttemptUpdate = {
      attempts: outcome.attempts,
      recipients: outcome.recipients.map((r) => ({ address: r.address, state: r.state, reply: r.reply })),
      nextDueAt: outcome.nextDueAt,
      reported: report?.reported ?? [],
      delayWarned: report?.delayWarned ?? false,
      dsn: report?.dsn ?? undefined,
      ...(events.length > 0 ? { events } : {}),
    };
    for (let tries = 1; ; tries++) {
      try {
        const { delivery: after } = await spool.completeAttempt(delivery.id, update);
        if (after.dueAt !== null) wake(after.dueAt);
        return { after, dsn: update.dsn !== undefined };
      } catch (err) {
        if (isRelayError(err, 'ONWARD_ERR_LEASE_LOST')) {
          // Another node holds the delivery now and will retry it (same Idempotency-Key):
          // its result stands, ours is dropped rather than written over it.
          log.warn({ deliveryId: delivery.id }, 'lease lost during the attempt; outcome dropped, the new holder retries');
          return null;
        }
        if (this.deps.stopping()) return null;
        log.error({ err, deliveryId: delivery.id, tries }, 'cannot record delivery outcome');
        if (tries >= COMPLETE_TRIES) break;
        await sleep(COMPLETE_RETRY_MS);
      }
    }
    await this.giveBack(delivery.id, outcome.nextDueAt ?? now() + COMPLETE_RETRY_MS, wake);
    return null;
  }

  /** Hands a leased delivery back to the due index (spool.postpone), retrying while the spool refuses. */
  async giveBack(deliveryId: string, dueAt: number, wake: (at: number) => void): Promise<void> {
    for (let waitMs = COMPLETE_RETRY_MS; ; waitMs = Math.min(MAX_GIVE_BACK_WAIT_MS, waitMs * 2)) {
      try {
        await this.deps.spool.postpone(deliveryId, dueAt);
        wake(dueAt);
        return;
      } catch (err) {
        if (isRelayError(err, 'ONWARD_ERR_LEASE_LOST')) return; // another node holds it now
        if (this.deps.stopping()) return; // leased: due again at the next start
        this.deps.log.error({ err, deliveryId, retryInMs: waitMs }, 'cannot give the delivery back to the queue; retrying');
        await sleep(waitMs);
      }
    }
  }
}
