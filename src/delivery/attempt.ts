/**
 * One attempt of one delivery: walk its failover list, hand the pending recipients to
 * each target's transport, pass ERROR recipients on to the next target, and turn what
 * came back into the per-recipient outcome the spool records.
 */
import type { RetryConfig, TargetConfig } from '../config/types.js';
import type { AttemptRecord, ClaimedDelivery, RecipientState } from '../spool/index.js';
import { describeError } from './classify.js';
import { localFailureResult, localReply } from './results.js';
import { isExpired, nextAttemptAt } from './retry.js';
import type { TargetState } from './target-state.js';
import type { DeliveryJob, Outcome, RecipientResult, Reply, Transport, TransportResult } from './types.js';

export interface LiveTarget {
  readonly state: TargetState;
  readonly transport: Transport;
}

/** The live targets of one delivery by name (an mx target's is the state of the delivery's domain). */
export interface TargetLookup {
  get(name: string): LiveTarget | undefined;
}

export interface RecipientOutcome {
  readonly address: string;
  readonly state: RecipientState;
  readonly reply: Reply | null;
  /** ERROR recipients that outlived retry.maxAge: failed, reported as expired (4.4.7). */
  readonly expired: boolean;
  /** The target that gave this recipient's reply (delivery events name it). */
  readonly target?: string;
}

export interface AttemptOutcome {
  readonly attempts: readonly AttemptRecord[];
  readonly recipients: readonly RecipientOutcome[];
  readonly nextDueAt: number | null;
  /** No target could be tried (every one is down): give the delivery back untouched. */
  readonly skipped: boolean;
  /** The attempt broke on our side (TransportResult.localFailure); its recipients are deferred. */
  readonly interrupted: boolean;
  readonly earliestProbeAt: number | null;
}

