/**
 * Delivery events (SPEC 11): what became of each delivery attempt, as JSON documents that
 * onward POSTs to `events.target`. An event is a small spool message of its own (`eventOf`:
 * the queue id it reports on; null sender, so it is never bounced; its Message-ID is the
 * event id; its body the event JSON), built here and written by the spool in the same atomic
 * write as the outcome it reports (AttemptUpdate.events, giveUp's report).
 *
 * Event ids are deterministic, so an event written once keeps its id across its own retries
 * (it is also the `Idempotency-Key`), and a rerun of the same outcome could never mint a new
 * one: `<deliveryId>.<attempt>.<type>`, and for `failed` `<deliveryId>.<attempt>.failed.<reason>`
 * (an attempt may fail some recipients as rejected and others as expired; an operator bounce
 * after attempt n is `<deliveryId>.<n>.failed.operator`).
 */
import type { Config, DeliveryEventType, EventsConfig } from '../config/types.js';
import type { RecipientOutcome } from '../delivery/attempt.js';
import type { Reply } from '../delivery/types.js';
import { newQueueId, type ClaimedDelivery, type GivenUpDelivery, type MessageRecord, type NewMessage } from '../spool/index.js';

export type FailedReason = 'rejected' | 'expired' | 'operator';

export interface EventRecipient {
  readonly address: string;
  readonly state: 'delivered' | 'deferred' | 'failed';
  /** The reply text this recipient got (SMTP reply line, `HTTP 503 ...`, the network error); null when none. */
  readonly reply: string | null;
}

/** The body POSTed to `events.target` (application/json). */
export interface DeliveryEvent {
  readonly id: string;
  readonly type: DeliveryEventType;
  /** When the outcome was recorded, ISO 8601. */
  readonly at: string;
  readonly queueId: string;
  readonly messageId: string | null;
  readonly deliveryId: string;
  /** The target that answered these recipients (for a failover list, the last one tried). */
  readonly target: string;
  /** The delivery's attempt number (1-based), as in `X-Onward-Attempt`. */
  readonly attempt: number;
  readonly recipients: readonly EventRecipient[];
  /** `deferred` only: when the next attempt is due, ISO 8601. */
  readonly nextAttemptAt?: string;
  /** `failed` only. */
  readonly reason?: FailedReason;
}

/** The one recipient of an event message (events are routed to `events.target`, never through routes). */
export const EVENT_RECIPIENT = 'events@onward.invalid';

export function eventId(deliveryId: string, attempt: number, type: DeliveryEventType, reason?: FailedReason): string {
  return `${deliveryId}.${String(attempt)}.${type}${reason === undefined ? '' : `.${reason}`}`;
}

/** Whether a message may produce events: not an event itself, not a DSN onward generated. */
export function reportsEvents(message: MessageRecord): boolean {
  return message.eventOf === null && message.bounceOf === null;
}

export class EventBuilder {
  constructor(private config: Config) {}

  /** SIGHUP: events on or off, another target or other types apply to outcomes from now on. */
  reconfigure(config: Config): void {
    this.config = config;
  }

  private get events(): EventsConfig | null {
    return this.config.events;
  }

  /**
   * The events of one recorded attempt: one per kind of ending among its recipients
   * (delivered, deferred, failed as rejected, failed as expired), in that order.
   */
  forAttempt(claimed: ClaimedDelivery, outcome: { readonly recipients: readonly RecipientOutcome[]; readonly nextDueAt: number | null; readonly attempts: readonly { readonly target: string }[] }, now: number): NewMessage[] {
    const events = this.events;
    const { delivery, message } = claimed;
    if (events === null || !reportsEvents(message)) return [];
    const lastTarget = outcome.attempts.at(-1)?.target ?? delivery.targets[0] ?? '';
    const groups: { type: DeliveryEventType; reason?: FailedReason; recipients: RecipientOutcome[] }[] = [
      { type: 'delivered', recipients: outcome.recipients.filter((r) => r.state === 'delivered') },
      { type: 'deferred', recipients: outcome.recipients.filter((r) => r.state === 'deferred') },
      { type: 'failed', reason: 'rejected', recipients: outcome.recipients.filter((r) => r.state === 'failed' && !r.expired) },
      { type: 'failed', reason: 'expired', recipients: outcome.recipients.filter((r) => r.state === 'failed' && r.expired) },
    ];
    const out: NewMessage[] = [];
    for (const g of groups) {
      if (g.recipients.length === 0 || !events.types.includes(g.type)) continue;
      const targets = [...new Set(g.recipients.map((r) => r.target ?? lastTarget))];
      const event: DeliveryEvent = {
        id: eventId(delivery.id, delivery.attemptCount, g.type, g.reason),
        type: g.type,
        at: new Date(now).toISOString(),
        queueId: message.id,
        messageId: message.messageId,
        deliveryId: delivery.id,
        target: targets.length === 1 ? (targets[0] ?? lastTarget) : lastTarget,
        attempt: delivery.attemptCount,
        recipients: g.recipients.map((r) => ({ address: r.address, state: r.state as EventRecipient['state'], reply: r.reply?.text ?? null })),
        ...(g.type === 'deferred' && outcome.nextDueAt !== null ? { nextAttemptAt: new Date(outcome.nextDueAt).toISOString() } : {}),
        ...(g.reason === undefined ? {} : { reason: g.reason }),
      };
      out.push(this.message(event, now));
    }
    return out;
  }

  /** The `failed` events (reason `operator`) of an operator bounce: one per delivery it ended. */
  forGiveUp(message: MessageRecord, deliveries: readonly GivenUpDelivery[], reason: Reply, now: number): NewMessage[] {
    const events = this.events;
    if (events === null || !reportsEvents(message) || !events.types.includes('failed')) return [];
    return deliveries.map(({ delivery, failed }) =>
      this.message(
        {
          id: eventId(delivery.id, delivery.attemptCount, 'failed', 'operator'),
          type: 'failed',
          at: new Date(now).toISOString(),
          queueId: message.id,
          messageId: message.messageId,
          deliveryId: delivery.id,
          target: delivery.targets[0] ?? '',
          attempt: delivery.attemptCount,
          recipients: failed.map((r) => ({ address: r.address, state: 'failed', reply: reason.text })),
          reason: 'operator',
        },
        now,
      ),
    );
  }

  /** The event as a spool message: null sender, one delivery to events.target, the JSON as its body. */
  private message(event: DeliveryEvent, now: number): NewMessage {
    const target = this.events?.target ?? '';
    const hostname = this.config.hostname;
    return {
      queueId: newQueueId(now),
      sender: '',
      recipients: [EVENT_RECIPIENT],
      messageId: event.id,
      body: Buffer.from(JSON.stringify(event), 'utf8'),
      client: { ip: '127.0.0.1', hostname, helo: hostname, user: null },
      deliveries: [{ targets: [target], recipients: [EVENT_RECIPIENT] }],
      dedupKey: null,
      bounceOf: null,
      eventOf: event.queueId,
    };
  }
}
