/**
 * SMTP target, per-recipient results (SPEC section 4): one message, three recipients, each
 * answered differently at RCPT TO by a real SMTP sink on loopback.
 */
import { describe, expect, it } from '@jest/globals';
import { useCleanup } from '../../helpers/common.js';
import { startSmtpSink } from '../../helpers/smtp-sink.js';
import { simpleMessage, startDeliveryRelay, waitForQuiet } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';
const REJECTED = 'nobody@mail.test';
const LATER = 'later@mail.test';
const ACCEPTED = 'ok@mail.test';

describe('SMTP delivery with per-recipient replies', () => {
  const defer = useCleanup();

  it('fails the 550 recipient, delivers the 451 one on a later attempt and the 250 one at once', async () => {
    let laterSeen = 0;
    const sink = await startSmtpSink({
      onRcpt: (to) => {
        if (to === REJECTED) return { code: 550, message: '5.1.1 no such user' };
        if (to === LATER && laterSeen++ === 0) return { code: 451, message: '4.2.0 mailbox busy, try later' };
        return null;
      },
    });
    defer(() => sink.close());
    const t = await startDeliveryRelay({
      targets: { mail: { type: 'smtp', host: '127.0.0.1', port: sink.port, secure: 'none', timeout: '2s' } },
      routes: [{ match: '*@mail.test', target: 'mail' }],
    });
    defer(() => t.close());

    const raw = simpleMessage({ to: `${REJECTED}, ${LATER}, ${ACCEPTED}` });
    const queueId = await t.send({ from: FROM, to: [REJECTED, LATER, ACCEPTED] }, raw);
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'failed', 5000);
    await waitForQuiet(t.relay); // nothing left due or running: nothing more can go out

    // One delivery for the target, each recipient with its own final state.
    expect(delivery!.id).toBe(`${queueId}.0`);
    const byAddress = Object.fromEntries(delivery!.recipients.map((r) => [r.address, r]));
    expect(byAddress[REJECTED]).toMatchObject({ state: 'failed', lastError: '550 5.1.1 no such user', reported: true });
    expect(byAddress[LATER]).toMatchObject({ state: 'delivered' });
    expect(byAddress[ACCEPTED]).toMatchObject({ state: 'delivered' });
    expect(byAddress[LATER]!.lastError).toMatch(/^250 /);
    expect(byAddress[REJECTED]!.lastReply).toMatchObject({ kind: 'smtp', code: 550, enhancedStatus: '5.1.1' });

    // Attempt 1: 550 + 451 + 250; attempt 2: only the deferred recipient.
    expect(delivery!.attemptCount).toBe(2);
    expect(delivery!.attempts.map((a) => a.outcome)).toEqual(['error', 'ok']);
    expect(delivery!.attempts[0]!.reply).toContain(`<${REJECTED}>: 550 5.1.1 no such user`);
    expect(delivery!.attempts[0]!.reply).toContain(`<${LATER}>: 451 4.2.0 mailbox busy, try later`);

    // The sink got the message twice: for the 250 recipient first, then for the retried one.
    expect(sink.messages.map((m) => m.envelope)).toEqual([
      { from: FROM, to: [ACCEPTED] },
      { from: FROM, to: [LATER] },
    ]);
    // Body forwarded unchanged, plus our Received header on top.
    for (const message of sink.messages) {
      const text = message.raw.toString('latin1');
      expect(text.startsWith('Received: ')).toBe(true);
      expect(text.endsWith(raw)).toBe(true);
      expect(text).toContain(`id ${queueId}`);
    }
    expect(sink.messages[0]!.raw.equals(sink.messages[1]!.raw)).toBe(true);

    // The message is finished (one recipient failed: bounced) and the DSN names only the 550 one.
    expect((await t.relay.spool.getMessage(queueId))?.state).toBe('bounced');
  });
});
