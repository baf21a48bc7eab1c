/**
 * The two smtp-server patches of src/smtp/connection-patches.ts, observed on the wire:
 * the greeting delay still refuses a client that talks before the 220, and replies that
 * carry onward's own enhanced status code are not prefixed with a second one.
 */
import { describe, expect, it } from '@jest/globals';
import { sleep } from '../helpers/common.js';
import { RawSmtpClient, sampleMessage, smtpConversation, transaction, useTestRelays } from '../helpers/relay.js';

describe('smtp-server patches', () => {
  const start = useTestRelays();

  it('with smtp.greetingDelay set, a client that talks before the greeting gets "421 ... You talk too soon" and is disconnected', async () => {
    const t = await start('smtp: { greetingDelay: 5s }');
    const client = await RawSmtpClient.connect(t.port);
    // The stimulus, not a wait for a condition: 300 ms is past smtp-server's stock 100 ms
    // (unpatched, the client would have its 220 and a 250 by now) and far before the 5 s greeting.
    await sleep(300);
    client.write('EHLO early.test\r\n');
    const reply = await client.read(8000);
    expect(reply.code).toBe(421);
    expect(reply.text).toMatch(/You talk too soon$/);
    expect(await client.waitClosed(8000)).toBe(true);
    expect(client.lines.some((l) => l.startsWith('220'))).toBe(false);
  });

  it('with smtp.greetingDelay set, a client that waits for the greeting is served', async () => {
    const t = await start('smtp: { greetingDelay: 200ms }');
    const { greeting, replies } = await smtpConversation(t.port, ['EHLO client.test', 'QUIT']);
    expect([greeting.code, ...replies.map((r) => r.code)]).toEqual([220, 250, 221]);
  });

  it('sends onward\'s own enhanced codes once (no automatic prefix) and keeps smtp-server\'s on its own replies', async () => {
    const t = await start('limits: { maxRecipients: 1 }');
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      'MAIL FROM:<sender@example.com>',
      'RCPT TO:<rcpt@example.org>',
      'RCPT TO:<second@example.org>',
      'RSET',
      ...transaction('sender@example.com', ['rcpt@example.org'], sampleMessage()),
      'QUIT',
    ]);
    const lines = replies.slice(1).map((r) => `${r.code} ${r.text}`);
    // Without the patch smtp-server puts its own code in front: "452 4.x.x 4.5.3 ..." and "250 2.6.0 2.0.0 Ok: ...".
    expect(lines).toEqual([
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '452 4.5.3 Too many recipients',
      '250 2.0.0 Flushed',
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>',
      expect.stringMatching(/^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/),
      '221 2.0.0 Bye',
    ]);
  });
});