export async function runAttempt(
  claimed: ClaimedDelivery,
  targets: TargetLookup,
  retry: RetryConfig,
  now: () => number,
  /** The target whose slot the scheduler already took for this delivery, if any. */
  reserved: string | null,
): Promise<AttemptOutcome> {
  const { delivery, message, body } = claimed;
  let remaining = delivery.recipients.filter((r) => r.state !== 'delivered' && r.state !== 'failed').map((r) => r.address);
  const results = new Map<string, RecipientResult>();
  const answeredBy = new Map<string, string>();
  const attempts: AttemptRecord[] = [];
  let retryAfterMs: number | null = null;
  let tried = 0;
  let interrupted = false;
  let earliestProbeAt: number | null = null;

  // Slots are given back on every path, a throw included: a leaked slot would stall the target.
  let holding: LiveTarget | null = null;
  try {
    for (const name of delivery.targets) {
      if (remaining.length === 0) break;
      const live = targets.get(name);
      const at = now();
      if (!live) {
        const reply = localReply(`unknown target "${name}"`);
        for (const address of remaining) {
          results.set(address, { address, outcome: 'error', reply });
          answeredBy.set(address, name);
        }
        attempts.push({ at, target: name, outcome: 'error', reply: reply.text, durationMs: 0 });
        tried += 1;
        continue;
      }
      if (!(await takeSlot(live, name === reserved, now))) {
        const probeAt = live.state.nextProbeAt;
        if (probeAt !== null) earliestProbeAt = earliestProbeAt === null ? probeAt : Math.min(earliestProbeAt, probeAt);
        continue; // circuit open: skip without spending a schedule step
      }
      if (name === reserved) reserved = null; // the reservation covers one use
      holding = live;
      tried += 1;
      const result = await callTransport(live, {
        deliveryId: delivery.id,
        queueId: message.id,
        attempt: delivery.attemptCount,
        envelope: { from: message.sender, to: remaining },
        body,
        receivedAt: new Date(message.receivedAt),
        domain: delivery.domain ?? null,
        // A delivery event: its body is the event JSON, POSTed as is with its id as Idempotency-Key.
        event: message.eventOf !== null && message.messageId !== null ? { id: message.messageId } : null,
      });
      holding = null;
      if (result.localFailure) live.state.release(1);
      else live.state.end(now(), result.recipients.some((r) => r.outcome !== 'error'), result.contention);
      if (result.retryAfterMs !== null) retryAfterMs = result.retryAfterMs;
      for (const r of result.recipients) {
        results.set(r.address, r);
        answeredBy.set(r.address, name);
      }
      attempts.push({ at, target: name, outcome: worstOutcome(result.recipients), reply: summarise(result.recipients), durationMs: result.durationMs });
      remaining = result.recipients.filter((r) => r.outcome === 'error').map((r) => r.address);
      if (result.localFailure) {
        interrupted = true;
        break; // the target may have the message already: no failover, the retry decides
      }
    }
  } finally {
    holding?.state.release(1);
    // A reservation on a target the walk never reached (an earlier one took everything).
    if (reserved !== null) targets.get(reserved)?.state.release(1);
  }

  const end = now();
  const expired = isExpired(retry, delivery.createdAt, end);
  if (tried === 0) {
    if (!expired) return { attempts: [], recipients: [], nextDueAt: null, skipped: true, interrupted, earliestProbeAt };
    // Every target is down and the queue lifetime ran out meanwhile: give up, as Postfix
    // does for a destination it holds dead, with the last reply each recipient saw.
    const down = localReply('not attempted: every target is down (circuit open)');
    return {
      attempts: [{ at: end, target: delivery.targets[0] ?? '', outcome: 'error', reply: down.text, durationMs: 0 }],
      recipients: delivery.recipients
        .filter((r) => remaining.includes(r.address))
        .map((r) => ({ address: r.address, state: 'failed', reply: r.lastReply ?? down, expired: true })),
      nextDueAt: null,
      skipped: false,
      interrupted,
      earliestProbeAt,
    };
  }

  const recipients: RecipientOutcome[] = [...results.values()].map((r) => {
    const target = answeredBy.get(r.address) ?? delivery.targets[0] ?? '';
    if (r.outcome === 'ok') return { address: r.address, state: 'delivered', reply: r.reply, expired: false, target };
    if (r.outcome === 'fail') return { address: r.address, state: 'failed', reply: r.reply, expired: false, target };
    return { address: r.address, state: expired ? 'failed' : 'deferred', reply: r.reply, expired, target };
  });
  const deferred = recipients.some((r) => r.state === 'deferred');
  return {
    attempts,
    recipients,
    nextDueAt: deferred ? nextAttemptAt(retry, delivery.attemptCount, end, retryAfterMs) : null,
    skipped: false,
    interrupted,
    earliestProbeAt,
  };
}

/**
 * The outcome of an attempt that broke before it could say what happened to its
 * recipients (an unexpected exception): ERROR for every pending one, retried on schedule or
 * failed as expired, so the normal record path (and its DSN) applies.
 */
export function brokenAttempt(claimed: ClaimedDelivery, retry: RetryConfig, now: number, err: unknown): AttemptOutcome {
  const { delivery } = claimed;
  const reply = localReply(`attempt failed on our side: ${describeError(err)}`);
  const expired = isExpired(retry, delivery.createdAt, now);
  const recipients: RecipientOutcome[] = delivery.recipients
    .filter((r) => r.state !== 'delivered' && r.state !== 'failed')
    .map((r) => ({ address: r.address, state: expired ? 'failed' : 'deferred', reply, expired }));
  return {
    attempts: [{ at: now, target: delivery.targets[0] ?? '', outcome: 'error', reply: reply.text, durationMs: 0 }],
    recipients,
    nextDueAt: expired ? null : nextAttemptAt(retry, delivery.attemptCount, now, null),
    skipped: false,
    interrupted: false,
    earliestProbeAt: null,
  };
}

