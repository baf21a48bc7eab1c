/**
 * Delivery events (SPEC 11), end to end over real sockets and a real LevelDB spool: an SMTP
 * sink answers per recipient, an HTTP sink is `events.target`. Events are written with the
 * outcome they report, POSTed as JSON with the event id as Idempotency-Key, retried on the
 * schedule, never bounced and never reported themselves; DSNs produce none.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ALL_STATES, spoolContents, useCleanup, waitForValue } from '../../helpers/common.js';
import type { Spool } from '../../../src/spool/index.js';
import { startDeliveryRelay, simpleMessage, waitForQuiet, type DeliveryRelay } from '../../helpers/delivery-relay.js';
import { startHttpSink, type HttpSink, type HttpSinkRequest } from '../../helpers/http-sink.js';
import { startSmtpSink } from '../../helpers/smtp-sink.js';

const FROM = 'sender@client.test';

interface EventBody {
  id: string;
  type: 'delivered' | 'deferred' | 'failed';
  at: string;
  queueId: string;
  messageId: string | null;
  deliveryId: string;
  target: string;
  attempt: number;
  recipients: { address: string; state: string; reply: string | null }[];
  nextAttemptAt?: string;
  reason?: string;
}

/** Every message and every event in the spool, any state. */
async function everything(spool: Spool): Promise<Awaited<ReturnType<typeof spoolContents>>> {
  const out = await spoolContents(spool);
  for await (const e of spool.list({ states: ALL_STATES, events: true })) out.push(e);
  return out;
}

const bodyOf = (r: HttpSinkRequest): EventBody => JSON.parse(r.body.toString('utf8')) as EventBody;

/** The events the sink accepted (2xx), first arrival of each id, in arrival order. */
function accepted(sink: HttpSink, answered: Map<HttpSinkRequest, number>): EventBody[] {
  const seen = new Set<string>();
  const out: EventBody[] = [];
  for (const r of sink.requests) {
    if ((answered.get(r) ?? 0) >= 300) continue;
    const e = bodyOf(r);
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    out.push(e);
  }
  return out;
}

/** An events sink whose answers are recorded per request (scripted by `answer`). */
async function eventsSink(answer: (e: EventBody, index: number) => number): Promise<{ sink: HttpSink; answered: Map<HttpSinkRequest, number> }> {
  const answered = new Map<HttpSinkRequest, number>();
  const sink = await startHttpSink({
    respond: (r, i) => {
      const status = answer(bodyOf(r), i);
      answered.set(r, status);
      return { status };
    },
  });
  return { sink, answered };
}

const eventsTarget = (url: string): Record<string, unknown> => ({
  type: 'http',
  url,
  format: 'json',
  timeout: '2s',
  concurrency: 1,
  circuit: { failures: 3, probe: '200ms' },
});

