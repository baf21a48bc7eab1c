/**
 * The spool contract. Everything outside `src/spool/` talks to a `Spool`; the LevelDB
 * adapter is one implementation (a clustered backend can be another).
 */
import type { Outcome, Reply } from '../delivery/types.js';

export type MessageState = 'queued' | 'deferred' | 'held' | 'delivered' | 'bounced' | 'deleted';
export type DeliveryState = 'queued' | 'deferred' | 'held' | 'delivered' | 'failed';
export type RecipientState = 'queued' | 'deferred' | 'held' | 'delivered' | 'failed';

export interface ClientInfo {
  readonly ip: string;
  readonly hostname: string;
  readonly helo: string;
  readonly user: string | null;
  /**
   * The front door, when not SMTP: `http` for the HTTP submission (SPEC 10), whose `user`
   * is the submission key's name. Absent on SMTP messages and records older than it.
   */
  readonly via?: 'http';
  /**
   * HTTP submission with an `Idempotency-Key`: a hash of the request, to tell a repeat
   * (same fingerprint) from another request under the same key. Stored as part of the
   * client JSON by both backends: no schema change.
   */
  readonly fingerprint?: string;
}

export interface RecipientRecord {
  readonly address: string;
  readonly state: RecipientState;
  /** Last reply seen for this recipient (SMTP line, `HTTP 503 ...`, or the network error). */
  readonly lastError: string | null;
  readonly lastReply: Reply | null;
  /** Set when the recipient has been reported to the sender (DSN queued or suppressed). */
  readonly reported: boolean;
}

export interface AttemptRecord {
  /** Epoch ms when the attempt started. */
  readonly at: number;
  readonly target: string;
  readonly outcome: Outcome;
  /** The reply as text, for people; per-recipient detail lives on the recipients. */
  readonly reply: string;
  readonly durationMs: number;
}

export interface DeliveryRecord {
  /** `<queueId>.<n>`: stable across retries, the downstream idempotency key. */
  readonly id: string;
  readonly queueId: string;
  /** Failover list: the first is the primary, later ones are tried on ERROR. */
  readonly targets: readonly string[];
  /**
   * The recipients' domain (lower case) when the list has an `mx` target (SPEC 13): one
   * delivery, and one due-index lane, per domain. Null (or absent, in records written
   * before mx targets) otherwise.
   */
  readonly domain?: string | null;
  readonly recipients: readonly RecipientRecord[];
  readonly state: DeliveryState;
  readonly attempts: readonly AttemptRecord[];
  /** Attempts started, including one cut short by a crash. */
  readonly attemptCount: number;
  /** Epoch ms of the next attempt while queued/deferred; null otherwise. */
  readonly dueAt: number | null;
  readonly createdAt: number;
  readonly delayWarned: boolean;
}

export interface MessageRecord {
  readonly id: string;
  /** Envelope sender; '' is the null sender (`MAIL FROM:<>`). */
  readonly sender: string;
  readonly recipients: readonly string[];
  /** Message-ID without angle brackets. */
  readonly messageId: string | null;
  readonly size: number;
  readonly receivedAt: number;
  readonly client: ClientInfo;
  readonly state: MessageState;
  /** State of each delivery, so the message state is derivable without reading them. */
  readonly deliveries: Readonly<Record<string, DeliveryState>>;
  readonly finishedAt: number | null;
  readonly dedupKey: string | null;
  /** Set on DSNs we generate: the queue id of the message they report on. */
  readonly bounceOf: string | null;
  /**
   * Set on delivery events (SPEC 11): the queue id of the message whose delivery outcome
   * the event reports. Its body is the event JSON, its messageId the event id.
   */
  readonly eventOf: string | null;
}

