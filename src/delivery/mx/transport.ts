/**
 * mx target (SPEC 13): direct delivery to each recipient domain's mail exchangers.
 *
 * One attempt walks the domain's exchangers in preference order (MxResolver) and each one's
 * addresses (A, then AAAA). Connecting, the greeting, EHLO and STARTTLS are the host's: a
 * host that refuses, times out, answers 4xx/5xx there or fails TLS passes the attempt to the
 * next address/host. Once a host takes MAIL FROM, its replies decide: per recipient, 2xx OK,
 * 5xx FAIL, 4xx ERROR (as the smtp target). When no host could be reached the attempt is an
 * ERROR for every recipient with the last host's reply. DNS decides FAIL (null MX 5.1.10,
 * NXDOMAIN 5.1.2) or ERROR (SERVFAIL, timeouts) before any connection.
 *
 * STARTTLS: `opportunistic` uses it when offered, certificates not verified (as MTAs do); a
 * failed handshake marks the address, whose next session goes in plain text (bounded
 * memory); `required` makes a host without working STARTTLS a failure of that host; `none`
 * never uses it. Sessions are not pooled: one connection per delivery attempt.
 */
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { MxTargetConfig } from '../../config/types.js';
import { recipientDomain } from '../../spool/ids.js';
import { MX_WALK_TIMEOUTS } from '../attempt.js';
import { errorReply, isContentionError, isTimeoutError, smtpReply } from '../classify.js';
import { createDkimSigner, type DkimSign } from '../dkim.js';
import { localFailureResult, notAttemptedResult } from '../results.js';
import { asSmtpError, isContention, rejectedReplies, resultsForError } from '../smtp.js';
import type { DeliveryJob, RecipientResult, Reply, Transport, TransportResult } from '../types.js';
import { MxResolver, TtlCache, type MxHost } from './resolve.js';

export interface MxTransportOptions {
  /** EHLO name: the relay's `hostname`. */
  readonly heloName?: string;
}

/** Addresses whose STARTTLS handshake failed: their next session goes in plain text (opportunistic). */
const TLS_FAILED_ENTRIES = 4096;
const TLS_FAILED_TTL_MS = 3600_000;
/** Most addresses tried in one attempt (Postfix: smtp_mx_address_limit 5; we allow a few more). */
const MAX_ADDRESSES_PER_ATTEMPT = 10;

type SessionResult =
  /** The host could not take the message (connect, greeting, EHLO, TLS): try the next. */
  | { readonly kind: 'next'; readonly reply: Reply; readonly contention: boolean }
  /** The host answered for the message: these are the recipients' outcomes. */
  | { readonly kind: 'done'; readonly recipients: RecipientResult[]; readonly contention: boolean };

export function createMxTransport(target: MxTargetConfig, options: MxTransportOptions = {}): Transport {
  const resolver = new MxResolver({ servers: target.resolver, timeoutMs: Math.min(target.timeoutMs, 10_000) });
  const sign = createDkimSigner(target.dkim);
  const tlsFailed = new TtlCache<true>(TLS_FAILED_ENTRIES);
  const open = new Set<SMTPConnection>();
  let closed = false;
  const deps: SessionDeps = { target, heloName: options.heloName, tlsFailed, open };
  return {
    deliver: (job) => (closed ? Promise.resolve(notAttemptedResult(job, 'mx transport closed')) : deliverMx(deps, resolver, sign, job)),
    close: () => {
      closed = true;
      for (const c of open) c.close();
      open.clear();
      return Promise.resolve();
    },
  };
}

interface SessionDeps {
  readonly target: MxTargetConfig;
  readonly heloName: string | undefined;
  readonly tlsFailed: TtlCache<true>;
  readonly open: Set<SMTPConnection>;
}

async function deliverMx(deps: SessionDeps, resolver: MxResolver, sign: DkimSign, job: DeliveryJob): Promise<TransportResult> {
  const startedAt = performance.now();
  const finish = (recipients: RecipientResult[], contention: boolean): TransportResult => ({
    recipients,
    durationMs: Math.round(performance.now() - startedAt),
    retryAfterMs: null,
    contention,
  });
  const all = (outcome: RecipientResult['outcome'], reply: Reply): RecipientResult[] => job.envelope.to.map((address) => ({ address, outcome, reply }));
  const domain = job.domain ?? recipientDomain(job.envelope.to[0] ?? '');

  let raw: Buffer;
  try {
    raw = await sign(job.body);
  } catch (err) {
    // Never send unsigned what should be signed; our failure, not the domain's.
    return localFailureResult(job, err instanceof Error ? err.message : String(err), performance.now() - startedAt);
  }

  const mx = await resolver.mailExchangers(domain);
  if (mx.kind === 'fail') return finish(all('fail', dnsReply(mx.text, mx.status)), false);
  if (mx.kind === 'error') return finish(all('error', dnsReply(mx.text, '4.4.3')), false);

  let last: SessionResult | null = null;
  let tried = 0;
  let noAddress: string | null = null;
  for (const host of mx.hosts) {
    const found = await resolver.addressesOf(host.name);
    if (found.kind !== 'addresses') {
      noAddress = found.text;
      if (found.kind === 'none' && host.implicit) {
        // The domain exists (no MX) but has no address either: nowhere to deliver (RFC 5321 §5.1).
        return finish(all('fail', dnsReply(`${domain}: no MX and no A/AAAA record`, '5.4.4')), false);
      }
      continue;
    }
    for (const ip of found.addresses) {
      // Bounded: the scheduler's attempt bound (attemptBoundMs) allows MX_WALK_TIMEOUTS timeouts of walking.
      if (tried >= MAX_ADDRESSES_PER_ATTEMPT || performance.now() - startedAt > MX_WALK_TIMEOUTS * deps.target.timeoutMs) break;
      tried += 1;
      last = await session(deps, host, ip, job, raw);
      if (last.kind === 'done') return finish(last.recipients, last.contention);
    }
  }
  if (last === null) return finish(all('error', dnsReply(`no reachable mail exchanger for ${domain}${noAddress === null ? '' : ` (${noAddress})`}`, '4.4.3')), false);
  return finish(all('error', last.reply), last.contention);
}

