/**
 * The HTTP submission front door (SPEC 10): `POST /v1/messages` answers 202 only after the
 * accept pipeline's durable spool write; `GET /v1/messages/ID` reports on a message the
 * same key submitted. Plain node:http / node:https; bodies are streamed and cut off at the
 * size limit, never buffered beyond it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { AcceptOutcome, AcceptPipeline } from '../accept/index.js';
import { isLoopback, readTlsMaterial } from '../config/index.js';
import type { Config, SubmissionConfig } from '../config/types.js';
import { RelayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IngressEvents } from '../smtp/index.js';
import { isQueueId, newQueueId, type Spool } from '../spool/index.js';
import { discardRest, readBody } from './body.js';
import { BadMessage, fromJson, fromRaw, parseJsonMessage, type Submitted } from './message.js';
import { HttpRefusal, refusalOf, refuse } from './refusals.js';

export interface SubmissionDeps {
  readonly config: Config;
  readonly pipeline: AcceptPipeline;
  readonly spool: Spool;
  readonly logger: Logger;
}

/** JSON carries attachments in base64: its body may be this much larger than the message it makes. */
const JSON_OVERHEAD = 4 / 3;
const JSON_SLACK_BYTES = 64 * 1024;
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
const MESSAGES_PATH = '/v1/messages';

/** The client as the submission knows it: its key's name (null on an open loopback listener). */
interface Caller {
  readonly name: string | null;
  readonly ip: string;
}

export class SubmissionServer extends EventEmitter<IngressEvents> {
  private config: Config;
  private keys: { name: string; digest: Buffer }[];
  private server: http.Server | null = null;
  private readonly log: Logger;
  private inFlight = 0;
  private shuttingDown = false;

  constructor(private readonly deps: SubmissionDeps) {
    super();
    this.config = deps.config;
    this.keys = digestKeys(deps.config.submission);
    this.log = deps.logger.child({ component: 'submission' });
  }

