/**
 * The delivery thread: transports (nodemailer, undici, file writes) run in a worker thread,
 * so their CPU — protocol parsing, socket writes to the downstream — does not compete with
 * SMTP ingress and the spool on the main thread. The scheduler, target state and spool stay
 * here; only DeliveryJob in and TransportResult out cross the thread boundary.
 *
 * If the thread dies, every attempt it had in flight ends as a local failure (ERROR,
 * retried on schedule; the target is not blamed) and a new thread re-opens the live
 * transports — after a growing pause when threads keep dying young, so a fault that kills
 * every new thread cannot spin.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TargetConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { describeError } from './classify.js';
import { localFailureResult } from './results.js';
import type { TransportOptions } from './transports.js';
import type { DeliveryJob, Transport, TransportResult } from './types.js';

/** Host → thread. `open` makes transport `id`; `deliver` and `close` are calls answered by `call`. */
export type ThreadRequest =
  | { readonly kind: 'open'; readonly id: number; readonly target: TargetConfig; readonly options: TransportOptions }
  | { readonly kind: 'deliver'; readonly id: number; readonly call: number; readonly job: DeliveryJob }
  | { readonly kind: 'close'; readonly id: number; readonly call: number };

/** Thread → host: the answer to one call. */
export interface ThreadReply {
  readonly call: number;
  readonly result: TransportResult | null;
  readonly error: string | null;
}

const COMPILED_WORKER = new URL('./transport-worker.js', import.meta.url);
/** A thread that lived shorter than this died young: the next one waits. */
const HEALTHY_LIFETIME_MS = 10_000;
const MAX_RESPAWN_DELAY_MS = 30_000;
/** The thread's young generation (V8's default is larger): ~25 MB less memory, same speed. */
const THREAD_YOUNG_GENERATION_MB = 8;

export class TransportHost {
  private worker: Worker;
  private readonly opened = new Map<number, ThreadRequest & { kind: 'open' }>();
  private readonly calls = new Map<number, (reply: ThreadReply) => void>();
  private nextId = 1;
  private nextCall = 1;
  private closing = false;
  /** False between a thread's death and its replacement. */
  private alive = false;
  private respawnDelayMs = 0;
  private respawnTimer: NodeJS.Timeout | null = null;

  /**
   * The compiled worker script, or null when running from the TypeScript sources (under
   * ts-jest): then transports run on the main thread.
   */
  static compiledWorker(): URL | null {
    return existsSync(fileURLToPath(COMPILED_WORKER)) ? COMPILED_WORKER : null;
  }

  constructor(
    private readonly log: Logger,
    private readonly script: URL = COMPILED_WORKER,
  ) {
    this.worker = this.spawn();
  }

  /** A Transport whose work runs on the delivery thread. */
  open(target: TargetConfig, options: TransportOptions): Transport {
    const id = this.nextId++;
    const request = { kind: 'open', id, target, options } as const;
    this.opened.set(id, request);
    this.worker.postMessage(request);
    return {
      deliver: async (job) => {
        const started = performance.now();
        const reply = await this.call((call) => ({ kind: 'deliver', id, call, job }));
        return reply.result ?? localFailureResult(job, reply.error ?? 'delivery thread gave no result', performance.now() - started);
      },
      close: async () => {
        this.opened.delete(id);
        await this.call((call) => ({ kind: 'close', id, call }));
      },
    };
  }

  /** Stops the thread; calls still in flight end as ERROR. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    await this.worker.terminate();
  }

  private call(request: (call: number) => ThreadRequest): Promise<ThreadReply> {
    if (this.closing) return Promise.resolve({ call: 0, result: null, error: 'delivery thread stopped' });
    if (!this.alive) return Promise.resolve({ call: 0, result: null, error: 'delivery thread restarting' });
    const call = this.nextCall++;
    return new Promise((resolve) => {
      this.calls.set(call, resolve);
      try {
        this.worker.postMessage(request(call));
      } catch (err) {
        // Not sent (a job that cannot be cloned, a thread going away): answered here, at once.
        this.calls.delete(call);
        resolve({ call, result: null, error: `cannot hand the job to the delivery thread: ${describeError(err)}` });
      }
    });
  }

  private spawn(): Worker {
    const bornAt = Date.now();
    this.alive = true;
    const worker = new Worker(this.script, { resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB } });
    worker.on('message', (reply: ThreadReply) => {
      const done = this.calls.get(reply.call);
      this.calls.delete(reply.call);
      done?.(reply);
    });
    worker.on('error', (err) => this.log.error({ err }, 'delivery thread failed'));
    worker.on('exit', (code) => {
      this.alive = false;
      const lost = [...this.calls.values()];
      this.calls.clear();
      const error = this.closing ? 'delivery thread stopped' : `delivery thread exited (code ${code}) during the attempt`;
      for (const done of lost) done({ call: 0, result: null, error });
      if (this.closing) return;
      const young = Date.now() - bornAt < HEALTHY_LIFETIME_MS;
      this.respawnDelayMs = young ? Math.min(MAX_RESPAWN_DELAY_MS, Math.max(100, this.respawnDelayMs * 2)) : 0;
      this.log.error({ code, lostAttempts: lost.length, restartInMs: this.respawnDelayMs }, 'delivery thread exited; starting a new one');
      this.respawnTimer = setTimeout(() => {
        this.respawnTimer = null;
        if (this.closing) return;
        this.worker = this.spawn();
        for (const request of this.opened.values()) this.worker.postMessage(request);
      }, this.respawnDelayMs);
    });
    return worker;
  }
}