/** One SMTP session with one address of one exchanger. Never rejects. */
async function session(deps: SessionDeps, host: MxHost, ip: string, job: DeliveryJob, raw: Buffer): Promise<SessionResult> {
  const { target } = deps;
  const remoteMta = host.name;
  const tlsKey = `${ip}:${target.port}`;
  const plainRetry = target.tls === 'opportunistic' && deps.tlsFailed.get(tlsKey, Date.now()) === true;
  const servername = isIP(host.name) === 0 ? host.name : undefined;
  const connection = new SMTPConnection({
    host: ip,
    port: target.port,
    ...(deps.heloName !== undefined ? { name: deps.heloName } : {}),
    // STARTTLS only when the server offers it (`required` then checks that the session is secure:
    // a host that does not offer it fails, as Postfix's `encrypt` level does).
    ignoreTLS: target.tls === 'none' || plainRetry,
    // A server that offers STARTTLS and then refuses the command: go on in plain text.
    opportunisticTLS: target.tls === 'opportunistic',
    tls: { rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) },
    ...(servername !== undefined ? { servername } : {}),
    connectionTimeout: target.timeoutMs,
    greetingTimeout: target.timeoutMs,
    socketTimeout: target.timeoutMs,
    logger: false,
  });
  deps.open.add(connection);
  let failure: ((err: unknown) => void) | null = null;
  connection.on('error', (err: unknown) => failure?.(err));
  connection.on('end', () => failure?.(new Error('connection closed unexpectedly')));
  const withReply = (reply: Reply): Reply => ({ ...reply, remoteMta });
  try {
    try {
      await new Promise<void>((resolve, reject) => {
        failure = reject;
        connection.connect((err?: unknown) => (err ? reject(asError(err)) : resolve()));
      });
    } catch (err) {
      const e = asSmtpError(err);
      if (isTlsFailure(err) && target.tls === 'opportunistic') deps.tlsFailed.set(tlsKey, true, Date.now() + TLS_FAILED_TTL_MS);
      const reply = e.response !== undefined ? smtpReply(e.response) : errorReply('smtp', err, isTimeoutError(err) ? target.timeoutMs : undefined);
      return { kind: 'next', reply: withReply(annotate(reply, host, ip)), contention: reply.code === 421 || isContentionError(err) };
    }
    if (target.tls === 'required' && !connection.secure) {
      const reply: Reply = { kind: 'x-onward', code: null, enhancedStatus: '4.7.10', text: `${host.name} [${ip}] does not offer STARTTLS (tls: required)` };
      return { kind: 'next', reply: withReply(reply), contention: false };
    }
    try {
      const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        failure = reject;
        connection.send({ from: job.envelope.from, to: [...job.envelope.to] }, raw, (err: unknown, sent: SMTPConnection.SentMessageInfo) => (err ? reject(asError(err)) : resolve(sent)));
      });
      failure = null;
      connection.quit();
      const rejected = rejectedReplies(job, info.rejectedErrors);
      const accepted = withReply(smtpReply(info.response));
      const recipients = job.envelope.to.map((address) => {
        const r = rejected.get(address);
        return r ? { ...r, reply: withReply(r.reply) } : { address, outcome: 'ok' as const, reply: accepted };
      });
      return { kind: 'done', recipients, contention: false };
    } catch (err) {
      // Per recipient as the smtp target decides it, each reply naming the host that gave it.
      const recipients = resultsForError(job, target, err).map((r) => ({ ...r, reply: withReply(r.reply) }));
      return { kind: 'done', recipients, contention: isContention(err) };
    }
  } finally {
    failure = null;
    deps.open.delete(connection);
    connection.close();
  }
}

/** Network errors name the exchanger and address they came from (the SMTP replies speak for themselves). */
function annotate(reply: Reply, host: MxHost, ip: string): Reply {
  if (reply.code !== null) return { ...reply, text: `${reply.text} (from ${host.name} [${ip}])` };
  return { ...reply, text: `${host.name} [${ip}]: ${reply.text}` };
}

function dnsReply(text: string, status: string): Reply {
  return { kind: 'x-onward', code: null, enhancedStatus: status, text };
}

function isTlsFailure(err: unknown): boolean {
  const o = typeof err === 'object' && err !== null ? (err as { code?: unknown; command?: unknown }) : {};
  return o.code === 'ETLS' || (typeof o.command === 'string' && o.command.toUpperCase() === 'STARTTLS');
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
