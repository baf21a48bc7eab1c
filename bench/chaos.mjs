#!/usr/bin/env node
/**
 * The reliability harness (issue 7): `npm run chaos` → `node bench/chaos.mjs`.
 *
 * Runs the built relay (`dist/`, `npm run build` first) as a child process against three sinks
 * that live in this process, on 127.0.0.1:
 *   - `hooks` (HTTP, format raw, timeout 1s) for `*@hooks.test`: a seeded share of requests is
 *     answered 500, left hanging past the timeout, or has its socket destroyed mid-request; a
 *     delivery naming a `reject-*` recipient is answered 422 (FAIL);
 *   - `mx` (SMTP, timeout 2s) for every other recipient: the same share gets 451 at DATA, a hang,
 *     or a dropped connection; `reject-*` recipients get 550 at RCPT TO;
 *   - `bounces` (SMTP, always accepts): `bounces.via`, where the DSNs arrive.
 * It submits a bounded load over raw SMTP connections (every message with a unique
 * `X-Chaos-Id` and Message-ID, 1–3 recipients over both domains, a few `reject-*` ones, a few
 * poison messages the relay must refuse, and resubmissions that must be answered
 * `already queued as <the same id>`), SIGKILLs the relay at random moments and runs
 * `onward spool check --json` on the dead relay's spool before restarting it, lets the queue
 * drain, stops the relay with SIGTERM and checks the ledger: nothing acknowledged is lost,
 * nothing refused shows up downstream, duplicates downstream are repeats of one delivery.
 *
 *   node bench/chaos.mjs                                  # 20,000 messages, 20 connections, 10 kills
 *   node bench/chaos.mjs --messages 1000 --connections 10 --kills 3 --seed 1
 *   node bench/chaos.mjs --minutes 10                     # soak: steady rate, RSS / fd samples
 *   node bench/chaos.mjs --backend postgres --nodes 3 --messages 3000 --kills 3 --db-restarts 2
 *
 * Options: --messages N (default 20000) · --connections C (20) · --kills K (10; 0 in soak mode) ·
 * --seed S (random, printed) · --fail F (share of downstream requests that fail, 0.2) ·
 * --minutes M (soak mode: a steady --rate for M minutes instead of a fixed count) ·
 * --rate R (messages/s; soak default 50, count mode unthrottled) · --drain-timeout S (600) ·
 * --size B (message size, 1024) · --json FILE (write the results) · --keep (keep the temp dir) ·
 * --quiet (no progress lines) · --backend level|postgres (level) · --nodes N (postgres only; 3) ·
 * --db-restarts N (postgres only; 2 in count mode, 0 in soak mode) ·
 * --malloc-arena-max N (MALLOC_ARENA_MAX of the relays; 2, as the Docker image; 0: glibc's default).
 * With `--backend postgres` the harness starts a throwaway PostgreSQL (bench/lib/postgres.mjs,
 * the one the test suites use) and N `onward serve` nodes on it (same url and schema, own nodeId
 * and ports, `spool.lease` 3s). Clients are spread over the nodes and are smart: a message whose
 * session broke or that got a 4xx is tried again on another node, a planned resubmission goes to
 * another node than the one that acknowledged it. Kills hit a random node (own random stream);
 * `--db-restarts` crash-restarts PostgreSQL itself under load (`pg_ctl stop -m immediate`, a
 * moment down, start). At the end the database must hold no delivery leased or unfinished.
 * Soak mode samples each relay process's RSS (/proc/PID/status VmRSS) and open fds (/proc/PID/fd)
 * every 5 s and reports, per node: start / end / max, the slope of the RSS low-water line (one
 * floor per minute, after a 3-minute warm-up) with its verdict (flat, levels off, GROWS), and a
 * table per 5 minutes (RSS low-water and max, fds, messages accepted and delivered in the window).
 * On a failure the temp dir (spool, config, relay.log) is kept and named in the output.
 * Exit: 0 when nothing was lost and every spool check was clean; 1 on any failure; 2 when the
 * harness itself could not run (bad arguments, relay does not start).
 * Loopback only; every loop is bounded in count and time; it signals only the relays it spawned.
 *
 * The parts live in bench/chaos/: options, random (seeded streams), messages (plans), sinks and
 * downstream (what arrived), relay-node and cluster (the relays under test), smtp-client and load
 * (the clients), kills (the kill scheduler), ledger (what was answered, the verdict), sampler
 * (RSS / fd), report (progress, summary, --json). This file runs the phases: load, drain, stop.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from './chaos/cluster.mjs';
import { KillScheduler } from './chaos/kills.mjs';
import { judge, Ledger, verify } from './chaos/ledger.mjs';
import { Load } from './chaos/load.mjs';
import { MessagePlans } from './chaos/messages.mjs';
import { parseArgs, usage } from './chaos/options.mjs';
import { rngStream } from './chaos/random.mjs';
import { openMessages, ROOT } from './chaos/relay-node.mjs';
import { buildResults, printSummary, progressLine } from './chaos/report.mjs';
import { Sampler } from './chaos/sampler.mjs';
import { startBounceSink, startHttpSink, startSmtpSink } from './chaos/sinks.mjs';
import { sleep } from './lib/net.mjs';

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'index.js'))) usage('dist/ is missing: run `npm run build` first (npm run chaos does)');
  const startedAt = Date.now();
  const log = (text) => {
    if (!opts.quiet) process.stderr.write(`chaos ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(5)}s  ${text}\n`);
  };
  log(
    `seed ${opts.seed}: ${opts.soak ? `soak ${opts.minutes} min at ${opts.rate} msgs/s (${opts.messages} messages)` : `${opts.messages} messages`}, ` +
      `${opts.connections} connections, ${opts.kills} kills, fail ${opts.fail}` +
      (opts.backend === 'postgres' ? `; postgres, ${opts.nodes} nodes, ${opts.dbRestarts} database restarts` : ''),
  );

  // Hangs last longer than the targets' timeouts (hooks 1s, mx 2s).
  const sinks = {
    http: await startHttpSink(rngStream(opts.seed, 'http'), opts.fail, 1800),
    smtp: await startSmtpSink(rngStream(opts.seed, 'smtp'), opts.fail, 3000),
    bounce: await startBounceSink(),
  };
  const dir = await mkdtemp(join(tmpdir(), 'onward-chaos-'));
  const cluster = await Cluster.create({ dir, sinks, opts });
  const plans = new MessagePlans(opts.seed, opts.size);
  const ledger = new Ledger();
  const scheduler = new KillScheduler({ cluster, opts, rng: rngStream(opts.seed, 'kills'), ledger, log, startedAt });
  // Running totals for the soak's per-window table: messages acknowledged, recipient copies acknowledged downstream.
  const sampler = new Sampler(cluster, { totals: () => ({ accepted: ledger.acked, delivered: sinks.http.ds.acked + sinks.smtp.ds.acked }) });
  let lastStats = null;
  let harnessError = null;

  const abort = () => {
    scheduler.stopping = true;
    cluster.killNow();
    void cluster.closeDatabase({ keep: false }).finally(() => process.exit(2));
    setTimeout(() => process.exit(2), 5000).unref();
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);

  // The whole run is bounded: load time + drain timeout + slack.
  const loadBudgetMs = opts.soak ? opts.minutes * 60_000 + 120_000 : Math.max(300_000, opts.messages * 30);
  const hardDeadline = startedAt + loadBudgetMs + opts.drainTimeout * 1000 + 120_000;
  const guard = setTimeout(() => {
    console.error('chaos: hard time limit reached; stopping the relay');
    abort();
  }, hardDeadline - Date.now());
  guard.unref();

  let progressTimer = null;
  const times = { load: null, drain: null, total: null };
  let finalStop = null;
  let finalStats = null;
  let verdict = null;
  let leftovers = null;
  try {
    await cluster.start();
    const load = new Load(opts, plans, ledger, loadBudgetMs);

    sampler.start();
    progressTimer = setInterval(async () => {
      if (cluster.anyAlive) lastStats = await cluster.stats().catch(() => lastStats);
      const open = lastStats ? openMessages(lastStats) : null;
      log(progressLine({ opts, ledger, sinks, open, kills: scheduler.kills.length, sample: sampler.latest() }));
    }, 3000);

    const killer = Promise.all([scheduler.duringLoad(load), scheduler.dbRestartsDuringLoad(load)]);
    await load.run(cluster.submitPorts);
    await killer;
    await scheduler.settled();
    times.load = (Date.now() - load.startedAt) / 1000;
    sampler.loadEnded();
    log(`load done in ${times.load.toFixed(1)}s: ${ledger.acked} acked, ${ledger.refused} refused, ${ledger.gaveUp} given up`);

    // Drain: until nothing is queued, deferred or held (bounded); the last kills land in here.
    const drainStarted = Date.now();
    const drainDeadline = drainStarted + opts.drainTimeout * 1000;
    scheduler.startDrain();
    for (;;) {
      if (Date.now() >= drainDeadline) break;
      if (await scheduler.drainTick()) continue;
      await scheduler.settled();
      const st = await cluster.stats().catch(() => null);
      if (st) {
        lastStats = st;
        if (openMessages(st) === 0 && !scheduler.drainKillsPending) break;
      }
      await sleep(200);
    }
    times.drain = (Date.now() - drainStarted) / 1000;
    const open = lastStats ? openMessages(lastStats) : null;
    if (open !== 0) {
      ledger.failures.push(`queue did not drain within ${opts.drainTimeout}s (${open ?? 'unknown'} unfinished)`);
    }
    log(`drained in ${times.drain.toFixed(1)}s (unfinished ${open ?? '?'})`);
    sampler.stop();
    clearInterval(progressTimer);

    // Stop cleanly; then the spool must be clean and empty of due work.
    scheduler.stopping = true;
    await sleep(300); // let the last acks reach the sinks' bookkeeping
    const stops = await cluster.stop(30_000);
    for (const stop of stops) if (stop.code !== 0 || stop.forced) ledger.failures.push(`relay did not stop cleanly on SIGTERM: ${JSON.stringify(stop)}`);
    finalStop = stops.length === 1 ? stops[0] : stops; // one node: the document keeps its one-object shape
    const finalCheck = await cluster.spoolCheck();
    scheduler.spoolChecks.push({ after: 'final stop', atSeconds: Number(((Date.now() - startedAt) / 1000).toFixed(1)), ...finalCheck });
    const fs = await cluster.cli(['spool', 'stats', '--json']);
    try {
      finalStats = JSON.parse(fs.stdout);
    } catch {
      ledger.failures.push(`spool stats --json failed: ${fs.stderr.slice(0, 500)}`);
    }
    if (finalStats && openMessages(finalStats) !== 0) ledger.failures.push(`spool not empty of due work after the drain: ${JSON.stringify(finalStats.states)}`);
    if (cluster.db !== null) {
      leftovers = await cluster.leftovers();
      if (leftovers.leased !== 0 || leftovers.unfinished !== 0) ledger.failures.push(`database holds deliveries after the final stop: ${JSON.stringify(leftovers)}`);
    }
    verdict = verify(plans, plans.list.length, sinks.http.ds, sinks.smtp.ds, sinks.bounce.dsns);
  } catch (err) {
    harnessError = err;
  } finally {
    sampler.stop();
    clearInterval(progressTimer);
    scheduler.stopping = true;
    await cluster.stopLive(10_000);
    cluster.close();
    await Promise.all([sinks.http.close(), sinks.smtp.close(), sinks.bounce.close()]);
    clearTimeout(guard);
  }

  if (harnessError) {
    await cluster.closeDatabase({ keep: true });
    console.error(`chaos: harness error: ${harnessError.stack ?? harnessError}\nrelay output tail:\n${cluster.tail}\nkept ${dir}${cluster.db ? ` and ${cluster.db.dir}` : ''}`);
    process.exit(2);
  }

  const judgement = judge({ ledger, verdict, crashes: cluster.crashes, spoolChecks: scheduler.spoolChecks });
  await cluster.closeDatabase({ keep: !judgement.pass || opts.keep });
  times.total = (Date.now() - startedAt) / 1000;
  const results = buildResults({ opts, ledger, plans, verdict, judgement, sinks, scheduler, cluster, finalStop, finalStats, leftovers, times, sampler, dir });
  printSummary(results, judgement.failures);
  if (opts.json) await writeFile(opts.json, JSON.stringify(results, null, 2) + '\n');
  if (judgement.pass && !opts.keep) await rm(dir, { recursive: true, force: true });
  process.exit(judgement.pass ? 0 : 1);
}

await main();
