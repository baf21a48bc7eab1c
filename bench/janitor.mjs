#!/usr/bin/env node
// npm run build && node bench/janitor.mjs [--messages N] — how fast does housekeeping remove?
// Fills a temp spool with N delivered messages (each with a dedup key) through the real
// LevelSpool paths on a controlled clock, moves the clock past retainFinished and the dedup
// window, and times one janitor run (sweep until caught up). Prints keys removed per second
// (per message: m!, d!, r!, x!, y!) next to the accept+deliver rate of the fill.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelSpool, newQueueId } from '../dist/spool/index.js';

const args = process.argv.slice(2);
const N = Number(args.includes('--messages') ? args[args.indexOf('--messages') + 1] : 100_000);
const DAY = 86_400_000;
const path = mkdtempSync(join(tmpdir(), 'onward-janitor-bench-'));
let now = 1_800_000_000_000;
const spool = await LevelSpool.open({ path, dedupWindowMs: DAY, retainFinishedMs: DAY, now: () => now, janitorIntervalMs: 3_600_000 });
const body = Buffer.from(`Subject: bench\r\n\r\n${'x'.repeat(1000)}\r\n`);
const reply = { kind: 'x-onward', code: null, enhancedStatus: null, text: 'written' };
const removed = { dedup: 0, finished: 0 };
spool.on('janitor', (j) => (removed[j.kind] += j.removed));
const t0 = performance.now();
for (let done = 0; done < N; done += 1000) {
  const k = Math.min(1000, N - done);
  await Promise.all(Array.from({ length: k }, (_, i) => spool.accept({
    queueId: newQueueId(), sender: 'a@bench.test', recipients: ['b@bench.test'], messageId: null, body,
    client: { ip: '127.0.0.1', hostname: 'bench', helo: 'bench', user: null },
    deliveries: [{ targets: ['sink'], recipients: ['b@bench.test'] }], dedupKey: `k${done + i}`, bounceOf: null,
  })));
  const claimed = await spool.claimDue('sink', now, k);
  await Promise.all(claimed.map((c) => spool.completeAttempt(c.delivery.id, {
    attempts: [{ at: now, target: 'sink', outcome: 'ok', reply: 'written', durationMs: 1 }],
    recipients: [{ address: 'b@bench.test', state: 'delivered', reply }], nextDueAt: null,
  })));
}
const fillSeconds = (performance.now() - t0) / 1000;
now += DAY + 1;
const t1 = performance.now();
await spool.sweep();
const sweepSeconds = (performance.now() - t1) / 1000;
await spool.close();
rmSync(path, { recursive: true, force: true });
const keysRemoved = removed.finished * 3 + removed.dedup * 2;
console.log(JSON.stringify({
  messages: N,
  fill: { seconds: +fillSeconds.toFixed(2), messagesPerSecond: Math.round(N / fillSeconds) },
  sweep: { seconds: +sweepSeconds.toFixed(2), removed, keysPerSecond: Math.round(keysRemoved / sweepSeconds), messagesPerSecond: Math.round(removed.finished / sweepSeconds) },
}));
