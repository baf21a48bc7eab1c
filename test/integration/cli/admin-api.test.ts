/**
 * SPEC 6: the admin API — loopback by default, a token required off loopback, probes open,
 * Prometheus metrics that move with traffic — and `onward send` (SPEC 1) against it.
 */
import { describe, expect, it } from '@jest/globals';
import { freePort, waitUntil } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import {
  adminRequest,
  apiShow,
  cliJson,
  makeCliEnv,
  metricValue,
  rawMessage,
  runCli,
  spawnServe,
  startServe,
  submit,
  useCliTeardown,
  type CliEnv,
  type ServeProcess,
  type StatsJson,
} from '../../helpers/cli.js';

const TOKEN = 'admin-token-for-tests-0123456789';

/** Scrapes /metrics with the token. */
async function scrapeMetrics(env: CliEnv): Promise<string> {
  const r = await adminRequest(env, '/metrics', { token: TOKEN });
  if (r.status !== 200) throw new Error(`/metrics: HTTP ${r.status}`);
  return r.text;
}

describe('the admin API', () => {
  const cleanup = useCliTeardown();

  it('is refused off loopback without admin.token: serve exits 1 and check-config exits 1, both naming admin.token', async () => {
    const env = await makeCliEnv();
    cleanup.add(() => env.remove());
    const base = {
      targets: { outbox: { type: 'file', path: `${env.dir}/outbox` } },
      routes: [{ match: '*', target: 'outbox' }],
    };
    env.writeConfig({ ...base, admin: { host: '0.0.0.0' } });
    const serve = spawnServe(env);
    cleanup.add(() => serve.kill());
    let timer: NodeJS.Timeout | undefined;
    const [check, exit] = await Promise.all([
      runCli(env, ['check-config']),
      Promise.race([serve.exited, new Promise<'still running'>((r) => (timer = setTimeout(() => r('still running'), 15_000)))]),
    ]);
    clearTimeout(timer);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(serve.stderr()).toMatch(/admin\.token/);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/admin\.token/);

    env.writeConfig({ ...base, admin: { host: '0.0.0.0', token: TOKEN } });
    const ok = await runCli(env, ['check-config']);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/is valid/);
  }, 30_000);

  // Shared by the next two tests (they run in order).
  let env: CliEnv;
  let sink: HttpSink;
  let relay: ServeProcess;

  it('answers /healthz and /readyz without the token, everything else only with it, counts traffic in /metrics, and takes `onward send`', async () => {
    sink = await startHttpSink({
      respond: (req) => {
        const to = String(req.headers['x-onward-envelope-to']);
        return { status: to.includes('reject@') ? 400 : to.includes('later@') ? 503 : 200 };
      },
    });
    cleanup.add(() => sink.close());
    env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({
      targets: { hook: { type: 'http', url: sink.url } },
      routes: [{ match: '*', target: 'hook' }],
      admin: { host: '127.0.0.1', token: TOKEN },
    });
    relay = await startServe(env);
    cleanup.add(() => relay.kill());

    // --- authentication
    const healthz = await adminRequest(env, '/healthz');
    expect(healthz.status).toBe(200);
    expect(JSON.parse(healthz.text)).toEqual({ status: 'ok' });
    expect((await adminRequest(env, '/readyz')).status).toBe(200);
    for (const path of ['/metrics', '/api/spool/stats', '/api/spool/messages', '/api/spool/messages/000000000000000']) {
      const none = await adminRequest(env, path);
      const wrong = await adminRequest(env, path, { token: `${TOKEN}x` });
      expect({ path, none: none.status, wrong: wrong.status }).toEqual({ path, none: 401, wrong: 401 });
    }
    expect((await adminRequest(env, '/api/spool/retry-all', { method: 'POST' })).status).toBe(401);
    expect((await adminRequest(env, '/api/spool/stats', { token: TOKEN })).status).toBe(200);
    expect((await adminRequest(env, '/api/spool/messages', { token: TOKEN })).status).toBe(200);
    const scrape = (): Promise<string> => scrapeMetrics(env);
    const before = await scrape();

    // --- traffic: two messages, a resubmission of the first (same Message-ID), one FAIL that bounces, and `onward send`
    const raw = rawMessage({ from: 'app@senders.test', to: ['ok@rcpt.test'], messageId: '<same-id-twice@client.test>' });
    const first = await submit(env.smtpPort, { from: 'app@senders.test', to: ['ok@rcpt.test'], raw });
    const again = await submit(env.smtpPort, { from: 'app@senders.test', to: ['ok@rcpt.test'], raw });
    expect(again.response).toBe(`250 2.0.0 Ok: already queued as ${first.queueId}`);
    const rejected = await submit(env.smtpPort, { from: 'app@senders.test', to: ['reject@rcpt.test'] });
    const send = await runCli(env, ['send', '--to', 'x@example.org']);
    expect({ code: send.code, stderr: send.stderr }).toEqual({ code: 0, stderr: '' });
    expect(send.stdout).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]{15}\n$/);
    const sentId = /queued as ([0-9A-Z]{15})/.exec(send.stdout)?.[1] ?? '';
    // the CLI (with the token from the config) sees it through the API
    const stats = await cliJson<StatsJson>(env, ['spool', 'stats', '--json']);
    expect(stats.source).toBe('relay');

    // ok@ and x@ are delivered, reject@ failed and its DSN was delivered
    await waitUntil(
      'deliveries to settle',
      async () => {
        const views = await Promise.all([first.queueId, sentId, rejected.queueId].map((id) => apiShow(env, id)));
        return views.map((v) => v.state).join() === 'delivered,delivered,bounced' && sink.requests.length >= 4;
      },
      10_000,
      50,
      () => sink.requests.map((r) => r.headers['x-onward-envelope-to']),
    );
    const dsn = sink.requests.find((r) => r.headers['x-onward-envelope-from'] === '<>');
    expect(dsn?.headers['x-onward-envelope-to']).toBe('app@senders.test');
    const sentView = await apiShow(env, sentId);
    expect(sentView.recipients).toEqual([expect.objectContaining({ address: 'x@example.org', state: 'delivered' })]);

    const after = await waitUntil('the delivery counters', async () => {
      const text = await scrape();
      return (metricValue(text, 'onward_deliveries_total', { target: 'hook', outcome: 'ok' }) ?? 0) >= 3 ? text : undefined;
    });
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      (metricValue(after, name, labels) ?? 0) - (metricValue(before, name, labels) ?? 0);
    expect({
      queued: delta('onward_messages_received_total', { result: 'queued', via: 'smtp' }),
      duplicate: delta('onward_messages_received_total', { result: 'duplicate', via: 'smtp' }),
      dedupHits: delta('onward_dedup_hits_total'),
      ok: delta('onward_deliveries_total', { target: 'hook', outcome: 'ok' }),
      fail: delta('onward_deliveries_total', { target: 'hook', outcome: 'fail' }),
      bouncesFailed: delta('onward_bounces_total', { action: 'failed' }),
      spoolWrites: delta('onward_spool_write_duration_seconds_count'),
      deliveryDurations: delta('onward_delivery_duration_seconds_count', { target: 'hook' }),
    }).toEqual({ queued: 3, duplicate: 1, dedupHits: 1, ok: 3, fail: 1, bouncesFailed: 1, spoolWrites: 3, deliveryDurations: 4 });
    expect(metricValue(after, 'onward_queue_depth', { state: 'delivered' })).toBe(3); // two messages and the DSN
    expect(metricValue(after, 'onward_queue_depth', { state: 'bounced' })).toBe(1);
    expect(metricValue(after, 'onward_queue_depth', { state: 'queued' })).toBe(0);
    expect(metricValue(after, 'onward_target_up', { target: 'hook' })).toBe(1);
    expect(metricValue(after, 'onward_target_concurrency', { target: 'hook' })).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/^# TYPE onward_delivery_duration_seconds histogram$/m);
    expect(after).toMatch(/^# TYPE onward_spool_write_duration_seconds histogram$/m);
  }, 40_000);

  it('counts the DSN of an operator `spool bounce` in onward_bounces_total{action="failed"}', async () => {
    const before = await scrapeMetrics(env);
    const later = await submit(env.smtpPort, { from: 'ops@senders.test', to: ['later@rcpt.test'] });
    await waitUntil('later@ deferred', async () => (await apiShow(env, later.queueId)).state === 'deferred');
    const bounce = await runCli(env, ['spool', 'bounce', later.queueId]);
    expect({ code: bounce.code, stdout: bounce.stdout }).toEqual({ code: 0, stdout: `${later.queueId}: bounced\n` });
    await waitUntil('the operator DSN delivered', () => sink.requests.some((r) => r.headers['x-onward-envelope-to'] === 'ops@senders.test'));
    const after = await scrapeMetrics(env);
    expect(await relay.stop()).toBe(0);
    const delta = (name: string, labels: Record<string, string>): number => (metricValue(after, name, labels) ?? 0) - (metricValue(before, name, labels) ?? 0);
    expect(delta('onward_deliveries_total', { target: 'hook', outcome: 'error' })).toBe(1);
    expect(delta('onward_queue_depth', { state: 'bounced' })).toBe(1);
    // SPEC 6 counts bounces; the operator's bounce queued a DSN (delivered above) like a FAIL does.
    expect(delta('onward_bounces_total', { action: 'failed' })).toBe(1);
  }, 30_000);

  it('`onward send` exits 2 when no relay listens', async () => {
    const env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({
      listen: [{ host: '127.0.0.1', port: await freePort() }],
      targets: { outbox: { type: 'file', path: `${env.dir}/outbox` } },
      routes: [{ match: '*', target: 'outbox' }],
    });
    const r = await runCli(env, ['send', '--to', 'x@example.org']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^onward: .*ECONNREFUSED/);
  }, 20_000);
});
