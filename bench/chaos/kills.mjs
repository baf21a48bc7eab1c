// The kill scheduler: SIGKILLs at seeded moments, most while the load runs (by progress, or by
// time in soak mode) and a fifth while the queue drains. Every kill, and every exit of a node
// that was not ours, goes through one serialized cycle: spool check on the dead node's spool,
// a short pause (clients meet a closed port), restart. With postgres, `--db-restarts` restarts
// of the database itself (crash-style, under load) go through the same serialized cycle.
import { sleep } from '../lib/net.mjs';
import { between, rngStream } from './random.mjs';

export class KillScheduler {
  constructor({ cluster, opts, rng, ledger, log, startedAt }) {
    this.cluster = cluster;
    this.opts = opts;
    this.rng = rng;
    this.ledger = ledger;
    this.log = log;
    this.startedAt = startedAt;
    this.kills = []; // { atSeconds, acked, checkOk, node? }
    this.dbRestarts = []; // { atSeconds, acked, downMs, ms }
    this.dbRng = rngStream(opts.seed, 'db-restarts');
    this.spoolChecks = []; // { after, atSeconds, ...check }
    this.cycling = Promise.resolve();
    this.fatal = null; // a node that does not come back
    this.stopping = false; // no more cycles (the run is ending)
    this.load = null;
    this.drainKills = opts.soak ? 0 : Math.floor(opts.kills / 5);
    this.drainKillsDone = 0;
    this.drainKillAt = Infinity;
    for (const node of cluster.nodes) node.onCrash = () => void this.cycle('crash', node);
  }

  /** Kill (reason 'kill') or take note of a crash, spool check while dead, then restart; serialized. */
  cycle(reason, node) {
    this.cycling = this.cycling
      .then(async () => {
        if (this.stopping) return;
        const at = (Date.now() - this.startedAt) / 1000;
        if (reason === 'kill') await node.kill();
        const check = await node.spoolCheck();
        this.spoolChecks.push({ after: reason, atSeconds: Number(at.toFixed(1)), ...check });
        if (reason === 'kill') this.kills.push({ atSeconds: Number(at.toFixed(1)), acked: this.ledger.acked, checkOk: check.ok, ...(node.nodeId ? { node: node.nodeId } : {}) });
        const who = node.nodeId ? ` (${node.nodeId})` : '';
        this.log(
          `${reason === 'kill' ? `SIGKILL #${this.kills.length}${who}` : `relay${who} died on its own`} at ${at.toFixed(1)}s; spool check: ` +
            (check.ok ? `clean (${check.messages} messages, ${check.ms} ms)` : `PROBLEMS ${JSON.stringify(check.counts)} ${check.error ?? ''}`),
        );
        await sleep(between(this.rng, 0, 300)); // clients meet a closed port for a moment
        await node.start();
      })
      .catch((err) => {
        // The relay does not come back: end the load (bounded) and report it as a harness error.
        this.fatal ??= err;
        this.stopping = true;
        if (this.load) this.load.deadline = 0;
      });
    return this.cycling;
  }

  /** PostgreSQL stops (`-m immediate`), stays down a moment, starts again; serialized with the kills. */
  dbCycle() {
    this.cycling = this.cycling
      .then(async () => {
        if (this.stopping) return;
        const started = Date.now();
        const downMs = Math.round(between(this.dbRng, 500, 2500));
        await this.cluster.restartDatabase(downMs);
        const at = (started - this.startedAt) / 1000;
        this.dbRestarts.push({ atSeconds: Number(at.toFixed(1)), acked: this.ledger.acked, downMs, ms: Date.now() - started });
        this.log(`PostgreSQL restart #${this.dbRestarts.length} at ${at.toFixed(1)}s (down ${downMs} ms, back after ${Date.now() - started} ms)`);
      })
      .catch((err) => {
        this.fatal ??= err;
        this.stopping = true;
        if (this.load) this.load.deadline = 0;
      });
    return this.cycling;
  }

  /** The database restarts during the load (at seeded progress points); resolves when done or the load is. */
  async dbRestartsDuringLoad(load) {
    const points = Array.from({ length: this.opts.dbRestarts }, () => between(this.dbRng, 0.1, 0.9)).sort((a, b) => a - b);
    for (const point of points) {
      for (;;) {
        if (this.stopping || load.finished) return;
        if (this.ledger.acked / this.opts.messages >= point) break;
        await sleep(20);
      }
      await this.dbCycle();
    }
  }

  /** Waits for the cycle under way; throws when a node did not come back. */
  async settled() {
    await this.cycling;
    if (this.fatal) throw this.fatal;
  }

  /** The kills during the load; resolves when they are done or the load is. */
  async duringLoad(load) {
    this.load = load;
    const { opts, rng } = this;
    const points = Array.from({ length: opts.kills - this.drainKills }, () => between(rng, 0.03, 0.97)).sort((a, b) => a - b);
    for (const point of points) {
      const node = this.cluster.victim();
      for (;;) {
        if (this.stopping || load.finished) return;
        const progress = opts.soak ? (Date.now() - load.startedAt) / (opts.minutes * 60_000) : this.ledger.acked / opts.messages;
        if (progress >= point && Date.now() - node.upSince > 700) break;
        await sleep(20);
      }
      await sleep(between(rng, 0, 250));
      await this.cycle('kill', node);
    }
  }

  /** The drain begins: the first drain kill lands shortly after. */
  startDrain() {
    if (this.drainKills > 0) this.drainKillAt = Date.now() + between(this.rng, 300, 2000);
  }

  /** During the drain: kills when one is due and returns true, else false. */
  async drainTick() {
    if (Date.now() < this.drainKillAt || this.drainKillsDone >= this.drainKills) return false;
    await this.cycle('kill', this.cluster.victim());
    this.drainKillsDone += 1;
    this.drainKillAt = this.drainKillsDone < this.drainKills ? Date.now() + between(this.rng, 700, 2500) : Infinity;
    return true;
  }

  get drainKillsPending() {
    return this.drainKillsDone < this.drainKills;
  }
}
