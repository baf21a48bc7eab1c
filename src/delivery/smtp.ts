/**
 * SMTP target: nodemailer's pooled client, sending the stored bytes unchanged with our envelope
 * and reporting one result per recipient (SPEC section 4).
 */
import { domainToASCII } from 'node:url';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { SmtpTargetConfig } from '../config/types.js';
import {
  classifySmtpCode,
  errorReply,
  isContentionError,
  isTimeoutError,
  smtpReply,
} from './classify.js';
import { createDkimSigner, type DkimSign } from './dkim.js';
import { localFailureResult, notAttemptedResult } from './results.js';
import type { DeliveryJob, RecipientResult, Reply, Transport, TransportResult } from './types.js';

export interface SmtpTransportOptions {
  /** Name to announce in EHLO; nodemailer uses the machine's hostname when absent. */
  readonly heloName?: string;
}

/** Commands whose reply speaks about this message; a 5xx anywhere else (greeting, STARTTLS, AUTH) is our or their setup, not the message. */
export const MESSAGE_COMMANDS = new Set(['MAIL FROM', 'RCPT TO', 'DATA']);

/**
 * Relays each delivery through a nodemailer connection pool with `MAIL FROM:<from>` (`<>` for
 * the null sender) and one `RCPT TO` per recipient, streaming the stored bytes unchanged
 * (with a `DKIM-Signature` prepended when the target has a key for the From: domain).
 * Results are per recipient: a refused RCPT is judged by its own reply, a refused MAIL FROM or
 * DATA by that reply, setup failures (connect, TLS, greeting, AUTH, timeout) are ERROR for all.
 * `deliver` never rejects; `close` ends the pool.
 */
export function createSmtpTransport(target: SmtpTargetConfig, options: SmtpTransportOptions = {}): Transport {
  const poolOptions: SMTPPool.Options = {
    pool: true,
    host: target.host,
    port: target.port,
    secure: target.secure === 'tls',
    requireTLS: target.secure === 'starttls',
    ignoreTLS: target.secure === 'none',
    tls: { rejectUnauthorized: target.tlsRejectUnauthorized },
    maxConnections: target.pool.maxConnections,
    maxMessages: target.pool.maxMessagesPerConnection,
    connectionTimeout: target.timeoutMs,
    greetingTimeout: target.timeoutMs,
    socketTimeout: target.timeoutMs,
    // nodemailer re-queues a message whose connection dropped, by default 5 times; one more
    // try covers a pooled connection the server had closed, the rest is the scheduler's job.
    maxRequeues: 1,
    logger: false,
  };
  if (target.auth !== null) poolOptions.auth = { user: target.auth.user, pass: target.auth.pass };
  if (options.heloName !== undefined) poolOptions.name = options.heloName;
  const transporter = nodemailer.createTransport(poolOptions);
  // Failures reach us through sendMail; an 'error' event without a listener would kill the process.
  transporter.on('error', () => undefined);
  const sign = createDkimSigner(target.dkim);

  let closed = false;
  return {
    deliver: (job) => {
      // A closed nodemailer pool drops new messages without ever calling back.
      if (closed) return Promise.resolve(notAttemptedResult(job, 'SMTP transport closed'));
      return deliverSmtp(transporter, target, sign, job);
    },
    close: () => {
      if (!closed) transporter.close();
      closed = true;
      return Promise.resolve();
    },
  };
}