/** A message that the ingress (or the bounce step) hands to the spool. */
export interface NewMessage {
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly messageId: string | null;
  readonly body: Buffer;
  readonly client: ClientInfo;
  /** Recipients grouped by route: one delivery each. */
  readonly deliveries: readonly { readonly targets: readonly string[]; readonly domain?: string | null; readonly recipients: readonly string[] }[];
  readonly dedupKey: string | null;
  readonly bounceOf: string | null;
  /** A delivery event: the queue id it reports on (absent: null, an ordinary message). */
  readonly eventOf?: string | null;
  /** Pre-allocated queue id (the ingress needs it for the Received header). */
  readonly queueId: string;
}

export type AcceptResult =
  | { readonly status: 'queued'; readonly queueId: string }
  | { readonly status: 'duplicate'; readonly queueId: string };

/** A delivery handed to the scheduler, with what a transport needs. */
export interface ClaimedDelivery {
  readonly delivery: DeliveryRecord;
  readonly message: MessageRecord;
  readonly body: Buffer;
}

/**
 * A slot the scheduler reserved for a new delivery. The spool writes that delivery leased
 * (not due) in the accept batch and then starts it: no claim round trip, and a crash
 * makes it due again like any lease.
 */
export interface DispatchSlot {
  /** The accept batch is on disk: run the attempt. */
  start(claimed: ClaimedDelivery): void;
  /** Not written (duplicate, failed write): give the slot back. */
  cancel(): void;
}

/** Asked per new delivery at accept; null leaves the delivery to the due index. */
export type Dispatcher = (lane: string) => DispatchSlot | null;

/** What the scheduler decided after an attempt. */
export interface AttemptUpdate {
  /** One record per target tried in this attempt (more than one after a failover). */
  readonly attempts: readonly AttemptRecord[];
  /** New per-recipient states and replies (recipients not listed keep theirs). */
  readonly recipients: readonly {
    readonly address: string;
    readonly state: RecipientState;
    readonly reply: Reply | null;
  }[];
  /** When not every recipient is final: the next attempt time. */
  readonly nextDueAt: number | null;
  /** Mark these recipients reported (a DSN is included, or suppressed). */
  readonly reported?: readonly string[];
  readonly delayWarned?: boolean;
  /** DSN written in the same atomic batch as the outcome. */
  readonly dsn?: NewMessage | undefined;
  /**
   * Delivery events (spool messages with `eventOf`) written in the same atomic batch as the
   * outcome they report. Left out when the delivery was already final (an operator bounce
   * won the race): the attempt is then only recorded, it changed no outcome.
   */
  readonly events?: readonly NewMessage[] | undefined;
}

/** What `giveUp`'s report returns: the DSN and the `failed` events, written in its batch. */
export interface GiveUpReport {
  readonly dsn: NewMessage | null;
  readonly events: readonly NewMessage[];
}

/** A delivery `giveUp` ended: as it was before, and its recipients that failed now. */
export interface GivenUpDelivery {
  readonly delivery: DeliveryRecord;
  readonly failed: readonly RecipientRecord[];
}

/**
 * Builds what an operator bounce writes with it: a DSN (the older form) or a GiveUpReport.
 * `deliveries` groups `failed` by delivery.
 */
export type GiveUpReporter = (
  message: MessageRecord,
  failed: readonly RecipientRecord[],
  body: Buffer | null,
  deliveries: readonly GivenUpDelivery[],
) => Promise<NewMessage | GiveUpReport | null>;


export interface ListFilter {
  readonly states?: readonly MessageState[];
  readonly target?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly olderThanMs?: number;
  /** Glob on the Message-ID (without angle brackets); a message without one never matches. */
  readonly messageId?: string;
  /**
   * Delivery events instead of messages: listings show messages only (false, the default)
   * or events only (true). Events are spool messages of their own (`eventOf`).
   */
  readonly events?: boolean;
  /** A queue id: only messages after it in listing order (the cursor of the next page). */
  readonly after?: string;
  readonly limit?: number;
}

