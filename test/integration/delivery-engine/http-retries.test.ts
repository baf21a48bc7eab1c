/**
 * Delivery engine over real sockets: a message goes into the relay with nodemailer, the relay
 * spools it in LevelDB and the scheduler hands it to an HTTP sink on loopback. Outcomes and
 * the retry schedule (SPEC section 4, the outcome table at the top).
 */
import { describe, expect, it } from '@jest/globals';
import { closedPort, useCleanup } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { simpleMessage, startDeliveryRelay, waitForQuiet } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';
const TO = 'rcpt@hooks.test';

describe('HTTP delivery retries', () => {
  const defer = useCleanup();

  async function relayTo(url: string, extra: Record<string, unknown> = {}, retry: Record<string, unknown> = {}) {
    const t = await startDeliveryRelay({
      retry: { schedule: ['200ms'], jitter: 0, ...retry },
      targets: { hooks: { type: 'http', url, timeout: '2s', ...extra } },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
    });
    defer(() => t.close());
    return t;
  }

  it('delivers once after 500, 500, 200 with the same Idempotency-Key and attempts numbered 1, 2, 3', async () => {
    const sink = await startHttpSink({ respond: (_req, i) => ({ status: i < 2 ? 500 : 200 }) });
    defer(() => sink.close());
    const t = await relayTo(sink.url);

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered', 15_000);
    await waitForQuiet(t.relay); // nothing left due or running: no further request can come

    expect(sink.requests).toHaveLength(3);
    expect(sink.requests.map((r) => r.headers['idempotency-key'])).toEqual([`${queueId}.0`, `${queueId}.0`, `${queueId}.0`]);
    expect(sink.requests.map((r) => r.headers['x-onward-attempt'])).toEqual(['1', '2', '3']);
    expect(sink.requests.map((r) => r.headers['x-onward-queue-id'])).toEqual([queueId, queueId, queueId]);
    // The schedule says 200ms between attempts (no jitter).
    const [r0, r1, r2] = sink.requests.map((r) => r.receivedAt.getTime());
    expect(r1! - r0!).toBeGreaterThanOrEqual(180);
    expect(r2! - r1!).toBeGreaterThanOrEqual(180);

    expect(delivery!.id).toBe(`${queueId}.0`);
    expect(delivery!.attemptCount).toBe(3);
    expect(delivery!.attempts.map((a) => [a.target, a.outcome, a.reply])).toEqual([
      ['hooks', 'error', 'HTTP 500 Internal Server Error'],
      ['hooks', 'error', 'HTTP 500 Internal Server Error'],
      ['hooks', 'ok', 'HTTP 200 OK'],
    ]);
    expect(delivery!.recipients).toEqual([expect.objectContaining({ address: TO, state: 'delivered' })]);
    expect((await t.relay.spool.getMessage(queueId))?.state).toBe('delivered');
    // The body is dropped once every recipient is final.
    expect(await t.relay.spool.getBody(queueId)).toBeNull();
  });

  it('honours Retry-After on a 429 even when the schedule step is shorter', async () => {
    const sink = await startHttpSink({
      respond: (_req, i) => (i === 0 ? { status: 429, headers: { 'Retry-After': '1' } } : { status: 200 }),
    });
    defer(() => sink.close());
    // First step 200ms; the last interval (1h) only caps Retry-After, far beyond this wait.
    const t = await relayTo(sink.url, {}, { schedule: ['200ms', '1h'] });

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered', 15_000);

    expect(sink.requests).toHaveLength(2);
    // Not the 200ms step: the retry waited for the server's second.
    const gap = sink.requests[1]!.receivedAt.getTime() - sink.requests[0]!.receivedAt.getTime();
    expect(gap).toBeGreaterThanOrEqual(950);
    expect(delivery!.attempts.map((a) => [a.outcome, a.reply])).toEqual([
      ['error', 'HTTP 429 Too Many Requests'],
      ['ok', 'HTTP 200 OK'],
    ]);
  });

  it('caps a 503 Retry-After at the last interval of the schedule', async () => {
    const sink = await startHttpSink({
      respond: (_req, i) => (i === 0 ? { status: 503, headers: { 'Retry-After': '3600' } } : { status: 200 }),
    });
    defer(() => sink.close());
    const t = await relayTo(sink.url, {}, { schedule: ['200ms', '600ms'] });

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    // Delivered at all within this wait means capped: the hour asked for would not have passed.
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered', 15_000);

    // The cap is the last interval (600ms), not the first step (200ms).
    const gap = sink.requests[1]!.receivedAt.getTime() - sink.requests[0]!.receivedAt.getTime();
    expect(gap).toBeGreaterThanOrEqual(550);
    expect(delivery!.attempts.map((a) => a.reply)).toEqual(['HTTP 503 Service Unavailable', 'HTTP 200 OK']);
  });

  it('fails a 400 for good after exactly one request and bounces the message', async () => {
    const sink = await startHttpSink({ respond: () => ({ status: 400 }) });
    defer(() => sink.close());
    const t = await relayTo(sink.url);

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'failed');
    await waitForQuiet(t.relay); // nothing left due or running: a retry cannot come any more

    expect(sink.requests).toHaveLength(1);
    expect(delivery!.attemptCount).toBe(1);
    expect(delivery!.attempts.map((a) => [a.outcome, a.reply])).toEqual([['fail', 'HTTP 400 Bad Request']]);
    expect(delivery!.recipients).toEqual([
      expect.objectContaining({ address: TO, state: 'failed', lastError: 'HTTP 400 Bad Request', reported: true }),
    ]);
    expect(delivery!.dueAt).toBeNull();
    expect((await t.relay.spool.getMessage(queueId))?.state).toBe('bounced');
    // The DSN to the sender went through the spool (to the outbox file target), not to the sink.
    const dsns: string[] = [];
    for await (const { message } of t.relay.spool.list({ states: ['queued', 'deferred', 'delivered', 'bounced'] })) {
      if (message.bounceOf === queueId) dsns.push(message.recipients.join(','));
    }
    expect(dsns).toEqual([FROM]);
  });

  it('gives up on a hanging downstream after the target timeout and retries it', async () => {
    // The first request is never answered (until the sink closes): only the timeout ends it.
    const sink = await startHttpSink({ respond: (_req, i) => (i === 0 ? { status: 200, delayMs: 600_000 } : { status: 200 }) });
    defer(() => sink.close());
    const t = await relayTo(sink.url, { timeout: '300ms' });

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered', 15_000);

    expect(sink.requests).toHaveLength(2);
    expect(sink.requests.map((r) => r.headers['x-onward-attempt'])).toEqual(['1', '2']);
    const [first, second] = delivery!.attempts;
    expect(first).toMatchObject({ outcome: 'error', reply: expect.stringMatching(/^timeout after 300 ms/) });
    expect(first!.durationMs).toBeGreaterThanOrEqual(280);
    expect(second).toMatchObject({ outcome: 'ok', reply: 'HTTP 200 OK' });
    // Timeout, then the 200ms schedule step.
    const gap = sink.requests[1]!.receivedAt.getTime() - sink.requests[0]!.receivedAt.getTime();
    expect(gap).toBeGreaterThanOrEqual(450);
  });

  it('keeps retrying a downstream that refuses connections and leaves the delivery deferred', async () => {
    const port = await closedPort();
    const t = await relayTo(`http://127.0.0.1:${String(port)}/hook`);

    const queueId = await t.send({ from: FROM, to: [TO] }, simpleMessage({ to: TO }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => (ds[0]?.attempts.length ?? 0) >= 3 && ds[0]?.state === 'deferred', 15_000);

    expect(delivery!.attemptCount).toBeGreaterThanOrEqual(3);
    for (const attempt of delivery!.attempts) {
      expect(attempt).toMatchObject({ target: 'hooks', outcome: 'error', reply: expect.stringContaining('ECONNREFUSED') });
    }
    expect(delivery!.recipients).toEqual([
      expect.objectContaining({ address: TO, state: 'deferred', lastError: expect.stringContaining('ECONNREFUSED') }),
    ]);
    expect(delivery!.dueAt).not.toBeNull();
    expect((await t.relay.spool.getMessage(queueId))?.state).toBe('deferred');
  });
});
