// The report: progress lines while running, the `--json` results document, and the summary
// table printed from that document (so that the two cannot disagree).

export function fmtBytes(n) {
  return n === null || n === undefined ? '-' : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function verdictText(grows) {
  return grows === null ? 'too few samples to judge' : grows ? 'GROWS' : 'flat';
}

const mb = (n) => (n === null || n === undefined ? '-' : (n / 1024 / 1024).toFixed(1));
const signed = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;

/** The RSS low-water line of a soak: slope ± standard error and the verdict (see sampler.lowWater). */
function lowWaterText(lw) {
  if (!lw) return '-';
  if (lw.verdict === null) return `too few minutes after the ${lw.warmupSeconds / 60}-min warm-up to judge (${lw.minutesJudged})`;
  const se = (x) => (x === null ? '' : ` ± ${x.toFixed(2)}`);
  const verdict = { flat: 'flat', grows: 'GROWS', 'levels off': `levels off (first half rises, second half ${signed(lw.lateSlopeMBPerMin)}${se(lw.lateSlopeStdErr)} MB/min)` }[lw.verdict];
  return `${signed(lw.slopeMBPerMin)}${se(lw.slopeStdErr)} MB/min over ${lw.minutesJudged} min after a ${lw.warmupSeconds / 60}-min warm-up, floor ${lw.firstFloorMB.toFixed(1)} → ${lw.lastFloorMB.toFixed(1)} MB: ${verdict}`;
}

/** The soak's table: one row per 5-minute window (and node); accepted / delivered are the run's, not the node's. */
function windowTable(memory) {
  const nodes = new Set(memory.windows.map((w) => w.node));
  const head = ['window (min)', ...(nodes.size > 1 ? ['node'] : []), 'RSS low MB', 'RSS max MB', 'fds', 'accepted', 'delivered'];
  const rows = memory.windows.map((w, k) => {
    const firstOfWindow = k === 0 || memory.windows[k - 1].fromMinute !== w.fromMinute;
    return [
      firstOfWindow ? `${w.fromMinute.toFixed(0)}–${w.partial ? w.toMinute.toFixed(1) : w.toMinute.toFixed(0)}` : '',
      ...(nodes.size > 1 ? [w.node + (w.lives > 1 ? ` (${w.lives} lives)` : '')] : []),
      mb(w.rssLowBytes),
      mb(w.rssMaxBytes),
      w.fdsMin === null ? '-' : w.fdsMin === w.fdsMax ? String(w.fdsMin) : `${w.fdsMin}–${w.fdsMax}`,
      firstOfWindow ? String(w.accepted) : '',
      firstOfWindow ? String(w.delivered) : '',
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r) => '  ' + r.map((v, c) => (c === 0 || (nodes.size > 1 && c === 1) ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** One progress line (every 3 s unless --quiet). `open`: unfinished messages at the last stats, or null. */
export function progressLine({ opts, ledger, sinks, open, kills, sample }) {
  return (
    `sent ${ledger.sent}/${opts.messages} acked ${ledger.acked} refused ${ledger.refused} · ` +
    `delivered ${sinks.http.ds.distinctAcked() + sinks.smtp.ds.distinctAcked()} rcpts (http ${sinks.http.ds.requests} req, smtp ${sinks.smtp.ds.requests} DATA) ` +
    `dsn ${sinks.bounce.dsns.count} · queue ${open ?? '-'} · kills ${kills}/${opts.kills}` +
    (sample ? ` · rss ${fmtBytes(sample.rss)} fds ${sample.fds}` : '')
  );
}

const seconds = (s) => (s === null ? null : Number(s.toFixed(1)));

/** The `--json` document. */
export function buildResults({ opts, ledger, plans, verdict, judgement, sinks, scheduler, cluster, finalStop, finalStats, leftovers = null, times, sampler, dir }) {
  const { http, smtp, bounce } = sinks;
  const postgres =
    cluster.db === null
      ? {}
      : {
          backend: 'postgres',
          nodes: cluster.nodes.length,
          triedOnAnotherNode: ledger.otherNode,
          killsPerNode: Object.fromEntries(cluster.nodes.map((n) => [n.nodeId, scheduler.kills.filter((k) => k.node === n.nodeId).length])),
          dbRestarts: scheduler.dbRestarts,
          databaseLeftovers: leftovers,
          databaseDir: judgement.pass && !opts.keep ? null : cluster.db.dir,
        };
  return {
    pass: judgement.pass,
    seed: opts.seed,
    mode: opts.soak ? 'soak' : 'count',
    options: { messages: opts.messages, connections: opts.connections, kills: opts.kills, fail: opts.fail, minutes: opts.minutes, rate: opts.rate, size: opts.size, mallocArenaMax: opts.mallocArenaMax, ...(cluster.db === null ? {} : { backend: 'postgres', nodes: opts.nodes, dbRestarts: opts.dbRestarts }) },
    sent: ledger.sent,
    transactions: ledger.transactions,
    acknowledged: ledger.acked,
    refused: ledger.refused,
    poison: plans.list.filter((p) => p.poison).length,
    temporaryFailures: ledger.tempFailures,
    gaveUp: ledger.gaveUp,
    resubmissions: ledger.resubmits,
    dedupHits: ledger.dedupHits,
    connectionErrorsAfterData: ledger.uncertainErrors,
    connectionErrorsBeforeData: ledger.earlyErrors,
    retriedAfterLost250: { alreadyQueued: ledger.recoveredAfterError, freshId: ledger.freshAfterError },
    uncertainNeverAcked: { seenDownstream: verdict.uncertainSeen, absent: verdict.uncertainAbsent },
    expectedDeliveries: verdict.expectedDeliveries,
    delivered: verdict.delivered,
    expectedBounces: verdict.expectedBounces,
    bounced: verdict.bounced,
    dsnMessages: bounce.dsns.count,
    duplicatesDownstream: verdict.duplicates,
    duplicatesSameKey: verdict.duplicatesSameKey,
    duplicatesNewKey: verdict.duplicatesNewKey,
    duplicateDsnCopies: verdict.duplicateDsnCopies,
    refusedButDelivered: verdict.refusedSeen,
    lost: verdict.lost,
    lostSamples: verdict.lostSamples,
    sinks: {
      http: { requests: http.ds.requests, processed: http.ds.processed, acked: http.ds.acked, faults: http.ds.faults },
      smtp: { requests: smtp.ds.requests, processed: smtp.ds.processed, acked: smtp.ds.acked, faults: smtp.ds.faults },
    },
    kills: scheduler.kills.length,
    killTimes: scheduler.kills,
    spoolChecks: scheduler.spoolChecks,
    spoolCheckProblems: judgement.badChecks.length,
    relayCrashes: cluster.crashes,
    relayErrorLogLines: cluster.errorLines,
    relayErrorLogSamples: cluster.errorSamples,
    finalStop,
    finalSpoolStats: finalStats,
    loadSeconds: seconds(times.load),
    drainSeconds: seconds(times.drain),
    totalSeconds: seconds(times.total),
    memory: sampler.memory(opts.soak),
    samples: sampler.samples,
    failures: judgement.failures.slice(0, 50),
    tempDir: judgement.pass && !opts.keep ? null : dir,
    ...postgres,
  };
}

/** The summary on stdout; `failures` is the full list (the document keeps the first 50). */
export function printSummary(r, failures) {
  const soak = r.mode === 'soak';
  const rows = [
    ['seed', r.seed],
    ['mode', soak ? `soak ${r.options.minutes} min @ ${r.options.rate}/s` : 'count'],
    ['relay MALLOC_ARENA_MAX', r.options.mallocArenaMax === 0 ? "unset (glibc's default)" : r.options.mallocArenaMax],
    ['sent (messages)', r.sent],
    ['SMTP transactions', r.transactions],
    ['acknowledged (250)', r.acknowledged],
    ['refused (5xx, poison)', `${r.refused} (${r.poison} poison planned)`],
    ['temporary failures (4xx)', r.temporaryFailures],
    ['connection errors', `${r.connectionErrorsAfterData} after the final dot, ${r.connectionErrorsBeforeData} before`],
    ['  retried → already queued', r.retriedAfterLost250.alreadyQueued],
    ['  retried → fresh id', r.retriedAfterLost250.freshId],
    ['resubmissions', r.resubmissions],
    ['dedup hits', r.dedupHits],
    ['delivered (recipients)', `${r.delivered}/${r.expectedDeliveries}`],
    ['bounced (recipients)', `${r.bounced}/${r.expectedBounces} in ${r.dsnMessages} DSNs`],
    ['duplicates downstream', `${r.duplicatesDownstream} (same key ${r.duplicatesSameKey}, new key ${r.duplicatesNewKey}); DSN repeats ${r.duplicateDsnCopies}`],
    ['refused but delivered', r.refusedButDelivered],
    ['lost', r.lost],
    ['kills', `${r.kills}/${r.options.kills}`],
    ['spool checks', `${r.spoolChecks.length} run, ${r.spoolCheckProblems} with problems`],
    ['relay crashes', r.relayCrashes.length],
    ['relay error log lines', r.relayErrorLogLines],
    ['load time', `${r.loadSeconds?.toFixed(1)} s`],
    ['drain time', `${r.drainSeconds?.toFixed(1)} s`],
    ['total time', `${r.totalSeconds.toFixed(1)} s`],
  ];
  const memoryRows = (label, n) => [
    [`${label} RSS (last life)`, n.rss ? `start ${fmtBytes(n.rss.start)}, end ${fmtBytes(n.rss.end)}, max ${fmtBytes(n.rss.max)}` : '-'],
    ...(soak ? [[`${label} RSS low-water`, lowWaterText(n.lowWater)]] : []),
    [`${label} fds (last life)`, n.fds?.start !== undefined ? `start ${n.fds.start}, end ${n.fds.end}, max ${n.fds.max}${soak ? `; floor ${n.fds.earlyFloor} → ${n.fds.lateFloor}: ${verdictText(n.fds.grows)}` : ''}` : '-'],
  ];
  for (const n of r.memory.nodes) rows.push(...memoryRows(r.memory.nodes.length > 1 ? n.node : 'relay', n));
  if (r.backend === 'postgres') {
    rows.splice(
      2,
      0,
      ['backend', `postgres, ${r.nodes} nodes`],
      ['kills per node', Object.entries(r.killsPerNode).map(([n, k]) => `${n} ${k}`).join(', ')],
      ['PostgreSQL restarts', `${r.dbRestarts.length}/${r.options.dbRestarts}${r.dbRestarts.length ? ` (down ${r.dbRestarts.map((d) => d.downMs).join(', ')} ms)` : ''}`],
      ['tries sent to another node', r.triedOnAnotherNode],
    );
    rows.push(['database at the end', r.databaseLeftovers ? `${r.databaseLeftovers.leased} deliveries leased, ${r.databaseLeftovers.unfinished} unfinished` : '-']);
  }
  const width = Math.max(...rows.map(([k]) => String(k).length));
  console.log('\nonward chaos summary');
  for (const [k, val] of rows) console.log(`  ${String(k).padEnd(width)}  ${val}`);
  if (soak && r.memory.windows.length > 0) {
    const per = r.memory.nodes.length > 1 ? 'per node (each process on its own, not summed)' : 'of the relay process';
    console.log(`\nmemory per ${r.memory.windowMinutes} minutes, ${per}; accepted / delivered: the whole run's (messages acknowledged, recipient copies acknowledged downstream)`);
    console.log(windowTable(r.memory));
  }
  if (r.lostSamples.length > 0) console.log(`\nlost:\n  ${r.lostSamples.join('\n  ')}`);
  if (failures.length > 0) console.log(`\nfailures (${failures.length}):\n  ${failures.slice(0, 20).join('\n  ')}`);
  console.log(`\n${r.pass ? 'PASS' : 'FAIL'}: lost = ${r.lost}, spool-check problems = ${r.spoolCheckProblems}, failures = ${failures.length}`);
  if (r.tempDir !== null) console.log(`spool, config and relay log kept in ${r.tempDir}`);
  if (r.databaseDir) console.log(`PostgreSQL data directory (stopped) kept in ${r.databaseDir}`);
}
