/**
 * SIGHUP reload, the delivery-side keys (SPEC section 6): `retry.*`, `targets` and
 * `bounces.*` take effect for attempts and DSNs that start after `relay.reload` (what serve
 * calls on SIGHUP). Real HTTP sinks and file targets; the retry schedule is read back from
 * the delivery's `dueAt` in the spool.
 */
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import { dsnsOf } from '../../helpers/bounce-relay.js';
import { useTeardown, waitForValue, type Yamlish } from '../../helpers/common.js';
import { waitForQuiet } from '../../helpers/delivery-relay.js';
import { parseDsn, type ParsedDsn } from '../../helpers/dsn.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { messageText, queueIdOf, sendOne } from '../../helpers/production.js';
import { startGatedHttpSink, startReloadable, type ReloadableRelay } from '../../helpers/reload.js';
import type { DeliveryRecord } from '../../../src/spool/index.js';

const FROM = 'app@client.test';
const TO = 'user@a.test';
const HOUR = 3_600_000;
/** More than an attempt on loopback takes between its recorded end and the moment the retry is computed. */
const SLACK_MS = 5000;
/**
 * An attempt's `at` and the moment its retry is computed are whole milliseconds of the wall
 * clock, its `durationMs` a rounded monotonic interval: the three can disagree by a
 * millisecond, so "due an hour after the attempt ended" is checked to within this grain.
 */
const CLOCK_GRAIN_MS = 2;

