/**
 * A real SMTP server (smtp-server) on 127.0.0.1 (port 0) that records accepted messages and
 * answers MAIL FROM, RCPT TO and the end of DATA as scripted. No mocks.
 *
 * ```ts
 * const sink = await startSmtpSink();
 * afterEach(() => sink.close());
 * sink.onRcpt((to) => (to === 'nobody@example.com' ? { code: 550, message: '5.1.1 no such user' } : null));
 * // ... deliver to 127.0.0.1:sink.port ...
 * const [message] = await sink.waitFor(1);
 * message.envelope.to; message.raw;
 * ```
 *
 * A reply `{ code, message }` goes on the wire as `<code> <message>` (smtp-server adds no
 * enhanced code of its own here, so put one in `message` when you want one).
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { waitForCount } from './common.js';

/** A scripted SMTP reply, or null/undefined to accept. */
export type SmtpSinkReply = { readonly code: number; readonly message: string } | null | undefined;

/** A message the sink accepted (DATA answered 250). */
export interface SmtpSinkMessage {
  /** `from` is "" for the null sender (`MAIL FROM:<>`); `to` holds the accepted recipients only. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** The message bytes exactly as received, dot-unstuffed, without the final `.`. */
  readonly raw: Buffer;
  /** Whether the session was TLS (implicit or STARTTLS). */
  readonly secure: boolean;
  /** The AUTH username, or null. */
  readonly user: string | null;
  readonly receivedAt: Date;
}

/** Answers a new connection instead of the 220 greeting (e.g. `421 4.7.0 too busy`); the sink then hangs up. */
export type SmtpSinkConnectHandler = (remoteAddress: string) => SmtpSinkReply | Promise<SmtpSinkReply>;
export type SmtpSinkMailFromHandler = (from: string) => SmtpSinkReply | Promise<SmtpSinkReply>;
export type SmtpSinkRcptHandler = (to: string, from: string) => SmtpSinkReply | Promise<SmtpSinkReply>;
/** Called with the complete message before the reply to DATA; a reply rejects it (it is then not recorded). */
export type SmtpSinkDataHandler = (message: SmtpSinkMessage) => SmtpSinkReply | Promise<SmtpSinkReply>;

export interface SmtpSinkOptions {
  readonly onConnect?: SmtpSinkConnectHandler;
  readonly onMailFrom?: SmtpSinkMailFromHandler;
  readonly onRcpt?: SmtpSinkRcptHandler;
  readonly onData?: SmtpSinkDataHandler;
  /** Offer STARTTLS with this key/cert (PEM), or with `implicit: true` speak TLS from the first byte. */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer; readonly implicit?: boolean };
  /** Require AUTH PLAIN/LOGIN with these credentials (allowed without TLS). */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Announce SIZE with this limit (bytes). */
  readonly size?: number;
  /** Address to listen on (default 127.0.0.1; 127.0.0.2, 127.0.0.3, … are loopback too on Linux). */
  readonly host?: string;
  /** Port to listen on (default 0: any free one). */
  readonly port?: number;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  /** Accepted messages in arrival order. */
  readonly messages: SmtpSinkMessage[];
  /** How many SMTP sessions (TCP connections) clients have opened so far. */
  readonly sessions: number;
  /** Replace the scripted handlers from now on; pass undefined to accept everything again. */
  onConnect(handler: SmtpSinkConnectHandler | undefined): void;
  onMailFrom(handler: SmtpSinkMailFromHandler | undefined): void;
  onRcpt(handler: SmtpSinkRcptHandler | undefined): void;
  onData(handler: SmtpSinkDataHandler | undefined): void;
  /** Resolves with `messages` once at least `count` were accepted; rejects after `timeoutMs` (default 5000). */
  waitFor(count: number, timeoutMs?: number): Promise<SmtpSinkMessage[]>;
  /** Stops the server and drops open sessions. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  let onConnect = options.onConnect;
  let onMailFrom = options.onMailFrom;
  let onRcpt = options.onRcpt;
  let onData = options.onData;
  const messages: SmtpSinkMessage[] = [];
  let sessions = 0;
  const waiters = new Set<() => void>();

  const settle = (reply: SmtpSinkReply, callback: (err?: Error | null) => void): void => {
    if (reply === null || reply === undefined) return callback();
    callback(Object.assign(new Error(reply.message), { responseCode: reply.code }));
  };
  const run = <T>(produce: () => T | Promise<T>, then: (value: T) => void, callback: (err?: Error | null) => void): void => {
    Promise.resolve()
      .then(produce)
      .then(then, (err: unknown) => callback(Object.assign(new Error(String(err)), { responseCode: 451 })));
  };
  const mailFrom = (session: SMTPServerSession): string =>
    session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;

  const serverOptions: SMTPServerOptions = {
    logger: false,
    disableReverseLookup: true,
    closeTimeout: 100,
    secure: options.tls?.implicit === true,
    hideSTARTTLS: options.tls === undefined,
    authOptional: options.auth === undefined,
    allowInsecureAuth: true,
    onConnect(session, callback) {
      sessions += 1;
      const handler = onConnect;
      if (!handler) return callback();
      run(() => handler(session.remoteAddress), (reply) => settle(reply, callback), callback);
    },
    onAuth(auth, _session, callback) {
      const ok = options.auth !== undefined && auth.username === options.auth.user && auth.password === options.auth.pass;
      if (ok) callback(null, { user: auth.username });
      else callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    onMailFrom(address, _session, callback) {
      const handler = onMailFrom;
      if (!handler) return callback();
      run(() => handler(address.address), (reply) => settle(reply, callback), callback);
    },
    onRcptTo(address, session, callback) {
      const handler = onRcpt;
      if (!handler) return callback();
      run(() => handler(address.address, mailFrom(session)), (reply) => settle(reply, callback), callback);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const message: SmtpSinkMessage = {
          envelope: { from: mailFrom(session), to: session.envelope.rcptTo.map((r) => r.address) },
          raw: Buffer.concat(chunks),
          secure: session.secure,
          user: typeof session.user === 'string' ? session.user : null,
          receivedAt: new Date(),
        };
        const handler = onData;
        const accept = (reply: SmtpSinkReply): void => {
          if (reply !== null && reply !== undefined) return settle(reply, callback);
          messages.push(message);
          for (const wake of waiters) wake();
          callback();
        };
        if (!handler) return accept(null);
        run(() => handler(message), accept, callback);
      });
    },
  };
  if (options.tls) {
    serverOptions.key = options.tls.key;
    serverOptions.cert = options.tls.cert;
  }
  if (options.size !== undefined) serverOptions.size = options.size;

  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => server.close(() => resolve()));
    return closing;
  };

  return {
    host: options.host ?? '127.0.0.1',
    port,
    messages,
    get sessions() {
      return sessions;
    },
    onConnect: (handler) => {
      onConnect = handler;
    },
    onMailFrom: (handler) => {
      onMailFrom = handler;
    },
    onRcpt: (handler) => {
      onRcpt = handler;
    },
    onData: (handler) => {
      onData = handler;
    },
    waitFor: (count, timeoutMs = 5000) => waitForCount(messages, waiters, count, timeoutMs, { who: 'smtp sink', things: 'messages' }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
