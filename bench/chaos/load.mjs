// The load: a job queue (fresh messages, retries, resubmissions) shared by the client workers,
// one SMTP connection each. Workers are spread over the cluster's submit ports in turn; with
// one node they all submit to it. What each answer means goes into the Ledger.
import { sleep } from '../lib/net.mjs';
import { between, rngStream } from './random.mjs';
import { ConnError, SmtpClient, transact } from './smtp-client.mjs';

export class Load {
  /** Starts the clock: fresh messages are submitted (at `opts.rate`, if any) until `budgetMs` has passed. */
  constructor(opts, plans, ledger, budgetMs) {
    this.opts = opts;
    this.plans = plans;
    this.ledger = ledger;
    this.next = 0; // next fresh message
    this.retries = []; // { plan, at, kind }
    this.resubmits = []; // { plan, at }
    this.inFlight = 0;
    this.rng = rngStream(opts.seed, 'load');
    this.stopFresh = false;
    this.finished = false;
    this.startedAt = Date.now();
    this.deadline = this.startedAt + budgetMs;
  }

  /** Runs `opts.connections` workers over `ports` until the load is done (soak: fresh messages stop after `opts.minutes`). */
  async run(ports) {
    const workers = Array.from({ length: this.opts.connections }, (_, k) => this.worker(ports[k % ports.length]));
    const stopTimer = this.opts.soak ? setTimeout(() => (this.stopFresh = true), this.opts.minutes * 60_000) : null;
    await Promise.all(workers);
    clearTimeout(stopTimer);
    this.finished = true;
  }

  /** The next job, null to wait a little, or 'done'. */
  take() {
    const t = Date.now();
    for (let k = 0; k < this.retries.length; k++) {
      if (this.retries[k].at <= t) return this.retries.splice(k, 1)[0];
    }
    for (let k = 0; k < this.resubmits.length; k++) {
      if (this.resubmits[k].at <= t) return { ...this.resubmits.splice(k, 1)[0], kind: 'resubmit' };
    }
    if (!this.stopFresh && this.next < this.opts.messages && t < this.deadline) {
      if (this.opts.rate === null || this.next < ((t - this.startedAt) / 1000) * this.opts.rate) {
        return { plan: this.plans.get(this.next++), kind: 'first' };
      }
      return null;
    }
    if (t >= this.deadline) return 'done';
    if (this.retries.length === 0 && this.resubmits.length === 0 && this.inFlight === 0) return 'done';
    return null;
  }

  retryLater(job, delayMs) {
    this.retries.push({ plan: job.plan, kind: job.kind === 'first' ? 'retry' : job.kind, at: Date.now() + delayMs, afterUncertain: job.afterUncertain });
  }

  /** Acts on the ledger's reading of an answer (see Ledger.answered). */
  follow(job, next) {
    if (next === 'retry') this.retryLater(job, between(this.rng, 100, 500));
    else if (next === 'retry-resubmission') this.retryLater(job, 200);
    else if (next === 'resubmit') this.resubmits.push({ plan: job.plan, at: Date.now() + between(this.rng, 100, 3000) });
  }

  async worker(port) {
    let client = null;
    let backoff = 50;
    for (;;) {
      const job = this.take();
      if (job === 'done') break;
      if (job === null) {
        await sleep(this.opts.rate === null ? 10 : 5);
        continue;
      }
      this.inFlight += 1;
      try {
        if (!client || client.dead) {
          try {
            client = await SmtpClient.connect(port);
            backoff = 50;
          } catch {
            // Relay down (killed, restarting): nothing was sent; try again shortly.
            this.ledger.connectFailures += 1;
            this.retries.push({ ...job, at: Date.now() + backoff });
            client = null;
            backoff = Math.min(backoff * 2, 400);
            await sleep(backoff);
            continue;
          }
        }
        const plan = job.plan;
        this.ledger.attempt(plan);
        try {
          const reply = await transact(client, plan, this.plans.raw(plan));
          if (reply.code === 421) {
            client.destroy();
            client = null;
          }
          this.follow(job, this.ledger.answered(job, reply));
        } catch (err) {
          client?.destroy();
          client = null;
          if (!(err instanceof ConnError)) throw err;
          if (this.ledger.broken(plan, err.afterDot)) {
            this.retryLater({ ...job, afterUncertain: job.afterUncertain || err.afterDot }, between(this.rng, 100, 400));
          }
        }
      } finally {
        this.inFlight -= 1;
      }
    }
    client?.destroy();
  }
}
