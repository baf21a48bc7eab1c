/**
 * SMTP smuggling (SPEC section 3): a DATA payload that hides a second transaction behind a
 * non-standard end-of-data (`<LF>.<LF>` and friends) must never become two messages. Bytes
 * go over a raw socket exactly as written; the spool is read back from disk afterwards.
 */
import { describe, expect, it } from '@jest/globals';
import { queuedId } from '../helpers/common.js';
import { RawSmtpClient, messageBytes, readSpool, smtpConversation, useTestRelays, type TestRelay } from '../helpers/relay.js';

const HEAD = 'EHLO client.test\r\nMAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n';
const SMUGGLED =
  'MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: evil@attacker.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n';

/** A whole session: one DATA whose payload carries `fakeEnd` and a second transaction after it, then QUIT. */
function smugglingSession(fakeEnd: string): Buffer {
  const payload = `From: sender@example.com\r\nSubject: first\r\n\r\nfirst message${fakeEnd}${SMUGGLED}`;
  return Buffer.from(`${HEAD}${payload}.\r\nQUIT\r\n`, 'latin1');
}

/**
 * Plays `session` (EHLO, MAIL, RCPT, DATA, the payload, QUIT), expects the one end-of-data
 * refused with 550 and nothing stored once the relay stops; resolves with the refusal's text.
 */
async function expectRefusedNothingStored(t: TestRelay, session: string | Buffer): Promise<string | undefined> {
  const { replies } = await smtpConversation(t.port, typeof session === 'string' ? Buffer.from(session, 'latin1') : session);
  // EHLO, MAIL, RCPT, DATA 354, the single end-of-data answer, QUIT: no second transaction ran.
  expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 550, 221]);
  await t.relay.close();
  expect(await readSpool(t.spoolPath)).toEqual([]);
  return replies[4]?.text;
}

const FAKE_ENDS: readonly [string, string][] = [
  ['<LF>.<LF>', '\n.\n'],
  ['<LF>.<CR><LF>', '\n.\r\n'],
  ['<CR><LF>.<LF>', '\r\n.\n'],
  ['<CR>.<CR>', '\r.\r'],
  ['<LF>.<CR>', '\n.\r'],
  ['<CR><LF>.<CR>', '\r\n.\r'],
  ['<CR>.<CR><LF>', '\r.\r\n'],
];

describe('SMTP smuggling with smtp.bareLineEndings: reject (the default)', () => {
  const start = useTestRelays();

  it.each(FAKE_ENDS)('refuses a %s end-of-data followed by a smuggled MAIL FROM with a 5xx and stores nothing', async (_name, fakeEnd) => {
    const t = await start();
    expect(await expectRefusedNothingStored(t, smugglingSession(fakeEnd))).toMatch(/^5\.6\.0 Message contains a bare (LF|CR); lines must end with CRLF$/);
  });

  it('refuses a bare LF inside a line with a 5xx and stores nothing', async () => {
    const t = await start();
    const session = `${HEAD}Subject: lf\r\n\r\nline one\nline two\r\n.\r\nQUIT\r\n`;
    expect(await expectRefusedNothingStored(t, session)).toContain('bare LF');
  });

  it('refuses a bare CR inside a line with a 5xx and stores nothing', async () => {
    const t = await start();
    const session = `${HEAD}Subject: cr\r\n\r\nline one\rline two\r\n.\r\nQUIT\r\n`;
    expect(await expectRefusedNothingStored(t, session)).toContain('bare CR');
  });

  it('refuses a bare LF in the header block (a header line ending in LF) with a 5xx', async () => {
    const t = await start();
    await expectRefusedNothingStored(t, `${HEAD}Subject: lf\nX-Injected: yes\r\n\r\nbody\r\n.\r\nQUIT\r\n`);
  });

  it('refuses <LF>.<LF> smuggling however the bytes are split into TCP segments', async () => {
    const t = await start();
    const client = await RawSmtpClient.connect(t.port);
    client.socket.setNoDelay(true);
    expect((await client.read()).code).toBe(220);
    const bytes = smugglingSession('\n.\n');
    for (let i = 0; i < bytes.length; i += 3) {
      client.write(bytes.subarray(i, i + 3));
      await new Promise((r) => setImmediate(r));
    }
    const codes: number[] = [];
    for (let reply = await client.tryRead(3000); reply; reply = await client.tryRead(3000)) codes.push(reply.code);
    client.close();
    expect(codes).toEqual([250, 250, 250, 354, 550, 221]);
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toEqual([]);
  });

  it('still takes a clean message in the same session after refusing a smuggling attempt', async () => {
    const t = await start();
    const clean = `MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\nSubject: clean\r\n\r\nclean\r\n.\r\n`;
    const session = smugglingSession('\n.\n').toString('latin1').replace(/QUIT\r\n$/, `${clean}QUIT\r\n`);
    const { replies } = await smtpConversation(t.port, Buffer.from(session, 'latin1'));
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 550, 250, 250, 354, 250, 221]);
    const id = queuedId(`250 ${replies[8]?.text}`);
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => [s.message.id, s.message.sender, s.message.recipients])).toEqual([[id, 'sender@example.com', ['rcpt@example.org']]]);
  });
});

