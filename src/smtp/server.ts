import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { AcceptPipeline, isAddress, type AcceptRefusal } from '../accept/index.js';
import { readTlsMaterial } from '../config/tls.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Spool, SpoolCapacity } from '../spool/index.js';
import { AuthFailureLimiter, authenticate } from './auth.js';
import './connection-patches.js';
import { SmtpReplyError, replies } from './replies.js';
import { guardLimits, guardSession } from './session-guard.js';

export type ReceiveResult = 'queued' | 'duplicate' | 'rejected' | 'aborted' | 'error';

export interface IngressEvents {
  /** One per finished mail transaction (DATA answered). */
  transaction: [{ result: ReceiveResult; queueId: string | null; size: number; spoolSeconds: number | null }];
}

export interface IngressDeps {
  readonly config: Config;
  readonly spool: Spool;
  readonly capacity: SpoolCapacity;
  readonly logger: Logger;
  /** The accept steps shared with the other front doors; one of its own when not given. */
  readonly pipeline?: AcceptPipeline;
}


/**
 * SMTP front door: applies relay policy and limits, reads DATA, and answers 250 only
 * after the spool has synced the message. `reconfigure` swaps policy (routes, limits,
 * users, TLS) in place for SIGHUP; listeners and the spool stay.
 */
export class SmtpIngress extends EventEmitter<IngressEvents> {
  private readonly servers: SMTPServer[] = [];
  private readonly perIp = new Map<string, number>();
  /** Sessions counted in `perIp`, with their guard's cleanup (onClose runs for refused connections too). */
  private readonly sessions = new Map<string, () => void>();
  private readonly log: Logger;
  private config: Config;
  private readonly pipeline: AcceptPipeline;
  /** Whether `reconfigure` passes the config on to the pipeline (it owns it) or the composition root does. */
  private readonly ownsPipeline: boolean;
  private readonly authFailures: AuthFailureLimiter;
  private inData = 0;
  private shuttingDown = false;

  constructor(private readonly deps: IngressDeps) {
    super();
    this.config = deps.config;
    this.ownsPipeline = deps.pipeline === undefined;
    this.pipeline = deps.pipeline ?? new AcceptPipeline({ config: deps.config, spool: deps.spool, capacity: deps.capacity });
    this.authFailures = new AuthFailureLimiter(deps.config.limits.maxAuthFailures);
    this.log = deps.logger.child({ component: 'smtp' });
  }

