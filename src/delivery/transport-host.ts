/**
 * The delivery thread: transports (nodemailer, fetch, file writes) run in a worker thread,
 * so their CPU — protocol parsing, socket writes to the downstream — does not compete with
 * SMTP ingress and the spool on the main thread. The scheduler, target state and spool stay
 * here; only DeliveryJob in and TransportResult out cross the thread boundary.
 *
 * If the thread dies, every attempt it had in flight ends as ERROR (retried on schedule, as
 * for any unknown outcome) and a new thread re-opens the live transports.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TargetConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { notAttemptedResult } from './results.js';
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

export class TransportHost {
  private worker: Worker;
  private readonly opened = new Map<number, ThreadRequest & { kind: 'open' }>();
  private readonly calls = new Map<number, (reply: ThreadReply) => void>();
  private nextId = 1;
  private nextCall = 1;
  private closing = false;

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
        return reply.result ?? notAttemptedResult(job, reply.error ?? 'delivery thread gave no result', performance.now() - started);
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
    await this.worker.terminate();
  }

  private call(request: (call: number) => ThreadRequest): Promise<ThreadReply> {
    if (this.closing) return Promise.resolve({ call: 0, result: null, error: 'delivery thread stopped' });
    const call = this.nextCall++;
    return new Promise((resolve) => {
      this.calls.set(call, resolve);
      this.worker.postMessage(request(call));
    });
  }

  private spawn(): Worker {
    const worker = new Worker(this.script, { resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    worker.on('message', (reply: ThreadReply) => {
      const done = this.calls.get(reply.call);
      this.calls.delete(reply.call);
      done?.(reply);
    });
    worker.on('error', (err) => this.log.error({ err }, 'delivery thread failed'));
    worker.on('exit', (code) => {
      const lost = [...this.calls.values()];
      this.calls.clear();
      const error = this.closing ? 'delivery thread stopped' : `delivery thread exited (code ${code}) during the attempt`;
      for (const done of lost) done({ call: 0, result: null, error });
      if (this.closing) return;
      this.log.error({ code, lostAttempts: lost.length }, 'delivery thread exited; starting a new one');
      this.worker = this.spawn();
      for (const request of this.opened.values()) this.worker.postMessage(request);
    });
    return worker;
  }
}