describe('reload applies the delivery-side keys', () => {
  const cleanup = useTeardown();

  async function sink(status = 200): Promise<HttpSink> {
    const s = await startHttpSink({ respond: () => ({ status }) });
    cleanup.add(() => s.close());
    return s;
  }

  const hook = (url: string, extra: Yamlish = {}): Yamlish => ({ type: 'http', url, timeout: '5s', circuit: { failures: 1000 }, ...extra });

  /** Targets `hook` (the given sink) and `outbox` (a file target, which takes the DSNs), everything routed to `hook`. */
  const hookOnly = (dir: string, url: string): Yamlish => ({
    targets: { hook: hook(url), outbox: { type: 'file', path: join(dir, 'outbox') } },
    routes: [{ match: '*', target: 'hook' }],
    bounces: { via: 'outbox' },
  });

  /** A relay whose deliveries go to one sink answering `status` (503: deferred every time), with `retry` as given. */
  async function relayTo(label: string, status: number, retry: Yamlish): Promise<{ t: ReloadableRelay; routing: Yamlish; outbox: string }> {
    const s = await sink(status);
    const dir = cleanup.tempDir(`reload-${label}-files`);
    const routing = hookOnly(dir, s.url);
    return { t: await startReloadable(cleanup, label, { ...routing, retry }), routing, outbox: join(dir, 'outbox') };
  }

  async function send(t: ReloadableRelay, subject: string, to = TO): Promise<string> {
    const reply = await sendOne(t.port, FROM, [to], messageText({ from: FROM, to, subject }));
    expect(reply.code).toBe(250);
    return queueIdOf(reply);
  }

  async function deliveryOf(t: ReloadableRelay, queueId: string, done: (d: DeliveryRecord) => boolean, what: string): Promise<DeliveryRecord> {
    const [d] = await waitForValue(() => t.r.relay.spool.getDeliveries(queueId), (ds) => ds[0] !== undefined && done(ds[0]), 10_000, what);
    if (!d) throw new Error('no delivery');
    return d;
  }

  /**
   * The DSN about `queueId`, once a file target has written it into `outDir` (a delivered
   * message's body leaves the spool): parsed, with the targets its delivery went to.
   */
  async function dsnAbout(t: ReloadableRelay, queueId: string, outDir: string): Promise<{ dsn: ParsedDsn; via: readonly string[] }> {
    const [dsn] = await waitForValue(() => dsnsOf(t.r.relay.spool, queueId), (ds) => ds.length === 1, 10_000, `the DSN about ${queueId}`);
    if (!dsn) throw new Error('no DSN');
    const delivery = await deliveryOf(t, dsn.id, (d) => d.state === 'delivered', 'the DSN delivered');
    return { dsn: parseDsn(readFileSync(join(outDir, `${delivery.id}.eml`))), via: delivery.targets };
  }

  /** How long after its last attempt ended the delivery is due again (null when not deferred). */
  function retryOffset(d: DeliveryRecord): number | null {
    const last = d.attempts.at(-1);
    return d.dueAt === null || !last ? null : d.dueAt - (last.at + last.durationMs);
  }

  const deferred = (d: DeliveryRecord): boolean => d.state === 'deferred' && d.dueAt !== null && d.attempts.length > 0;

  it('retry.schedule: a deferred delivery retried after a reload from [300ms] to [1h] is next due an hour later', async () => {
    const { t, routing } = await relayTo('schedule', 503, { schedule: ['300ms'], jitter: 0 });
    const id = await send(t, 'schedule');
    const first = await deliveryOf(t, id, deferred, 'the first attempt deferred');
    expect(retryOffset(first)).toBeLessThan(SLACK_MS);
    t.reload({ ...routing, retry: { schedule: ['1h'], jitter: 0 } });
    const later = await deliveryOf(t, id, (d) => (retryOffset(d) ?? 0) >= HOUR - CLOCK_GRAIN_MS, 'a retry due an hour after its attempt');
    expect(retryOffset(later)).toBeLessThan(HOUR + SLACK_MS);
  });

  it('retry.jitter: with [1h] and jitter 0 a retry is due exactly an hour on; after a reload to 0.5 it spreads over 30-90 minutes', async () => {
    const { t, routing } = await relayTo('jitter', 503, { schedule: ['1h'], jitter: 0 });
    const exact = (offset: number | null): boolean => offset !== null && offset >= HOUR - CLOCK_GRAIN_MS && offset < HOUR + SLACK_MS;
    expect(exact(retryOffset(await deliveryOf(t, await send(t, 'no jitter'), deferred, 'the attempt deferred')))).toBe(true);
    t.reload({ ...routing, retry: { schedule: ['1h'], jitter: 0.5 } });
    const offsets: (number | null)[] = [];
    for (const subject of ['jitter 1', 'jitter 2', 'jitter 3']) offsets.push(retryOffset(await deliveryOf(t, await send(t, subject), deferred, 'the attempt deferred')));
    for (const offset of offsets) expect(offset).toBeGreaterThanOrEqual(HOUR / 2 - SLACK_MS);
    for (const offset of offsets) expect(offset).toBeLessThan((3 * HOUR) / 2 + SLACK_MS);
    // Each lands in the no-jitter window with probability 1/720: all three, about once in 4e8 runs.
    expect(offsets.every(exact)).toBe(false);
  });

  it('retry.maxAge: a deferred delivery past the new, shorter maxAge bounces at its next attempt (DSN status 4.4.7)', async () => {
    const { t, routing, outbox } = await relayTo('max-age', 503, { schedule: ['500ms'], jitter: 0, maxAge: '5d' });
    const id = await send(t, 'max age');
    await deliveryOf(t, id, deferred, 'the first attempt deferred');
    t.reload({ ...routing, retry: { schedule: ['500ms'], jitter: 0, maxAge: '200ms' } });
    const failed = await deliveryOf(t, id, (d) => d.state === 'failed', 'the delivery bounced');
    expect(failed.recipients.map((r) => r.state)).toEqual(['failed']);
    const { dsn } = await dsnAbout(t, id, outbox);
    expect(dsn.recipients.map((r) => [r['action'], r['status']])).toEqual([['failed', '4.4.7']]);
  });

  it('retry.delayWarningAfter: no warning while unset; after a reload to 100ms the next retry sends a "delayed" DSN', async () => {
    const { t, routing, outbox } = await relayTo('delay-warning', 503, { schedule: ['300ms'], jitter: 0 });
    const id = await send(t, 'delay warning');
    const second = await deliveryOf(t, id, (d) => deferred(d) && d.attempts.length >= 2, 'a second attempt deferred');
    expect(second.delayWarned).toBe(false);
    expect(await dsnsOf(t.r.relay.spool, id)).toEqual([]);
    t.reload({ ...routing, retry: { schedule: ['300ms'], jitter: 0, delayWarningAfter: '100ms' } });
    await deliveryOf(t, id, (d) => d.delayWarned, 'the delay warned');
    const { dsn } = await dsnAbout(t, id, outbox);
    expect(dsn.recipients.map((r) => r['action'])).toEqual(['delayed']);
  });

  it('targets: a changed URL is used by the next delivery, and a new target by a new route', async () => {
    const [a, b, c] = [await sink(), await sink(), await sink()];
    const dir = cleanup.tempDir('reload-targets-files');
    const t = await startReloadable(cleanup, 'targets', hookOnly(dir, a.url));
    const viaA = await send(t, 'to a');
    await deliveryOf(t, viaA, (d) => d.state === 'delivered', 'delivered to A');
    t.reload({ ...hookOnly(dir, b.url) });
    const viaB = await send(t, 'to b');
    await deliveryOf(t, viaB, (d) => d.state === 'delivered', 'delivered to B');

    const { targets } = hookOnly(dir, b.url) as { targets: Yamlish };
    t.reload({ ...hookOnly(dir, b.url), targets: { ...targets, other: hook(c.url) }, routes: [{ match: '*@b.test', target: 'other' }, { match: '*', target: 'hook' }] });
    const viaC = await send(t, 'to c', 'user@b.test');
    const delivered = await deliveryOf(t, viaC, (d) => d.state === 'delivered', 'delivered to the new target');
    expect(delivered.targets).toEqual(['other']);
    await waitForQuiet(t.r.relay);
    expect([a, b, c].map((s) => s.requests.map((r) => r.headers['x-onward-queue-id']))).toEqual([[viaA], [viaB], [viaC]]);
  });

  it('targets.signing / signingSecret: after a reload from onward [A] to standard [B, A] the next request verifies with A or B alone', async () => {
    const s = await sink();
    const dir = cleanup.tempDir('reload-signing-files');
    const doc = (extra: Yamlish): Yamlish => ({ ...hookOnly(dir, s.url), targets: { hook: hook(s.url, extra), outbox: { type: 'file', path: join(dir, 'outbox') } } });
    const [secretA, secretB] = ['secret-a', `whsec_${Buffer.from('secret b, 24 bytes long.').toString('base64')}`];
    const t = await startReloadable(cleanup, 'signing', doc({ signingSecret: secretA }));
    await send(t, 'signed with a');
    const [first] = await s.waitFor(1);
    expect(first!.headers['webhook-signature']).toBeUndefined();
    expect(first!.headers['x-onward-signature']).toBe(`sha256=${createHmac('sha256', secretA).update(`${String(first!.headers['x-onward-timestamp'])}.`).update(first!.body).digest('hex')}`);

    expect(t.reload(doc({ signing: 'standard', signingSecret: [secretB, secretA] }))).toEqual([]);
    await send(t, 'signed with b and a');
    const second = (await s.waitFor(2))[1]!;
    expect(second.headers['x-onward-signature']).toBeUndefined();
    const headers = Object.fromEntries(Object.entries(second.headers).map(([k, v]) => [k, String(v)]));
    for (const verifier of [new Webhook(secretB), new Webhook(Buffer.from(secretA, 'utf8'), { format: 'raw' })]) {
      expect(() => verifier.verify(second.body, headers, { jsonParse: false })).not.toThrow();
    }
  });

  it('targets.concurrency: three held requests at once under 3; after a reload to 1, the next three go one at a time', async () => {
    const gate = await startGatedHttpSink(cleanup);
    const dir = cleanup.tempDir('reload-concurrency-files');
    const routing = (concurrency: number): Yamlish => {
      const doc = hookOnly(dir, gate.url) as { targets: Yamlish };
      return { ...doc, targets: { ...doc.targets, hook: hook(gate.url, { concurrency }) } };
    };
    const t = await startReloadable(cleanup, 'concurrency', routing(3));
    const batch = (label: string): Promise<string[]> => Promise.all([1, 2, 3].map((n) => send(t, `${label} ${String(n)}`)));
    await batch('before');
    await waitForValue(() => gate.held, (n) => n === 3, 10_000, 'three requests held at once');
    gate.releaseAll();
    await waitForQuiet(t.r.relay);

    t.reload(routing(1));
    const ids = await batch('after');
    // While one request is held, the other two wait in the queue, unclaimed (a claim or the
    // accept-time hand-over would have leased them: dueAt null, attemptCount 1).
    await waitForValue(
      async () => ({ held: gate.held, ds: (await Promise.all(ids.map((id) => t.r.relay.spool.getDeliveries(id)))).flat() }),
      (s) => s.held === 1 && s.ds.filter((d) => d.attemptCount === 0 && d.dueAt !== null).length === 2,
      10_000,
      'one request held and two deliveries waiting',
    );
    for (let released = 0; released < 3; released++) {
      await waitForValue(() => gate.held, (n) => n === 1, 10_000, 'the next request');
      gate.releaseOne();
    }
    await waitForQuiet(t.r.relay);
    expect(gate.heldAtArrival.slice(3)).toEqual([0, 0, 0]);
  });

  it('bounces.from / bounces.via: the next DSN comes from the new address and goes via the new target', async () => {
    const refusing = await sink(400);
    const dir = cleanup.tempDir('reload-bounces-files');
    const doc = (from: string, via: string): Yamlish => ({
      targets: { hook: hook(refusing.url), oldOut: { type: 'file', path: join(dir, 'old') }, newOut: { type: 'file', path: join(dir, 'new') } },
      routes: [{ match: '*', target: 'hook' }],
      bounces: { from, via },
    });
    const t = await startReloadable(cleanup, 'bounces', doc('old-bounces@relay.test', 'oldOut'));
    const before = await dsnAbout(t, await send(t, 'refused before'), join(dir, 'old'));
    expect([before.dsn.headers.get('from'), before.via]).toEqual([expect.stringContaining('<old-bounces@relay.test>'), ['oldOut']]);
    t.reload(doc('new-bounces@relay.test', 'newOut'));
    const after = await dsnAbout(t, await send(t, 'refused after'), join(dir, 'new'));
    expect([after.dsn.headers.get('from'), after.via]).toEqual([expect.stringContaining('<new-bounces@relay.test>'), ['newOut']]);
    expect(readdirSync(join(dir, 'old'))).toHaveLength(1);
  });
});