async function deliverSmtp(
  transporter: Transporter<SMTPPool.SentMessageInfo, SMTPPool.Options>,
  target: SmtpTargetConfig,
  sign: DkimSign,
  job: DeliveryJob,
): Promise<TransportResult> {
  const startedAt = performance.now();
  let raw: Buffer;
  try {
    raw = await sign(job.body);
  } catch (err) {
    // Never send unsigned what should be signed (the receiver's DMARC would judge it);
    // our failure, not the target's: ERROR, retried, the target's health untouched.
    return localFailureResult(job, err instanceof Error ? err.message : String(err), performance.now() - startedAt);
  }
  const finish = (recipients: RecipientResult[], contention: boolean): TransportResult => ({
    recipients,
    durationMs: Math.round(performance.now() - startedAt),
    retryAfterMs: null,
    contention,
  });
  try {
    const info = await transporter.sendMail({
      // An empty `from` makes nodemailer send MAIL FROM:<> (the null sender of bounces).
      envelope: { from: job.envelope.from, to: [...job.envelope.to] },
      raw,
    });
    const rejected = rejectedReplies(job, info.rejectedErrors);
    const accepted = smtpReply(info.response);
    return finish(
      job.envelope.to.map((address) => rejected.get(address) ?? { address, outcome: 'ok', reply: accepted }),
      false,
    );
  } catch (err) {
    return finish(resultsForError(job, target, err), isContention(err));
  }
}

/** 421 is SMTP's 503: the server is there but will not take more now. */
export function isContention(err: unknown): boolean {
  const code = asSmtpError(err).responseCode;
  return code === undefined ? isContentionError(err) : code === 421;
}

export function resultsForError(job: DeliveryJob, target: { readonly timeoutMs: number }, err: unknown): RecipientResult[] {
  const e = asSmtpError(err);
  const rejected = rejectedReplies(job, e.rejectedErrors);
  let outcome: RecipientResult['outcome'] = 'error';
  let reply: Reply;
  if (e.response !== undefined && e.responseCode !== undefined) {
    reply = smtpReply(e.response);
    if (e.command !== undefined && MESSAGE_COMMANDS.has(e.command)) outcome = classifySmtpCode(e.responseCode);
  } else {
    reply = errorReply('smtp', err, isTimeoutError(err) ? target.timeoutMs : undefined);
  }
  return job.envelope.to.map((address) => rejected.get(address) ?? { address, outcome, reply });
}

/**
 * Per-recipient results from nodemailer's `rejectedErrors` (one error per refused RCPT TO,
 * carrying the recipient as nodemailer normalised it), keyed by the job's own address.
 */
export function rejectedReplies(job: DeliveryJob, errors: readonly unknown[] | undefined): Map<string, RecipientResult> {
  const results = new Map<string, RecipientResult>();
  if (errors === undefined || errors.length === 0) return results;
  const original = new Map(job.envelope.to.map((address) => [normaliseAddress(address), address]));
  for (const item of errors) {
    const e = asSmtpError(item);
    const address = e.recipient === undefined ? undefined : original.get(normaliseAddress(e.recipient));
    if (address === undefined || e.response === undefined) continue;
    const reply = smtpReply(e.response);
    const outcome = reply.code === null ? 'error' : classifySmtpCode(reply.code);
    results.set(address, { address, outcome, reply });
  }
  return results;
}

/** What nodemailer puts in RCPT TO for an address: the domain lower-cased and punycoded. */
function normaliseAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address.trim();
  const domain = address.slice(at + 1).trim().toLowerCase();
  return `${address.slice(0, at).trim()}@${domainToASCII(domain) || domain}`;
}

export interface SmtpErrorShape {
  readonly command: string | undefined;
  readonly response: string | undefined;
  readonly responseCode: number | undefined;
  readonly recipient: string | undefined;
  readonly rejectedErrors: readonly unknown[] | undefined;
}

/** nodemailer decorates plain Errors with these fields; read them without trusting their presence. */
export function asSmtpError(err: unknown): SmtpErrorShape {
  const o: Record<string, unknown> = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    command: str(o['command']),
    response: str(o['response']),
    responseCode: typeof o['responseCode'] === 'number' ? o['responseCode'] : undefined,
    recipient: str(o['recipient']),
    rejectedErrors: Array.isArray(o['rejectedErrors']) ? (o['rejectedErrors'] as unknown[]) : undefined,
  };
}
