// The load: a job queue (fresh messages, retries, resubmissions) shared by the client workers,
// one SMTP connection each. Workers are spread over the cluster's submit ports in turn; with
// one node they all submit to it. With several nodes the client is a smart one: a message whose
// session broke, whose node was down or that got a 4xx is tried again on another node, and a
// planned resubmission goes to another node than the one that acknowledged it (cross-node
// dedup). What each answer means goes into the Ledger.
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
    this.failoverRng = rngStream(opts.seed, 'failover'); // its own stream: one node draws nothing
    this.stopFresh = false;
    this.finished = false;
    this.startedAt = Date.now();
    this.deadline = this.startedAt + budgetMs;
  }

  /** Runs `opts.connections` workers over `ports` until the load is done (soak: fresh messages stop after `opts.minutes`). */
  async run(ports) {
    const workers = Array.from({ length: this.opts.connections }, (_, k) => this.worker(ports[k % ports.length], ports));
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

  /** `lastPort`: the node the job last met (a retry goes elsewhere when there is elsewhere). */
  retryLater(job, delayMs, lastPort) {
    this.retries.push({ plan: job.plan, kind: job.kind === 'first' ? 'retry' : job.kind, at: Date.now() + delayMs, afterUncertain: job.afterUncertain, lastPort });
  }

  /** Acts on the ledger's reading of an answer (see Ledger.answered) from the node at `port`. */
  follow(job, next, port) {
    if (next === 'retry') this.retryLater(job, between(this.rng, 100, 500), port);
    else if (next === 'retry-resubmission') this.retryLater(job, 200, port);
    else if (next === 'resubmit') this.resubmits.push({ plan: job.plan, at: Date.now() + between(this.rng, 100, 3000), lastPort: port });
  }

  /** The node for `job`: the worker's own, or (several nodes, the job met one already) another one. */
  portFor(job, home, ports) {
    if (ports.length === 1 || job.lastPort === undefined) return home;
    const from = ports.indexOf(job.lastPort);
    const port = ports[(from + 1 + Math.floor(this.failoverRng() * (ports.length - 1))) % ports.length];
    this.ledger.otherNode += 1;
    return port;
  }

  /** One client: its own node's connection, and one per other node it was sent to (smart client). */
  async worker(home, ports) {
    const clients = new Map(); // port → SmtpClient
    let backoff = 50;
    for (;;) {
      const job = this.take();
      if (job === 'done') break;
      if (job === null) {
        await sleep(this.opts.rate === null ? 10 : 5);
        continue;
      }
      this.inFlight += 1;
      const port = this.portFor(job, home, ports);
      try {
        let client = clients.get(port);
        if (!client || client.dead) {
          try {
            client = await SmtpClient.connect(port);
            clients.set(port, client);
            backoff = 50;
          } catch {
            // Relay down (killed, restarting): nothing was sent; try again shortly.
            this.ledger.connectFailures += 1;
            this.retries.push({ ...job, at: Date.now() + backoff, lastPort: port });
            clients.delete(port);
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
            clients.delete(port);
          }
          this.follow(job, this.ledger.answered(job, reply), port);
        } catch (err) {
          client.destroy();
          clients.delete(port);
          if (!(err instanceof ConnError)) throw err;
          if (this.ledger.broken(plan, err.afterDot)) {
            this.retryLater({ ...job, afterUncertain: job.afterUncertain || err.afterDot }, between(this.rng, 100, 400), port);
          }
        }
      } finally {
        this.inFlight -= 1;
      }
    }
    for (const client of clients.values()) client.destroy();
  }
}