  /** Binds the listener (HTTPS when `tls` is configured). */
  async start(): Promise<AddressInfo> {
    const submission = this.config.submission;
    if (submission === null) throw new Error('submission is not configured');
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.handle(req, res);
    const server = this.config.tls ? https.createServer(readTlsMaterial(this.config) ?? {}, handler) : http.createServer(handler);
    server.keepAliveTimeout = 5000;
    server.maxConnections = this.config.limits.maxConnections;
    server.on('clientError', (err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      this.log.debug({ err }, 'submission client error');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(submission.listen.port, submission.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.warn({ err }, 'submission listener error'));
    this.server = server;
    return server.address() as AddressInfo;
  }

  /**
   * Refuses (a config error) a reload that would leave the listener as bound now without keys
   * off loopback: its address changes only at a restart, so the new config's host is not where
   * it listens. Called before anything of the reload applies.
   */
  checkReload(next: Config): void {
    const bound = this.server?.address();
    if (!bound || typeof bound === 'string' || isLoopback(bound.address)) return;
    if ((next.submission?.keys.length ?? 0) === 0) {
      throw new RelayError(
        'ONWARD_ERR_CONFIG_INVALID',
        `submission.keys: required while the submission listener is bound to ${bound.address}:${String(bound.port)} (a new listen address applies at a restart)`,
      );
    }
  }

  /** Keys, limits and TLS material for requests from now on (the listen address needs a restart). */
  reconfigure(config: Config): void {
    // Read first: a TLS file that fails leaves everything as it was.
    const tls = config.tls && this.server instanceof https.Server ? readTlsMaterial(config) : null;
    this.config = config;
    this.keys = digestKeys(config.submission);
    if (this.server) this.server.maxConnections = config.limits.maxConnections;
    if (tls && this.server instanceof https.Server) this.server.setSecureContext(tls);
  }

  /** Stops accepting; requests in flight finish (up to `graceMs`); then every connection is cut. */
  async close(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    const server = this.server;
    if (server === null) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    server.closeAllConnections();
    await closed;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.inFlight += 1;
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      this.inFlight -= 1;
    };
    res.on('close', done);
    this.route(req, res).catch((err: unknown) => {
      const refusal = err instanceof HttpRefusal ? err : null;
      if (refusal === null) this.log.error({ err, method: req.method, url: req.url }, 'submission request failed');
      this.send(req, res, refusal ?? new HttpRefusal(500, 'ONWARD_ERR_INTERNAL', 'internal error'));
    });
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (this.shuttingDown) {
      res.setHeader('connection', 'close');
      throw refuse.spoolWrite('shutting down, try again later');
    }
    if (path === MESSAGES_PATH) {
      if (req.method !== 'POST') throw refuse.method('POST');
      const caller = this.authenticate(req);
      await this.submit(req, res, caller);
      return;
    }
    if (path.startsWith(`${MESSAGES_PATH}/`)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw refuse.method('GET, HEAD');
      const caller = this.authenticate(req);
      await this.status(res, caller, path.slice(MESSAGES_PATH.length + 1));
      return;
    }
    throw refuse.notFound();
  }

  /** Bearer key against every configured key's digest, in constant time; none configured: the client's network. */
  private authenticate(req: http.IncomingMessage): Caller {
    const ip = req.socket.remoteAddress ?? '';
    if (this.keys.length === 0) return { name: null, ip };
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    const given = createHash('sha256').update(match?.[1] ?? '').digest();
    let name: string | null = null;
    for (const key of this.keys) if (timingSafeEqual(given, key.digest) && match) name = key.name;
    if (name === null) {
      this.log.warn({ client: ip }, 'submission refused: bad or missing key');
      throw refuse.unauthorized();
    }
    return { name, ip };
  }

  private async submit(req: http.IncomingMessage, res: http.ServerResponse, caller: Caller): Promise<void> {
    const { config } = this;
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (mediaType !== 'message/rfc822' && mediaType !== 'application/json') {
      throw new HttpRefusal(415, 'ONWARD_ERR_UNSUPPORTED_TYPE', 'expected Content-Type message/rfc822 or application/json', 'Content-Type');
    }
    const encoding = (headerOf(req, 'content-encoding') ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity') {
      throw new HttpRefusal(415, 'ONWARD_ERR_UNSUPPORTED_TYPE', `Content-Encoding ${encoding} is not supported: send the body uncompressed`, 'Content-Encoding');
    }
    const idempotencyKey = headerOf(req, 'idempotency-key');
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw refuse.badMessage('Idempotency-Key', 'Idempotency-Key: expected 1 to 255 printable ASCII characters');
    }
    const limit = config.limits.maxMessageSizeBytes;
    const bodyLimit = mediaType === 'application/json' ? Math.ceil(limit * JSON_OVERHEAD) + JSON_SLACK_BYTES : limit;
    const announced = Number(req.headers['content-length'] ?? NaN);
    if (announced > bodyLimit) throw refuse.tooLarge(limit);
    const full = this.deps.pipeline.capacity();
    if (full !== null) throw full.reason === 'full' ? refuse.spoolFull() : refuse.spoolWrite('queue storage unavailable, try again later');
    const raw = await readBody(req, bodyLimit, limit, this.deps.pipeline.dataBudget);
    try {
      await this.accept(req, res, caller, { mediaType, idempotencyKey, raw });
    } finally {
      this.deps.pipeline.dataBudget.give(raw.length);
    }
  }

