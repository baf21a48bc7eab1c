/**
 * SPEC section 3, reply by reply: the real relay on loopback, a real SMTP client
 * (nodemailer or a raw socket), and the LevelDB spool read back from disk afterwards.
 */
import net from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { queuedId, sendRaw } from '../helpers/common.js';
import {
  RawSmtpClient,
  messageBytes,
  readSpool,
  refusal,
  sampleMessage,
  smtpConversation,
  transaction,
  useTestRelays,
  type TestRelay,
} from '../helpers/relay.js';

const FROM = 'sender@example.com';
const TO = ['rcpt@example.org'];

/** A target whose deliveries can never succeed (nothing listens on port 1), so messages stay queued/deferred. */
const STUCK_TARGET = `
targets: { stuck: { type: http, url: "http://127.0.0.1:1/" } }
routes: [{ match: "*", target: stuck }]
`;

/** Opens a session and completes EHLO. */
async function session(t: TestRelay): Promise<RawSmtpClient> {
  const client = await RawSmtpClient.connect(t.port);
  expect((await client.read()).code).toBe(220);
  expect((await client.command('EHLO client.test')).code).toBe(250);
  return client;
}

describe('SMTP ingress replies', () => {
  const start = useTestRelays();

  it('queues a message with "250 2.0.0 Ok: queued as ID" and stores envelope, body and deliveries', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: 'first@client.test' });
    const reply = await sendRaw(t.port, { from: FROM, to: ['a@example.org', 'b@example.net'] }, raw);
    const id = queuedId(reply);

    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored).toHaveLength(1);
    const [{ message, deliveries }] = stored as [(typeof stored)[number]];
    expect(message).toMatchObject({
      id,
      sender: FROM,
      recipients: ['a@example.org', 'b@example.net'],
      messageId: 'first@client.test',
      client: { ip: '127.0.0.1', helo: 'client.test', user: null },
    });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ id: `${id}.0`, queueId: id, targets: ['outbox'] });
    expect(deliveries[0]?.recipients.map((r) => r.address)).toEqual(['a@example.org', 'b@example.net']);
    const bytes = await messageBytes(stored[0]!, t.outboxPath);
    expect(bytes?.toString('latin1').endsWith(raw)).toBe(true);
    expect(message.size).toBe(stored[0]!.body?.length ?? message.size);
  });

  it('accepts the null sender (MAIL FROM:<>) and stores it as an empty sender', async () => {
    const t = await start();
    const id = queuedId(await sendRaw(t.port, { from: '', to: TO }, sampleMessage()));
    await t.relay.close();
    const [stored] = await readSpool(t.spoolPath);
    expect(stored?.message).toMatchObject({ id, sender: '' });
  });

  it('answers a resubmission (same sender, Message-ID and recipients) with "already queued as" the original ID and stores nothing new', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: 'Dup-1@Client.Test' });
    const id = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, raw));
    const again = await sendRaw(t.port, { from: FROM, to: TO }, raw);
    expect(again).toBe(`250 2.0.0 Ok: already queued as ${id}`);
    // The Message-ID domain is case-insensitive: still the same message.
    const relabelled = await sendRaw(t.port, { from: FROM, to: TO }, sampleMessage({ messageId: 'Dup-1@client.test' }));
    expect(relabelled).toBe(`250 2.0.0 Ok: already queued as ${id}`);

    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => s.message.id)).toEqual([id]);
  });

  it('queues the same Message-ID to different recipients as a new message', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: 'shared@client.test' });
    const first = queuedId(await sendRaw(t.port, { from: FROM, to: ['one@example.org'] }, raw));
    const second = queuedId(await sendRaw(t.port, { from: FROM, to: ['two@example.org'] }, raw));
    expect(second).not.toBe(first);

    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => [s.message.id, s.message.recipients])).toEqual([
      [first, ['one@example.org']],
      [second, ['two@example.org']],
    ]);
  });

  it('queues the same Message-ID from a different envelope sender as a new message', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: 'shared@client.test' });
    const first = queuedId(await sendRaw(t.port, { from: 'one@example.com', to: TO }, raw));
    const second = queuedId(await sendRaw(t.port, { from: 'two@example.com', to: TO }, raw));
    expect(second).not.toBe(first);
  });

  it('never deduplicates messages without a Message-ID (the relay generates a fresh one each time)', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: null });
    const first = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, raw));
    const second = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, raw));
    expect(second).not.toBe(first);
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toHaveLength(2);
  });

  it('refuses with "452 4.3.1 Insufficient system storage" once spool.maxQueued messages wait, keeping the first', async () => {
    const t = await start(`spool: { maxQueued: 1 }\n${STUCK_TARGET}`);
    const id = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, sampleMessage()));
    const reply = await refusal(sendRaw(t.port, { from: FROM, to: TO }, sampleMessage()));
    expect(reply).toBe('452 4.3.1 Insufficient system storage');

    await t.relay.close();
    expect((await readSpool(t.spoolPath)).map((s) => s.message.id)).toEqual([id]);
  });

  it('refuses with "452 4.3.1" when free disk is below spool.minFreeDisk, storing nothing', async () => {
    const t = await start('spool: { minFreeDisk: 100000GB }');
    const reply = await refusal(sendRaw(t.port, { from: FROM, to: TO }, sampleMessage()));
    expect(reply).toBe('452 4.3.1 Insufficient system storage');
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toEqual([]);
  });

  it('refuses a client outside relay.allowNetworks with "550 5.7.1 Relaying denied"', async () => {
    const t = await start('relay: { allowNetworks: [10.0.0.0/8] }');
    const reply = await refusal(sendRaw(t.port, { from: FROM, to: TO }, sampleMessage()));
    expect(reply).toBe('550 5.7.1 Relaying denied');
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toEqual([]);
  });

  it('asks a client outside relay.allowNetworks to authenticate ("530 5.7.0") when relay.users is configured', async () => {
    const t = await start('relay: { allowNetworks: [10.0.0.0/8], users: [{ username: app1, password: s3cret }] }');
    const { replies } = await smtpConversation(t.port, ['EHLO client.test', `MAIL FROM:<${FROM}>`, 'QUIT']);
    expect(replies.map((r) => r.code)).toEqual([250, 530, 221]);
    expect(replies[1]?.text).toBe('5.7.0 Authentication required');
  });

  it('relays for a client outside allowNetworks that authenticates as a relay.users user, and refuses bad credentials with "535 5.7.8"', async () => {
    const t = await start('relay: { allowNetworks: [10.0.0.0/8], users: [{ username: app1, password: s3cret }], allowInsecureAuth: true }');
    const bad = await refusal(sendRaw(t.port, { from: FROM, to: TO }, sampleMessage(), { auth: { user: 'app1', pass: 'wrong' } }));
    expect(bad).toBe('535 5.7.8 Authentication credentials invalid');
    const unknown = await refusal(sendRaw(t.port, { from: FROM, to: TO }, sampleMessage(), { auth: { user: 'nobody', pass: 's3cret' } }));
    expect(unknown).toBe('535 5.7.8 Authentication credentials invalid');
    const id = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, sampleMessage(), { auth: { user: 'app1', pass: 's3cret' } }));
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => [s.message.id, s.message.client.user])).toEqual([[id, 'app1']]);
  });

  it('refuses a recipient that no route matches with "550 5.7.1 Relaying denied"', async () => {
    const t = await start('routes: [{ match: "*@example.org", target: outbox }]');
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      `MAIL FROM:<${FROM}>`,
      'RCPT TO:<someone@elsewhere.test>',
      'RCPT TO:<someone@example.org>',
      'QUIT',
    ]);
    expect(replies.map((r) => `${r.code} ${r.text.split('\n').pop()}`)).toEqual([
      '250 SIZE 1048576',
      '250 2.1.0 Accepted',
      '550 5.7.1 Relaying denied',
      '250 2.1.5 Accepted',
      '221 2.0.0 Bye',
    ]);
  });

  it('refuses a message over limits.maxMessageSize with "552 5.3.4", storing nothing', async () => {
    const t = await start('limits: { maxMessageSize: 1KB }');
    const raw = sampleMessage({ body: 'x'.repeat(70) + '\r\n'.repeat(1) + ('y'.repeat(76) + '\r\n').repeat(20) });
    const reply = await refusal(sendRaw(t.port, { from: FROM, to: TO }, raw));
    expect(reply).toMatch(/^552 5\.3\.4 /);
    // Declared up front with SIZE=, it is refused at MAIL FROM.
    const { replies } = await smtpConversation(t.port, ['EHLO client.test', `MAIL FROM:<${FROM}> SIZE=2048`, 'QUIT']);
    expect(replies[1]?.code).toBe(552);
    expect(replies[1]?.text).toMatch(/^5\.3\.4 /);
    await t.relay.close();
    expect(await readSpool(t.spoolPath)).toEqual([]);
  });

  it('refuses the recipient over limits.maxRecipients with "452 4.5.3" and queues the message to the others', async () => {
    const t = await start('limits: { maxRecipients: 2 }');
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      ...transaction(FROM, ['r1@example.org', 'r2@example.org', 'r3@example.org'], sampleMessage()),
      'QUIT',
    ]);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250, 452, 354, 250, 221]);
    expect(replies[4]?.text).toBe('4.5.3 Too many recipients');
    const id = queuedId(`250 ${replies[6]?.text}`);
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => [s.message.id, s.message.recipients])).toEqual([[id, ['r1@example.org', 'r2@example.org']]]);
  });

  it('refuses bad address syntax with "501 5.1.3" (recipient) and "501 5.1.7" (sender)', async () => {
    const t = await start();
    const { replies } = await smtpConversation(t.port, [
      'EHLO client.test',
      'MAIL FROM:<not an address>',
      `MAIL FROM:<${FROM}>`,
      'RCPT TO:<no-domain>',
      'RCPT TO:<two@at@example.org>',
      'RCPT TO:<spaced local@example.org>',
      'RCPT TO:rcpt@example.org',
      'RCPT TO:<>',
      'QUIT',
    ]);
    expect(replies.map((r) => r.code)).toEqual([250, 501, 250, 501, 501, 501, 501, 501, 221]);
    expect(replies[1]?.text).toMatch(/^5\.1\.7 /);
    for (const r of replies.slice(3, 8)) expect(r.text).toMatch(/^5\.1\.3 /);
  });

  it('answers "421 4.3.2 Service shutting down" while closing, but lets a message already in DATA finish with 250', async () => {
    const t = await start('shutdownGrace: 5s');
    const idle = await session(t);
    const busy = await session(t);
    expect((await busy.command(`MAIL FROM:<${FROM}>`)).code).toBe(250);
    expect((await busy.command(`RCPT TO:<${TO[0]}>`)).code).toBe(250);
    expect((await busy.command('DATA')).code).toBe(354);
    busy.write('Subject: in flight\r\n\r\nfirst half\r\n');
    await new Promise((r) => setTimeout(r, 50));

    const closing = t.relay.close();
    const refused = await idle.command(`MAIL FROM:<${FROM}>`);
    expect(`${refused.code} ${refused.text}`).toBe('421 4.3.2 Service shutting down');
    expect(await idle.waitClosed()).toBe(true);

    // A new connection is no longer taken (the listener is closed) or is told 421.
    const late = await new Promise<string>((resolve) => {
      const socket = net.connect(t.port, '127.0.0.1');
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      socket.once('data', (d) => {
        resolve(d.toString('latin1').slice(0, 3));
        socket.destroy();
      });
    });
    expect(['ECONNREFUSED', '421']).toContain(late);

    busy.write('second half\r\n.\r\n');
    const done = await busy.read();
    const id = queuedId(`${done.code} ${done.text}`);
    const goodbye = await busy.read();
    expect(`${goodbye.code} ${goodbye.text}`).toBe('421 4.3.2 Service shutting down');
    await closing;
    busy.close();
    idle.close();

    const stored = await readSpool(t.spoolPath);
    expect(stored.map((s) => s.message.id)).toEqual([id]);
    const bytes = await messageBytes(stored[0]!, t.outboxPath);
    expect(bytes?.toString('latin1')).toMatch(/\r\n\r\nfirst half\r\nsecond half\r\n$/);
  });

  it('tells an idle session "421 4.3.2 Service shutting down" and closes it when the relay stops', async () => {
    const t = await start();
    const idle = await session(t);
    const closing = t.relay.close();
    const reply = await idle.read();
    expect(`${reply.code} ${reply.text}`).toBe('421 4.3.2 Service shutting down');
    expect(await idle.waitClosed()).toBe(true);
    idle.close();
    await closing;
  });

  it('advertises SIZE, PIPELINING, 8BITMIME, SMTPUTF8 and ENHANCEDSTATUSCODES in its EHLO reply, and no STARTTLS without tls', async () => {
    const t = await start('limits: { maxMessageSize: 2MB }');
    const { replies, greeting } = await smtpConversation(t.port, ['EHLO client.test', 'QUIT']);
    expect(greeting.code).toBe(220);
    expect(greeting.text).toMatch(/^relay\.test /);
    const ehlo = replies[0];
    expect(ehlo?.code).toBe(250);
    const keywords = ehlo?.lines.slice(1) ?? [];
    expect(keywords).toEqual(expect.arrayContaining(['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', `SIZE ${2 * 1024 * 1024}`]));
    expect(keywords.some((k) => k.startsWith('STARTTLS'))).toBe(false);
  });

  it('advertises AUTH PLAIN LOGIN when relay.users is configured (here allowed without TLS)', async () => {
    const t = await start('relay: { users: [{ username: app1, password: s3cret }], allowInsecureAuth: true }');
    const { replies } = await smtpConversation(t.port, ['EHLO client.test', 'QUIT']);
    expect(replies[0]?.lines).toContain('AUTH PLAIN LOGIN');
  });

  it('answers every command when two whole transactions and QUIT arrive pipelined in one write', async () => {
    const t = await start();
    const lines = [
      'EHLO client.test',
      ...transaction(FROM, ['one@example.org'], sampleMessage({ subject: 'first' })),
      ...transaction(FROM, ['two@example.org'], sampleMessage({ subject: 'second' })),
      'QUIT',
    ];
    const { replies, closed } = await smtpConversation(t.port, lines);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 250, 250, 354, 250, 221]);
    expect(closed).toBe(true);
    const ids = [replies[4], replies[8]].map((r) => queuedId(`250 ${r?.text}`));
    await t.relay.close();
    const stored = await readSpool(t.spoolPath);
    expect(stored.map((m) => [m.message.id, m.message.recipients])).toEqual([
      [ids[0], ['one@example.org']],
      [ids[1], ['two@example.org']],
    ]);
  });

  it('adds a Received header and, when missing, Message-ID and Date headers to the stored message', async () => {
    const t = await start();
    const raw = 'From: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: bare\r\n\r\nNo id, no date.\r\n';
    const id = queuedId(await sendRaw(t.port, { from: FROM, to: TO }, raw));
    await t.relay.close();
    const [stored] = await readSpool(t.spoolPath);
    const text = (await messageBytes(stored!, t.outboxPath))?.toString('latin1') ?? '';
    const [head = '', body] = text.split('\r\n\r\n');
    expect(body).toBe('No id, no date.\r\n');
    expect(head).toMatch(new RegExp(`^Received: from client\\.test \\(.*\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby relay\\.test \\(onward\\) with E?SMTP id ${id}\\r\\n\\tfor <rcpt@example\\.org>;\\r\\n\\t\\w{3}, \\d{2} \\w{3} \\d{4} `));
    expect(head).toContain('\r\nFrom: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: bare\r\n');
    expect(head).toContain(`\r\nMessage-ID: <${id}@relay.test>`);
    expect(head).toMatch(/\r\nDate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000/);
    expect(stored?.message.messageId).toBe(`${id}@relay.test`);
  });

  it('keeps a present Message-ID and Date as they are, without adding second ones', async () => {
    const t = await start();
    const raw = sampleMessage({ messageId: 'kept@client.test' });
    queuedId(await sendRaw(t.port, { from: FROM, to: TO }, raw));
    await t.relay.close();
    const [stored] = await readSpool(t.spoolPath);
    const text = (await messageBytes(stored!, t.outboxPath))?.toString('latin1') ?? '';
    expect(text.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(text.match(/^Date:/gim)).toHaveLength(1);
    expect(text.match(/^Received:/gim)).toHaveLength(1);
    // Only the Received header is added: the client's bytes follow unchanged.
    expect(text.slice(text.indexOf('\r\nFrom: ') + 2)).toBe(raw);
  });

  it('refuses connections over limits.maxConnectionsPerIp with a 421 greeting and takes new ones once others close', async () => {
    const t = await start('limits: { maxConnectionsPerIp: 2 }');
    const a = await RawSmtpClient.connect(t.port);
    const b = await RawSmtpClient.connect(t.port);
    expect((await a.read()).code).toBe(220);
    expect((await b.read()).code).toBe(220);
    const c = await RawSmtpClient.connect(t.port);
    const refused = await c.read();
    expect(refused.code).toBe(421);
    expect(refused.text).toMatch(/^4\.7\.0 Too many connections/);
    expect(await c.waitClosed()).toBe(true);
    c.close();

    expect((await a.command('QUIT')).code).toBe(221);
    a.close();
    // The slot frees once the server has seen the close: retry briefly until greeted.
    let greeting = 0;
    for (let tries = 0; tries < 40 && greeting !== 220; tries++) {
      const d = await RawSmtpClient.connect(t.port);
      greeting = (await d.read()).code;
      if (greeting === 220) expect((await d.command('NOOP')).code).toBe(250);
      d.close();
      if (greeting !== 220) await new Promise((r) => setTimeout(r, 50));
    }
    expect(greeting).toBe(220);
    b.close();
  });
});
