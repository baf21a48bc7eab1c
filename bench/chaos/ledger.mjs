// The ledger: what the clients were answered (acknowledged, refused, temporary failures, lost
// answers, resubmissions and their dedup hits), then the verdict that compares it with what
// arrived downstream (delivered, bounced, duplicated, lost, refused-but-delivered), and the
// pass / fail judgement over the whole run.
import { expectedOutcomes } from './messages.mjs';

/** A message is given up (and counted) after this many tries. */
const MAX_TRIES = 30;

/** The client side: counters over all transactions, and the plans' own states (see MessagePlans). */
export class Ledger {
  constructor() {
    this.sent = 0;
    this.transactions = 0;
    this.acked = 0;
    this.refused = 0;
    this.tempFailures = 0;
    this.gaveUp = 0;
    this.resubmits = 0;
    this.dedupHits = 0;
    this.recoveredAfterError = 0;
    this.freshAfterError = 0;
    this.unexpectedDup = 0;
    this.uncertainErrors = 0;
    this.earlyErrors = 0;
    this.connectFailures = 0;
    this.otherNode = 0; // tries sent to another node than the one the message last met (several nodes)
    this.failures = [];
  }

  /** A transaction for `plan` begins. */
  attempt(plan) {
    plan.tries += 1;
    if (!plan.sent) {
      plan.sent = true;
      this.sent += 1;
    }
    this.transactions += 1;
  }

  /**
   * Records one answered transaction. Returns what the client does next: null (nothing),
   * 'retry' (a temporary failure), 'retry-resubmission' (a resubmission met a 4xx) or
   * 'resubmit' (first acknowledged, and planned to be submitted again).
   */
  answered(job, reply) {
    const plan = job.plan;
    const code = reply.code;
    const queued = /\bqueued as ([0-9A-Z]+)/.exec(reply.text);
    const dup = /already queued as ([0-9A-Z]+)/.exec(reply.text);
    plan.lastReply = reply.line;
    if (job.kind === 'resubmit') {
      this.resubmits += 1;
      if (code === 250 && dup && dup[1] === plan.queueId) this.dedupHits += 1;
      else if (code === 250) this.failures.push(`resubmission of message ${plan.i} (acked as ${plan.queueId}) answered "${reply.line}": should be "already queued as ${plan.queueId}"`);
      else if (code >= 400 && code < 500) return 'retry-resubmission';
      else this.failures.push(`resubmission of message ${plan.i} (acked as ${plan.queueId}) answered "${reply.line}"`);
      return null;
    }
    if (code === 250 && queued) {
      if (plan.state === 'acked') {
        this.failures.push(`message ${plan.i} answered again "${reply.line}" after being acked as ${plan.queueId}`);
        return null;
      }
      plan.state = 'acked';
      plan.queueId = queued[1];
      this.acked += 1;
      if (plan.poison) this.failures.push(`poison message ${plan.i} (${plan.poison}) was accepted: "${reply.line}"`);
      if (job.afterUncertain) {
        if (dup) this.recoveredAfterError += 1; // the first try was queued; its 250 was lost
        else this.freshAfterError += 1; // the first try never made it to the spool
      } else if (dup) {
        this.unexpectedDup += 1;
        this.failures.push(`first submission of message ${plan.i} answered "${reply.line}"`);
      }
      if (plan.resubmit && !plan.resubmitted) {
        plan.resubmitted = true;
        return 'resubmit';
      }
      return null;
    }
    plan.definite += 1;
    if (code >= 400 && code < 500) {
      this.tempFailures += 1;
      return this.giveUpOr(plan, 'retry');
    }
    plan.state = 'refused';
    this.refused += 1;
    if (!plan.poison) this.failures.push(`message ${plan.i} refused: "${reply.line}"`);
    return null;
  }

  /** The connection broke during a transaction (`afterDot`: the outcome is unknown). Returns 'retry' or null. */
  broken(plan, afterDot) {
    if (afterDot) {
      plan.uncertain += 1;
      this.uncertainErrors += 1;
    } else {
      this.earlyErrors += 1;
    }
    return this.giveUpOr(plan, 'retry');
  }

