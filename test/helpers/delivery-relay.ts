/**
 * The real relay in-process for delivery-engine tests: SMTP on 127.0.0.1:0, a fresh LevelDB
 * spool in a temp folder, log level silent, short retry schedule, and the caller's targets
 * and routes. DSNs go to a `file` target (`outbox`) so they never reach the sinks under test.
 *
 * ```ts
 * const t = await startDeliveryRelay({ targets: { hooks: { type: 'http', url: sink.url } },
 *                                      routes: [{ match: '*', target: 'hooks' }] });
 * afterEach(() => t.close());
 * const queueId = await t.send({ from: 'a@client.test', to: ['b@x.test'], raw: message() });
 * const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered');
 * ```
 *
 * Also: a child-process relay (`node bin/onward serve`) for crash tests, a pooled sender,
 * messages and an in-flight gauge for HTTP sinks; polling, ports and cleanup are in
 * common.ts. Nothing is mocked.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import type { Relay } from '../../src/app/index.js';
import type { Config } from '../../src/config/index.js';
import { newQueueId, type DeliveryRecord, type NewMessage } from '../../src/spool/index.js';
import { queuedId, sendRaw, sleep, spawnServeChild, startTempRelay, testConfig, waitForValue, type Yamlish } from './common.js';

/**
 * The config document for a delivery test relay in `dir`: `overrides` (targets, routes,
 * retry, ...) deep-merged over a base with a 200ms retry schedule, no jitter, and an
 * `outbox` file target that carries DSNs.
 */
export function deliveryConfigDoc(dir: string, overrides: Yamlish): Yamlish {
  const base: Yamlish = {
    limits: { maxMessageSize: '10MB', maxRecipients: 100, maxConnections: 200, maxConnectionsPerIp: 100 },
    relay: { allowNetworks: ['127.0.0.0/8', '::1/128'] },
    retry: { schedule: ['200ms'], jitter: 0 },
    targets: { outbox: { type: 'file', path: join(dir, 'outbox') } },
    bounces: { from: 'MAILER-DAEMON@relay.test', via: 'outbox' },
  };
  return testConfig(dir, base, overrides);
}

export interface DeliveryRelay {
  readonly relay: Relay;
  readonly config: Config;
  /** Bound SMTP port on 127.0.0.1. */
  readonly port: number;
  readonly dir: string;
  /** Sends `raw` with nodemailer and returns the queue id of the `250 ... queued as ID` reply. */
  send(envelope: { from: string; to: readonly string[] }, raw: string | Buffer): Promise<string>;
  /** Polls the spool until `done(deliveries)` holds; rejects with the last state after `timeoutMs`. */
  waitForDeliveries(queueId: string, done: (deliveries: DeliveryRecord[]) => boolean, timeoutMs?: number): Promise<DeliveryRecord[]>;
  /** Stops the relay (idempotent) and removes the temp folder. */
  close(): Promise<void>;
}

export async function startDeliveryRelay(overrides: Yamlish): Promise<DeliveryRelay> {
  const t = await startTempRelay('onward-delivery-', (dir) => deliveryConfigDoc(dir, overrides));
  return {
    ...t,
    send: async (envelope, raw) => queuedId(await sendRaw(t.port, envelope, raw)),
    waitForDeliveries: (queueId, done, timeoutMs = 5000) =>
      waitForValue(() => t.relay.spool.getDeliveries(queueId), done, timeoutMs, `deliveries of ${queueId}`),
  };
}

/**
 * Resolves once nothing more can go out: no entry left in the due index (any lane) and no
 * claim, attempt or outcome write in progress, seen on both sides of the index read. Then
 * "nothing else arrived" is a fact to assert, not a guess after a sleep.
 */
export async function waitForQuiet(relay: Relay, timeoutMs = 5000): Promise<void> {
  await waitForValue(
    async () => {
      const before = relay.scheduler.idle();
      const lanes = await relay.spool.lanes();
      return { before, lanes, after: relay.scheduler.idle() };
    },
    (s) => s.before && s.lanes.length === 0 && s.after,
    timeoutMs,
    'the relay to have nothing left to deliver',
  );
}

