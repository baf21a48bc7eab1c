/**
 * The resolved configuration: what the YAML file says after validation, defaults,
 * `${ENV}` substitution and unit conversion. Durations are milliseconds (`…Ms`),
 * sizes are bytes (`…Bytes`). The object is deeply frozen; pass it down, never import it.
 */
export interface ListenerConfig {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (port 465 style) instead of STARTTLS. */
  readonly implicitTls: boolean;
}

export interface TlsConfig {
  readonly keyPath: string;
  readonly certPath: string;
}

export interface LimitsConfig {
  readonly maxMessageSizeBytes: number;
  readonly maxRecipients: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** A session silent this long is closed. */
  readonly idleTimeoutMs: number;
  /** A session open this long is closed (421), however busy. */
  readonly sessionTimeoutMs: number;
  /** Commands one session may send before it is closed (421 4.7.0). */
  readonly maxCommands: number;
  /** Error replies one session may earn before it is closed (421 4.7.0). */
  readonly maxErrors: number;
  /** Bytes of message data all sessions together may hold in memory while in DATA. */
  readonly maxDataMemoryBytes: number;
  /** Failed AUTH attempts per client IP within 10 minutes before AUTH is refused (454 4.7.0). */
  readonly maxAuthFailures: number;
}

export interface RelayUser {
  readonly username: string;
  readonly password: string;
}

export interface RelayConfig {
  /** CIDR blocks allowed to relay without AUTH. Default loopback only. */
  readonly allowNetworks: readonly string[];
  readonly users: readonly RelayUser[];
  readonly allowInsecureAuth: boolean;
}

export interface SmtpPolicyConfig {
  readonly bareLineEndings: 'reject' | 'normalize';
  /** Wait before the 220 greeting (smtp-server's early-talker check); 0 = greet at once. */
  readonly greetingDelayMs: number;
}

export type SpoolBackend = 'level' | 'postgres';

export interface SpoolConfig {
  readonly backend: SpoolBackend;
  /** level: the LevelDB directory. */
  readonly path: string;
  /** level: below this much free disk, new messages get 452. */
  readonly minFreeDiskBytes: number;
  /** postgres: the connection URL, `${VAR}` already substituted (a secret: never log it unredacted). */
  readonly url: string | null;
  /** postgres: the schema holding the spool's tables. */
  readonly schema: string;
  /** postgres: how long a node's claim on a delivery in flight lasts without renewal. */
  readonly leaseMs: number;
  /** postgres: connections per node. */
  readonly pool: number;
  readonly maxQueued: number;
  readonly retainFinishedMs: number;
  /** Share one fsync among concurrent messages (default). Off only to measure what it buys. */
  readonly groupCommit: boolean;
}

export interface RetryConfig {
  readonly scheduleMs: readonly number[];
  /** Fraction (0..1) of each interval added or removed at random. 0 turns jitter off. */
  readonly jitter: number;
  readonly maxAgeMs: number;
  readonly delayWarningAfterMs: number | null;
}

export interface CircuitConfig {
  readonly failures: number;
  readonly probeMs: number;
}

interface TargetBase {
  readonly name: string;
  /** Upper bound of concurrent deliveries to this target. */
  readonly concurrency: number;
  readonly circuit: CircuitConfig;
}

/** Which signature headers an http target sends (SPEC section 11): onward's, Standard Webhooks', or both. */
export type SigningScheme = 'onward' | 'standard' | 'both';

export interface HttpTargetConfig extends TargetBase {
  readonly type: 'http';
  readonly url: string;
  readonly format: 'json' | 'raw';
  readonly headers: Readonly<Record<string, string>>;
  readonly signing: SigningScheme;
  /** `signingSecret` as a list, newest first (one signature each); empty: no signature headers. */
  readonly signingSecrets: readonly string[];
  readonly timeoutMs: number;
}

/** DKIM signature algorithm, from the key's type. */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/**
 * One DKIM key of a target (SPEC section 13): messages whose From: domain is `domain` or one
 * of its subdomains are signed with it (the closest configured domain wins).
 */