export interface SpoolStats {
  /** Messages by state; delivery events (SPEC 11) are counted apart, in `events`. */
  readonly states: Record<MessageState, number>;
  readonly events: Record<MessageState, number>;
  readonly targets: Record<string, { queued: number; deferred: number }>;
  readonly oldestQueuedAt: number | null;
  readonly spoolBytes: number;
}

export type AdminAction = 'retry' | 'hold' | 'release' | 'delete';

/** What `spool check` found; `kind` names an invariant of the backend that checked. */
export interface CheckProblem {
  readonly kind: string;
  readonly key: string;
  readonly detail: string;
  readonly repaired: boolean;
}

export interface CheckReport {
  readonly messages: number;
  readonly deliveries: number;
  readonly problems: readonly CheckProblem[];
  /** Problem counts by kind (the list itself is capped). */
  readonly counts: Readonly<Record<string, number>>;
  readonly repaired: boolean;
}

/** One relay process of a shared spool (`onward spool nodes`, SPEC 9). */
export interface NodeRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  readonly startedAt: number;
  readonly lastSeenAt: number;
  readonly alive: boolean;
  /** Deliveries this node holds leased now. */
  readonly inFlight: number;
  /** Its targets as it last reported them (heartbeat): circuit up, concurrency limit now. */
  readonly targets: Readonly<Record<string, TargetReport>>;
}

/** One target as this node's scheduler sees it, for the cluster's `spool stats`. */
export interface TargetReport {
  readonly up: boolean;
  readonly concurrency: number;
}

/**
 * One unfinished message as `spool transfer` moves it between spools (SPEC 9): everything a
 * spool holds of it. Times are the exporting backend's.
 */
export interface TransferItem {
  readonly message: MessageRecord;
  /** Every delivery with its state, attempts, attemptCount and dueAt. */
  readonly deliveries: readonly DeliveryRecord[];
  readonly body: Buffer;
  /** The message's dedup key while it still suppresses resubmissions; null when it has none or it expired. */
  readonly dedup: { readonly key: string; readonly expiresAt: number } | null;
  /** A delivery of it is leased by a live node now: moving it would race that attempt (a rerun moves it). */
  readonly inFlight: boolean;
}

/** What `forget` did: removed it, found nothing, or left it because it changed since export (or is in flight). */
export type ForgetResult = 'forgotten' | 'absent' | 'changed';

/** What housekeeping removes: expired dedup keys, finished messages past retention. */
export type JanitorKind = 'dedup' | 'finished';

/** What a spool reports as it works (metrics and the scheduler listen). */
export interface SpoolEvents {
  /** A delivery of this lane became due now. */
  due: [lane: string];
  /** One durable write (one fsync / one COMMIT) carrying `writes` callers' changes. */
  batch: [{ seconds: number; writes: number }];
  /** Housekeeping committed a slice: `removed` expired dedup keys or finished messages are gone. */
  janitor: [{ kind: JanitorKind; removed: number }];
  /** A housekeeping run failed (retried at the next interval) or removed a corrupt record. */
  janitorError: [err: unknown];
  /** The store became unreachable (false) or reachable again (true). */
  availability: [available: boolean];
}

export type SpoolEventListener<K extends keyof SpoolEvents> = (...args: SpoolEvents[K]) => void;

/**
 * Times are epoch milliseconds. Times a caller passes in (`claimDue`'s `now`, `postpone`'s
 * `dueAt`, `AttemptUpdate.nextDueAt`) are by the caller's clock; a shared backend turns
 * them into delays from the caller's `Date.now()` and applies them on its own clock (the
 * database's), so skewed node clocks neither steal leases nor delay due work. `nextDueAt`
 * answers by the caller's clock. Times in records are the backend's.
 */
