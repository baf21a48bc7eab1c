import { describe, expect, it } from '@jest/globals';
import { simpleParser } from 'mailparser';
import { buildDsn, dsnStatusFor, type DsnInput } from '../../../src/bounce/index.js';
import type { Reply } from '../../../src/delivery/types.js';
import { isRelayError } from '../../../src/errors.js';
import { parseDsn } from '../../helpers/dsn.js';

const smtp = (code: number, enhancedStatus: string | null, text: string): Reply => ({
  kind: 'smtp',
  code,
  enhancedStatus,
  text,
});
const http = (code: number, text: string): Reply => ({ kind: 'http', code, enhancedStatus: null, text });

const ORIGINAL_HEADERS = Buffer.from(
  [
    'Received: from client.example by relay.example; Tue, 1 Apr 2025 10:00:00 +0000',
    'From: Alice <alice@sender.example>',
    'To: bob@dest.example, carol@api.example',
    'Subject: quarterly numbers',
    'Message-ID: <orig-123@sender.example>',
    '',
    '',
  ].join('\r\n'),
);

function failedInput(overrides: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'relay.example',
    from: 'mailer-daemon@relay.example',
    to: 'alice@sender.example',
    queueId: 'q-0001',
    arrivalDate: new Date('2025-04-01T10:00:00Z'),
    now: new Date('2025-04-01T10:05:00Z'),
    originalHeaders: ORIGINAL_HEADERS,
    recipients: [
      {
        address: 'bob@dest.example',
        action: 'failed',
        status: '5.1.1',
        reply: smtp(550, '5.1.1', '550 5.1.1 <bob@dest.example>: Recipient address rejected: User unknown'),
        lastAttemptAt: new Date('2025-04-01T10:04:00Z'),
      },
      {
        address: 'carol@api.example',
        action: 'failed',
        status: '5.1.1',
        reply: http(404, 'HTTP 404 Not Found'),
        lastAttemptAt: new Date('2025-04-01T10:04:30Z'),
      },
    ],
    ...overrides,
  };
}

/** The raw bytes of each top-level part, split on the boundary the Content-Type names. */
function rawParts(raw: string): string[] {
  const boundary = /boundary="?([^";\r\n]+)"?/.exec(raw)?.[1];
  if (boundary === undefined) throw new Error('no boundary');
  const sections = raw.split(`--${boundary}`);
  return sections.slice(1, -1);
}

describe('dsnStatusFor', () => {
  it.each<[string, 'fail' | 'expired', Reply | null, string]>([
    ['fail keeps a 5.x.x enhanced status', 'fail', smtp(550, '5.1.1', 'no such user'), '5.1.1'],
    ['fail ignores a 4.x.x enhanced status and falls back on the code', 'fail', smtp(550, '4.2.2', 'x'), '5.0.0'],
    ['fail ignores a malformed enhanced status', 'fail', smtp(550, '5.1', 'x'), '5.0.0'],
    ['fail on SMTP 5xx without an enhanced status is 5.0.0', 'fail', smtp(554, null, 'rejected'), '5.0.0'],
    ['fail on HTTP 404 is 5.1.1', 'fail', http(404, 'HTTP 404'), '5.1.1'],
    ['fail on HTTP 410 is 5.1.1', 'fail', http(410, 'HTTP 410'), '5.1.1'],
    ['fail on HTTP 401 is 5.7.1', 'fail', http(401, 'HTTP 401'), '5.7.1'],
    ['fail on HTTP 403 is 5.7.1', 'fail', http(403, 'HTTP 403'), '5.7.1'],
    ['fail on HTTP 413 is 5.3.4', 'fail', http(413, 'HTTP 413'), '5.3.4'],
    ['fail on another HTTP 4xx is 5.0.0', 'fail', http(422, 'HTTP 422'), '5.0.0'],
    ['fail on a local error without a code is 5.0.0', 'fail', { kind: 'x-onward', code: null, enhancedStatus: null, text: 'too big' }, '5.0.0'],
    ['fail without any reply is 5.0.0', 'fail', null, '5.0.0'],
    ['expired keeps the last reply’s 4.x.x status', 'expired', smtp(452, '4.2.2', 'mailbox full'), '4.2.2'],
    ['expired without an enhanced status is 4.4.7', 'expired', smtp(451, null, 'try later'), '4.4.7'],
    ['expired after HTTP 503 is 4.4.7', 'expired', http(503, 'HTTP 503'), '4.4.7'],
    ['expired does not adopt a 5.x.x status', 'expired', smtp(550, '5.1.1', 'odd'), '4.4.7'],
    ['expired without any reply is 4.4.7', 'expired', null, '4.4.7'],
  ])('%s', (_name, outcome, reply, expected) => {
    expect(dsnStatusFor(outcome, reply)).toBe(expected);
  });
});

