/**
 * SPEC section 5 (bounces), end to end over real sockets: nodemailer submits to the relay on
 * 127.0.0.1, the relay spools to a LevelDB temp dir and delivers to SMTP / HTTP sinks; a
 * permanent failure (or an expiry) comes back as exactly one RFC 3464 DSN at the target that
 * `bounces.via` names, which the tests parse field by field.
 */
import { describe, expect, it } from '@jest/globals';
import { simpleParser, type AddressObject, type StructuredHeader } from 'mailparser';
import type { DeliveryRecord, MessageRecord } from '../../src/spool/index.js';
import { spoolContents, useCleanup, waitUntil } from '../helpers/common.js';
import { parseDsn, type ParsedDsn } from '../helpers/dsn.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { startSmtpSink, type SmtpSink, type SmtpSinkMessage } from '../helpers/smtp-sink.js';
import { dsnsOf, httpTarget, originalMessage, smtpTarget, startBounceRelay, submit, type BounceRelay, type ConfigOverrides } from '../helpers/bounce-relay.js';
import { waitForQuiet } from '../helpers/delivery-relay.js';

const SENDER = 'alice@example.com';
const BOUNCES_FROM = 'postmaster@relay.test';

interface ExpectedRecipient {
  readonly address: string;
  readonly action: 'failed' | 'delayed';
  readonly status: string | RegExp;
  /** The whole `Diagnostic-Code` value. */
  readonly diagnostic: string | RegExp;
  /** A fragment of the reason the human-readable part must show for this recipient. */
  readonly reason: string;
}

interface ExpectedDsn {
  readonly originalSender: string;
  readonly subject: string;
  readonly messageId: string;
  readonly recipients: readonly ExpectedRecipient[];
  /** Epoch ms bounds for Arrival-Date / Last-Attempt-Date (widened to whole seconds). */
  readonly notBefore: number;
}

/** A recipient an SMTP target refused with `550 5.1.1 <address>: no such user`. */
function noSuchUser(address: string): ExpectedRecipient {
  return { address, action: 'failed', status: '5.1.1', diagnostic: `smtp; 550 5.1.1 <${address}>: no such user`, reason: 'no such user' };
}

/** A recipient a webhook refused with HTTP 400. */
function http400(address: string): ExpectedRecipient {
  return { address, action: 'failed', status: '5.0.0', diagnostic: 'http; HTTP 400 Bad Request', reason: 'HTTP 400 Bad Request' };
}

/** bob@example.org, whom an SMTP target kept answering `451 4.3.0 try again later`. */
function triedAgainLater(action: ExpectedRecipient['action']): ExpectedRecipient {
  return { address: 'bob@example.org', action, status: /^4\.(4\.7|3\.0)$/, diagnostic: 'smtp; 451 4.3.0 try again later', reason: 'try again later' };
}

/** The first message `sink` receives (within `timeoutMs`, default 5 s). */
async function firstMessage(sink: SmtpSink, timeoutMs?: number): Promise<SmtpSinkMessage> {
  const [first] = await sink.waitFor(1, timeoutMs);
  if (!first) throw new Error('no DSN');
  return first;
}

function expectDateWithin(value: string | undefined, notBefore: number, label: string): void {
  expect({ label, value }).toEqual({ label, value: expect.stringMatching(/\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/) });
  const at = Date.parse(value ?? '');
  expect(Number.isNaN(at)).toBe(false);
  // RFC 5322 dates carry whole seconds.
  expect(at).toBeGreaterThanOrEqual(Math.floor(notBefore / 1000) * 1000);
  expect(at).toBeLessThanOrEqual(Date.now() + 1000);
}

