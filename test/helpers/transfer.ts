/**
 * Helpers for the `spool transfer` tests: a spool filled with deferred messages through the
 * Spool interface itself (accept, claim, an ERROR outcome with a retry time, as a relay
 * against a 503 sink would record them, without a relay's minutes), and a spool's
 * unfinished contents as comparable snapshots.
 */
import { spawn } from 'node:child_process';
import { newQueueId, type NewMessage, type Spool, type TransferItem } from '../../src/spool/index.js';
import { BIN, REPO_ROOT } from './common.js';

export interface SeedOptions {
  readonly count: number;
  /** The lane every delivery is routed to (a target name of the config). */
  readonly target: string;
  /** Retry time of message i: now + retryInMs + i (distinct, so due order is checkable). */
  readonly retryInMs: number;
}

/** Message i: every 5th has two deliveries, every 7th has no Message-ID (no dedup key). */
export function seedMessage(i: number, target: string): NewMessage {
  const hasId = i % 7 !== 0;
  const recipients = i % 5 === 0 ? [`a${i}@rcpt.test`, `b${i}@rcpt.test`] : [`a${i}@rcpt.test`];
  return {
    queueId: newQueueId(),
    sender: `app${i}@senders.test`,
    recipients,
    messageId: hasId ? `seed-${i}@senders.test` : null,
    body: Buffer.from(`From: app${i}@senders.test\r\nSubject: seed ${i}\r\n${hasId ? `Message-ID: <seed-${i}@senders.test>\r\n` : ''}\r\nbody ${i} \u00e9\r\n`),
    client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
    deliveries: recipients.map((r) => ({ targets: [target], recipients: [r] })),
    dedupKey: hasId ? `seed-key-${i}` : null,
    bounceOf: null,
  };
}

/** Accepts `count` messages and records one failed (ERROR) attempt on every delivery; returns the queue ids in seed order. */
export async function seedDeferred(spool: Spool, options: SeedOptions): Promise<string[]> {
  const messages = Array.from({ length: options.count }, (_, i) => seedMessage(i, options.target));
  for (let i = 0; i < messages.length; i += 100) {
    await Promise.all(messages.slice(i, i + 100).map((m) => spool.accept(m)));
  }
  const indexOf = new Map(messages.map((m, i) => [m.queueId, i]));
  const deliveries = messages.reduce((n, m) => n + m.deliveries.length, 0);
  let deferred = 0;
  for (let round = 0; deferred < deliveries && round < deliveries; round += 1) {
    const claimed = await spool.claimDue(options.target, Date.now(), 200);
    if (claimed.length === 0) throw new Error(`seeding: ${deliveries - deferred} deliveries never became due`);
    await Promise.all(
      claimed.map(async ({ delivery }) => {
        const i = indexOf.get(delivery.queueId) ?? 0;
        const reply = { kind: 'http' as const, code: 503, enhancedStatus: null, text: 'HTTP 503 Service Unavailable' };
        await spool.completeAttempt(delivery.id, {
          attempts: [{ at: Date.now(), target: options.target, outcome: 'error', reply: reply.text, durationMs: 3 + (i % 10) }],
          recipients: delivery.recipients.map((r) => ({ address: r.address, state: 'deferred' as const, reply })),
          nextDueAt: Date.now() + options.retryInMs + i,
        });
      }),
    );
    deferred += claimed.length;
  }
  return messages.map((m) => m.queueId);
}

/** The unfinished messages of `spool` by queue id, as its export gives them. */
export async function unfinishedById(spool: Spool): Promise<Map<string, TransferItem>> {
  const byId = new Map<string, TransferItem>();
  for await (const item of spool.exportUnfinished()) byId.set(item.message.id, item);
  return byId;
}

export interface KillableRun {
  readonly pid: number;
  /** Resolves with the exit code and signal once the process is gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stderr has shown `pattern` (rejects if the process exits first or `timeoutMs` passes). */
  waitForStderr(pattern: RegExp, timeoutMs: number): Promise<void>;
  stderr(): string;
  /** SIGKILLs it by its PID if it still runs. */
  kill(): void;
}

/** Starts `node bin/onward ARGS` to be SIGKILLed midway (by its PID, by the caller). */
export function spawnKillable(args: readonly string[]): KillableRun {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['ONWARD_CONFIG'];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const watchers = new Set<() => void>();
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString('utf8');
    for (const w of watchers) w();
  });
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => {
      running = false;
      done({ code, signal });
    }),
  );
  return {
    pid: child.pid ?? -1,
    exited,
    stderr: () => err,
    kill: () => {
      if (running && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    },
    waitForStderr: (pattern, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`no ${String(pattern)} on stderr within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
        const check = (): void => {
          if (pattern.test(err)) finish(null);
        };
        function finish(e: Error | null): void {
          clearTimeout(timer);
          watchers.delete(check);
          if (e) reject(e);
          else resolve();
        }
        watchers.add(check);
        void exited.then(() => finish(pattern.test(err) ? null : new Error(`exited before ${String(pattern)}; stderr: ${err}`)));
        check();
      }),
  };
}