describe('buildDsn', () => {
  it('builds a multipart/report with the human, delivery-status and headers parts in order', async () => {
    const raw = (await buildDsn(failedInput())).toString('latin1');
    const [head = ''] = raw.split('\r\n\r\n');
    expect(head).toMatch(/^Content-Type: multipart\/report;\s+report-type=delivery-status;/m);

    const parts = rawParts(raw);
    expect(parts).toHaveLength(3);
    expect(parts[0]).toMatch(/^\r\nContent-Type: text\/plain/);
    expect(parts[1]).toMatch(/^\r\nContent-Type: message\/delivery-status\r\nContent-Transfer-Encoding: 7bit\r\n/);
    expect(parts[2]).toMatch(/^\r\nContent-Type: text\/rfc822-headers/);
  });

  it('writes the delivery-status fields for the message and each recipient', async () => {
    const dsn = parseDsn(await buildDsn(failedInput()));
    expect(dsn.perMessage).toEqual({
      'reporting-mta': 'dns; relay.example',
      'x-onward-queue-id': 'q-0001',
      'arrival-date': 'Tue, 01 Apr 2025 10:00:00 +0000',
    });
    expect(dsn.recipients).toEqual([
      {
        'final-recipient': 'rfc822; bob@dest.example',
        action: 'failed',
        status: '5.1.1',
        'diagnostic-code': 'smtp; 550 5.1.1 <bob@dest.example>: Recipient address rejected: User unknown',
        'last-attempt-date': 'Tue, 01 Apr 2025 10:04:00 +0000',
      },
      {
        'final-recipient': 'rfc822; carol@api.example',
        action: 'failed',
        status: '5.1.1',
        'diagnostic-code': 'http; HTTP 404 Not Found',
        'last-attempt-date': 'Tue, 01 Apr 2025 10:04:30 +0000',
      },
    ]);
  });

  it('parses with mailparser into the expected envelope headers and attachment', async () => {
    const mail = await simpleParser(await buildDsn(failedInput()));
    expect(mail.subject).toBe('Undelivered Mail Returned to Sender');
    expect(mail.from?.value[0]).toEqual({ name: 'Mail Delivery System', address: 'mailer-daemon@relay.example' });
    expect(mail.to).toMatchObject({ value: [{ address: 'alice@sender.example' }] });
    expect(mail.headers.get('auto-submitted')).toBe('auto-replied');
    expect(mail.date?.toISOString()).toBe('2025-04-01T10:05:00.000Z');
    expect(mail.messageId).toMatch(/^<[0-9a-f-]{36}@relay\.example>$/);
    expect(mail.text).toContain('This is the mail system at host relay.example.');
    const headersPart = mail.attachments.find((a) => a.contentType === 'text/rfc822-headers');
    expect(headersPart?.content.toString()).toContain('Message-ID: <orig-123@sender.example>');
  });

  it('returns the original headers in the third part', async () => {
    const dsn = parseDsn(await buildDsn(failedInput()));
    expect(dsn.originalHeaders).toBe(ORIGINAL_HEADERS.toString().trimEnd());
  });

  it('explains each failure in plain words in the human part', async () => {
    const dsn = parseDsn(await buildDsn(failedInput()));
    expect(dsn.headers.get('subject')).toBe('Undelivered Mail Returned to Sender');
    expect(dsn.headers.get('auto-submitted')).toBe('auto-replied');
    expect(dsn.humanText).toContain('This is the mail system at host relay.example.');
    expect(dsn.humanText).toContain('could not be delivered to one or more recipients');
    expect(dsn.humanText).toContain('<bob@dest.example>');
    expect(dsn.humanText).toContain('User unknown');
    expect(dsn.humanText).toContain('<carol@api.example>');
    expect(dsn.humanText).toContain('HTTP 404 Not Found');
  });

  it('reports a delayed delivery with its own subject, wording and action', async () => {
    const input = failedInput({
      recipients: [
        {
          address: 'bob@dest.example',
          action: 'delayed',
          status: '4.2.2',
          reply: smtp(452, '4.2.2', '452 4.2.2 Mailbox full'),
          lastAttemptAt: new Date('2025-04-01T14:00:00Z'),
          willRetryUntil: new Date('2025-04-06T10:00:00Z'),
        },
      ],
    });
    const dsn = parseDsn(await buildDsn(input));
    expect(dsn.headers.get('subject')).toBe('Delayed Mail (still being retried)');
    expect(dsn.humanText).toContain('has not yet been delivered');
    expect(dsn.humanText).toContain('will keep trying');
    expect(dsn.humanText).not.toContain('could not be delivered');
    expect(dsn.recipients).toEqual([
      {
        'final-recipient': 'rfc822; bob@dest.example',
        action: 'delayed',
        status: '4.2.2',
        'diagnostic-code': 'smtp; 452 4.2.2 Mailbox full',
        'last-attempt-date': 'Tue, 01 Apr 2025 14:00:00 +0000',
        'will-retry-until': 'Sun, 06 Apr 2025 10:00:00 +0000',
      },
    ]);
  });

  it('folds a long diagnostic so that no line of the report passes 998 octets', async () => {
    const longText = `550 5.7.1 ${'blocked by local policy '.repeat(10)}${'x'.repeat(1500)}`;
    const input = failedInput({
      recipients: [{ address: 'bob@dest.example', action: 'failed', status: '5.7.1', reply: smtp(550, '5.7.1', longText), lastAttemptAt: null }],
    });
    const raw = (await buildDsn(input)).toString('latin1');
    for (const line of raw.split('\r\n')) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(998);
    const statusPart = rawParts(raw)[1] ?? '';
    expect(statusPart).toMatch(/\r\nDiagnostic-Code: smtp; 550 5\.7\.1 blocked by local policy [^\r]*\r\n [a-z]/);
    const [recipient] = parseDsn(Buffer.from(raw, 'latin1')).recipients;
    expect(recipient?.['diagnostic-code']).toMatch(/^smtp; 550 5\.7\.1 (blocked by local policy ){10}x+/);
    expect(recipient?.['last-attempt-date']).toBeUndefined();
  });

  it('keeps the delivery-status part 7bit even when replies and addresses are not ASCII', async () => {
    const input = failedInput({
      recipients: [
        { address: 'josé@dest.example', action: 'failed', status: '5.0.0', reply: smtp(550, null, '550 Benutzer unbekannt – ü'), lastAttemptAt: null },
      ],
    });
    const raw = await buildDsn(input);
    const statusPart = rawParts(raw.toString('latin1'))[1] ?? '';
    // eslint-disable-next-line no-control-regex -- the point: only TAB, LF, CR and printable ASCII
    expect(/^[\x09\x0a\x0d\x20-\x7e]*$/.test(statusPart)).toBe(true);
    const [recipient] = parseDsn(raw).recipients;
    expect(recipient?.['final-recipient']).toBe('utf-8; jos\\x{E9}@dest.example');
    expect(recipient?.['diagnostic-code']).toBe('smtp; 550 Benutzer unbekannt ? ?');
    expect(parseDsn(raw).humanText).toContain('550 Benutzer unbekannt – ü');
  });

  it('returns 8-bit original headers byte for byte', async () => {
    const headers = Buffer.from('From: Zoë <zoe@sender.example>\r\nSubject: Grüße\r\n\r\n', 'utf8');
    const dsn = parseDsn(await buildDsn(failedInput({ originalHeaders: headers })));
    expect(dsn.originalHeaders).toBe('From: Zoë <zoe@sender.example>\r\nSubject: Grüße');
  });

  it('uses x-onward diagnostics when a recipient has no reply', async () => {
    const input = failedInput({
      recipients: [{ address: 'bob@dest.example', action: 'failed', status: '4.4.7', reply: null, lastAttemptAt: null }],
    });
    const [recipient] = parseDsn(await buildDsn(input)).recipients;
    expect(recipient?.['diagnostic-code']).toBe('x-onward; delivery time expired');
  });

  it('gives every report its own Message-ID', async () => {
    const a = parseDsn(await buildDsn(failedInput())).headers.get('message-id');
    const b = parseDsn(await buildDsn(failedInput())).headers.get('message-id');
    expect(a).toMatch(/@relay\.example>$/);
    expect(a).not.toBe(b);
  });

  it('refuses a report with no sender, no recipients or a malformed status', async () => {
    const bad: DsnInput[] = [
      failedInput({ to: '' }),
      failedInput({ recipients: [] }),
      failedInput({ recipients: [{ address: 'a@b', action: 'failed', status: '550', reply: null, lastAttemptAt: null }] }),
    ];
    for (const input of bad) {
      const err: unknown = await buildDsn(input).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isRelayError(err, 'ONWARD_ERR_BAD_ARGS')).toBe(true);
    }
  });
});
