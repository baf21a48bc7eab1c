/**
 * A real relay for bounce (DSN) tests: `startRelay` on a fresh LevelDB temp dir, SMTP ingress on
 * 127.0.0.1 port 0, a short retry schedule, nodemailer as the submitting client. No mocks.
 *
 * ```ts
 * const defer = useCleanup();
 * const sink = await startSmtpSink();
 * defer(() => sink.close());
 * const t = await startBounceRelay({ targets: { ... }, routes: [...], bounces: { via: 'bounce' } });
 * defer(() => t.close());
 * const queueId = await submit(t.port, { from: 'alice@example.com', to: ['bob@example.org'] }, originalMessage());
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from '@jest/globals';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { startRelay, type Relay } from '../../src/app/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import type { DeliveryRecord, MessageRecord, MessageState, Spool } from '../../src/spool/index.js';

/**
 * Registers an afterEach that runs every deferred cleanup, last registered first, and returns
 * `defer`: call it right after creating anything that needs tearing down.
 */
export function useCleanup(): (cleanup: () => Promise<void> | void) => void {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (cleanup) => {
    cleanups.push(cleanup);
  };
}

export interface BounceRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** The bound SMTP ingress port on 127.0.0.1. */
  readonly port: number;
  readonly dir: string;
  /** Stops the relay (idempotent) and removes the temp folder. */
  close(): Promise<void>;
}

/** Top-level keys of the YAML config; objects given here replace the base's key by key (one level deep). */
export type ConfigOverrides = Record<string, unknown>;

/** The config every bounce relay starts from (YAML keys as an operator writes them). */
function baseConfig(dir: string): Record<string, unknown> {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    hostname: 'relay.test',
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
    // Shared test disks: keep the free-space floor out of the way.
    spool: { path: join(dir, 'spool'), minFreeDisk: '1MB' },
    retry: { schedule: ['200ms'], jitter: 0 },
    bounces: { from: 'postmaster@relay.test' },
    admin: { host: '127.0.0.1', port: 0 },
    shutdownGrace: '1s',
    log: { level: 'silent' },
  };
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Starts a relay on a fresh temp spool. `overrides` must name `targets` and `routes`. */
export async function startBounceRelay(overrides: ConfigOverrides): Promise<BounceRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'onward-bounce-'));
  const doc: Record<string, unknown> = baseConfig(dir);
  for (const [key, value] of Object.entries(overrides)) {
    const base = doc[key];
    doc[key] = isMapping(base) && isMapping(value) && key !== 'targets' ? { ...base, ...value } : value;
  }
  let relay: Relay;
  let config: Config;
  try {
    config = parseConfig(stringify(doc), {});
    relay = await startRelay(config, pino({ level: 'silent' }));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const address = relay.smtpAddresses[0];
  if (!address) throw new Error('relay has no SMTP listener');
  return {
    relay,
    config,
    port: address.port,
    dir,
    async close() {
      await relay.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An SMTP target config for a sink on 127.0.0.1 that never trips its circuit breaker in a test. */
export function smtpTarget(port: number): Record<string, unknown> {
  return {
    type: 'smtp',
    host: '127.0.0.1',
    port,
    timeout: '5s',
    pool: { maxConnections: 2, maxMessagesPerConnection: 100 },
    circuit: { failures: 1000 },
  };
}

/** An HTTP target config for a sink URL that never trips its circuit breaker in a test. */
export function httpTarget(url: string, format: 'json' | 'raw' = 'json'): Record<string, unknown> {
  return { type: 'http', url, format, timeout: '5s', circuit: { failures: 1000 } };
}

/** A well-formed original message with CRLF line endings. */
export function originalMessage(opts: { subject: string; messageId: string; from?: string; to?: string }): string {
  return (
    [
      `From: ${opts.from ?? 'Alice <alice@example.com>'}`,
      `To: ${opts.to ?? 'bob@example.org'}`,
      `Subject: ${opts.subject}`,
      `Message-ID: <${opts.messageId}>`,
      'Date: Fri, 27 Nov 2026 11:15:01 +0000',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'Hello, this is the original body.',
      '',
    ].join('\r\n')
  );
}

const QUEUED = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/;

/**
 * Submits `raw` with nodemailer (an empty `from` sends `MAIL FROM:<>`) and returns the queue id
 * from the relay's `250 2.0.0 Ok: queued as ID`.
 */
export async function submit(port: number, envelope: { from: string; to: readonly string[] }, raw: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.test' });
  try {
    const info = (await transport.sendMail({ envelope: { from: envelope.from, to: [...envelope.to] }, raw })) as { response: string };
    const id = QUEUED.exec(info.response)?.[1];
    if (!id) throw new Error(`expected "250 2.0.0 Ok: queued as ID", got ${JSON.stringify(info.response)}`);
    return id;
  } finally {
    transport.close();
  }
}

const ALL_STATES: readonly MessageState[] = ['queued', 'deferred', 'held', 'delivered', 'bounced', 'deleted'];

/** Every message in the (running) relay's spool, any state, with its deliveries. */
export async function spoolContents(spool: Spool): Promise<Array<{ message: MessageRecord; deliveries: DeliveryRecord[] }>> {
  const out: Array<{ message: MessageRecord; deliveries: DeliveryRecord[] }> = [];
  for await (const entry of spool.list({ states: ALL_STATES })) out.push(entry);
  return out;
}

/** The DSN messages the relay generated about `queueId` (their `bounceOf`). */
export async function dsnsOf(spool: Spool, queueId: string): Promise<MessageRecord[]> {
  return (await spoolContents(spool)).map((e) => e.message).filter((m) => m.bounceOf === queueId);
}

/** Polls `probe` until it returns a value other than undefined/false; rejects after `timeoutMs`. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await sleep(25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
