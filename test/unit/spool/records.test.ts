import { describe, expect, it } from '@jest/globals';
import { afterAction, afterAttempt, newRecords, withDeliveryState } from '../../../src/spool/records.js';
import type { DeliveryRecord, NewMessage } from '../../../src/spool/types.js';

const NOW = 1_800_000_000_000;
const reply = { kind: 'smtp' as const, code: 451, enhancedStatus: '4.3.0', text: '451 4.3.0 try later' };

function message(): NewMessage {
  return {
    queueId: '0MWYW796PFSD8KM',
    sender: 'a@example.com',
    recipients: ['b@example.org', 'c@example.org'],
    messageId: 'm1@example.com',
    body: Buffer.from('Subject: x\r\n\r\nhi\r\n'),
    client: { ip: '127.0.0.1', hostname: 'h', helo: 'h', user: null },
    deliveries: [{ targets: ['hooks'], recipients: ['b@example.org', 'c@example.org'] }],
    dedupKey: null,
    bounceOf: null,
  };
}

function delivery(): DeliveryRecord {
  const [d] = newRecords(message(), NOW).deliveries;
  return { ...(d as DeliveryRecord), dueAt: null, attemptCount: 1 };
}

describe('spool record transitions', () => {
  it('creates one queued delivery per route group, due now, and a queued message listing it', () => {
    const { message: m, deliveries } = newRecords(message(), NOW);
    expect(deliveries.map((d) => [d.id, d.state, d.dueAt])).toEqual([['0MWYW796PFSD8KM.0', 'queued', NOW]]);
    expect(m.deliveries).toEqual({ '0MWYW796PFSD8KM.0': 'queued' });
    expect(m.size).toBe(message().body.length);
  });

  it('defers a delivery whose recipients are not all final, at the given next attempt', () => {
    const d = afterAttempt(delivery(), false, {
      attempts: [{ at: NOW, target: 'hooks', outcome: 'error', reply: reply.text, durationMs: 3 }],
      recipients: [
        { address: 'b@example.org', state: 'delivered', reply: { ...reply, code: 250, enhancedStatus: null, text: '250 ok' } },
        { address: 'c@example.org', state: 'deferred', reply },
      ],
      nextDueAt: NOW + 60_000,
    }, NOW);
    expect([d.state, d.dueAt]).toEqual(['deferred', NOW + 60_000]);
    expect(d.recipients.map((r) => [r.address, r.state, r.lastError])).toEqual([
      ['b@example.org', 'delivered', '250 ok'],
      ['c@example.org', 'deferred', reply.text],
    ]);
    expect(d.attempts).toHaveLength(1);
  });

  it('keeps a delivery that became final while its attempt ran (operator bounce) final, recording the attempt', () => {
    const bounced: DeliveryRecord = { ...delivery(), state: 'failed', recipients: delivery().recipients.map((r) => ({ ...r, state: 'failed' as const })) };
    const d = afterAttempt(bounced, false, {
      attempts: [{ at: NOW, target: 'hooks', outcome: 'error', reply: reply.text, durationMs: 3 }],
      recipients: [
        { address: 'b@example.org', state: 'deferred', reply },
        { address: 'c@example.org', state: 'deferred', reply },
      ],
      nextDueAt: NOW + 60_000,
    }, NOW);
    expect([d.state, d.dueAt]).toEqual(['failed', null]);
    expect(d.recipients.map((r) => r.state)).toEqual(['failed', 'failed']);
    expect(d.attempts).toHaveLength(1);
  });

  it('makes a delivery failed once every recipient is final and one failed, with no due time', () => {
    const d = afterAttempt(delivery(), false, {
      attempts: [],
      recipients: [
        { address: 'b@example.org', state: 'delivered', reply: null },
        { address: 'c@example.org', state: 'failed', reply: null },
      ],
      nextDueAt: null,
      reported: ['c@example.org'],
    }, NOW);
    expect([d.state, d.dueAt]).toEqual(['failed', null]);
    expect(d.recipients.find((r) => r.address === 'c@example.org')?.reported).toBe(true);
  });

  it('keeps a delivery held when the operator held it during the attempt', () => {
    const held: DeliveryRecord = { ...delivery(), state: 'held' };
    const d = afterAttempt(held, false, { attempts: [], recipients: [{ address: 'b@example.org', state: 'deferred', reply }], nextDueAt: NOW + 1 }, NOW);
    expect([d.state, d.dueAt]).toEqual(['held', null]);
  });

  it('applies hold, release and retry only where they mean something', () => {
    const waiting: DeliveryRecord = { ...delivery(), state: 'deferred', dueAt: NOW + 5000 };
    expect(afterAction('hold', waiting, NOW)).toMatchObject({ state: 'held', dueAt: null });
    expect(afterAction('release', waiting, NOW)).toBeNull();
    expect(afterAction('retry', waiting, NOW)).toMatchObject({ state: 'queued', dueAt: NOW });
    const inFlight: DeliveryRecord = { ...delivery(), state: 'queued', dueAt: null };
    expect(afterAction('retry', inFlight, NOW)).toBeNull();
  });

  it('derives the message state from its deliveries, and never revives a deleted message', () => {
    const { message: m } = newRecords(message(), NOW);
    expect(withDeliveryState(m, '0MWYW796PFSD8KM.0', 'deferred').state).toBe('deferred');
    expect(withDeliveryState(m, '0MWYW796PFSD8KM.0', 'delivered').state).toBe('delivered');
    expect(withDeliveryState({ ...m, state: 'deleted' }, '0MWYW796PFSD8KM.0', 'queued').state).toBe('deleted');
  });
});
