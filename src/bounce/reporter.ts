/**
 * The bounce step: turns recipients that ended failed (FAIL, or ERROR past retry.maxAge)
 * and, once, deliveries late past retry.delayWarningAfter into one DSN per attempt, which
 * the scheduler writes in the same atomic batch as the outcome — so a crash can never
 * record a failure without its report, or the report twice.
 */
import type { Config } from '../config/types.js';
import type { AttemptOutcome, FailureReport, FailureReporter, RecipientOutcome } from '../delivery/index.js';
import type { Logger } from '../log.js';
import { headerEnd, readHeaders } from '../message/headers.js';
import type { RouteGroup } from '../routing/index.js';
import { newQueueId, recipientDomain, type ClaimedDelivery, type NewMessage } from '../spool/index.js';
import { buildDsn, dsnStatusFor, type DsnRecipient } from './dsn.js';

export interface BounceReporterDeps {
  config: Config;
  /** Routes the DSN when `bounces.via` is not set. */
  route: (recipients: readonly string[]) => RouteGroup[];
  readonly logger: Logger;
}

const NOTHING: FailureReport = { dsn: null, reported: [], delayWarned: false };

export class BounceReporter implements FailureReporter {
  private readonly log: Logger;

  constructor(private readonly deps: BounceReporterDeps) {
    this.log = deps.logger.child({ component: 'bounce' });
  }

  /** SIGHUP: new bounces.from / via, retry policy and routes. */
  reconfigure(config: Config, route: BounceReporterDeps['route']): void {
    this.deps.config = config;
    this.deps.route = route;
  }

  async prepare(claimed: ClaimedDelivery, outcome: AttemptOutcome, now: number): Promise<FailureReport> {
    const { delivery, message } = claimed;
    const { retry } = this.deps.config;
    const failed = outcome.recipients.filter((r) => r.state === 'failed');
    const deferred = outcome.recipients.filter((r) => r.state === 'deferred');
    const warnDelay =
      retry.delayWarningAfterMs !== null && !delivery.delayWarned && deferred.length > 0 && now - delivery.createdAt >= retry.delayWarningAfterMs;
    if (failed.length === 0 && !warnDelay) return NOTHING;
    const reported = failed.map((r) => r.address);
    if (message.sender === '') {
      // Never bounce a bounce: a null-sender message's failures are recorded and dropped.
      if (failed.length > 0) this.log.warn({ queueId: message.id, recipients: reported }, 'null-sender message failed; no DSN (never bounce a bounce)');
      return { dsn: null, reported, delayWarned: warnDelay };
    }
    const lastAttemptAt = new Date(outcome.attempts.at(-1)?.at ?? now);
    const recipients: DsnRecipient[] = [
      ...failed.map((r) => this.failedRecipient(r, lastAttemptAt)),
      ...(warnDelay ? deferred.map((r) => this.delayedRecipient(r, lastAttemptAt, delivery.createdAt + retry.maxAgeMs)) : []),
    ];
    const dsn = await this.buildMessage(message.id, message.sender, message.receivedAt, claimed.body, recipients, now);
    if (!dsn) return { dsn: null, reported, delayWarned: warnDelay };
    this.log.info(
      { queueId: message.id, dsnQueueId: dsn.queueId, to: message.sender, failed: reported, delayed: warnDelay ? deferred.map((r) => r.address) : [] },
      'DSN queued',
    );
    return { dsn, reported, delayWarned: warnDelay };
  }

  /** The DSN as a new spool message to the original sender, or null when it cannot be routed. */
  async buildMessage(
    queueId: string,
    sender: string,
    receivedAt: number,
    body: Buffer,
    recipients: readonly DsnRecipient[],
    now: number,
  ): Promise<NewMessage | null> {
    const { config } = this.deps;
    const via = config.bounces.via;
    // `via` may name an mx target: the DSN is then a delivery to the sender's domain.
    const viaDomain = via !== null && config.targets[via]?.type === 'mx' ? { domain: recipientDomain(sender) } : {};
    const deliveries = via !== null ? [{ targets: [via], ...viaDomain, recipients: [sender] }] : this.deps.route([sender]);
    if (deliveries.length === 0) {
      this.log.error({ queueId, to: sender }, 'no route for the DSN to the sender; failure recorded without a DSN');
      return null;
    }
    const raw = await buildDsn({
      reportingMta: config.hostname,
      from: config.bounces.from,
      to: sender,
      queueId,
      arrivalDate: new Date(receivedAt),
      recipients,
      originalHeaders: body.subarray(0, headerEnd(body)),
      now: new Date(now),
    });
    return {
      queueId: newQueueId(now),
      sender: '',
      recipients: [sender],
      messageId: readHeaders(raw).messageId,
      body: raw,
      client: { ip: '127.0.0.1', hostname: config.hostname, helo: config.hostname, user: null },
      deliveries,
      dedupKey: null,
      bounceOf: queueId,
    };
  }

  private failedRecipient(r: RecipientOutcome, lastAttemptAt: Date): DsnRecipient {
    return { address: r.address, action: 'failed', status: dsnStatusFor(r.expired ? 'expired' : 'fail', r.reply), reply: r.reply, lastAttemptAt };
  }

  private delayedRecipient(r: RecipientOutcome, lastAttemptAt: Date, willRetryUntil: number): DsnRecipient {
    return {
      address: r.address,
      action: 'delayed',
      status: dsnStatusFor('expired', r.reply),
      reply: r.reply,
      lastAttemptAt,
      willRetryUntil: new Date(willRetryUntil),
    };
  }
}
