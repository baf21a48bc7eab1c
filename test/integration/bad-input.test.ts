/**
 * Bad input never crashes the relay and always gets a well-formed reply: seeded random
 * command lines, over-long lines, invalid and internationalised addresses, odd DATA
 * payloads. After each, the relay still answers a NOOP and takes a normal message.
 */
import { describe, expect, it } from '@jest/globals';
import { simpleParser } from 'mailparser';
import { queuedId, sendRaw } from '../helpers/common.js';
import {
  RawSmtpClient,
  messageBytes,
  readSpool,
  sampleMessage,
  smtpConversation,
  transaction,
  useTestRelays,
  type SmtpReply,
  type TestRelay,
} from '../helpers/relay.js';

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A reply line is `NNN text` or `NNN-text` with a 2xx-5xx code (3xx only for 354/334). */
function expectWellFormed(reply: SmtpReply | null, line?: string): asserts reply is SmtpReply {
  expect({ line, reply: reply === null ? null : 'present' }).toEqual({ line, reply: 'present' });
  expect(String(reply?.code)).toMatch(/^[2-5]\d\d$/);
}

/** The relay is alive: a fresh session answers NOOP, and a normal message is queued. */
async function expectHealthy(t: TestRelay): Promise<void> {
  const { replies } = await smtpConversation(t.port, ['EHLO client.test', 'NOOP', 'QUIT']);
  expect(replies.map((r) => r.code)).toEqual([250, 250, 221]);
  queuedId(await sendRaw(t.port, { from: 'sender@example.com', to: ['rcpt@example.org'] }, sampleMessage()));
}

/**
 * Sends `lines` (MAIL FROM to the final dot) in one pipelined session after EHLO, expects a
 * queued message, stops the relay and returns the reply to the dot and the stored bytes as latin1 text.
 */
async function queueOne(t: TestRelay, lines: readonly string[]): Promise<{ done: SmtpReply | undefined; text: string }> {
  const { replies } = await smtpConversation(t.port, ['EHLO client.test', ...lines, 'QUIT']);
  expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
  await t.relay.close();
  const [stored] = await readSpool(t.spoolPath);
  return { done: replies[4], text: (await messageBytes(stored!, t.outboxPath))?.toString('latin1') ?? '' };
}

const VERBS = ['HELO', 'EHLO', 'MAIL FROM:', 'RCPT TO:', 'RSET', 'NOOP', 'VRFY', 'EXPN', 'HELP', 'AUTH', 'XCLIENT', 'XFORWARD', 'BDAT', 'ETRN', 'mail from:', 'rcpt to:'];

/** One random command line (no CR or LF in it): a known verb with junk, or raw junk bytes. */
function randomLine(rand: () => number): Buffer {
  const junk = (max: number): Buffer => {
    const n = Math.floor(rand() * max);
    const bytes = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      let b = Math.floor(rand() * 256);
      if (b === 0x0a || b === 0x0d) b = 0x20;
      bytes[i] = b;
    }
    return bytes;
  };
  const kind = rand();
  if (kind < 0.5) {
    const verb = VERBS[Math.floor(rand() * VERBS.length)] ?? 'NOOP';
    const arg = rand() < 0.5 ? Buffer.from(`<${junk(20).toString('latin1')}@${junk(10).toString('latin1')}>`, 'latin1') : junk(60);
    return Buffer.concat([Buffer.from(verb + (rand() < 0.8 ? ' ' : ''), 'latin1'), arg]);
  }
  return junk(200);
}

