/**
 * SPEC 1 `spool show`: every delivery with every attempt and its result. A message with two
 * deliveries (two HTTP targets) fails a few times on a 300ms schedule before it settles:
 * one delivery ends delivered after two ERRORs, the other failed on a FAIL after one ERROR.
 */
import { describe, expect, it } from '@jest/globals';
import { waitUntil } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { apiShow, cliJson, makeCliEnv, runCli, startServe, submit, useCliTeardown, type ShowJson } from '../../helpers/cli.js';

describe('spool show', () => {
  const cleanup = useCliTeardown();

  it('lists every attempt of every delivery with its outcome and reply, the same while running and when stopped', async () => {
    const scripts: Record<string, number[]> = { a: [503, 503, 200], b: [503, 400] };
    const sink = await startHttpSink({
      respond: (req) => {
        const lane = new URL(req.url, 'http://x').searchParams.get('t') ?? '';
        return { status: scripts[lane]?.shift() ?? 200 };
      },
    });
    cleanup.add(() => sink.close());
    const env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({
      retry: { schedule: ['300ms'], jitter: 0 },
      targets: {
        hookA: { type: 'http', url: `${sink.url}?t=a`, circuit: { failures: 100 } },
        hookB: { type: 'http', url: `${sink.url}?t=b`, circuit: { failures: 100 } },
        dsnHook: { type: 'http', url: `${sink.url}?t=dsn` },
      },
      routes: [
        { match: '*@a.test', target: 'hookA' },
        { match: '*@b.test', target: 'hookB' },
        { match: '*@senders.test', target: 'dsnHook' }, // where the DSN for the failed recipient goes
      ],
    });
    const relay = await startServe(env);
    cleanup.add(() => relay.kill());

    const { queueId } = await submit(env.smtpPort, { from: 'app@senders.test', to: ['ann@a.test', 'bea@b.test'] });
    const settled = await waitUntil(
      'both deliveries final',
      async () => {
        const v = await apiShow(env, queueId);
        return v.deliveries.every((d) => d.state === 'delivered' || d.state === 'failed') ? v : undefined;
      },
      10_000,
      50,
      () => apiShow(env, queueId),
    );
    await waitUntil('the DSN for the failed recipient', () => sink.requests.some((r) => r.url.endsWith('t=dsn')));
    const online = await cliJson<ShowJson>(env, ['spool', 'show', queueId, '--json']);
    expect(online).toEqual(settled);

    expect(await relay.stop()).toBe(0);
    const [offline, human] = await Promise.all([cliJson<ShowJson>(env, ['spool', 'show', queueId, '--json']), runCli(env, ['spool', 'show', queueId])]);
    expect(offline).toEqual(online);

    expect(online).toMatchObject({ id: queueId, state: 'bounced', sender: 'app@senders.test' });
    const byTarget = new Map(online.deliveries.map((d) => [d.target, d]));
    const iso = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const attempt = (target: string, outcome: string, reply: string): unknown => ({ at: iso, target, outcome, reply, durationMs: expect.any(Number) });
    expect(byTarget.get('hookA')).toMatchObject({
      id: `${queueId}.0`,
      state: 'delivered',
      recipients: [{ address: 'ann@a.test', state: 'delivered' }],
      attempts: [
        attempt('hookA', 'error', 'HTTP 503 Service Unavailable'),
        attempt('hookA', 'error', 'HTTP 503 Service Unavailable'),
        attempt('hookA', 'ok', 'HTTP 200 OK'),
      ],
    });
    expect(byTarget.get('hookB')).toMatchObject({
      id: `${queueId}.1`,
      state: 'failed',
      recipients: [{ address: 'bea@b.test', state: 'failed', lastError: 'HTTP 400 Bad Request' }],
      attempts: [attempt('hookB', 'error', 'HTTP 503 Service Unavailable'), attempt('hookB', 'fail', 'HTTP 400 Bad Request')],
    });
    expect(sink.requests.filter((r) => r.url.endsWith('t=dsn'))).toHaveLength(1); // the DSN for bea
    for (const d of online.deliveries) {
      const times = d.attempts.map((a) => Date.parse(a.at));
      expect(times).toEqual([...times].sort((x, y) => x - y));
    }

    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines).toEqual(expect.arrayContaining([`state         bounced`, expect.stringMatching(new RegExp(`^delivery ${queueId}\\.0 -> hookA: delivered$`))]));
    expect(lines.filter((l) => /^ {2}attempt /.test(l)).map((l) => l.replace(/^ {2}attempt \S+\s+(\S+)\s+(\S+)\s+\d+ ms\s+(.*)$/, '$1 $2 $3'))).toEqual([
      'hookA ERROR HTTP 503 Service Unavailable',
      'hookA ERROR HTTP 503 Service Unavailable',
      'hookA OK HTTP 200 OK',
      'hookB ERROR HTTP 503 Service Unavailable',
      'hookB FAIL HTTP 400 Bad Request',
    ]);
  }, 30_000);
});