/** Parses a DSN both ways (mailparser and parseDsn) and checks every RFC 3464 field the spec names. */
async function expectDsn(raw: Buffer, expected: ExpectedDsn): Promise<ParsedDsn> {
  const mail = await simpleParser(raw);
  const contentType = mail.headers.get('content-type') as StructuredHeader;
  expect(contentType.value).toBe('multipart/report');
  expect(contentType.params['report-type']).toBe('delivery-status');
  expect(mail.from?.value.map((a) => a.address)).toEqual([BOUNCES_FROM]);
  const to = mail.to as AddressObject;
  expect(to.value.map((a) => a.address)).toEqual([expected.originalSender]);
  expect(mail.headers.get('auto-submitted')).toBe('auto-replied');
  expect(mail.headers.get('mime-version')).toBe('1.0');
  expect(mail.date?.getTime()).toBeGreaterThanOrEqual(Math.floor(expected.notBefore / 1000) * 1000);
  expect(mail.messageId).toMatch(/^<[^<>@\s]+@relay\.test>$/);
  expect(mail.subject).toBe(
    expected.recipients.some((r) => r.action === 'failed') ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)',
  );

  const dsn = parseDsn(raw);
  expect(dsn.headers.get('auto-submitted')).toBe('auto-replied');
  expect(dsn.perMessage['reporting-mta']).toBe('dns; relay.test');
  expectDateWithin(dsn.perMessage['arrival-date'], expected.notBefore, 'Arrival-Date');

  expect(dsn.recipients.map((r) => r['final-recipient'])).toEqual(expected.recipients.map((r) => `rfc822; ${r.address}`));
  expected.recipients.forEach((want, i) => {
    const got = dsn.recipients[i] ?? {};
    expect(got['action']).toBe(want.action);
    if (typeof want.status === 'string') expect(got['status']).toBe(want.status);
    else expect(got['status']).toMatch(want.status);
    if (typeof want.diagnostic === 'string') expect(got['diagnostic-code']).toBe(want.diagnostic);
    else expect(got['diagnostic-code']).toMatch(want.diagnostic);
    expectDateWithin(got['last-attempt-date'], expected.notBefore, `Last-Attempt-Date of ${want.address}`);
    // Will-Retry-Until lies in the future; the delay test checks its value.
    if (want.action === 'delayed') expect(Number.isNaN(Date.parse(got['will-retry-until'] ?? ''))).toBe(false);
    else expect(got['will-retry-until']).toBeUndefined();
    // The human-readable part names the recipient and why.
    expect(dsn.humanText).toContain(`<${want.address}>`);
    expect(dsn.humanText).toContain(want.reason);
    expect(dsn.humanText).toContain(`Status ${got['status'] ?? '?'}`);
  });

  // The original headers come back as text/rfc822-headers, without the body.
  expect(raw.toString('latin1')).toMatch(/Content-Type: text\/rfc822-headers/i);
  expect(dsn.originalHeaders).toContain(`Subject: ${expected.subject}`);
  expect(dsn.originalHeaders).toContain(`Message-ID: <${expected.messageId}>`);
  expect(dsn.originalHeaders).not.toContain('original body');
  return dsn;
}

async function deliveriesOf(t: BounceRelay, queueId: string): Promise<DeliveryRecord[]> {
  return t.relay.spool.getDeliveries(queueId);
}

async function messageOf(t: BounceRelay, queueId: string): Promise<MessageRecord> {
  const message = await t.relay.spool.getMessage(queueId);
  if (!message) throw new Error(`no message ${queueId} in the spool`);
  return message;
}

/** Waits until the message reaches `state` (DSN bookkeeping lands in the same batch as the outcome). */
async function waitForState(t: BounceRelay, queueId: string, state: MessageRecord['state'], timeoutMs = 5000): Promise<MessageRecord> {
  return waitUntil(
    `message ${queueId} to be ${state}`,
    async () => {
      const m = await t.relay.spool.getMessage(queueId);
      return m?.state === state ? m : undefined;
    },
    timeoutMs,
    25,
  );
}

/** Checks the spool side of one bounce: original bounced, exactly one DSN with bounceOf = original. */
async function expectBouncedWithOneDsn(t: BounceRelay, queueId: string, dsnRaw: Buffer, failed: readonly string[]): Promise<MessageRecord> {
  const original = await messageOf(t, queueId);
  expect(original.state).toBe('bounced');
  const recipients = (await deliveriesOf(t, queueId)).flatMap((d) => d.recipients);
  for (const address of failed) {
    expect(recipients.find((r) => r.address === address)).toMatchObject({ state: 'failed', reported: true });
  }
  const dsns = await dsnsOf(t.relay.spool, queueId);
  expect(dsns).toHaveLength(1);
  const dsn = dsns[0] as MessageRecord;
  expect(dsn.bounceOf).toBe(queueId);
  expect(dsn.sender).toBe('');
  expect(dsn.recipients).toEqual([SENDER]);
  const mail = await simpleParser(dsnRaw);
  expect(`<${dsn.messageId ?? ''}>`).toBe(mail.messageId);
  return dsn;
}

