/**
 * The accept steps every front door shares (SMTP ingress, HTTP submission): line endings,
 * capacity, queue id, trace headers, routing, dedup key, the durable spool write and its
 * timing. A refusal comes back as data; each front door turns it into its own reply
 * (an SMTP reply code, an HTTP status). A failed spool write is thrown: the caller answers
 * "try again later" (SMTP 451, HTTP 503).
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config/types.js';
import { prepareMessage, readHeaders } from '../message/headers.js';
import { createRouter, type Router } from '../routing/index.js';
import { checkLineEndings, type LineEndingPolicy } from '../smtp/line-endings.js';
import { NetworkList } from '../smtp/networks.js';
import { newQueueId, type ClientInfo, type Spool, type SpoolCapacity } from '../spool/index.js';
import { DataBudget } from './data-budget.js';

/** How a resubmission is recognised. */
export type DedupRule =
  /** SMTP's rule (SPEC 3): identity + envelope sender + the message's Message-ID + recipients; none without a Message-ID. */
  | { readonly rule: 'message' }
  /**
   * HTTP `Idempotency-Key` (SPEC 10): identity + key. `fingerprint` names the request; a
   * repeat with another fingerprint is a mismatch, not a duplicate.
   */
  | { readonly rule: 'idempotency'; readonly key: string; readonly fingerprint: string }
  /** Never a resubmission (the Message-ID is ours). */
  | { readonly rule: 'none' };

export interface AcceptRequest {
  /** The message as received (line endings not yet checked). */
  readonly body: Buffer;
  /** Envelope sender; '' is the null sender. */
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly client: { readonly ip: string; readonly hostname: string; readonly helo: string; readonly user: string | null };
  /** The `with` of the Received header: ESMTP, ESMTPS, ESMTPSA, HTTP, HTTPS ... */
  readonly protocol: string;
  /** The front door, recorded on the message (`smtp` leaves the record as it always was). */
  readonly via: 'smtp' | 'http';
  /** Sender identity for dedup, from `identityOf`. */
  readonly identity: string;
  readonly dedup: DedupRule;
  /** Bare LF / CR / NUL policy; SMTP's from `smtp.bareLineEndings`, HTTP normalises. */
  readonly lineEndings: LineEndingPolicy;
  /** Pre-allocated queue id (a front door that writes it into the message first); else a new one. */
  readonly queueId?: string;
  /** Receive time for the Received / Date headers; default now. */
  readonly date?: Date;
}

/** `unavailable`: the store does not answer; `full`: queue bound or free disk reached. */
export type CapacityRefusal = { readonly refused: 'capacity'; readonly reason: 'unavailable' | 'full' };

export type AcceptRefusal =
  | { readonly refused: 'bare-line-ending'; readonly found: 'LF' | 'CR' | 'NUL' }
  | CapacityRefusal
  | { readonly refused: 'no-route'; readonly recipient: string }
  /** Same Idempotency-Key, another request: the original's id. */
  | { readonly refused: 'idempotency-mismatch'; readonly queueId: string };

export interface Accepted {
  readonly refused?: undefined;
  readonly status: 'queued' | 'duplicate';
  /** The new message's id, or the original's for a duplicate. */
  readonly queueId: string;
  /** The stored Message-ID (the original's for a duplicate; null when unknown). */
  readonly messageId: string | null;
  readonly size: number;
  /** From the start of the spool write to its durable end. */
  readonly spoolSeconds: number;
}

export type AcceptOutcome = Accepted | AcceptRefusal;

export interface AcceptPipelineDeps {
  readonly config: Config;
  readonly spool: Spool;
  readonly capacity: SpoolCapacity;
}

/**
 * One accept pipeline per relay, shared by the front doors. `reconfigure` swaps routes and
 * policy (SIGHUP) for messages from then on.
 */
export class AcceptPipeline {
  private config: Config;
  private router: Router;
  private networks: NetworkList;
  /** Message bytes both front doors hold in memory, together (`limits.maxDataMemory`). */
  readonly dataBudget: DataBudget;

  constructor(private readonly deps: AcceptPipelineDeps) {
    this.config = deps.config;
    this.router = createRouter(deps.config.routes, deps.config.targets);
    this.networks = new NetworkList(deps.config.relay.allowNetworks);
    this.dataBudget = new DataBudget(deps.config.limits.maxDataMemoryBytes);
  }

  reconfigure(config: Config): void {
    this.config = config;
    this.router = createRouter(config.routes, config.targets);
    this.networks = new NetworkList(config.relay.allowNetworks);
    this.dataBudget.setLimit(config.limits.maxDataMemoryBytes);
  }

  /** Whether a client address may relay without credentials (`relay.allowNetworks`). */
  allowedNetwork(ip: string): boolean {
    return this.networks.match(ip) !== null;
  }