describe('SMTP smuggling with smtp.bareLineEndings: normalize', () => {
  const start = useTestRelays();

  it.each(FAKE_ENDS.filter(([, end]) => !end.replace(/\r\n/g, '').includes('\r')))(
    'stores a %s end-of-data as one message whose smuggled commands are body text with CRLF line endings',
    async (_name, fakeEnd) => {
      const t = await start('smtp: { bareLineEndings: normalize }');
      const { replies } = await smtpConversation(t.port, smugglingSession(fakeEnd));
      expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
      const id = queuedId(`250 ${replies[4]?.text}`);

      await t.relay.close();
      const stored = await readSpool(t.spoolPath);
      expect(stored).toHaveLength(1);
      expect(stored[0]?.message).toMatchObject({ id, sender: 'sender@example.com', recipients: ['rcpt@example.org'] });
      const text = (await messageBytes(stored[0]!, t.outboxPath))?.toString('latin1') ?? '';
      expect(text).toContain(`\r\n\r\nfirst message\r\n.\r\n${SMUGGLED}`);
      expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    },
  );

  it('turns a bare LF inside a line into CRLF in the stored body', async () => {
    const t = await start('smtp: { bareLineEndings: normalize }');
    const session = `${HEAD}Subject: lf\nX-Second: header\r\n\r\nline one\nline two\n\nline four\r\n.\r\nQUIT\r\n`;
    const { replies } = await smtpConversation(t.port, Buffer.from(session, 'latin1'));
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
    await t.relay.close();
    const [stored] = await readSpool(t.spoolPath);
    const text = (await messageBytes(stored!, t.outboxPath))?.toString('latin1') ?? '';
    expect(text).toContain('Subject: lf\r\nX-Second: header\r\n');
    expect(text.endsWith('\r\n\r\nline one\r\nline two\r\n\r\nline four\r\n')).toBe(true);
  });

  it.each([
    ['a bare CR inside a line', 'line one\rline two\r\n'],
    ['a <CR>.<CR> end-of-data', 'first\r.\rMAIL FROM:<evil@attacker.test>\r\n'],
    ['a <LF>.<CR> end-of-data', 'first\n.\rMAIL FROM:<evil@attacker.test>\r\n'],
  ])('still refuses %s with a 5xx and stores nothing', async (_name, body) => {
    const t = await start('smtp: { bareLineEndings: normalize }');
    const session = `${HEAD}Subject: cr\r\n\r\n${body}.\r\nQUIT\r\n`;
    expect(await expectRefusedNothingStored(t, session)).toContain('bare CR');
  });
});
