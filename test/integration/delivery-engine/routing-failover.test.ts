/**
 * Routing into deliveries and failover between targets (SPEC section 4): each target of a
 * message is its own delivery with its own state; a route's target list is tried in order
 * within one attempt on ERROR, never on FAIL.
 */
import { describe, expect, it } from '@jest/globals';
import { closedPort, useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { startSmtpSink } from '../../helpers/smtp-sink.js';
import { InFlightGauge, sendMany, simpleMessage, startDeliveryRelay, waitForQuiet } from '../../helpers/delivery-relay.js';

const FROM = 'sender@client.test';

describe('one message for two targets', () => {
  const defer = useCleanup();

  it('keeps a separate state per delivery: the HTTP one deferred on 503, the SMTP one delivered', async () => {
    const http = await startHttpSink({ respond: () => ({ status: 503 }) });
    defer(() => http.close());
    const smtp = await startSmtpSink();
    defer(() => smtp.close());
    const t = await startDeliveryRelay({
      targets: {
        hooks: { type: 'http', url: http.url, timeout: '2s' },
        mail: { type: 'smtp', host: '127.0.0.1', port: smtp.port, secure: 'none', timeout: '2s' },
      },
      routes: [
        { match: '*@hooks.test', target: 'hooks' },
        { match: '*', target: 'mail' },
      ],
    });
    defer(() => t.close());

    const queueId = await t.send({ from: FROM, to: ['a@hooks.test', 'b@mail.test'] }, simpleMessage({ to: 'a@hooks.test, b@mail.test' }));
    const deliveries = await t.waitForDeliveries(
      queueId,
      (ds) => ds.some((d) => d.targets[0] === 'mail' && d.state === 'delivered') && ds.some((d) => d.targets[0] === 'hooks' && d.attempts.length >= 2 && d.state === 'deferred'),
      5000,
    );

    expect(deliveries.map((d) => d.id).sort()).toEqual([`${queueId}.0`, `${queueId}.1`]);
    const hooks = deliveries.find((d) => d.targets[0] === 'hooks')!;
    const mail = deliveries.find((d) => d.targets[0] === 'mail')!;
    expect(hooks.recipients).toEqual([expect.objectContaining({ address: 'a@hooks.test', state: 'deferred', lastError: 'HTTP 503 Service Unavailable' })]);
    expect(hooks.attempts.every((a) => a.outcome === 'error' && a.target === 'hooks')).toBe(true);
    expect(hooks.dueAt).not.toBeNull();
    expect(mail.recipients).toEqual([expect.objectContaining({ address: 'b@mail.test', state: 'delivered' })]);
    expect(mail.attemptCount).toBe(1);
    expect(mail.attempts).toEqual([expect.objectContaining({ target: 'mail', outcome: 'ok' })]);

    // Each downstream saw only its own recipients and its own idempotency key.
    expect(smtp.messages.map((m) => m.envelope.to)).toEqual([['b@mail.test']]);
    expect(new Set(http.requests.map((r) => r.headers['x-onward-envelope-to']))).toEqual(new Set(['a@hooks.test']));
    expect(new Set(http.requests.map((r) => r.headers['idempotency-key']))).toEqual(new Set([hooks.id]));

    // The message waits for the HTTP delivery; the body is still there for the retry.
    const message = await t.relay.spool.getMessage(queueId);
    expect(message?.deliveries[mail.id]).toBe('delivered');
    expect(['deferred', 'queued']).toContain(message?.state);
    expect(await t.relay.spool.getBody(queueId)).not.toBeNull();
  });
});

describe('failover between targets', () => {
  const defer = useCleanup();

  async function relayWith(primary: Record<string, unknown>, backup: Record<string, unknown>) {
    const t = await startDeliveryRelay({
      targets: { primary: { type: 'http', timeout: '2s', ...primary }, backup: { type: 'http', timeout: '2s', ...backup } },
      routes: [{ match: '*@hooks.test', target: ['primary', 'backup'] }],
    });
    defer(() => t.close());
    return t;
  }

  it('delivers through the backup in the first attempt when the primary refuses connections', async () => {
    const port = await closedPort();
    const backup = await startHttpSink();
    defer(() => backup.close());
    const t = await relayWith({ url: `http://127.0.0.1:${String(port)}/hook` }, { url: backup.url });

    const queueId = await t.send({ from: FROM, to: ['a@hooks.test'] }, simpleMessage({ to: 'a@hooks.test' }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered');

    expect(delivery!.attemptCount).toBe(1);
    expect(delivery!.attempts).toHaveLength(2);
    expect(delivery!.attempts[0]).toMatchObject({ target: 'primary', outcome: 'error', reply: expect.stringContaining('ECONNREFUSED') });
    expect(delivery!.attempts[1]).toMatchObject({ target: 'backup', outcome: 'ok', reply: 'HTTP 200 OK' });
    expect(delivery!.recipients).toEqual([expect.objectContaining({ address: 'a@hooks.test', state: 'delivered' })]);
    expect(backup.requests).toHaveLength(1);
    expect(backup.requests[0]!.headers['idempotency-key']).toBe(`${queueId}.0`);
    expect(backup.requests[0]!.headers['x-onward-attempt']).toBe('1');
  });

  it('does not pass a FAIL on to the backup', async () => {
    const primary = await startHttpSink({ respond: () => ({ status: 422 }) });
    defer(() => primary.close());
    const backup = await startHttpSink();
    defer(() => backup.close());
    const t = await relayWith({ url: primary.url }, { url: backup.url });

    const queueId = await t.send({ from: FROM, to: ['a@hooks.test'] }, simpleMessage({ to: 'a@hooks.test' }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'failed');
    await waitForQuiet(t.relay); // nothing left due or running: the backup cannot be asked any more

    expect(delivery!.attempts).toEqual([expect.objectContaining({ target: 'primary', outcome: 'fail', reply: 'HTTP 422 Unprocessable Entity' })]);
    expect(primary.requests).toHaveLength(1);
    expect(backup.requests).toHaveLength(0);
  });

  it('defers only when every target answered ERROR, recording one attempt record per target', async () => {
    const primary = await startHttpSink({ respond: () => ({ status: 500 }) });
    defer(() => primary.close());
    const backup = await startHttpSink({ respond: () => ({ status: 502 }) });
    defer(() => backup.close());
    const t = await relayWith({ url: primary.url }, { url: backup.url });

    const queueId = await t.send({ from: FROM, to: ['a@hooks.test'] }, simpleMessage({ to: 'a@hooks.test' }));
    const [delivery] = await t.waitForDeliveries(queueId, (ds) => (ds[0]?.attemptCount ?? 0) >= 2 && ds[0]?.state === 'deferred');

    expect(delivery!.attempts.slice(0, 4).map((a) => [a.target, a.outcome, a.reply])).toEqual([
      ['primary', 'error', 'HTTP 500 Internal Server Error'],
      ['backup', 'error', 'HTTP 502 Bad Gateway'],
      ['primary', 'error', 'HTTP 500 Internal Server Error'],
      ['backup', 'error', 'HTTP 502 Bad Gateway'],
    ]);
    expect(delivery!.recipients).toEqual([expect.objectContaining({ state: 'deferred', lastError: 'HTTP 502 Bad Gateway' })]);
    // Same idempotency key and attempt number at both targets within one attempt.
    expect(primary.requests[0]!.headers['idempotency-key']).toBe(backup.requests[0]!.headers['idempotency-key']);
    expect(primary.requests[0]!.headers['x-onward-attempt']).toBe('1');
    expect(backup.requests[0]!.headers['x-onward-attempt']).toBe('1');
  });

  // A failover takes a slot on the backup like any attempt, waiting while the backup is busy:
  // the backup's own limit holds however many deliveries the primary's larger one let start.
  it("respects the backup's concurrency limit when the primary fails over", async () => {
    const port = await closedPort();
    const gauge = new InFlightGauge();
    const backup = await startHttpSink({ respond: () => gauge.track(300, { status: 200 }) });
    defer(() => backup.close());
    const t = await relayWith({ url: `http://127.0.0.1:${String(port)}/hook`, concurrency: 16 }, { url: backup.url, concurrency: 2 });

    const messages = Array.from({ length: 8 }, () => ({ from: FROM, to: ['a@hooks.test'], raw: simpleMessage({ to: 'a@hooks.test' }) }));
    await sendMany(t.port, messages, 8);
    await waitForValue(() => backup.requests.length, (n) => n >= 8, 8000, 'backup requests');

    expect(gauge.max).toBeLessThanOrEqual(2);
  });
});