describe('delivery events', () => {
  const defer = useCleanup();
  let t: DeliveryRelay | null = null;
  afterEach(async () => {
    await t?.close();
    t = null;
  });

  it('reports delivered, deferred and failed per attempt, each with its own recipients, ids stable across the event’s retries', async () => {
    const smtp = await startSmtpSink();
    defer(() => smtp.close());
    let greylisted = false;
    smtp.onRcpt((to) => {
      if (to.startsWith('later@')) {
        if (greylisted) return null;
        greylisted = true;
        return { code: 451, message: '4.7.1 greylisted, try again' };
      }
      if (to.startsWith('nobody@')) return { code: 550, message: '5.1.1 no such user' };
      return null;
    });
    let refusedOnce: string | null = null;
    const { sink, answered } = await eventsSink((e) => {
      // The first `failed` event is refused once: its retry must carry the same id.
      if (e.type === 'failed' && refusedOnce === null) {
        refusedOnce = e.id;
        return 503;
      }
      return 200;
    });
    defer(() => sink.close());
    t = await startDeliveryRelay({
      targets: { mail: { type: 'smtp', host: '127.0.0.1', port: smtp.port, secure: 'none', timeout: '2s' }, appEvents: eventsTarget(sink.url) },
      routes: [{ match: '*@mail.test', target: 'mail' }],
      events: { target: 'appEvents' },
    });
    const rcpts = ['now@mail.test', 'later@mail.test', 'nobody@mail.test'];
    const raw = simpleMessage({ to: rcpts.join(', ') });
    const queueId = await t.send({ from: FROM, to: rcpts }, raw);
    const messageId = /Message-ID: <([^>]+)>/.exec(raw)?.[1] ?? null;

    await waitForValue(() => accepted(sink, answered), (es) => es.length >= 4, 10_000, 'four events accepted');
    await waitForQuiet(t.relay, 10_000);
    const events = accepted(sink, answered);
    expect(events).toHaveLength(4);
    const deliveryId = `${queueId}.0`;
    for (const e of events) {
      expect(e).toMatchObject({ queueId, messageId, deliveryId, target: 'mail' });
      expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    }
    const byKey = new Map(events.map((e) => [`${e.attempt}.${e.type}`, e]));
    expect(byKey.get('1.delivered')).toMatchObject({ id: `${deliveryId}.1.delivered`, recipients: [{ address: 'now@mail.test', state: 'delivered' }] });
    const deferred = byKey.get('1.deferred');
    expect(deferred).toMatchObject({ id: `${deliveryId}.1.deferred`, recipients: [{ address: 'later@mail.test', state: 'deferred' }] });
    expect(deferred?.recipients[0]?.reply).toContain('451');
    expect(Date.parse(deferred?.nextAttemptAt ?? '')).toBeGreaterThan(Date.parse(deferred?.at ?? ''));
    const failed = byKey.get('1.failed');
    expect(failed).toMatchObject({ id: `${deliveryId}.1.failed.rejected`, reason: 'rejected', recipients: [{ address: 'nobody@mail.test', state: 'failed' }] });
    expect(failed?.recipients[0]?.reply).toContain('550');
    expect(failed?.nextAttemptAt).toBeUndefined();
    expect(byKey.get('2.delivered')).toMatchObject({ id: `${deliveryId}.2.delivered`, recipients: [{ address: 'later@mail.test', state: 'delivered' }] });
    expect(deferred?.reason).toBeUndefined();

    // Per delivery, events are first POSTed in attempt order (a retried one may be overtaken after).
    const firstArrival = new Map<string, EventBody>(); // insertion order: the order of first arrival
    for (const r of sink.requests) if (!firstArrival.has(bodyOf(r).id)) firstArrival.set(bodyOf(r).id, bodyOf(r));
    expect([...firstArrival.keys()].sort()).toEqual(events.map((e) => e.id).sort());
    const attempts = [...firstArrival.values()].map((e) => e.attempt);
    expect([...attempts].sort((a, b) => a - b)).toEqual(attempts);

    // The refused event came again with the same id, as Idempotency-Key too, and JSON.
    const tries = sink.requests.filter((r) => bodyOf(r).id === refusedOnce);
    expect(tries.length).toBeGreaterThanOrEqual(2);
    for (const r of tries) {
      expect(r.headers['idempotency-key']).toBe(refusedOnce);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.body.equals(tries[0]?.body ?? Buffer.alloc(0))).toBe(true);
    }
    expect(tries.map((r) => Number(r.headers['x-onward-attempt']))).toEqual(tries.map((_, i) => i + 1));
    for (const r of sink.requests) expect(r.headers['idempotency-key']).toBe(bodyOf(r).id);

    // The DSN for nobody@ (to the outbox) produced no event; the events produced none either.
    const contents = await everything(t.relay.spool);
    const dsn = contents.find((c) => c.message.bounceOf === queueId);
    expect(dsn).toBeDefined();
    const eventQueueIds = new Set(contents.filter((c) => c.message.eventOf !== null).map((c) => c.message.id));
    expect(eventQueueIds.size).toBe(4);
    for (const c of contents) if (c.message.eventOf !== null) expect(c.message.eventOf).toBe(queueId);
    expect(sink.requests.every((r) => bodyOf(r).queueId === queueId)).toBe(true);
    expect(await readdir(join(t.dir, 'outbox'))).toHaveLength(1); // the one DSN, none for the refused event
  }, 30_000);

  it('keeps events while the events target is down, delivers messages meanwhile, and sends the events once it is back', async () => {
    const hooks = await startHttpSink();
    defer(() => hooks.close());
    let down = true;
    const { sink, answered } = await eventsSink(() => (down ? 503 : 200));
    defer(() => sink.close());
    t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url: hooks.url, timeout: '2s' }, appEvents: eventsTarget(sink.url) },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
      events: { target: 'appEvents', types: ['delivered'] },
      retry: { schedule: ['200ms'], jitter: 0, maxAge: '1h' },
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await t.send({ from: FROM, to: [`r${String(i)}@hooks.test`] }, simpleMessage({ to: `r${String(i)}@hooks.test` })));
    await hooks.waitFor(3);
    for (const id of ids) await t.waitForDeliveries(id, (ds) => ds.every((d) => d.state === 'delivered'));
    // The events target refused every try so far; the events wait in the spool.
    await waitForValue(() => sink.requests.length, (n) => n >= 3, 5000, 'event attempts against the down target');
    expect(accepted(sink, answered)).toHaveLength(0);
    const waiting = [];
    for await (const e of t.relay.spool.list({ events: true })) waiting.push(e);
    expect(waiting.map((e) => e.message.eventOf).sort()).toEqual([...ids].sort());

    down = false;
    await waitForValue(() => accepted(sink, answered), (es) => es.length >= 3, 10_000, 'the events after the target came back');
    const events = accepted(sink, answered);
    expect(events.map((e) => e.queueId).sort()).toEqual([...ids].sort());
    expect(events.every((e) => e.type === 'delivered')).toBe(true);
    await waitForQuiet(t.relay, 10_000);
    for (const id of ids) expect((await t.relay.spool.getMessage(id))?.state).toBe('delivered');
  }, 30_000);

  it('reports an operator bounce as failed with reason operator, and expiry as failed with reason expired', async () => {
    const hooks = await startHttpSink({ respond: () => ({ status: 503 }) });
    defer(() => hooks.close());
    const { sink, answered } = await eventsSink(() => 200);
    defer(() => sink.close());
    t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url: hooks.url, timeout: '2s', circuit: { failures: 1000 } }, appEvents: eventsTarget(sink.url) },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
      events: { target: 'appEvents', types: ['failed'] },
      retry: { schedule: ['300ms'], jitter: 0, maxAge: '1500ms' },
    });
    const bounced = await t.send({ from: FROM, to: ['op@hooks.test'] }, simpleMessage({ to: 'op@hooks.test' }));
    await t.waitForDeliveries(bounced, (ds) => ds[0]?.state === 'deferred');
    const res = await fetch(`http://127.0.0.1:${String(t.relay.adminAddress.port)}/api/spool/messages/${bounced}/bounce`, { method: 'POST' });
    expect(res.status).toBe(200);
    const expiring = await t.send({ from: FROM, to: ['late@hooks.test'] }, simpleMessage({ to: 'late@hooks.test' }));

    await waitForValue(() => accepted(sink, answered), (es) => es.length >= 2, 10_000, 'the operator and expiry events');
    const events = accepted(sink, answered);
    const operator = events.find((e) => e.queueId === bounced);
    expect(operator).toMatchObject({ type: 'failed', reason: 'operator', deliveryId: `${bounced}.0`, recipients: [{ address: 'op@hooks.test', state: 'failed' }] });
    expect(operator?.id).toBe(`${bounced}.0.${String(operator?.attempt)}.failed.operator`);
    const expired = events.find((e) => e.queueId === expiring);
    expect(expired).toMatchObject({ type: 'failed', reason: 'expired', target: 'hooks', recipients: [{ address: 'late@hooks.test', state: 'failed' }] });
    expect(expired?.recipients[0]?.reply).toContain('503');
    // types: [failed] — no deferred events were written for the 503s.
    expect(events.every((e) => e.type === 'failed')).toBe(true);
    await waitForQuiet(t.relay, 10_000);
    expect(accepted(sink, answered)).toHaveLength(2);
  }, 30_000);

  it('never bounces or reports an event that fails, and writes no events for DSNs', async () => {
    const hooks = await startHttpSink({ respond: () => ({ status: 400 }) }); // FAIL: a DSN to the outbox
    defer(() => hooks.close());
    const { sink } = await eventsSink(() => 400); // every event fails permanently
    defer(() => sink.close());
    t = await startDeliveryRelay({
      targets: { hooks: { type: 'http', url: hooks.url, timeout: '2s' }, appEvents: eventsTarget(sink.url) },
      routes: [{ match: '*@hooks.test', target: 'hooks' }],
      events: { target: 'appEvents' },
    });
    const queueId = await t.send({ from: FROM, to: ['x@hooks.test'] }, simpleMessage({ to: 'x@hooks.test' }));
    await sink.waitFor(1);
    await waitForQuiet(t.relay, 10_000);
    const contents = await everything(t.relay.spool);
    const events = contents.filter((c) => c.message.eventOf !== null);
    const dsns = contents.filter((c) => c.message.bounceOf !== null);
    expect(dsns.map((c) => c.message.bounceOf)).toEqual([queueId]); // the message's DSN only, none for the failed event
    expect(events.map((c) => c.message.eventOf)).toEqual([queueId]); // one failed event for the message; none for the DSN or the event
    expect(events[0]?.message).toMatchObject({ sender: '', state: 'bounced' });
    expect(sink.requests).toHaveLength(1);
    expect(await readdir(join(t.dir, 'outbox'))).toHaveLength(1);
  }, 30_000);
});
