import type { DeliveryJob, Reply, TransportResult } from './types.js';

/** A reply that no downstream sent: our own words (a local failure, a file write, an operator action). */
export function localReply(text: string): Reply {
  return { kind: 'x-onward', code: null, enhancedStatus: null, text };
}

/** ERROR for every recipient, for a job no downstream saw (transport closed, thread lost). */
export function notAttemptedResult(job: DeliveryJob, text: string, durationMs = 0): TransportResult {
  const reply = localReply(text);
  return {
    recipients: job.envelope.to.map((address) => ({ address, outcome: 'error', reply })),
    durationMs,
    retryAfterMs: null,
    contention: false,
  };
}

/** ERROR for every recipient of an attempt that broke on our side (see `localFailure`). */
export function localFailureResult(job: DeliveryJob, text: string, durationMs: number): TransportResult {
  return { ...notAttemptedResult(job, text, durationMs), localFailure: true };
}