  async start(): Promise<AddressInfo[]> {
    const addresses: AddressInfo[] = [];
    const tls = readTlsMaterial(this.config) ?? {};
    for (const listener of this.config.listen) {
      const server = new SMTPServer({ ...this.serverOptions(listener.implicitTls), ...tls });
      server.on('error', (err) => this.log.warn({ err }, 'smtp listener error'));
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(listener.port, listener.host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
      addresses.push(server.server.address() as AddressInfo);
    }
    return addresses;
  }

  /** New routes, limits, users and TLS material for sessions from now on. */
  reconfigure(config: Config): void {
    const tls = readTlsMaterial(config) ?? {};
    this.config = config;
    if (this.ownsPipeline) this.pipeline.reconfigure(config);
    this.authFailures.setLimit(config.limits.maxAuthFailures);
    for (const server of this.servers) {
      // The options smtp-server reads per connection or per command; the rest of the policy
      // is read from `this.config` (greetingDelayMs by connection-patches.ts).
      Object.assign(server.options, {
        size: config.limits.maxMessageSizeBytes,
        maxClients: config.limits.maxConnections,
        socketTimeout: config.limits.idleTimeoutMs,
        greetingDelayMs: config.smtp.greetingDelayMs,
      });
      if (config.tls) server.updateSecureContext(tls);
    }
  }

  /** Stops accepting; lets messages in DATA finish (up to `graceMs`); then 421s the rest. */
  async close(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve())));
    const deadline = Date.now() + graceMs;
    while (this.inData > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const server of this.servers) {
      for (const connection of server.connections) {
        connection.send(421, replies.shuttingDown().message);
        connection.close();
      }
    }
    await Promise.all(closed);
  }

  private serverOptions(implicitTls: boolean): SMTPServerOptions & { greetingDelayMs: number } {
    const { config } = this;
    return {
      greetingDelayMs: config.smtp.greetingDelayMs,
      name: config.hostname,
      banner: 'onward',
      secure: implicitTls,
      hideSTARTTLS: config.tls === null,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      size: config.limits.maxMessageSizeBytes,
      maxClients: config.limits.maxConnections,
      socketTimeout: config.limits.idleTimeoutMs,
      authOptional: true,
      authMethods: ['PLAIN', 'LOGIN'],
      // AUTH over plaintext is decided per session in enableCommands (from the config of the
      // moment, SIGHUP included), which also decides what EHLO advertises; smtp-server's own
      // check would read a start-time value and answer 538 to an AUTH it had advertised.
      allowInsecureAuth: true,
      disableReverseLookup: true,
      logger: false,
      onConnect: (session, cb) => cb(this.onConnect(session)),
      onSecure: (_socket, session, cb) => {
        this.enableCommands(session);
        cb();
      },
      onClose: (session) => this.onClose(session),
      onAuth: (auth, session, cb) => {
        this.onAuth(auth, session).then(
          (user) => cb(null, { user }),
          (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
        );
      },
      // Answered on the next tick, like smtp-server's own default handlers: a synchronous
      // answer while smtp-server replays pipelined input after DATA makes SMTPStream.continue()
      // drop its next continuation, and every command after a second pipelined DATA is lost.
      onMailFrom: (address, session, cb) => {
        const reply = this.onMailFrom(address.address, session);
        setImmediate(() => cb(reply));
      },
      onRcptTo: (address, session, cb) => {
        const reply = this.onRcptTo(address.address, session);
        setImmediate(() => cb(reply));
      },
      onData: (stream, session, cb) => {
        this.onData(stream, session).then(
          (text) => cb(null, text),
          (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
        );
      },
    };
  }

  private onConnect(session: SMTPServerSession): SmtpReplyError | null {
    if (this.shuttingDown) return replies.shuttingDown();
    const count = this.perIp.get(session.remoteAddress) ?? 0;
    if (count >= this.config.limits.maxConnectionsPerIp) return replies.tooManyConnections();
    this.perIp.set(session.remoteAddress, count + 1);
    const connection = this.connectionOf(session);
    const unguard = connection
      ? guardSession(connection, guardLimits(this.config.limits), (violation) =>
          this.log.warn({ client: session.remoteAddress, violation }, 'session closed by limit'),
        )
      : () => undefined;
    this.sessions.set(session.id, unguard);
    this.enableCommands(session);
    return null;
  }

  /**
   * AUTH only over TLS (unless allowInsecureAuth) and only when users exist; STARTTLS only
   * with our own certificate (smtp-server would otherwise fall back to a built-in one).
   */
  private enableCommands(session: SMTPServerSession): void {
    const disabled: string[] = [];
    if (this.config.tls === null) disabled.push('STARTTLS');
    if (this.config.relay.users.length === 0 || (!session.secure && !this.config.relay.allowInsecureAuth)) disabled.push('AUTH');
    session.disabledCommands = disabled;
  }

  private connectionOf(session: SMTPServerSession): SMTPServer['connections'] extends Set<infer C> ? C | undefined : never {
    for (const server of this.servers) for (const c of server.connections) if (c.session === session) return c;
    return undefined;
  }

  private onClose(session: SMTPServerSession): void {
    const unguard = this.sessions.get(session.id);
    if (!unguard) return;
    unguard();
    this.sessions.delete(session.id);
    const count = (this.perIp.get(session.remoteAddress) ?? 1) - 1;
    if (count <= 0) this.perIp.delete(session.remoteAddress);
    else this.perIp.set(session.remoteAddress, count);
  }

  private async onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<string> {
    const ip = session.remoteAddress;
    if (this.authFailures.blocked(ip)) {
      this.log.warn({ client: ip }, 'AUTH refused: too many failures');
      throw replies.authRateLimited();
    }
    const user = await authenticate(this.config.relay.users, auth.username ?? '', auth.password ?? '');
    if (user === null) {
      this.authFailures.fail(ip);
      this.log.warn({ client: ip, username: auth.username, method: auth.method }, 'AUTH failed');
      throw replies.authFailed();
    }
    this.log.info({ client: ip, user, method: auth.method }, 'AUTH succeeded');
    return user;
  }

  private onMailFrom(address: string, session: SMTPServerSession): SmtpReplyError | null {
    if (this.shuttingDown) return replies.shuttingDown();
    if (!session.user && !this.pipeline.allowedNetwork(session.remoteAddress)) {
      return this.config.relay.users.length > 0 ? replies.authRequired() : replies.relayDenied();
    }
    if (address !== '' && !isAddress(address)) return replies.badSenderSyntax();
    const full = this.pipeline.capacity();
    return full === null ? null : refusalReply(full);
  }

  private onRcptTo(address: string, session: SMTPServerSession): SmtpReplyError | null {
    if (this.shuttingDown) return replies.shuttingDown();
    if (session.envelope.rcptTo.length >= this.config.limits.maxRecipients) return replies.tooManyRecipients();
    // RFC 5321 4.5.1: the bare `postmaster` must be accepted.
    if (!isAddress(address) && address.toLowerCase() !== 'postmaster') return replies.badRecipientSyntax();
    if (!this.pipeline.routes(address)) return replies.relayDenied();
    return null;
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    this.inData += 1;
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const txLog = { client: session.remoteAddress, user: userOf(session), from: sender, to: recipients };
    let size = 0;
    let held = 0;
    let overBudget = false;
    try {
      const chunks: Buffer[] = [];
      const reading = readChunks(stream);
      for await (const chunk of reading) {
        size += chunk.length;
        if (stream.sizeExceeded || overBudget) continue;
        if (!this.pipeline.dataBudget.take(chunk.length)) {
          overBudget = true; // read to the end, keep nothing, answer 452
          this.pipeline.dataBudget.give(held);
          held = 0;
          chunks.length = 0;
          continue;
        }
        held += chunk.length;
        chunks.push(chunk);
      }
      if (overBudget) throw replies.insufficientStorage();
      const { text, queueId, result, spoolSeconds } = await this.receive(session, sender, recipients, stream, chunks);
      this.log.info({ ...txLog, size, queueId, result, reply: `250 ${text}` }, 'message received');
      this.emit('transaction', { result, queueId, size, spoolSeconds });
      return text;
    } catch (err) {
      if (err instanceof ClientGone) {
        // Nothing to answer and nothing stored: the client hung up in the middle of DATA.
        this.log.info({ ...txLog, size }, 'client disconnected during DATA');
        this.emit('transaction', { result: 'aborted', queueId: null, size, spoolSeconds: null });
        throw err.cause;
      }
      const reply = err instanceof SmtpReplyError ? err : replies.spoolWriteFailed();
      const result: ReceiveResult = err instanceof SmtpReplyError ? 'rejected' : 'error';
      this.log[result === 'error' ? 'error' : 'info'](
        { ...txLog, size, reply: `${reply.responseCode} ${reply.message}`, ...(result === 'error' ? { err } : {}) },
        'message refused',
      );
      this.emit('transaction', { result, queueId: null, size, spoolSeconds: null });
      throw reply;
    } finally {
      this.pipeline.dataBudget.give(held);
      this.inData -= 1;
    }
  }

  private async receive(
    session: SMTPServerSession,
    sender: string,
    recipients: string[],
    stream: SMTPServerDataStream,
    chunks: Buffer[],
  ): Promise<{ text: string; queueId: string; result: ReceiveResult; spoolSeconds: number }> {
    const { config } = this;
    if (stream.sizeExceeded) throw replies.tooBig(config.limits.maxMessageSizeBytes);
    const user = userOf(session);
    const outcome = await this.pipeline.accept({
      body: Buffer.concat(chunks),
      sender,
      recipients,
      client: { ip: session.remoteAddress, hostname: session.clientHostname, helo: session.hostNameAppearsAs, user },
      protocol: session.transmissionType || 'ESMTP',
      via: 'smtp',
      identity: this.pipeline.identityOf(user, session.remoteAddress),
      dedup: { rule: 'message' },
      lineEndings: config.smtp.bareLineEndings,
    });
    if (outcome.refused !== undefined) throw refusalReply(outcome);
    const { queueId, spoolSeconds } = outcome;
    if (outcome.status === 'duplicate') return { text: replies.alreadyQueued(queueId), queueId, result: 'duplicate', spoolSeconds };
    return { text: replies.queued(queueId), queueId, result: 'queued', spoolSeconds };
  }
}

/** The SMTP reply for a refusal of the accept pipeline. */
function refusalReply(refusal: AcceptRefusal): SmtpReplyError {
  switch (refusal.refused) {
    case 'bare-line-ending':
      return replies.bareLineEnding(refusal.found);
    case 'capacity':
      // 451 while the store is unavailable, 452 while it is full.
      return refusal.reason === 'unavailable' ? replies.spoolUnavailable() : replies.insufficientStorage();
    case 'no-route':
      // The routes changed (SIGHUP) between RCPT and the end of DATA.
      return replies.relayDenied();
    case 'idempotency-mismatch':
      // Not an SMTP rule; never asked for by this front door.
      return replies.spoolWriteFailed();
  }
}


/** The DATA stream failed: the client hung up mid-message (not a spool problem). */
class ClientGone extends Error {
  constructor(cause: unknown) {
    super('client disconnected during DATA', { cause });
  }
}

async function* readChunks(stream: SMTPServerDataStream): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    throw new ClientGone(err);
  }
}

function userOf(session: SMTPServerSession): string | null {
  const user: unknown = session.user;
  return typeof user === 'string' ? user : null;
}
