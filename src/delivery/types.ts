/**
 * What flows between the scheduler and the transports. Outcomes are data, not exceptions:
 * a transport never throws for a delivery problem, it returns one RecipientResult per
 * recipient with the reply it saw.
 */

/** OK: downstream took responsibility. FAIL: permanent. ERROR: temporary or unknown. */
export type Outcome = 'ok' | 'fail' | 'error';

/** Which protocol produced a reply; DSNs use it for `Diagnostic-Code: <type>; ...`. */
export type ReplyKind = 'smtp' | 'http' | 'x-onward';

export interface Reply {
  readonly kind: ReplyKind;
  /** SMTP reply code or HTTP status; null for network errors and local failures. */
  readonly code: number | null;
  /** Enhanced status code (`5.1.1`) when the downstream sent one. */
  readonly enhancedStatus: string | null;
  /** One line for people and logs: the SMTP reply line, `HTTP 503 Service Unavailable`, or the error. */
  readonly text: string;
  /** mx targets: the mail exchanger that gave this reply (`mx1.example.com [192.0.2.1]`); DSNs name it as Remote-MTA. */
  readonly remoteMta?: string;
}

export interface RecipientResult {
  readonly address: string;
  readonly outcome: Outcome;
  readonly reply: Reply;
}

/** One attempt at handing one delivery (a message's recipients for one target) downstream. */
export interface DeliveryJob {
  /** Stable across retries: the `Idempotency-Key`. */
  readonly deliveryId: string;
  readonly queueId: string;
  /** 1-based; an attempt cut short by a crash counts. */
  readonly attempt: number;
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** The stored RFC 5322 bytes, sent unchanged. */
  readonly body: Buffer;
  readonly receivedAt: Date;
  /** mx targets: the recipients' domain (every recipient of an mx delivery shares it). */
  readonly domain?: string | null;
  /**
   * Set when the message is a delivery event (SPEC 11): the body is the event JSON, sent as
   * is (`application/json`, never parsed as mail) with `id` as the Idempotency-Key.
   */
  readonly event?: { readonly id: string } | null;
}

export interface TransportResult {
  readonly recipients: readonly RecipientResult[];
  readonly durationMs: number;
  /** From an HTTP `Retry-After` on 429/503, in ms from now; null when absent. */
  readonly retryAfterMs: number | null;
  /** A contention signal (429, 503, timeout, refused connection): halve the target's concurrency. */
  readonly contention: boolean;
  /**
   * The attempt broke on our side, not the target's (the delivery thread was lost): every
   * recipient is ERROR, the target's health is not judged by it and no failover follows.
   */
  readonly localFailure?: true;
}

export interface Transport {
  deliver(job: DeliveryJob): Promise<TransportResult>;
  close(): Promise<void>;
}
