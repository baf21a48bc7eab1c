/**
 * One attempt of one delivery: walk its failover list, hand the pending recipients to
 * each target's transport, pass ERROR recipients on to the next target, and turn what
 * came back into the per-recipient outcome the spool records.
 */
import type { RetryConfig } from '../config/types.js';
import type { AttemptRecord, ClaimedDelivery, RecipientState } from '../spool/index.js';
import { isExpired, nextAttemptAt } from './retry.js';
import type { TargetState } from './target-state.js';
import type { Outcome, RecipientResult, Reply, Transport } from './types.js';

export interface LiveTarget {
  readonly state: TargetState;
  readonly transport: Transport;
}

export interface RecipientOutcome {
  readonly address: string;
  readonly state: RecipientState;
  readonly reply: Reply | null;
  /** ERROR recipients that outlived retry.maxAge: failed, reported as expired (4.4.7). */
  readonly expired: boolean;
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
  targets: ReadonlyMap<string, LiveTarget>,
  retry: RetryConfig,
  now: () => number,
  /** The target whose slot the scheduler already took for this delivery, if any. */
  reserved: string | null,
): Promise<AttemptOutcome> {
  const { delivery, message, body } = claimed;
  let remaining = delivery.recipients.filter((r) => r.state !== 'delivered' && r.state !== 'failed').map((r) => r.address);
  const results = new Map<string, RecipientResult>();
  const attempts: AttemptRecord[] = [];
  let retryAfterMs: number | null = null;
  let tried = 0;
  let interrupted = false;
  let earliestProbeAt: number | null = null;

  for (const name of delivery.targets) {
    if (remaining.length === 0) break;
    const live = targets.get(name);
    const at = now();
    if (!live) {
      const reply: Reply = { kind: 'x-onward', code: null, enhancedStatus: null, text: `unknown target "${name}"` };
      for (const address of remaining) results.set(address, { address, outcome: 'error', reply });
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
    tried += 1;
    const result = await live.transport.deliver({
      deliveryId: delivery.id,
      queueId: message.id,
      attempt: delivery.attemptCount,
      envelope: { from: message.sender, to: remaining },
      body,
      receivedAt: new Date(message.receivedAt),
    });
    if (result.localFailure) live.state.release(1);
    else live.state.end(now(), result.recipients.some((r) => r.outcome !== 'error'), result.contention);
    if (result.retryAfterMs !== null) retryAfterMs = result.retryAfterMs;
    for (const r of result.recipients) results.set(r.address, r);
    attempts.push({ at, target: name, outcome: worstOutcome(result.recipients), reply: summarise(result.recipients), durationMs: result.durationMs });
    remaining = result.recipients.filter((r) => r.outcome === 'error').map((r) => r.address);
    if (result.localFailure) {
      interrupted = true;
      break; // the target may have the message already: no failover, the retry decides
    }
  }
  // A reservation on a target the walk never reached (an earlier one took everything).
  if (reserved !== null) targets.get(reserved)?.state.release(1);

  const end = now();
  const expired = isExpired(retry, delivery.createdAt, end);
  if (tried === 0) {
    if (!expired) return { attempts: [], recipients: [], nextDueAt: null, skipped: true, interrupted, earliestProbeAt };
    // Every target is down and the queue lifetime ran out meanwhile: give up, as Postfix
    // does for a destination it holds dead, with the last reply each recipient saw.
    const down: Reply = { kind: 'x-onward', code: null, enhancedStatus: null, text: 'not attempted: every target is down (circuit open)' };
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
    if (r.outcome === 'ok') return { address: r.address, state: 'delivered', reply: r.reply, expired: false };
    if (r.outcome === 'fail') return { address: r.address, state: 'failed', reply: r.reply, expired: false };
    return { address: r.address, state: expired ? 'failed' : 'deferred', reply: r.reply, expired };
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
