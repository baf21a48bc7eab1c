import { describe, expect, it } from '@jest/globals';
import { FINAL_DELIVERY_STATES, FINISHED_MESSAGE_STATES, finalDeliveryState, isFinalRecipient, messageStateOf } from '../../../src/spool/state.js';
import type { DeliveryState, MessageState, RecipientState } from '../../../src/spool/types.js';

const rcpts = (...states: RecipientState[]) => states.map((state) => ({ state }));

describe('spool state rules', () => {
  it.each<[RecipientState, boolean]>([
    ['queued', false],
    ['deferred', false],
    ['held', false],
    ['delivered', true],
    ['failed', true],
  ])('treats a %s recipient as final: %s', (state, final) => {
    expect(isFinalRecipient({ state })).toBe(final);
  });

  it.each<[string, RecipientState[], DeliveryState | null]>([
    ['all delivered', ['delivered', 'delivered'], 'delivered'],
    ['all failed', ['failed', 'failed'], 'failed'],
    ['one failed, one delivered', ['delivered', 'failed'], 'failed'],
    ['one still queued', ['delivered', 'queued'], null],
    ['one deferred', ['failed', 'deferred'], null],
    ['one held', ['held', 'delivered'], null],
    ['a single delivered recipient', ['delivered'], 'delivered'],
  ])('gives a delivery whose recipients are %s the final state %s', (_name, states, expected) => {
    expect(finalDeliveryState(rcpts(...states))).toBe(expected);
  });

  it.each<[Record<string, DeliveryState>, MessageState]>([
    [{ a: 'queued' }, 'queued'],
    [{ a: 'queued', b: 'deferred', c: 'held' }, 'queued'],
    [{ a: 'delivered', b: 'queued' }, 'queued'],
    [{ a: 'deferred', b: 'held' }, 'deferred'],
    [{ a: 'deferred', b: 'failed' }, 'deferred'],
    [{ a: 'held', b: 'delivered' }, 'held'],
    [{ a: 'held', b: 'failed' }, 'held'],
    [{ a: 'delivered' }, 'delivered'],
    [{ a: 'delivered', b: 'delivered' }, 'delivered'],
    [{ a: 'failed' }, 'bounced'],
    [{ a: 'delivered', b: 'failed' }, 'bounced'],
  ])('derives the message state from deliveries %j as %s', (deliveries, expected) => {
    expect(messageStateOf(deliveries)).toBe(expected);
  });

  it('lists delivered and failed as the final delivery states, and delivered, bounced, deleted as finished messages', () => {
    expect([...FINAL_DELIVERY_STATES].sort()).toEqual(['delivered', 'failed']);
    expect([...FINISHED_MESSAGE_STATES].sort()).toEqual(['bounced', 'deleted', 'delivered']);
  });
});