describe('bad input at the SMTP front door', () => {
  const start = useTestRelays();

  it('answers seeded random command lines with well-formed replies and stays up', async () => {
    const t = await start();
    const rand = prng(0x0a11ce);
    let client: RawSmtpClient | null = null;
    let sessions = 0;
    const codes = new Set<number>();
    try {
      for (let i = 0; i < 120; i++) {
        if (client === null || client.closed) {
          client?.close();
          client = await RawSmtpClient.connect(t.port);
          sessions += 1;
          expect((await client.read()).code).toBe(220);
          if (rand() < 0.7) expect((await client.command('EHLO fuzz.test')).code).toBe(250);
        }
        const line = randomLine(rand);
        client.write(Buffer.concat([line, Buffer.from('\r\n')]));
        const reply = await client.tryRead(2000);
        expectWellFormed(reply, line.toString('latin1'));
        codes.add(reply.code);
        // AUTH may ask for more (334): answer with junk, that too must get a reply.
        if (reply.code === 334) {
          const more = await client.command('*');
          expectWellFormed(more, '*');
        }
        // A 421 (e.g. too many unrecognised commands) ends the session: the next line gets a new one.
        if (reply.code === 421) {
          expect(await client.waitClosed()).toBe(true);
          client.close();
          client = null;
        }
      }
    } finally {
      client?.close();
    }
    expect(sessions).toBeGreaterThan(0);
    expect([...codes].every((c) => c >= 200 && c < 600)).toBe(true);
    await expectHealthy(t);
  });

  it('closes a session with a 421 on a command line over 16 KB and keeps serving others', async () => {
    const t = await start();
    const client = await RawSmtpClient.connect(t.port);
    expect((await client.read()).code).toBe(220);
    client.write(`MAIL FROM:<${'a'.repeat(20_000)}@example.com>\r\n`);
    const reply = await client.read();
    expect(reply.code).toBe(421);
    expect(await client.waitClosed()).toBe(true);
    client.close();

    // Long but under the parser's limit: an ordinary refusal, and the session goes on.
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      `MAIL FROM:<${'b'.repeat(4000)}@example.com>`,
      `NOOP ${'x'.repeat(8000)}`,
      'QUIT',
    ]);
    expect(replies.map((r) => r.code)).toEqual([250, expect.any(Number), 250, 221]);
    expect(String(replies[1]?.code)).toMatch(/^(250|5\d\d)$/);
    await expectHealthy(t);
  });

  it('refuses a command line that never ends with a CRLF once it passes 16 KB', async () => {
    const t = await start();
    const client = await RawSmtpClient.connect(t.port);
    expect((await client.read()).code).toBe(220);
    client.write('NOOP ' + 'y'.repeat(17_000));
    expect((await client.read()).code).toBe(421);
    client.close();
    await expectHealthy(t);
  });

  it.each([
    ['MAIL FROM:<@>', 501],
    ['MAIL FROM:<a@>', 501],
    ['MAIL FROM:<@example.com>', 501],
    ['MAIL FROM:<a@b@example.com>', 501],
    ['MAIL FROM:sender@example.com', 501],
    ['MAIL FROM:<sender@example.com', 501],
    ['MAIL FROM:<<sender@example.com>>', 501],
    ['MAIL FROM:<sender@example.com> BODY=9BIT', 501],
    ['MAIL FROM:<sender@example.com> SIZE=abc', 501],
    ['MAIL FROM:<"two words"@example.com>', 501],
    ['MAIL FROM:<a\u0000b@example.com>', 501],
    ['MAIL TO:<sender@example.com>', 501],
    ['MAIL', 501],
  ])('refuses the sender in %j with %i and a proper reply', async (line, code) => {
    const t = await start();
    const { replies } = await smtpConversation(t.port, ['EHLO client.test', line, 'NOOP', 'QUIT']);
    expect(replies.map((r) => r.code)).toEqual([250, code, 250, 221]);
    expect(replies[1]?.text).toMatch(/^5\.\d\.\d+ /);
  });

  it('refuses invalid recipient addresses with 501 5.1.3 and keeps the transaction going', async () => {
    const t = await start();
    const bad = ['<>', '<@>', '<a@>', '<@example.org>', '<a b@example.org>', '<a@b@example.org>', 'rcpt@example.org', '<rcpt@example.org', '<a\u0000@example.org>'];
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      'MAIL FROM:<sender@example.com>',
      ...bad.map((a) => `RCPT TO:${a}`),
      'RCPT TO:<rcpt@example.org>',
      'DATA',
      'Subject: after bad recipients',
      '',
      'still fine',
      '.',
      'QUIT',
    ]);
    const codes = replies.map((r) => r.code);
    expect(codes).toEqual([250, 250, ...bad.map(() => 501), 250, 354, 250, 221]);
    for (const r of replies.slice(2, 2 + bad.length)) expect(r.text).toMatch(/^5\.1\.3 /);
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => s.message.recipients)).toEqual([['rcpt@example.org']]);
  });

  it('accepts UTF-8 addresses with SMTPUTF8 and stores them exactly', async () => {
    const t = await start();
    const from = 'üser@exämple.com';
    const to = ['δοκιμή@παράδειγμα.δοκιμή', '用户@例子.广告'];
    const session = Buffer.from(
      ['EHLO client.test', `MAIL FROM:<${from}> SMTPUTF8`, ...to.map((r) => `RCPT TO:<${r}>`), 'DATA', 'Subject: utf8', '', 'Grüße', '.', 'QUIT', ''].join('\r\n'),
      'utf8',
    );
    const { replies } = await smtpConversation(t.port, session);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250, 354, 250, 221]);
    const id = queuedId(`250 ${replies[5]?.text}`);

    // nodemailer sends SMTPUTF8 by itself for a non-ASCII address.
    const id2 = queuedId(await sendRaw(t.port, { from, to: [to[0]!] }, sampleMessage({ body: 'Grüße\r\n' })));

    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => [s.message.id, s.message.sender, s.message.recipients])).toEqual([
      [id, from, to],
      [id2, from, [to[0]]],
    ]);
    const bytes = await messageBytes(stored[0]!, t.outboxPath);
    expect(bytes?.toString('utf8').endsWith('\r\n\r\nGrüße\r\n')).toBe(true);
  });

  it('accepts a well-formed UTF-8 address without the SMTPUTF8 parameter and stores it exactly', async () => {
    // Lenient like smtp-server: the bytes are unambiguous, and the SMTP target declares SMTPUTF8 downstream itself.
    const t = await start();
    const session = Buffer.from('EHLO client.test\r\nMAIL FROM:<üser@exämple.com>\r\nRCPT TO:<用户@例子.广告>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n', 'utf8');
    const { replies } = await smtpConversation(t.port, session);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
    await t.relay.close();
    expect((await readSpool(t.spoolPath)).map((s) => [s.message.sender, s.message.recipients])).toEqual([['üser@exämple.com', ['用户@例子.广告']]]);
  });

  it('refuses raw 8-bit (non-UTF-8) address bytes with 501, with or without SMTPUTF8, and keeps 8-bit body bytes', async () => {
    // smtp-server would read them as U+FFFD and queue an address the client never sent.
    const t = await start();
    const session = Buffer.concat([
      Buffer.from('EHLO client.test\r\nMAIL FROM:<', 'latin1'),
      Buffer.from([0xe9, 0xff]),
      Buffer.from('@example.com> BODY=8BITMIME\r\nMAIL FROM:<', 'latin1'),
      Buffer.from([0xe9, 0xff]),
      Buffer.from('@example.com> SMTPUTF8\r\nMAIL FROM:<sender@example.com> BODY=8BITMIME\r\nRCPT TO:<', 'latin1'),
      Buffer.from([0xfc]),
      Buffer.from('@example.org>\r\nRCPT TO:<rcpt@', 'latin1'),
      Buffer.from([0xe4]),
      Buffer.from('.example.org>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\nSubject: 8bit\r\n\r\n', 'latin1'),
      Buffer.from([0x80, 0xe9, 0xff, 0x01, 0x41]),
      Buffer.from('\r\n.\r\nQUIT\r\n', 'latin1'),
    ]);
    const { replies } = await smtpConversation(t.port, session);
    // EHLO, MAIL (8-bit) x2, MAIL, RCPT (8-bit local part), RCPT (8-bit domain), RCPT, DATA, end of data, QUIT
    expect(replies.map((r) => `${r.code} ${r.text.split(' ')[0]}`)).toEqual([
      expect.stringMatching(/^250 /),
      '501 5.1.7',
      '501 5.1.7',
      '250 2.1.0',
      '501 5.1.3',
      '501 5.1.3',
      '250 2.1.5',
      '354 End',
      '250 2.0.0',
      '221 2.0.0',
    ]);
    await expectHealthy(t);
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    // Only the clean recipient was taken; nothing holds a replacement character.
    expect(stored.map((m) => m.message.recipients)).toEqual([['rcpt@example.org'], ['rcpt@example.org']]);
    const bytes = await messageBytes(stored[0]!, t.outboxPath);
    expect(bytes?.subarray(-7)).toEqual(Buffer.from([0x80, 0xe9, 0xff, 0x01, 0x41, 0x0d, 0x0a]));
  });

  it('refuses a NUL in DATA with 550 5.6.0 (SPEC 3) and stores nothing', async () => {
    const t = await start();
    const { replies } = await smtpConversation(t.port, ['EHLO client.test', ...transaction('sender@example.com', ['rcpt@example.org'], 'Subject: nul\r\n\r\na\x00b\r\n'), 'QUIT']);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 550, 221]);
    expect(replies[4]?.text).toBe('5.6.0 Message contains a NUL byte');
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toEqual([]);
  });

  it('queues an empty DATA with the headers it needs (Received, Message-ID, Date)', async () => {
    const t = await start();
    const { done, text } = await queueOne(t, ['MAIL FROM:<sender@example.com>', 'RCPT TO:<rcpt@example.org>', 'DATA', '.']);
    const id = queuedId(`250 ${done?.text}`);
    expect(text).toMatch(/^Received: /);
    expect(text).toContain(`\r\nMessage-ID: <${id}@relay.test>\r\nDate: `);
    expect(text.endsWith('\r\n')).toBe(true);
    const parsed = await simpleParser(Buffer.from(text, 'latin1'));
    expect(parsed.messageId).toBe(`<${id}@relay.test>`);
  });

  it('queues a DATA of only headers, adding Message-ID and Date inside the header block', async () => {
    const t = await start();
    const { done, text } = await queueOne(t, transaction('sender@example.com', ['rcpt@example.org'], 'Subject: headers only\r\nFrom: sender@example.com\r\n'));
    const id = queuedId(`250 ${done?.text}`);
    expect(text).toMatch(new RegExp(`\\r\\nSubject: headers only\\r\\nFrom: sender@example\\.com\\r\\nMessage-ID: <${id}@relay\\.test>\\r\\nDate: [^\\r\\n]+\\r\\n$`));
    const parsed = await simpleParser(Buffer.from(text, 'latin1'));
    expect(parsed.subject).toBe('headers only');
    expect(parsed.messageId).toBe(`<${id}@relay.test>`);
  });

  it('queues a DATA without headers, keeping its text as the body below the added headers', async () => {
    const t = await start();
    const { done, text } = await queueOne(t, transaction('sender@example.com', ['rcpt@example.org'], 'Just some text.\r\nNote: this is not a header\r\n'));
    const id = queuedId(`250 ${done?.text}`);
    expect(text).toMatch(new RegExp(`\\r\\nMessage-ID: <${id}@relay\\.test>\\r\\nDate: [^\\r\\n]+\\r\\n\\r\\nJust some text\\.\\r\\nNote: this is not a header\\r\\n$`));
    const parsed = await simpleParser(Buffer.from(text, 'latin1'));
    expect(parsed.text).toBe('Just some text.\nNote: this is not a header\n');
    expect(parsed.headers.has('note')).toBe(false);
  });

  it('queues headers followed by body text without a blank line, separating the body', async () => {
    const t = await start();
    const { text } = await queueOne(t, transaction('sender@example.com', ['rcpt@example.org'], 'Subject: no blank line\r\nbody starts here\r\n'));
    const parsed = await simpleParser(Buffer.from(text, 'latin1'));
    expect(parsed.subject).toBe('no blank line');
    expect(parsed.text).toBe('body starts here\n');
  });

  it('answers commands out of sequence with 503 and recovers', async () => {
    const t = await start();
    const { replies } = await smtpConversation(t.port, [
      'MAIL FROM:<sender@example.com>',
      'EHLO client.test',
      'RCPT TO:<rcpt@example.org>',
      'DATA',
      'MAIL FROM:<sender@example.com>',
      'MAIL FROM:<sender@example.com>',
      'DATA',
      'RSET',
      'QUIT',
    ]);
    expect(replies.map((r) => r.code)).toEqual([503, 250, 503, 503, 250, 503, 503, 250, 221]);
    await expectHealthy(t);
  });
});