  /** The body is read (and held against the data budget): parse, check, accept, answer. */
  private async accept(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    caller: Caller,
    { mediaType, idempotencyKey, raw }: { mediaType: string; idempotencyKey: string | undefined; raw: Buffer },
  ): Promise<void> {
    const { config } = this;
    const limit = config.limits.maxMessageSizeBytes;
    const date = new Date();
    const queueId = newQueueId(date.getTime());
    const submitted = await this.parse(req, mediaType, raw, { queueId, date });
    if (submitted.body.length > limit) throw refuse.tooLarge(limit);
    if (submitted.recipients.length > config.limits.maxRecipients) {
      throw refuse.badMessage(mediaType === 'application/json' ? 'to' : 'To', `too many recipients (at most ${config.limits.maxRecipients})`);
    }
    const protocol = this.config.tls ? 'HTTPS' : 'HTTP';
    const logFields = { client: caller.ip, key: caller.name, from: submitted.sender, to: submitted.recipients, idempotencyKey: idempotencyKey ?? null };
    let outcome: AcceptOutcome;
    try {
      outcome = await this.deps.pipeline.accept({
        body: submitted.body,
        sender: submitted.sender,
        recipients: submitted.recipients,
        client: { ip: caller.ip, hostname: `[${caller.ip}]`, helo: `[${caller.ip}]`, user: caller.name },
        protocol,
        via: 'http',
        identity: this.deps.pipeline.identityOf(caller.name, caller.ip, 'http'),
        dedup:
          idempotencyKey !== undefined
            ? { rule: 'idempotency', key: idempotencyKey, fingerprint: submitted.fingerprint }
            : submitted.clientMessageId
              ? { rule: 'message' }
              : { rule: 'none' },
        lineEndings: 'normalize',
        queueId,
        date,
      });
    } catch (err) {
      this.log.error({ ...logFields, err }, 'message refused');
      this.emit('transaction', { result: 'error', queueId: null, size: submitted.body.length, spoolSeconds: null });
      throw refuse.spoolWrite();
    }
    if (outcome.refused !== undefined) {
      this.emit('transaction', { result: 'rejected', queueId: null, size: submitted.body.length, spoolSeconds: null });
      const refusal = refusalOf(outcome);
      this.log.info({ ...logFields, status: refusal.status, code: refusal.code }, 'message refused');
      throw refusal;
    }
    const { status, queueId: id, messageId, size, spoolSeconds } = outcome;
    this.emit('transaction', { result: status, queueId: id, size, spoolSeconds });
    this.log.info({ ...logFields, size, queueId: id, result: status }, 'message received');
    sendJson(res, status === 'queued' ? 202 : 200, { id, status, messageId });
  }

  private async parse(req: http.IncomingMessage, mediaType: string, raw: Buffer, ids: { queueId: string; date: Date }): Promise<Submitted> {
    try {
      if (mediaType === 'message/rfc822') {
        return fromRaw(raw, { from: headerOf(req, 'x-onward-envelope-from'), to: headerOf(req, 'x-onward-envelope-to') });
      }
      const doc = parseJsonMessage(raw.toString('utf8'));
      return await fromJson(doc, { messageId: `${ids.queueId}@${this.config.hostname}`, date: ids.date, boundary: ids.queueId.toLowerCase() });
    } catch (err) {
      if (err instanceof BadMessage) throw refuse.badMessage(err.field, err.message);
      throw err;
    }
  }

  private async status(res: http.ServerResponse, caller: Caller, id: string): Promise<void> {
    if (!isQueueId(id)) throw refuse.notFound(`no message ${JSON.stringify(id)}`);
    const message = await this.deps.spool.getMessage(id);
    // Only what this key submitted: another key's message is as absent as no message.
    if (message === null || message.client.via !== 'http' || message.client.user !== caller.name) throw refuse.notFound(`no message ${id}`);
    const deliveries = await this.deps.spool.getDeliveries(id);
    const recipients = deliveries.flatMap((d) => d.recipients.map((r) => ({ address: r.address, state: r.state, lastError: r.lastError })));
    sendJson(res, 200, {
      id: message.id,
      state: message.state,
      messageId: message.messageId,
      receivedAt: new Date(message.receivedAt).toISOString(),
      recipients,
    });
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, refusal: HttpRefusal): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
    const unread = !req.complete;
    // A body left unread is not read to its end: the answer goes now, the connection closes.
    if (unread) res.setHeader('connection', 'close');
    sendJson(res, refusal.status, { error: { code: refusal.code, message: refusal.message, ...(refusal.field !== undefined ? { field: refusal.field } : {}) } });
    if (unread) discardRest(req, res);
  }
}


/**
 * The body, read as it streams. Past `bodyLimit` reading stops and 413 is thrown at once:
 * the rest is never held (the caller's answer closes the connection).
 */
function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

function headerOf(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function digestKeys(submission: SubmissionConfig | null): { name: string; digest: Buffer }[] {
  return (submission?.keys ?? []).map((k) => ({ name: k.name, digest: createHash('sha256').update(k.key).digest() }));
}
