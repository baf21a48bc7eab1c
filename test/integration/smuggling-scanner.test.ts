/**
 * Every fake end-of-data in the SEC Consult SMTP Smuggling Scanner's inbound and outbound
 * lists, in both `smtp.bareLineEndings` modes, over a raw socket against the real relay,
 * each followed by a smuggled MAIL FROM / RCPT TO / DATA. The relay delivers to a `file`
 * target and to a real SMTP server (smtp-server) downstream. Per row: the relay answers
 * exactly one end-of-data, never queues the smuggled message, and nothing that reaches
 * either downstream holds a bare CR, a bare LF or a NUL.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { queuedId, sendRaw, startTempRelay, testConfig, useCleanup, waitUntil, type TempRelay } from '../helpers/common.js';
import { readSpool, sampleMessage, smtpConversation } from '../helpers/relay.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

const SENDER = 'sender@example.com';
/** One recipient per downstream: the file target and the SMTP sink. */
const RECIPIENTS = ['rcpt@example.org', 'rcpt@sink.test'];
const HEAD = `EHLO client.test\r\nMAIL FROM:<${SENDER}>\r\n${RECIPIENTS.map((r) => `RCPT TO:<${r}>\r\n`).join('')}DATA\r\n`;
const SMUGGLED =
  'MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@sink.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: evil@attacker.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n';

/** What `normalize` does with the row (`reject` refuses every one of them). */
type Outcome = 'queued' | 'refused';

/** [scanner name, fake end-of-data, outcome under normalize]. */
const ROWS: readonly [string, string, Outcome][] = [
  ['<LF>.<LF>', '\n.\n', 'queued'],
  ['<LF>.<CR>', '\n.\r', 'refused'],
  ['<CR>.<LF>', '\r.\n', 'refused'],
  ['<CR>.<CR>', '\r.\r', 'refused'],
  ['<LF>.<CR><LF>', '\n.\r\n', 'queued'],
  ['<CR>.<CR><LF>', '\r.\r\n', 'refused'],
  ['<CR><LF>.<CR><CR><LF>', '\r\n.\r\r\n', 'refused'],
  ['<CR><CR><LF>.<CR><CR><LF>', '\r\r\n.\r\r\n', 'refused'],
  ['<CR><LF><NUL>.<CR><LF>', '\r\n\x00.\r\n', 'queued'],
];

/** Index of the first bare CR, bare LF or NUL in `data`, or -1. */
function firstForbiddenByte(data: Buffer): number {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x00) return i;
    if (data[i] === 0x0d && data[i + 1] !== 0x0a) return i;
    if (data[i] === 0x0a && (i === 0 || data[i - 1] !== 0x0d)) return i;
  }
  return -1;
}

function expectClean(what: string, data: Buffer): void {
  const at = firstForbiddenByte(data);
  expect({ what, forbiddenAt: at, near: at === -1 ? '' : JSON.stringify(data.subarray(Math.max(0, at - 20), at + 20).toString('latin1')) }).toEqual({
    what,
    forbiddenAt: -1,
    near: '',
  });
}

interface Setup {
  readonly t: TempRelay;
  readonly sink: SmtpSink;
  readonly outbox: string;
}

describe('the SMTP Smuggling Scanner sequences against the real relay', () => {
  const defer = useCleanup();

  async function setUp(mode: 'reject' | 'normalize'): Promise<Setup> {
    const sink = await startSmtpSink();
    defer(() => sink.close());
    let outbox = '';
    const t = await startTempRelay('onward-smuggle-', (dir) => {
      outbox = join(dir, 'outbox');
      return testConfig(dir, {
        smtp: { bareLineEndings: mode },
        retry: { schedule: ['1s'], jitter: 0 },
        targets: {
          outbox: { type: 'file', path: outbox },
          // One connection: messages reach the sink in delivery order on one session, so a
          // later message arriving proves everything sent before it was parsed.
          sink: { type: 'smtp', host: '127.0.0.1', port: sink.port, pool: { maxConnections: 1 }, concurrency: 1 },
        },
        routes: [
          { match: '*@sink.test', target: 'sink' },
          { match: '*', target: 'outbox' },
        ],
      });
    });
    defer(() => t.close());
    return { t, sink, outbox };
  }

  async function waitDelivered(t: TempRelay, id: string): Promise<void> {
    await waitUntil(`${id} delivered`, async () => (await t.relay.spool.getMessage(id))?.state === 'delivered');
  }

  /**
   * Plays the smuggling session, then (once its message, if any, is delivered) one clean
   * marker message: when the marker has reached both downstreams, everything before it has.
   */
  async function run(s: Setup, fakeEnd: string, outcome: Outcome): Promise<void> {
    const { t, sink, outbox } = s;
    const payload = `From: ${SENDER}\r\nSubject: first\r\n\r\nfirst message${fakeEnd}${SMUGGLED}`;
    const { replies } = await smtpConversation(t.port, Buffer.from(`${HEAD}${payload}.\r\nQUIT\r\n`, 'latin1'));
    // EHLO, MAIL, RCPT x2, DATA 354, the one end-of-data answer, QUIT: no second transaction ran.
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250, 250, 354, outcome === 'queued' ? 250 : 550, 221]);
    const end = replies[5]?.text ?? '';
    if (outcome === 'refused') expect(end).toMatch(/^5\.6\.0 Message contains (a bare (LF|CR); lines must end with CRLF|a NUL byte)$/);
    const first = outcome === 'queued' ? queuedId(`250 ${end}`) : null;
    if (first) await waitDelivered(t, first);

    const marker = queuedId(await sendRaw(t.port, { from: 'marker@example.com', to: RECIPIENTS }, sampleMessage({ subject: 'marker' })));
    await waitDelivered(t, marker);
    await sink.waitFor(first ? 2 : 1);

    // Downstream SMTP: the first message (when queued) as one message, then the marker; nothing else.
    expect(sink.messages.map((m) => [m.envelope.from, m.envelope.to])).toEqual([
      ...(first ? [[SENDER, ['rcpt@sink.test']]] : []),
      ['marker@example.com', ['rcpt@sink.test']],
    ]);
    for (const m of sink.messages) expectClean(`SMTP sink message from ${m.envelope.from}`, m.raw);
    if (first) expect(sink.messages[0]?.raw.toString('latin1')).toContain(`\r\nfirst message\r\n.\r\n${SMUGGLED}`);

    // Downstream file target: one file per delivered message, each clean.
    const files = (await readdir(outbox)).filter((n) => n.endsWith('.eml'));
    expect(files).toHaveLength(first ? 2 : 1);
    for (const name of files) expectClean(`outbox file ${name}`, await readFile(join(outbox, name)));

    // The spool: the smuggled transaction was never a message of its own.
    await t.relay.close();
    const stored = await readSpool(t.config.spool.path);
    expect(stored.map((m) => [m.message.sender, m.message.recipients])).toEqual([
      ...(first ? [[SENDER, RECIPIENTS]] : []),
      ['marker@example.com', RECIPIENTS],
    ]);
  }

  it.each(ROWS)('reject: %s is refused with 550 5.6.0 and nothing is smuggled', async (_name, fakeEnd) => {
    await run(await setUp('reject'), fakeEnd, 'refused');
  });

  it.each(ROWS)('normalize: %s is one message (or refused), nothing is smuggled, downstream gets CRLF only and no NUL', async (_name, fakeEnd, outcome) => {
    await run(await setUp('normalize'), fakeEnd, outcome);
  });
});
