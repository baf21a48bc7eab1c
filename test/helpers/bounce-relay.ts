/**
 * A real relay for bounce (DSN) tests: `startRelay` on a fresh LevelDB temp dir, SMTP ingress on
 * 127.0.0.1 port 0, a short retry schedule, nodemailer as the submitting client. No mocks.
 *
 * ```ts
 * const defer = useCleanup();                       // from common.ts
 * const sink = await startSmtpSink();
 * defer(() => sink.close());
 * const t = await startBounceRelay({ targets: { ... }, routes: [...], bounces: { via: 'bounce' } });
 * defer(() => t.close());
 * const queueId = await submit(t.port, { from: 'alice@example.com', to: ['bob@example.org'] }, originalMessage());
 * ```
 */
import type { MessageRecord, Spool } from '../../src/spool/index.js';
import { queuedId, sendRaw, spoolContents, startTempRelay, testConfig, type TempRelay, type Yamlish } from './common.js';

/** A bounce test relay: `relay`, `config`, the SMTP ingress `port` on 127.0.0.1, its temp `dir`, and `close()`. */
export type BounceRelay = TempRelay;

/** Top-level keys of the YAML config, deep-merged over the base. */
export type ConfigOverrides = Yamlish;

/** Starts a relay on a fresh temp spool with a 200 ms retry schedule. `overrides` must name `targets` and `routes`. */
export function startBounceRelay(overrides: ConfigOverrides): Promise<BounceRelay> {
  const base = {
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
    retry: { schedule: ['200ms'], jitter: 0 },
    bounces: { from: 'postmaster@relay.test' },
  };
  return startTempRelay('onward-bounce-', (dir) => testConfig(dir, base, overrides));
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

/**
 * Submits `raw` with nodemailer (an empty `from` sends `MAIL FROM:<>`) and returns the queue id
 * from the relay's `250 2.0.0 Ok: queued as ID`.
 */
export async function submit(port: number, envelope: { from: string; to: readonly string[] }, raw: string): Promise<string> {
  return queuedId(await sendRaw(port, envelope, raw));
}

/** The DSN messages the relay generated about `queueId` (their `bounceOf`). */
export async function dsnsOf(spool: Spool, queueId: string): Promise<MessageRecord[]> {
  return (await spoolContents(spool)).map((e) => e.message).filter((m) => m.bounceOf === queueId);
}