/** Many messages over a bounded nodemailer pool; resolves with the queue ids in order. */
export async function sendMany(
  port: number,
  messages: readonly { from: string; to: readonly string[]; raw: string | Buffer }[],
  maxConnections = 5,
): Promise<string[]> {
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    name: 'client.test',
  });
  try {
    return await Promise.all(
      messages.map(async (m) => {
        const info = (await transport.sendMail({ envelope: { from: m.from, to: [...m.to] }, raw: m.raw })) as { response: string };
        return queuedId(info.response);
      }),
    );
  } finally {
    transport.close();
  }
}

let counter = 0;

/** A small message for `<label>@hooks.test`, routed to the `hooks` target, as the spool takes it. */
export function hooksMessage(label: string): NewMessage {
  return {
    queueId: newQueueId(),
    sender: 'sender@client.test',
    recipients: [`${label}@hooks.test`],
    messageId: null,
    body: Buffer.from(`Subject: ${label}\r\n\r\n${label}\r\n`),
    client: { ip: '127.0.0.1', hostname: 'h', helo: 'h', user: null },
    deliveries: [{ targets: ['hooks'], recipients: [`${label}@hooks.test`] }],
    dedupKey: null,
    bounceOf: null,
  };
}

/** A small well-formed message (CRLF) with a unique Message-ID. */
export function simpleMessage(opts: { subject?: string; to?: string; body?: string } = {}): string {
  counter += 1;
  const id = `${Date.now().toString(36)}.${String(counter)}.${Math.random().toString(36).slice(2)}@client.test`;
  return [
    'From: Sender <sender@client.test>',
    `To: ${opts.to ?? 'rcpt@example.test'}`,
    `Subject: ${opts.subject ?? 'delivery test'}`,
    `Message-ID: <${id}>`,
    'Date: Fri, 27 Nov 2026 11:15:01 +0000',
    '',
    opts.body ?? 'Hello.',
    '',
  ].join('\r\n');
}

/**
 * Counts requests in flight at an HTTP sink: wrap the answer with `track`, which holds the
 * request for `delayMs` (counted as in flight) and then answers.
 */
export class InFlightGauge {
  current = 0;
  max = 0;
  /** In-flight count seen by each request when it arrived (itself included), with a phase label. */
  readonly samples: { phase: string; inFlight: number; at: number }[] = [];
  phase = 'start';

  async track<T>(delayMs: number, answer: T): Promise<T> {
    this.current += 1;
    this.max = Math.max(this.max, this.current);
    this.samples.push({ phase: this.phase, inFlight: this.current, at: Date.now() });
    try {
      await sleep(delayMs);
      return answer;
    } finally {
      this.current -= 1;
    }
  }

  maxIn(phase: string, from = 0): number {
    return Math.max(0, ...this.samples.filter((s) => s.phase === phase).slice(from).map((s) => s.inFlight));
  }
}

// ---------------------------------------------------------------------------------------
// The built relay as a child process (crash tests)

export interface ChildRelay {
  readonly child: ChildProcess;
  /** SMTP port the child bound (from its "onward ready" log line). */
  readonly port: number;
  /** Resolves with the exit code / signal once the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` to this child's PID only, if it still runs. */
  kill(signal: NodeJS.Signals): void;
}

/** Writes `configDoc` as YAML next to the spool and returns its path. */
export async function writeConfig(dir: string, configDoc: Yamlish, name = 'onward.yaml'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, stringify(configDoc));
  return path;
}

/** `node bin/onward serve --config <path>`; resolves once it logged "onward ready" (log level must be ≤ info). */
export async function spawnRelay(configPath: string, timeoutMs = 10_000): Promise<ChildRelay> {
  const serve = await spawnServeChild(configPath, { timeoutMs, settleMs: 0 });
  return {
    child: serve.child,
    port: serve.smtpPorts[0] ?? 0,
    exited: serve.exited.then(({ code, signal }) => ({ code, signal })),
    kill: (signal) => serve.signal(signal),
  };
}