  giveUpOr(plan, next) {
    if (plan.tries < MAX_TRIES) return next;
    plan.state = 'gaveup';
    this.gaveUp += 1;
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The verdict: every sent plan against what the sinks saw

export function verify(plans, count, http, smtp, dsns) {
  const v = {
    expectedDeliveries: 0,
    delivered: 0,
    expectedBounces: 0,
    bounced: 0,
    lost: 0,
    duplicates: 0, // extra processed copies at the HTTP / SMTP sinks
    duplicatesSameKey: 0,
    duplicatesNewKey: 0,
    duplicateDsnCopies: 0,
    doubleReported: 0,
    unexpectedDownstream: 0,
    uncertainSeen: 0,
    uncertainAbsent: 0,
    refusedSeen: 0,
    failures: [],
    lostSamples: [],
  };
  const fail = (text) => {
    if (v.failures.length < 50) v.failures.push(text);
  };
  const seenAnywhere = (plan) => http.byMarker.has(plan.marker) || smtp.byMarker.has(plan.marker) || dsns.byMarker.has(plan.marker);

  for (let i = 0; i < count; i++) {
    const plan = plans.get(i);
    if (!plan.sent) continue;
    let queueId = plan.state === 'acked' ? plan.queueId : null;
    if (queueId === null) {
      const seen = seenAnywhere(plan);
      if (plan.uncertain > 0) {
        if (!seen) {
          v.uncertainAbsent += 1;
          continue;
        }
        // Queued after all (the 250 was lost): it must then be complete like any acked message.
        v.uncertainSeen += 1;
        const ids = new Set();
        for (const ds of [http, smtp]) for (const e of ds.byMarker.get(plan.marker)?.values() ?? []) for (const q of e.queueIds) ids.add(q);
        for (const e of dsns.byMarker.get(plan.marker)?.values() ?? []) for (const q of e.queueIds) ids.add(q);
        if (ids.size !== 1) {
          fail(`message ${plan.i} (never acked, seen downstream) carries queue ids ${[...ids].join(', ') || 'none'}`);
          continue;
        }
        queueId = [...ids][0];
      } else {
        if (seen) {
          v.refusedSeen += 1;
          fail(`message ${plan.i} was never accepted (${plan.state}, last reply "${plan.lastReply}") but appears downstream`);
        }
        continue;
      }
    }
    for (const exp of expectedOutcomes(plan)) {
      const ds = exp.sink === 'http' ? http : smtp;
      const other = exp.sink === 'http' ? smtp : http;
      const e = ds.byMarker.get(plan.marker)?.get(exp.address);
      const d = dsns.byMarker.get(plan.marker)?.get(exp.address);
      if (other.byMarker.get(plan.marker)?.has(exp.address)) {
        v.unexpectedDownstream += 1;
        fail(`message ${plan.i}: <${exp.address}> arrived at the wrong sink`);
      }
      if (e) {
        const extra = Math.max(0, e.processed - 1);
        v.duplicates += extra;
        const foreign = [...e.queueIds].filter((q) => q !== queueId);
        if (foreign.length > 0 || e.keys.size > 1) {
          v.duplicatesNewKey += Math.max(1, extra);
          fail(`message ${plan.i} (queue id ${queueId}): <${exp.address}> arrived under delivery keys ${[...e.keys].join(', ')} (queue ids ${[...e.queueIds].join(', ')})`);
        } else {
          v.duplicatesSameKey += extra;
        }
      }
      if (d) {
        if (d.ids.size > 1) {
          v.doubleReported += 1;
          fail(`message ${plan.i}: <${exp.address}> reported in ${d.ids.size} different DSNs`);
        }
        v.duplicateDsnCopies += d.copies - 1;
        const foreign = [...d.queueIds].filter((q) => q !== queueId);
        if (foreign.length > 0) fail(`message ${plan.i}: DSN for <${exp.address}> names queue id ${foreign.join(', ')}, acked as ${queueId}`);
      }
      if (exp.outcome === 'delivered') {
        v.expectedDeliveries += 1;
        if (e && e.acked > 0) v.delivered += 1;
        else {
          v.lost += 1;
          if (v.lostSamples.length < 20) v.lostSamples.push(`message ${plan.i} (queue id ${queueId}) to <${exp.address}>: ${e ? `processed ${e.processed}x, never acknowledged` : 'never arrived'} at the ${exp.sink} sink`);
        }
        if (d) {
          v.unexpectedDownstream += 1;
          fail(`message ${plan.i}: <${exp.address}> should have been delivered but was bounced`);
        }
      } else {
        v.expectedBounces += 1;
        if (d) v.bounced += 1;
        else {
          v.lost += 1;
          if (v.lostSamples.length < 20) v.lostSamples.push(`message ${plan.i} (queue id ${queueId}) to <${exp.address}>: no DSN`);
        }
        if (e && e.processed > 0) {
          v.unexpectedDownstream += 1;
          fail(`message ${plan.i}: <${exp.address}> should have bounced but was processed at the ${exp.sink} sink`);
        }
      }
    }
  }
  // Anything downstream that no plan explains.
  for (const [name, ds] of [['http', http], ['smtp', smtp]]) {
    if (ds.unmarked > 0) fail(`${ds.unmarked} request(s) without an X-Chaos-Id at the ${name} sink`);
    for (const marker of ds.byMarker.keys()) {
      const i = Number(/-(\d+)$/.exec(marker)?.[1] ?? NaN);
      if (!(i >= 0 && i < count)) fail(`unknown marker ${marker} at the ${name} sink`);
    }
  }
  if (dsns.unmarked > 0) fail(`${dsns.unmarked} DSN(s) without the original X-Chaos-Id`);
  for (const p of dsns.problems) fail(p);
  return v;
}

/** Pass / fail over the whole run: nothing lost, no failure of any kind, every spool check clean. */
export function judge({ ledger, verdict, crashes, spoolChecks }) {
  const badChecks = spoolChecks.filter((c) => !c.ok);
  const failures = [...ledger.failures, ...verdict.failures];
  if (crashes.length > 0) failures.push(`relay exited on its own ${crashes.length} time(s): ${JSON.stringify(crashes[0]).slice(0, 1500)}`);
  for (const c of badChecks) failures.push(`spool check after ${c.after} at ${c.atSeconds}s: ${JSON.stringify(c.counts)} ${JSON.stringify(c.problems.slice(0, 3))} ${c.error ?? ''}`);
  return { pass: verdict.lost === 0 && failures.length === 0, failures, badChecks };
}