  /**
   * The dedup identity: the authenticated name — an SMTP AUTH user, or a submission key's name
   * (`key:`, a namespace of its own: an AUTH user and a key of the same name are two senders)
   * — else the allowNetworks entry the client came from.
   */
  identityOf(user: string | null, ip: string, via: 'smtp' | 'http' = 'smtp'): string {
    if (user !== null) return via === 'http' ? `key:${user}` : `user:${user}`;
    return `net:${this.networks.match(ip) ?? ip}`;
  }

  /** Whether some route takes this recipient. */
  routes(address: string): boolean {
    return this.router.routeOf(address) !== null;
  }

  /** The store's verdict now, before a front door reads a message it could not keep. */
  capacity(): CapacityRefusal | null {
    switch (this.deps.capacity.check()) {
      case 'ok':
        return null;
      case 'unavailable':
        return { refused: 'capacity', reason: 'unavailable' };
      case 'disk-low':
      case 'queue-full':
        return { refused: 'capacity', reason: 'full' };
    }
  }

  async accept(request: AcceptRequest): Promise<AcceptOutcome> {
    const { config, router } = this;
    const verdict = checkLineEndings(request.body, request.lineEndings);
    if (!verdict.ok) return { refused: 'bare-line-ending', found: verdict.found };
    const full = this.capacity();
    if (full !== null) return full;
    // Routed once: a recipient no route takes is left out of the groups (a SIGHUP since RCPT).
    const deliveries = router(request.recipients);
    if (deliveries.reduce((n, d) => n + d.recipients.length, 0) < request.recipients.length) {
      const unrouted = request.recipients.find((r) => router.routeOf(r) === null) ?? '';
      return { refused: 'no-route', recipient: unrouted };
    }
    const queueId = request.queueId ?? newQueueId();
    const info = readHeaders(verdict.body);
    const { sender, recipients } = request;
    const { body, messageId } = prepareMessage(verdict.body, info, {
      clientHostname: request.client.hostname,
      clientIp: request.client.ip,
      helo: request.client.helo,
      hostname: config.hostname,
      protocol: request.protocol,
      queueId,
      recipient: recipients.length === 1 ? (recipients[0] ?? null) : null,
      date: request.date ?? new Date(),
      // The SMTP trace stays as it always was; the HTTP submission names its key.
      authenticatedAs: request.via === 'http' ? request.client.user : null,
    });
    const client: ClientInfo = {
      ...request.client,
      ...(request.via === 'http' ? { via: 'http' as const } : {}),
      ...(request.dedup.rule === 'idempotency' ? { fingerprint: request.dedup.fingerprint } : {}),
    };
    const started = process.hrtime.bigint();
    const accepted = await this.deps.spool.accept({
      queueId,
      sender,
      recipients,
      messageId,
      body,
      client,
      deliveries,
      dedupKey: dedupKeyOf(request, sender, info.messageId, recipients),
      bounceOf: null,
    });
    const spoolSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (accepted.status === 'queued') return { status: 'queued', queueId, messageId, size: body.length, spoolSeconds };
    if (request.dedup.rule !== 'idempotency') {
      // The message rule matched on this very Message-ID.
      return { status: 'duplicate', queueId: accepted.queueId, messageId: info.messageId, size: body.length, spoolSeconds };
    }
    const original = await this.deps.spool.getMessage(accepted.queueId);
    // Gone (past retainFinished while its key lives on): nothing to compare, the key answers alone.
    if (original !== null && original.client.fingerprint !== request.dedup.fingerprint) {
      return { refused: 'idempotency-mismatch', queueId: accepted.queueId };
    }
    return { status: 'duplicate', queueId: accepted.queueId, messageId: original?.messageId ?? null, size: body.length, spoolSeconds };
  }
}

/**
 * The message rule: identity, envelope sender, normalised Message-ID and the recipient set
 * (a resubmission matches all four; the same Message-ID to other recipients is a new
 * message). The idempotency rule: identity and key, in their own name space.
 */
function dedupKeyOf(request: AcceptRequest, sender: string, messageId: string | null, recipients: readonly string[]): string | null {
  const { dedup, identity } = request;
  switch (dedup.rule) {
    case 'none':
      return null;
    case 'idempotency':
      return createHash('sha256').update(['idempotency-key', identity, dedup.key].join('\0')).digest('hex');
    case 'message': {
      // A Message-ID we generated cannot be a resubmission: no dedup key then.
      if (messageId === null) return null;
      const rcpts = [...new Set(recipients.map((r) => r.toLowerCase()))].sort().join(',');
      return createHash('sha256').update([identity, sender.toLowerCase(), messageId, rcpts].join('\0')).digest('hex');
    }
  }
}

/**
 * local@domain with no spaces or angle brackets. Text that was not UTF-8 (raw 8-bit
 * decoded into U+FFFD) is not the address the client sent, so it is bad syntax.
 */
export function isAddress(address: string): boolean {
  return /^[^\s@<>\uFFFD]+@[^\s@<>\uFFFD]+$/.test(address);
}
