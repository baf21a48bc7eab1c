/**
 * What the spool contract tests build and read: messages, attempt outcomes, listings and
 * waits. Backend-neutral: times are the real clock, never a backend's `now` option.
 */
import type { Reply } from '../../src/delivery/types.js';
import { newQueueId, type AttemptUpdate, type ClaimedDelivery, type Dispatcher, type NewMessage, type RecipientState, type Spool } from '../../src/spool/index.js';
import { waitForValue } from '../helpers/common.js';

/** A due time no test reaches: "not due". */
export const LATER = 3_600_000;

export const OK: Reply = { kind: 'x-onward', code: null, enhancedStatus: null, text: 'written' };
export const TEMP: Reply = { kind: 'smtp', code: 451, enhancedStatus: '4.3.0', text: '451 4.3.0 try later' };
export const PERM: Reply = { kind: 'smtp', code: 550, enhancedStatus: '5.1.1', text: '550 5.1.1 no such user' };

export function message(overrides: Partial<NewMessage> = {}): NewMessage {
  const recipients = overrides.recipients ?? ['rcpt@example.org'];
  return {
    queueId: newQueueId(),
    sender: 'sender@example.com',
    recipients,
    messageId: null,
    body: Buffer.from(`Subject: test\r\n\r\n${Math.random()}\r\n`),
    client: { ip: '127.0.0.1', hostname: '[127.0.0.1]', helo: 'client.test', user: null },
    deliveries: [{ targets: ['outbox'], recipients }],
    dedupKey: null,
    bounceOf: null,
    ...overrides,
  };
}

/** One recipient routed to `one`, one to the failover list `two` + `backup` (lane `two+backup`): two deliveries. */
export function twoRouteMessage(overrides: Partial<NewMessage> = {}): NewMessage {
  return message({
    recipients: ['a@one.test', 'b@two.test'],
    deliveries: [
      { targets: ['one'], recipients: ['a@one.test'] },
      { targets: ['two', 'backup'], recipients: ['b@two.test'] },
    ],
    ...overrides,
  });
}

/** A DSN reporting on `queueId` (null sender), as the bounce step would hand it over. */
export function dsnFor(queueId: string): NewMessage {
  return message({ sender: '', recipients: ['sender@example.com'], bounceOf: queueId, messageId: `dsn-${queueId}@relay.test` });
}

/** One attempt on `target` ending with `state` for every address in `addresses`. */
export function outcome(addresses: readonly string[], state: RecipientState, nextDueAt: number | null, target = 'outbox'): AttemptUpdate {
  const reply = state === 'delivered' ? OK : state === 'failed' ? PERM : TEMP;
  return {
    attempts: [{ at: Date.now(), target, outcome: state === 'delivered' ? 'ok' : state === 'failed' ? 'fail' : 'error', reply: reply.text, durationMs: 3 }],
    recipients: addresses.map((address) => ({ address, state, reply })),
    nextDueAt,
    ...(state === 'failed' ? { reported: addresses } : {}),
  };
}

/** Claims `lane` until something is handed out (a backend may make work due a moment later); fails after `timeoutMs`. */
export function claimSoon(spool: Spool, lane: string, limit = 10, timeoutMs = 5000): Promise<ClaimedDelivery[]> {
  return waitForValue(() => spool.claimDue(lane, Date.now(), limit), (c) => c.length > 0, timeoutMs, `a due delivery in lane ${lane}`);
}

/** Accepts and claims `msg`'s single delivery, returning the claim. */
export async function acceptAndClaim(spool: Spool, msg: NewMessage, lane = 'outbox'): Promise<ClaimedDelivery> {
  await spool.accept(msg);
  const [claimed] = await claimSoon(spool, lane, 1);
  return claimed!;
}

/** Resolves once the clock has passed `at` (a condition on time, for windows that must expire). */
export async function clockPast(at: number): Promise<void> {
  await waitForValue(() => Date.now(), (t) => t > at, Math.max(5000, at - Date.now() + 5000), `the clock to pass ${String(at)}`);
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export async function listedIds(spool: Spool, filter: Parameters<Spool['list']>[0]): Promise<string[]> {
  return (await collect(spool.list(filter))).map((e) => e.message.id);
}

/** A dispatcher that grants `grants` slots and records what the spool does with them. */
export class RecordingDispatcher {
  readonly started: ClaimedDelivery[] = [];
  readonly lanes: string[] = [];
  cancelled = 0;
  constructor(private grants: number, private readonly onStart: (claimed: ClaimedDelivery) => void = () => undefined) {}
  readonly dispatcher: Dispatcher = (lane) => {
    this.lanes.push(lane);
    if (this.grants <= 0) return null;
    this.grants -= 1;
    return {
      start: (claimed) => {
        this.started.push(claimed);
        this.onStart(claimed);
      },
      cancel: () => (this.cancelled += 1),
    };
  };
}

/** Within `toleranceMs` of `expected`: times a shared backend converts through its own clock. */
export function near(actual: number | null | undefined, expected: number, toleranceMs = 1000): boolean {
  return typeof actual === 'number' && Math.abs(actual - expected) <= toleranceMs;
}
