/** EventBuilder: which events an attempt or an operator bounce writes, their ids and bodies. */
import { describe, expect, it } from '@jest/globals';
import { parseConfig } from '../../../src/config/index.js';
import type { AttemptOutcome } from '../../../src/delivery/index.js';
import { EventBuilder, type DeliveryEvent } from '../../../src/events/index.js';
import type { ClaimedDelivery, MessageRecord } from '../../../src/spool/index.js';

const CONFIG = (events: string): ReturnType<typeof parseConfig> =>
  parseConfig(
    `hostname: relay.test
targets:
  mail: { type: file, path: ./out }
  appEvents: { type: http, url: "http://127.0.0.1:8080/events" }
routes:
  - { match: "*", target: mail }
${events}`,
    {},
  );

const MESSAGE: MessageRecord = {
  id: 'MI3Q5ZK7A4F9K2X',
  sender: 'a@client.test',
  recipients: ['ok@x.test', 'later@x.test', 'no@x.test', 'old@x.test'],
  messageId: 'm1@client.test',
  size: 10,
  receivedAt: 0,
  client: { ip: '127.0.0.1', hostname: 'h', helo: 'h', user: null },
  state: 'queued',
  deliveries: { 'MI3Q5ZK7A4F9K2X.0': 'queued' },
  finishedAt: null,
  dedupKey: null,
  bounceOf: null,
  eventOf: null,
};

function claimed(message: MessageRecord = MESSAGE): ClaimedDelivery {
  return {
    message,
    body: Buffer.from('x'),
    delivery: {
      id: `${message.id}.0`,
      queueId: message.id,
      targets: ['mail'],
      recipients: [],
      state: 'queued',
      attempts: [],
      attemptCount: 3,
      dueAt: null,
      createdAt: 0,
      delayWarned: false,
    },
  };
}

const reply = (text: string) => ({ kind: 'smtp' as const, code: Number(text.slice(0, 3)), enhancedStatus: null, text });
const OUTCOME: AttemptOutcome = {
  attempts: [{ at: 1000, target: 'mail', outcome: 'error', reply: '...', durationMs: 5 }],
  recipients: [
    { address: 'ok@x.test', state: 'delivered', reply: reply('250 ok'), expired: false, target: 'mail' },
    { address: 'later@x.test', state: 'deferred', reply: reply('451 later'), expired: false, target: 'mail' },
    { address: 'no@x.test', state: 'failed', reply: reply('550 no'), expired: false, target: 'mail' },
    { address: 'old@x.test', state: 'failed', reply: reply('451 still'), expired: true, target: 'mail' },
  ],
  nextDueAt: 61_000,
  skipped: false,
  interrupted: false,
  earliestProbeAt: null,
};

const bodies = (events: readonly { body: Buffer }[]): DeliveryEvent[] => events.map((e) => JSON.parse(e.body.toString('utf8')) as DeliveryEvent);

describe('EventBuilder', () => {
  it('writes one event per kind of ending, each with its recipients, as null-sender spool messages to events.target', () => {
    const events = new EventBuilder(CONFIG('events: { target: appEvents }')).forAttempt(claimed(), OUTCOME, 1000);
    expect(bodies(events)).toEqual([
      { id: 'MI3Q5ZK7A4F9K2X.0.3.delivered', type: 'delivered', at: '1970-01-01T00:00:01.000Z', queueId: MESSAGE.id, messageId: 'm1@client.test', deliveryId: 'MI3Q5ZK7A4F9K2X.0', target: 'mail', attempt: 3, recipients: [{ address: 'ok@x.test', state: 'delivered', reply: '250 ok' }] },
      { id: 'MI3Q5ZK7A4F9K2X.0.3.deferred', type: 'deferred', at: '1970-01-01T00:00:01.000Z', queueId: MESSAGE.id, messageId: 'm1@client.test', deliveryId: 'MI3Q5ZK7A4F9K2X.0', target: 'mail', attempt: 3, recipients: [{ address: 'later@x.test', state: 'deferred', reply: '451 later' }], nextAttemptAt: '1970-01-01T00:01:01.000Z' },
      { id: 'MI3Q5ZK7A4F9K2X.0.3.failed.rejected', type: 'failed', at: '1970-01-01T00:00:01.000Z', queueId: MESSAGE.id, messageId: 'm1@client.test', deliveryId: 'MI3Q5ZK7A4F9K2X.0', target: 'mail', attempt: 3, recipients: [{ address: 'no@x.test', state: 'failed', reply: '550 no' }], reason: 'rejected' },
      { id: 'MI3Q5ZK7A4F9K2X.0.3.failed.expired', type: 'failed', at: '1970-01-01T00:00:01.000Z', queueId: MESSAGE.id, messageId: 'm1@client.test', deliveryId: 'MI3Q5ZK7A4F9K2X.0', target: 'mail', attempt: 3, recipients: [{ address: 'old@x.test', state: 'failed', reply: '451 still' }], reason: 'expired' },
    ]);
    for (const e of events) {
      expect(e).toMatchObject({ sender: '', eventOf: MESSAGE.id, bounceOf: null, dedupKey: null, deliveries: [{ targets: ['appEvents'] }] });
      expect(e.messageId).toBe(bodies([e])[0]?.id);
    }
  });

  it('writes only the configured types, and nothing when events are off', () => {
    expect(bodies(new EventBuilder(CONFIG('events: { target: appEvents, types: [failed] }')).forAttempt(claimed(), OUTCOME, 1000)).map((e) => e.id)).toEqual([
      'MI3Q5ZK7A4F9K2X.0.3.failed.rejected',
      'MI3Q5ZK7A4F9K2X.0.3.failed.expired',
    ]);
    expect(new EventBuilder(CONFIG('')).forAttempt(claimed(), OUTCOME, 1000)).toEqual([]);
  });

  it('writes none for a DSN or an event', () => {
    const builder = new EventBuilder(CONFIG('events: { target: appEvents }'));
    expect(builder.forAttempt(claimed({ ...MESSAGE, sender: '', bounceOf: 'MI3Q5ZK7A4F9K2Y' }), OUTCOME, 1000)).toEqual([]);
    expect(builder.forAttempt(claimed({ ...MESSAGE, sender: '', eventOf: 'MI3Q5ZK7A4F9K2Y' }), OUTCOME, 1000)).toEqual([]);
  });

  it('reports an operator bounce as failed with reason operator, one event per delivery', () => {
    const builder = new EventBuilder(CONFIG('events: { target: appEvents }'));
    const { delivery } = claimed();
    const failed = [{ address: 'later@x.test', state: 'failed' as const, lastError: null, lastReply: null, reported: true }];
    const reason = { kind: 'x-onward' as const, code: null, enhancedStatus: null, text: 'bounced by the operator' };
    expect(bodies(builder.forGiveUp(MESSAGE, [{ delivery, failed }], reason, 2000))).toEqual([
      {
        id: 'MI3Q5ZK7A4F9K2X.0.3.failed.operator', type: 'failed', at: '1970-01-01T00:00:02.000Z', queueId: MESSAGE.id, messageId: 'm1@client.test',
        deliveryId: 'MI3Q5ZK7A4F9K2X.0', target: 'mail', attempt: 3, recipients: [{ address: 'later@x.test', state: 'failed', reply: 'bounced by the operator' }], reason: 'operator',
      },
    ]);
    expect(new EventBuilder(CONFIG('events: { target: appEvents, types: [delivered] }')).forGiveUp(MESSAGE, [{ delivery, failed }], reason, 2000)).toEqual([]);
  });
});
