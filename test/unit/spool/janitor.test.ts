/**
 * The LevelDB spool's own housekeeping, on a real temp directory: its background janitor
 * removes every expired dedup key and finished message under sustained load (slice after
 * slice, leaving no key behind on disk), and a corrupt record is logged, counted, removed and
 * does not stop it. What `sweep()` removes and keeps on any backend is the contract's
 * (test/contract/lifecycle.contract.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ClassicLevel } from 'classic-level';
import { pino } from 'pino';
import { LevelSpool, newQueueId, type AttemptUpdate, type NewMessage } from '../../../src/spool/index.js';
import { waitForValue } from '../../helpers/common.js';

const DAY = 86_400_000;

function message(i: number): NewMessage {
  const recipients = [`rcpt${String(i)}@example.org`];
  return {
    queueId: newQueueId(),
    sender: 'sender@example.com',
    recipients,
    messageId: `m${String(i)}@example.com`,
    body: Buffer.from(`Subject: ${String(i)}\r\n\r\nbody\r\n`),
    client: { ip: '127.0.0.1', hostname: '[127.0.0.1]', helo: 'client.test', user: null },
    deliveries: [{ targets: ['outbox'], recipients }],
    dedupKey: `dedup-${String(i)}-${String(Math.random())}`,
    bounceOf: null,
  };
}

function delivered(address: string, at: number): AttemptUpdate {
  const reply = { kind: 'x-onward' as const, code: null, enhancedStatus: null, text: 'written' };
  return {
    attempts: [{ at, target: 'outbox', outcome: 'ok', reply: reply.text, durationMs: 1 }],
    recipients: [{ address, state: 'delivered', reply }],
    nextDueAt: null,
  };
}

/** Accepts `msgs` and delivers each of them (claim, then a delivered outcome). */
async function acceptAndDeliver(spool: LevelSpool, msgs: readonly NewMessage[], clock: () => number): Promise<void> {
  await Promise.all(msgs.map((m) => spool.accept(m)));
  for (;;) {
    const now = clock();
    const claimed = await spool.claimDue('outbox', now, 1000);
    if (claimed.length === 0) return;
    await Promise.all(claimed.map((c) => spool.completeAttempt(c.delivery.id, delivered(c.delivery.recipients[0]?.address ?? '', now))));
  }
}

/** Keys on disk by their prefix (`m`, `d`, `x`, ...), read with the spool closed. */
async function keysByPrefix(dir: string): Promise<Record<string, number>> {
  const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  const counts: Record<string, number> = {};
  for await (const key of db.keys()) {
    const prefix = key.slice(0, key.indexOf('!'));
    counts[prefix] = (counts[prefix] ?? 0) + 1;
  }
  await db.close();
  return counts;
}

/** Totals of the spool's `janitor` and `janitorError` events (what the metrics count). */
function watch(spool: LevelSpool): { removed: { dedup: number; finished: number }; errors: unknown[] } {
  const seen = { removed: { dedup: 0, finished: 0 }, errors: [] as unknown[] };
  spool.on('janitor', (j) => (seen.removed[j.kind] += j.removed));
  spool.on('janitorError', (err) => seen.errors.push(err));
  return seen;
}

describe('spool housekeeping', () => {
  let dir: string;
  const open: LevelSpool[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onward-janitor-'));
  });
  afterEach(async () => {
    for (const spool of open.splice(0)) await spool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('removes every expired dedup key and finished message fed at a sustained rate', async () => {
    const N = 3000;
    const spool = await LevelSpool.open({ path: dir, dedupWindowMs: 200, retainFinishedMs: 200, janitorIntervalMs: 20 });
    open.push(spool);
    const seen = watch(spool);
    // Sustained load: 50 messages accepted and delivered at a time while the janitor runs.
    for (let i = 0; i < N; i += 50) {
      await acceptAndDeliver(spool, Array.from({ length: 50 }, (_, j) => message(i + j)), Date.now);
    }
    expect(await spool.countsByState()).toMatchObject({ queued: 0, deferred: 0 });
    await waitForValue(() => seen.removed, (r) => r.dedup >= N && r.finished >= N, 60_000, 'the janitor to remove every message and dedup key');
    expect(seen.removed).toEqual({ dedup: N, finished: N });
    expect(seen.errors).toEqual([]);
    expect(await spool.countsByState()).toEqual({ queued: 0, deferred: 0, held: 0, delivered: 0, bounced: 0, deleted: 0 });
    await spool.close();
    // Only the counters snapshot and the format version are left on disk.
    expect(await keysByPrefix(dir)).toEqual({ c: 1, v: 1 });
  }, 120_000);

  it('logs and counts a corrupt record, removes it, and keeps sweeping', async () => {
    let now = 1_800_000_000_000;
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const options = { path: dir, dedupWindowMs: DAY, retainFinishedMs: DAY, janitorIntervalMs: 20, now: () => now, logger };
    const first = await LevelSpool.open(options);
    const [broken, intact] = [message(1), message(2)];
    await acceptAndDeliver(first, [broken, intact], () => now);
    await first.close();
    const raw = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await raw.open();
    await raw.put(`m!${broken.queueId}`, Buffer.from('{"truncated'));
    await raw.close();

    const spool = await LevelSpool.open(options);
    open.push(spool);
    const seen = watch(spool);
    now += DAY + 1;
    await waitForValue(() => seen.removed.finished, (n) => n >= 2, 10_000, 'both finished messages removed');
    expect(seen.errors).toHaveLength(1);
    expect(String(seen.errors[0])).toContain(`m!${broken.queueId}`);
    expect(lines).toEqual([expect.objectContaining({ msg: 'spool housekeeping failed', spool: dir })]);
    expect(await spool.getMessage(broken.queueId)).toBeNull();
    expect(await spool.getDeliveries(broken.queueId)).toEqual([]);
    expect(await spool.getMessage(intact.queueId)).toBeNull();

    // Keeps going: a message finished afterwards is removed on the next pass of its horizon.
    const later = message(3);
    await acceptAndDeliver(spool, [later], () => now);
    now += DAY + 1;
    await waitForValue(() => seen.removed.finished, (n) => n >= 3, 10_000, 'the later message removed');
    expect(await spool.getMessage(later.queueId)).toBeNull();
    expect(seen.errors).toHaveLength(1);
    expect(seen.removed.dedup).toBe(3);
  });
});