describe('Bounces (RFC 3464 delivery status notifications)', () => {
  const defer = useCleanup();

  const smtpSink = async (): Promise<SmtpSink> => {
    const sink = await startSmtpSink();
    defer(() => sink.close());
    return sink;
  };
  const httpSink = async (): Promise<HttpSink> => {
    const sink = await startHttpSink();
    defer(() => sink.close());
    return sink;
  };
  const relay = async (overrides: ConfigOverrides): Promise<BounceRelay> => {
    const t = await startBounceRelay(overrides);
    defer(() => t.close());
    return t;
  };
  /** Original mail → SMTP sink `upstream`; DSNs → `bounces.via: bounce`, a second SMTP sink. */
  const smtpSetup = async (
    extra: ConfigOverrides = {},
  ): Promise<{ upstream: SmtpSink; bounceSink: SmtpSink; t: BounceRelay }> => {
    const upstream = await smtpSink();
    const bounceSink = await smtpSink();
    const t = await relay({
      targets: { upstream: smtpTarget(upstream.port), bounce: smtpTarget(bounceSink.port) },
      routes: [{ match: '*', target: 'upstream' }],
      bounces: { from: BOUNCES_FROM, via: 'bounce' },
      ...extra,
    });
    return { upstream, bounceSink, t };
  };

  it('turns a 550 5.1.1 from an SMTP target into exactly one DSN to the original sender, with every field', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) => ({ code: 550, message: `5.1.1 <${to}>: no such user` }));
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Quarterly report', messageId: 'q1@client.test' }));

    const dsnMail = await firstMessage(bounceSink);
    expect(dsnMail.envelope.from).toBe(''); // MAIL FROM:<>
    expect(dsnMail.envelope.to).toEqual([SENDER]);
    await expectDsn(dsnMail.raw, { originalSender: SENDER, subject: 'Quarterly report', messageId: 'q1@client.test', notBefore, recipients: [noSuchUser('bob@example.org')] });

    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(1);
    expect(upstream.messages).toHaveLength(0);
    const dsn = await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['bob@example.org']);
    // A permanent failure is not retried.
    const [delivery] = await deliveriesOf(t, queueId);
    expect(delivery?.attempts.map((a) => a.outcome)).toEqual(['fail']);
    // The DSN itself went through the spool and was delivered.
    await waitForState(t, dsn.id, 'delivered');
  });

  it('turns an HTTP 400 from a webhook into exactly one DSN with Status 5.0.0 and an http Diagnostic-Code', async () => {
    const hook = await httpSink();
    hook.respond(() => ({ status: 400, body: 'bad payload' }));
    const bounceSink = await smtpSink();
    const t = await relay({
      targets: { hooks: httpTarget(hook.url), bounce: smtpTarget(bounceSink.port) },
      routes: [{ match: '*', target: 'hooks' }],
      bounces: { from: BOUNCES_FROM, via: 'bounce' },
    });
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['hook@example.org'] }, originalMessage({ subject: 'Webhook test', messageId: 'h1@client.test' }));

    const dsnMail = await firstMessage(bounceSink);
    expect(dsnMail.envelope.from).toBe('');
    expect(dsnMail.envelope.to).toEqual([SENDER]);
    await expectDsn(dsnMail.raw, { originalSender: SENDER, subject: 'Webhook test', messageId: 'h1@client.test', notBefore, recipients: [http400('hook@example.org')] });

    await waitForQuiet(t.relay);
    expect(hook.requests).toHaveLength(1); // 400 is FAIL: no retry
    expect(bounceSink.messages).toHaveLength(1);
    await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['hook@example.org']);
  });

  it('reports two recipients that fail in the same attempt in one DSN listing both', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) =>
      to === 'bob@example.org' ? { code: 550, message: '5.1.1 <bob@example.org>: no such user' } : { code: 554, message: '5.7.1 <carol@example.org>: relay access denied' },
    );
    const notBefore = Date.now();
    const queueId = await submit(
      t.port,
      { from: SENDER, to: ['bob@example.org', 'carol@example.org'] },
      originalMessage({ subject: 'Two of them', messageId: 'two@client.test', to: 'bob@example.org, carol@example.org' }),
    );

    const dsnMail = await firstMessage(bounceSink);
    expect(dsnMail.envelope).toEqual({ from: '', to: [SENDER] });
    await expectDsn(dsnMail.raw, {
      originalSender: SENDER,
      subject: 'Two of them',
      messageId: 'two@client.test',
      notBefore,
      recipients: [
        noSuchUser('bob@example.org'),
        {
          address: 'carol@example.org',
          action: 'failed',
          status: '5.7.1',
          diagnostic: 'smtp; 554 5.7.1 <carol@example.org>: relay access denied',
          reason: 'relay access denied',
        },
      ],
    });

    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(1);
    await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['bob@example.org', 'carol@example.org']);
  });

  it('lists only the recipients that failed when others were delivered', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) => (to === 'bob@example.org' ? { code: 550, message: '5.1.1 <bob@example.org>: no such user' } : null));
    const notBefore = Date.now();
    const queueId = await submit(
      t.port,
      { from: SENDER, to: ['bob@example.org', 'dave@example.org'] },
      originalMessage({ subject: 'Half', messageId: 'half@client.test' }),
    );

    const dsnMail = await firstMessage(bounceSink);
    await expectDsn(dsnMail.raw, { originalSender: SENDER, subject: 'Half', messageId: 'half@client.test', notBefore, recipients: [noSuchUser('bob@example.org')] });
    expect(upstream.messages.map((m) => m.envelope.to)).toEqual([['dave@example.org']]);
    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(1);
    await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['bob@example.org']);
    const recipients = (await deliveriesOf(t, queueId)).flatMap((d) => d.recipients);
    expect(recipients.find((r) => r.address === 'dave@example.org')).toMatchObject({ state: 'delivered', reported: false });
  });

  it('never bounces a null-sender message: the failure is recorded and no DSN is sent', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) => ({ code: 550, message: `5.1.1 <${to}>: no such user` }));
    const queueId = await submit(t.port, { from: '', to: ['bob@example.org'] }, originalMessage({ subject: 'A bounce', messageId: 'nb@client.test', from: '<>' }));
    expect((await messageOf(t, queueId)).sender).toBe('');

    const message = await waitForState(t, queueId, 'bounced');
    expect(message.finishedAt).not.toBeNull();
    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(0);
    expect(bounceSink.sessions).toBe(0);
    const [delivery, ...others] = await deliveriesOf(t, queueId);
    expect(others).toHaveLength(0);
    expect(delivery?.state).toBe('failed');
    expect(delivery?.recipients).toEqual([
      expect.objectContaining({ address: 'bob@example.org', state: 'failed', reported: true, lastError: '550 5.1.1 <bob@example.org>: no such user' }),
    ]);
    // Nothing else was spooled: no DSN about it.
    expect((await spoolContents(t.relay.spool)).map((e) => e.message.id)).toEqual([queueId]);
  });

  it('bounces a delivery that keeps answering 451 once retry.maxAge has passed, as one DSN with Action failed', async () => {
    const { upstream, bounceSink, t } = await smtpSetup({ retry: { schedule: ['200ms'], jitter: 0, maxAge: '3s' } });
    upstream.onRcpt(() => ({ code: 451, message: '4.3.0 try again later' }));
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Slow', messageId: 'slow@client.test' }));

    const dsnMail = await firstMessage(bounceSink, 15_000);
    expect(dsnMail.receivedAt.getTime() - notBefore).toBeGreaterThanOrEqual(3000);
    expect(dsnMail.envelope).toEqual({ from: '', to: [SENDER] });
    await expectDsn(dsnMail.raw, { originalSender: SENDER, subject: 'Slow', messageId: 'slow@client.test', notBefore, recipients: [triedAgainLater('failed')] });

    // The outcome that queued the DSN was written with it, so the attempts are final by now.
    const [delivery] = await deliveriesOf(t, queueId);
    // Retried on the 200 ms schedule until the 3 s lifetime ran out, and not after.
    expect(delivery?.attempts.length).toBeGreaterThanOrEqual(10);
    expect(delivery?.attempts.every((a) => a.outcome === 'error')).toBe(true);
    expect(delivery?.delayWarned).toBe(false);
    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(1);
    expect((await deliveriesOf(t, queueId))[0]?.attempts.length).toBe(delivery?.attempts.length);
    await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['bob@example.org']);
  });

  // A delivery whose target's circuit is open waits for the next probe or for the end of its
  // queue lifetime, whichever comes first: past retry.maxAge it is bounced while the target is
  // still down, not at the probe.
  it('bounces deliveries past retry.maxAge even while their target is marked down', async () => {
    const upstream = await smtpSink();
    upstream.onRcpt(() => ({ code: 451, message: '4.3.0 try again later' }));
    const bounceSink = await smtpSink();
    const t = await relay({
      // Two ERRORs open the circuit; the next probe is far beyond the queue lifetime and this test.
      targets: { upstream: { ...smtpTarget(upstream.port), circuit: { failures: 2, probe: '1h' } }, bounce: smtpTarget(bounceSink.port) },
      routes: [{ match: '*', target: 'upstream' }],
      bounces: { from: BOUNCES_FROM, via: 'bounce' },
      retry: { schedule: ['200ms'], jitter: 0, maxAge: '1s' },
    });
    const notBefore = Date.now();
    const ids = [
      await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Down 1', messageId: 'down1@client.test' })),
      await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Down 2', messageId: 'down2@client.test' })),
    ];

    // Both at maxAge (1 s); waiting for the probe, neither would come within the hour.
    const dsns = await bounceSink.waitFor(2, 15_000);
    for (const dsnMail of dsns) {
      expect(dsnMail.receivedAt.getTime() - notBefore).toBeGreaterThanOrEqual(1000);
      const dsn = parseDsn(dsnMail.raw);
      expect(dsn.recipients.map((r) => [r['final-recipient'], r['action'], r['status']?.charAt(0)])).toEqual([['rfc822; bob@example.org', 'failed', '4']]);
    }
    for (const id of ids) expect((await messageOf(t, id)).state).toBe('bounced');
  });

  it('sends one delay DSN (Action delayed) after retry.delayWarningAfter, exactly once, before the final failure', async () => {
    const { upstream, bounceSink, t } = await smtpSetup({ retry: { schedule: ['200ms'], jitter: 0, maxAge: '3s', delayWarningAfter: '1s' } });
    upstream.onRcpt(() => ({ code: 451, message: '4.3.0 try again later' }));
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Late', messageId: 'late@client.test' }));

    const [delayed] = await bounceSink.waitFor(1, 15_000);
    if (!delayed) throw new Error('no delay DSN');
    expect(delayed.receivedAt.getTime() - notBefore).toBeGreaterThanOrEqual(1000);
    expect(delayed.envelope).toEqual({ from: '', to: [SENDER] });
    const delayDsn = await expectDsn(delayed.raw, { originalSender: SENDER, subject: 'Late', messageId: 'late@client.test', notBefore, recipients: [triedAgainLater('delayed')] });
    // Will-Retry-Until is the end of the queue lifetime (createdAt + 3 s), to the second.
    const [delivery] = await deliveriesOf(t, queueId);
    const until = Date.parse(delayDsn.recipients[0]?.['will-retry-until'] ?? '');
    expect(Math.abs(until - ((delivery?.createdAt ?? 0) + 3000))).toBeLessThan(1000);
    expect(delivery?.delayWarned).toBe(true);

    // Then, at maxAge, the final report: no second delay warning in between.
    const all = await bounceSink.waitFor(2, 15_000);
    const failed = all[1];
    if (!failed) throw new Error('no final DSN');
    expect(failed.receivedAt.getTime() - notBefore).toBeGreaterThanOrEqual(3000);
    await expectDsn(failed.raw, { originalSender: SENDER, subject: 'Late', messageId: 'late@client.test', notBefore, recipients: [triedAgainLater('failed')] });

    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(2);
    expect((await messageOf(t, queueId)).state).toBe('bounced');
    const dsns = (await dsnsOf(t.relay.spool, queueId)).sort((a, b) => a.receivedAt - b.receivedAt);
    expect(dsns).toHaveLength(2);
    expect(dsns.every((d) => d.bounceOf === queueId && d.sender === '')).toBe(true);
    // The warning was spooled after an earlier attempt, while the message was still being
    // retried; the failure report with the outcome of the last attempt (spool times, not the clock).
    const [finished] = await deliveriesOf(t, queueId);
    const lastAttemptAt = finished?.attempts.at(-1)?.at ?? 0;
    expect(dsns.map((d) => (d.receivedAt < lastAttemptAt ? 'earlier attempt' : 'last attempt'))).toEqual(['earlier attempt', 'last attempt']);
  });

  it('retries a DSN whose own delivery fails temporarily until it arrives', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) => ({ code: 550, message: `5.1.1 <${to}>: no such user` }));
    let dsnTries = 0;
    bounceSink.onRcpt(() => {
      dsnTries += 1;
      return dsnTries === 1 ? { code: 451, message: '4.3.0 bounce mailbox busy' } : null;
    });
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Retry the DSN', messageId: 'rd@client.test' }));

    const dsnMail = await firstMessage(bounceSink);
    expect(dsnTries).toBe(2);
    expect(dsnMail.envelope).toEqual({ from: '', to: [SENDER] });
    await expectDsn(dsnMail.raw, { originalSender: SENDER, subject: 'Retry the DSN', messageId: 'rd@client.test', notBefore, recipients: [noSuchUser('bob@example.org')] });

    const dsn = await expectBouncedWithOneDsn(t, queueId, dsnMail.raw, ['bob@example.org']);
    await waitForState(t, dsn.id, 'delivered');
    const [dsnDelivery] = await deliveriesOf(t, dsn.id);
    expect(dsnDelivery?.targets).toEqual(['bounce']);
    expect(dsnDelivery?.attempts.map((a) => a.outcome)).toEqual(['error', 'ok']);
    await waitForQuiet(t.relay);
    expect(bounceSink.messages).toHaveLength(1);
  });

  it('drops a DSN that fails permanently: recorded as failed, never bounced itself', async () => {
    const { upstream, bounceSink, t } = await smtpSetup();
    upstream.onRcpt((to) => ({ code: 550, message: `5.1.1 <${to}>: no such user` }));
    bounceSink.onRcpt((to) => ({ code: 550, message: `5.1.1 <${to}>: sender unknown here` }));
    const queueId = await submit(t.port, { from: SENDER, to: ['bob@example.org'] }, originalMessage({ subject: 'Dead end', messageId: 'dead@client.test' }));

    await waitForState(t, queueId, 'bounced');
    const [dsn] = await waitUntil(
      'the DSN in the spool',
      async () => {
        const found = await dsnsOf(t.relay.spool, queueId);
        return found.length > 0 ? found : undefined;
      },
      5000,
      25,
    );
    if (!dsn) throw new Error('no DSN');
    expect(dsn.sender).toBe('');
    const dsnAfter = await waitForState(t, dsn.id, 'bounced');
    expect(dsnAfter.bounceOf).toBe(queueId);
    const [dsnDelivery] = await deliveriesOf(t, dsn.id);
    expect(dsnDelivery?.state).toBe('failed');
    expect(dsnDelivery?.attempts.map((a) => a.outcome)).toEqual(['fail']);
    expect(dsnDelivery?.recipients).toEqual([
      expect.objectContaining({ address: SENDER, state: 'failed', reported: true, lastError: `550 5.1.1 <${SENDER}>: sender unknown here` }),
    ]);

    await waitForQuiet(t.relay);
    // No DSN about the DSN, anywhere: the spool holds the original and its one report only.
    const contents = await spoolContents(t.relay.spool);
    expect(contents.map((e) => e.message.id).sort()).toEqual([queueId, dsn.id].sort());
    expect(await dsnsOf(t.relay.spool, dsn.id)).toHaveLength(0);
    expect(bounceSink.messages).toHaveLength(0);
    expect(upstream.messages).toHaveLength(0);
    expect((await messageOf(t, queueId)).state).toBe('bounced');
  });

  it('POSTs the DSN to an HTTP target when bounces.via names one', async () => {
    const hook = await httpSink();
    hook.respond(() => ({ status: 400 }));
    const bounceHook = await httpSink();
    const t = await relay({
      targets: { hooks: httpTarget(hook.url), bouncehook: httpTarget(bounceHook.url, 'raw') },
      routes: [{ match: '*', target: 'hooks' }],
      bounces: { from: BOUNCES_FROM, via: 'bouncehook' },
    });
    const notBefore = Date.now();
    const queueId = await submit(t.port, { from: SENDER, to: ['hook@example.org'] }, originalMessage({ subject: 'HTTP only', messageId: 'ho@client.test' }));

    const [request] = await bounceHook.waitFor(1);
    if (!request) throw new Error('no DSN request');
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('message/rfc822');
    expect(request.headers['x-onward-envelope-from']).toBe('<>');
    expect(request.headers['x-onward-envelope-to']).toBe(SENDER);
    // The raw body is the DSN itself: a multipart/report.
    expect(request.body.toString('latin1')).toMatch(/^Content-Type: multipart\/report;\s*report-type=delivery-status;/im);
    const dsnRecord = (await dsnsOf(t.relay.spool, queueId))[0];
    expect(request.headers['x-onward-queue-id']).toBe(dsnRecord?.id);
    await expectDsn(request.body, { originalSender: SENDER, subject: 'HTTP only', messageId: 'ho@client.test', notBefore, recipients: [http400('hook@example.org')] });

    await waitForQuiet(t.relay);
    expect(bounceHook.requests).toHaveLength(1);
    expect(hook.requests).toHaveLength(1);
    const dsn = await expectBouncedWithOneDsn(t, queueId, request.body, ['hook@example.org']);
    await waitForState(t, dsn.id, 'delivered');
  });
});
