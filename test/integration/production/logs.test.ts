/**
 * Logs (SPEC section 6): `serve` writes pino JSON lines on stdout, one per SMTP transaction
 * and one per delivery attempt, each with the queue ID; secrets (AUTH passwords, HTTP target
 * headers, the signing secret) never appear anywhere in the output.
 */
import { hostname } from 'node:os';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { useTeardown, waitUntil, type LogLine, type ServeChild } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { configYaml, messageText, openSession, plainAuth, queueIdOf, startServeChild, transaction, withTimeout } from '../../helpers/production.js';

const PASSWORD = 'Pl41n-s3cr3t-pw-7731';
const WRONG_PASSWORD = 'Wr0ng-gu3ss-pw-0042';
const HEADER_SECRET = 's3cret';
const SIGNING_SECRET = 'sign1ng-S3CRET-value-99';
const FROM = 'app@client.test';
const TO = 'hook@example.org';

describe('serve log output', () => {
  const cleanup = useTeardown();
  let sink: HttpSink;
  let child: ServeChild;
  let queueId: string;
  let refusedReply: string;

  beforeAll(async () => {
    const dir = cleanup.tempDir('prod-logs');
    sink = await startHttpSink({ respond: (_req, i) => (i === 0 ? { status: 503 } : { status: 200 }) });
    cleanup.add(() => sink.close());
    child = await startServeChild(
      dir,
      configYaml(dir, {
        relay: { allowNetworks: ['10.0.0.0/8'], users: [{ username: 'app', password: '${ONWARD_TEST_APP_PASSWORD}' }], allowInsecureAuth: true },
        retry: { schedule: ['500ms'], jitter: 0 },
        targets: {
          hook: { type: 'http', url: sink.url, headers: { Authorization: `Bearer ${HEADER_SECRET}` }, signingSecret: SIGNING_SECRET },
        },
        routes: [{ match: '*', target: 'hook' }],
      }),
      { env: { ONWARD_TEST_APP_PASSWORD: PASSWORD } },
    );
    cleanup.add(() => child.kill());

    const wire = await openSession(cleanup, child.smtpPorts[0] ?? 0);
    expect((await wire.command(`AUTH PLAIN ${plainAuth('app', WRONG_PASSWORD)}`)).code).toBe(535);
    expect((await wire.command('AUTH LOGIN')).code).toBe(334);
    await wire.command(Buffer.from('app').toString('base64'));
    expect((await wire.command(Buffer.from(PASSWORD).toString('base64'))).code).toBe(235);
    const reply = await transaction(wire, FROM, [TO], messageText({ from: FROM, to: TO, subject: 'logged' }));
    expect(reply.code).toBe(250);
    queueId = queueIdOf(reply);
    // A refused transaction is logged too: a bare LF in the body.
    const refused = await transaction(wire, FROM, [TO], 'Subject: bare\r\n\r\nbare\nLF\r\n');
    expect(refused.code).toBeGreaterThanOrEqual(500);
    refusedReply = refused.raw;

    await sink.waitFor(2, 10_000); // 503, then 200 after the 500ms retry
    await waitUntil('two delivery attempt log lines', () => child.logs.filter((l) => l.msg === 'delivery attempt' && l['queueId'] === queueId).length >= 2);
    child.signal('SIGTERM');
    expect(await withTimeout(child.exited, 8000, 'serve to exit')).toMatchObject({ code: 0 });
  });

  it('writes only pino JSON lines on stdout, each with level, time and msg', () => {
    expect(child.nonJsonLines).toEqual([]);
    expect(child.logs.length).toBeGreaterThan(3);
    for (const line of child.logs) {
      expect(typeof line.level).toBe('number');
      expect(typeof line['time']).toBe('number');
      expect(typeof line.msg).toBe('string');
    }
  });

  it('names the node on every line: <hostname>-<pid> when nodeId is not set (SPEC 9)', () => {
    const node = `${hostname()}-${String(child.child.pid)}`;
    expect(child.logs.length).toBeGreaterThan(3);
    expect(child.logs.filter((l) => l['node'] !== node)).toEqual([]);
  });

  it('logs one line per SMTP transaction with client, user, from, to, size, queueId and reply', () => {
    const received = child.logs.filter((l) => l.msg === 'message received');
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ client: '127.0.0.1', user: 'app', from: FROM, to: [TO], queueId, reply: expect.stringMatching(new RegExp(`^250 2\\.0\\.0 Ok: queued as ${queueId}$`)) });
    expect(received[0]?.['size']).toEqual(expect.any(Number));
    expect(received[0]?.['size'] as number).toBeGreaterThan(0);

    const refused = child.logs.filter((l) => l.msg === 'message refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ client: '127.0.0.1', user: 'app', from: FROM, to: [TO], reply: refusedReply });
    expect(refused[0]?.['size']).toEqual(expect.any(Number));
  });

  it('logs one line per delivery attempt with queueId, target, recipients, outcome, reply, durationMs and nextAttemptAt', () => {
    const attempts = child.logs.filter((l): l is LogLine => l.msg === 'delivery attempt' && l['queueId'] === queueId);
    expect(attempts).toHaveLength(2);
    const [failed, ok] = attempts;
    expect(failed).toMatchObject({ queueId, target: 'hook', outcome: 'error', reply: expect.stringContaining('503'), durationMs: expect.any(Number) });
    expect(failed?.['recipients']).toEqual([expect.objectContaining({ address: TO })]);
    expect(new Date(String(failed?.['nextAttemptAt'])).toISOString()).toBe(failed?.['nextAttemptAt']);
    expect(ok).toMatchObject({ queueId, target: 'hook', outcome: 'ok', reply: expect.any(String), durationMs: expect.any(Number), nextAttemptAt: null });
    expect(ok?.['recipients']).toEqual([expect.objectContaining({ address: TO, state: 'delivered' })]);
  });

  it('never writes the AUTH password, a wrong password, the HTTP header secret or the signing secret', () => {
    const output = child.output();
    for (const secret of [
      PASSWORD,
      WRONG_PASSWORD,
      HEADER_SECRET,
      SIGNING_SECRET,
      plainAuth('app', PASSWORD),
      plainAuth('app', WRONG_PASSWORD),
      Buffer.from(PASSWORD).toString('base64'),
    ]) {
      expect({ secret, found: output.includes(secret) }).toEqual({ secret, found: false });
    }
    // The secrets did reach the sink, so the test would see them if they were logged on the way.
    expect(sink.requests[0]?.headers['authorization']).toBe(`Bearer ${HEADER_SECRET}`);
    expect(sink.requests[0]?.headers['x-onward-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
  });
});