/** Assumed timeout of a target type without a `timeout` setting (file). */
const DEFAULT_TARGET_TIMEOUT_MS = 30_000;
/** Slack on top of a timeout before we stop waiting, for the work around it. */
const ATTEMPT_MARGIN_MS = 1000;
/**
 * Slowest transfer an attempt is allowed: SMTP timeouts are idle timeouts, so a large
 * message on a slow link may take longer than its target's timeout and still be fine.
 */
const MIN_BYTES_PER_MS = 64; // 64 kB/s
/** An mx attempt starts no new session after this many of its target's timeouts (mx/transport.ts). */
export const MX_WALK_TIMEOUTS = 3;

/**
 * How long one transport call may take before it is ended as ERROR: twice the target's
 * timeout (SMTP's apply per phase, JSON payloads are built before the request is timed),
 * plus the margin and the transfer time of `bytes` at the slowest allowed rate.
 */
export function attemptBoundMs(target: TargetConfig, bytes: number): number {
  const timeoutMs = target.type === 'file' ? DEFAULT_TARGET_TIMEOUT_MS : target.timeoutMs;
  // An mx attempt may walk several exchangers (it starts no new one after MX_WALK_TIMEOUTS timeouts).
  const phases = target.type === 'mx' ? 2 + MX_WALK_TIMEOUTS : 2;
  return phases * timeoutMs + ATTEMPT_MARGIN_MS + Math.ceil(bytes / MIN_BYTES_PER_MS);
}

/**
 * Upper bound of a lease under normal operation: every target of the list tried in turn,
 * plus the margin for recording the outcome. A lease held longer is overdue (a metric).
 */
export function leaseBoundMs(targets: readonly (TargetConfig | undefined)[], bytes: number): number {
  return targets.reduce((sum, t) => sum + (t ? attemptBoundMs(t, bytes) : 0), ATTEMPT_MARGIN_MS);
}

/**
 * The transport's answer as data, whatever happens: a throw, a rejection or no answer
 * within attemptBoundMs is a local failure (ERROR, the target not blamed, no failover —
 * it may have the message). A late answer is ignored; the retry decides.
 */
async function callTransport(live: LiveTarget, job: DeliveryJob): Promise<TransportResult> {
  const started = performance.now();
  const boundMs = attemptBoundMs(live.state.config, job.body.length);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<TransportResult>((resolve) => {
    timer = setTimeout(() => resolve(localFailureResult(job, `transport gave no answer within ${String(boundMs)} ms`, boundMs)), boundMs);
    timer.unref(); // a hung attempt does not keep the process alive
  });
  try {
    return await Promise.race([Promise.resolve().then(() => live.transport.deliver(job)), hung]);
  } catch (err) {
    return localFailureResult(job, `transport failed: ${describeError(err)}`, Math.round(performance.now() - started));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A slot on the target for this attempt: the scheduler's reservation, or one taken now —
 * waiting while the target is up but busy (a failover must respect the backup's limit),
 * false while it is down and no probe is due.
 */
async function takeSlot(live: LiveTarget, reservedHere: boolean, now: () => number): Promise<boolean> {
  if (reservedHere) return true;
  for (;;) {
    if (live.state.take(now(), 1) === 1) return true;
    if (!live.state.up) return false;
    await live.state.slotFreed();
  }
}

function worstOutcome(results: readonly RecipientResult[]): Outcome {
  if (results.some((r) => r.outcome === 'error')) return 'error';
  if (results.some((r) => r.outcome === 'fail')) return 'fail';
  return 'ok';
}

/** The reply text for the attempt record: one line, or per-recipient when they differ. */
function summarise(results: readonly RecipientResult[]): string {
  const texts = [...new Set(results.map((r) => r.reply.text))];
  if (texts.length <= 1) return texts[0] ?? '';
  return results.map((r) => `<${r.address}>: ${r.reply.text}`).join('; ');
}