export interface DkimKeyConfig {
  /** The signing domain (`d=`), lower-case ASCII (IDNs as punycode), no trailing dot. */
  readonly domain: string;
  /** The selector (`s=`): the record is published at `<selector>._domainkey.<domain>`. */
  readonly selector: string;
  /** The file the key was read from (for messages). */
  readonly keyPath: string;
  /**
   * The private key as read and validated at config load (PKCS#8 PEM). A secret: never log
   * it. Carried in the config (not re-read where it is used) so the key in use is the one
   * validated, and a SIGHUP after the file changed gives the target a new transport.
   */
  readonly privateKeyPem: string;
  readonly algorithm: DkimAlgorithm;
}

export interface SmtpTargetConfig extends TargetBase {
  readonly type: 'smtp';
  readonly host: string;
  readonly port: number;
  readonly secure: 'none' | 'starttls' | 'tls';
  /** Accept self-signed / mismatched certificates (tests, private networks). */
  readonly tlsRejectUnauthorized: boolean;
  readonly auth: { readonly user: string; readonly pass: string } | null;
  readonly pool: { readonly maxConnections: number; readonly maxMessagesPerConnection: number };
  readonly timeoutMs: number;
  /** DKIM keys to sign with on the way out; empty: messages leave unsigned. */
  readonly dkim: readonly DkimKeyConfig[];
}

export interface FileTargetConfig extends TargetBase {
  readonly type: 'file';
  readonly path: string;
}

/** STARTTLS policy of an mx target (SPEC 13). */
export type MxTlsMode = 'opportunistic' | 'required' | 'none';

/**
 * Direct delivery (SPEC 13): each recipient domain's mail exchangers, one delivery (and lane)
 * per domain. `concurrency` is the target's overall bound; each domain has its own adaptive
 * window (up to `concurrencyPerDomain`) and circuit.
 */
export interface MxTargetConfig extends TargetBase {
  readonly type: 'mx';
  readonly port: number;
  readonly tls: MxTlsMode;
  /** DNS servers as `host` or `host:port`; empty: the system resolvers. */
  readonly resolver: readonly string[];
  readonly concurrencyPerDomain: number;
  readonly timeoutMs: number;
  readonly dkim: readonly DkimKeyConfig[];
}

export type TargetConfig = HttpTargetConfig | SmtpTargetConfig | FileTargetConfig | MxTargetConfig;

export interface RouteConfig {
  /** Glob on the recipient address (`*` matches everything), case-insensitive. */
  readonly match: string;
  /** One or more target names: later ones are tried when earlier ones answer ERROR. */
  readonly targets: readonly string[];
}

export interface BouncesConfig {
  readonly from: string;
  /** Target that carries DSNs; null means route them like any message. */
  readonly via: string | null;
}

export type DeliveryEventType = 'delivered' | 'deferred' | 'failed';

/** Delivery events (SPEC 11): what became of each delivery attempt, POSTed to an http json target. */
export interface EventsConfig {
  /** An `http` target with `format: json`; events go straight to it (not through routes). */
  readonly target: string;
  /** Which events are written; default all three. */
  readonly types: readonly DeliveryEventType[];
}

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
  readonly token: string | null;
}

export interface SubmissionKey {
  /** The sender identity of what this key submits (dedup, Received header, logs). */
  readonly name: string;
  /** The bearer secret (never logged). */
  readonly key: string;
}

/** HTTP submission (SPEC 10): a second front door for applications that speak HTTP. */
export interface SubmissionConfig {
  readonly listen: { readonly host: string; readonly port: number };
  /** Empty: no Authorization asked (allowed on loopback only). */
  readonly keys: readonly SubmissionKey[];
}

export interface Config {
  readonly listen: readonly ListenerConfig[];
  readonly hostname: string;
  readonly tls: TlsConfig | null;
  readonly limits: LimitsConfig;
  readonly relay: RelayConfig;
  readonly smtp: SmtpPolicyConfig;
  readonly spool: SpoolConfig;
  /** This node's name in logs, metrics and `spool nodes`; null: `<hostname>-<pid>`. */
  readonly nodeId: string | null;
  readonly dedup: { readonly windowMs: number };
  readonly retry: RetryConfig;
  readonly targets: Readonly<Record<string, TargetConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly bounces: BouncesConfig;
  /** Delivery events; null when not configured. */
  readonly events: EventsConfig | null;
  readonly admin: AdminConfig;
  /** null: no HTTP submission listener. */
  readonly submission: SubmissionConfig | null;
  readonly shutdownGraceMs: number;
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
}