export interface Spool {
  /** `level` (embedded, one process) or `postgres` (shared by every node of a cluster). */
  readonly backend: 'level' | 'postgres';
  /** Write a message durably (one synced batch) or report the original of a duplicate. */
  accept(message: NewMessage): Promise<AcceptResult>;
  /** Take up to `limit` due deliveries of a lane (leased; a crash makes them due again). */
  claimDue(lane: string, now: number, limit: number): Promise<ClaimedDelivery[]>;
  /** Record an attempt's outcome; frees the body when the message is finished. */
  completeAttempt(deliveryId: string, update: AttemptUpdate): Promise<{ message: MessageRecord; delivery: DeliveryRecord }>;
  /** Give a claimed delivery back without counting an attempt (e.g. its target is down). */
  postpone(deliveryId: string, dueAt: number): Promise<void>;
  /** Earliest due time of a lane's deliveries, or null when none is waiting. */
  nextDueAt(lane: string): Promise<number | null>;
  /** Lanes that have due-index entries (after a config change, lanes no route names any more). */
  lanes(): Promise<string[]>;
  getMessage(queueId: string): Promise<MessageRecord | null>;
  getDeliveries(queueId: string): Promise<DeliveryRecord[]>;
  getBody(queueId: string): Promise<Buffer | null>;
  list(filter: ListFilter): AsyncIterable<{ message: MessageRecord; deliveries: DeliveryRecord[] }>;
  stats(): Promise<SpoolStats>;
  /** Operator actions; returns the message after the change. */
  act(queueId: string, action: AdminAction): Promise<MessageRecord>;
  /**
   * Gives up on a message now (operator `bounce`): every unfinished recipient fails with
   * `reason`; `report` builds the DSN, written in the same batch.
   */
  giveUp(queueId: string, reason: Reply, report: GiveUpReporter): Promise<MessageRecord>;
  /** Called with the lane whenever a delivery becomes due now (new message, retry, release). */
  onDue(listener: (lane: string) => void): void;
  /** Lets the scheduler take new deliveries straight from accept (see DispatchSlot). */
  setDispatcher(dispatcher: Dispatcher | null): void;
  /**
   * Messages not finished (queued, deferred, held): the `maxQueued` measure, as last known
   * (exact on level; a shared backend refreshes it about once a second).
   */
  unfinishedCount(): number;
  /** Messages by state, delivery events not included (the whole cluster's on a shared backend). */
  countsByState(): Promise<Record<MessageState, number>>;
  /** Whether the store answers now (false: accepts fail fast with 451, deliveries pause). */
  available(): boolean;
  /** The nodes sharing this spool; null for a spool only one process can open. */
  nodes(): Promise<NodeRecord[] | null>;
  /** What this node reports about its targets with each heartbeat (a shared backend; level ignores it). */
  setNodeStatus(provider: (() => Readonly<Record<string, TargetReport>>) | null): void;
  /** Removes expired dedup keys and finished messages past `retainFinished` now, until caught up. */
  sweep(): Promise<void>;
  /** Verifies the spool's invariants; repairs what is safe to repair only when asked. */
  check(repair: boolean, onProgress?: (scanned: number) => void): Promise<CheckReport>;
  /** `spool transfer`: every unfinished message with all of it, in arrival order. */
  exportUnfinished(): AsyncIterable<TransferItem>;
  /**
   * `spool transfer`: writes an exported message as it was (states, attempts, due times, dedup
   * key; `inFlight` ignored) in one durable write. Idempotent by queue id: a message already
   * present is left as it is and reported `present`.
   */
  importMessage(item: TransferItem): Promise<'imported' | 'present'>;
  /**
   * `spool transfer`: removes a message and everything of it (deliveries, attempts, body, its
   * own dedup key, index entries, counts) as if it had never been here: no DSN, not counted
   * as deleted. With `asExported`, only while it still matches that export (same states,
   * attempt counts and due times) and no delivery is in flight; else `changed`, nothing removed.
   */
  forget(queueId: string, asExported?: TransferItem): Promise<ForgetResult>;
  on<K extends keyof SpoolEvents>(event: K, listener: SpoolEventListener<K>): this;
  close(): Promise<void>;
}
