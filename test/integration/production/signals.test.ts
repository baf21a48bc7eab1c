/**
 * Shutdown on signals (SPEC section 6), with `node bin/onward serve` as a real child process:
 * SIGTERM lets sessions in DATA finish and be spooled, refuses (or 421s) new connections and
 * exits 0 within `shutdownGrace`; a second SIGTERM exits at once; nothing that got a 250 is
 * ever lost (the spool is opened from disk afterwards, and a restart delivers it).
 */
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { openSpool, outboxRoute, sleep, useTeardown, type Teardown } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import {
  configYaml,
  connectOutcome,
  messageText,
  openWire,
  queueIdOf,
  sendOne,
  startServeChild,
  withTimeout,
  type SmtpReply,
  type SmtpWire,
} from '../../helpers/production.js';

const FROM = 'app@client.test';
const TO = 'someone@example.org';

/** A session left in DATA with the headers and half the body sent. */
async function sessionInData(port: number, cleanup: Teardown, subject: string): Promise<{ wire: SmtpWire; rest: string }> {
  const wire = await openWire(cleanup, port);
  expect((await wire.read()).code).toBe(220);
  expect((await wire.command('EHLO client.test')).code).toBe(250);
  expect((await wire.command(`MAIL FROM:<${FROM}>`)).code).toBe(250);
  expect((await wire.command(`RCPT TO:<${TO}>`)).code).toBe(250);
  expect((await wire.command('DATA')).code).toBe(354);
  const text = messageText({ from: FROM, to: TO, subject, body: `first half of ${subject}\r\nsecond half of ${subject}` });
  const cut = text.indexOf('second half');
  wire.write(text.slice(0, cut));
  return { wire, rest: `${text.slice(cut)}.\r\n` };
}

function fileTargetYaml(dir: string, extra: Record<string, unknown> = {}): string {
  return configYaml(dir, { ...outboxRoute(dir), ...extra });
}

describe('serve on SIGTERM and SIGINT', () => {
  const cleanup = useTeardown();

  it('lets sessions in DATA finish after SIGTERM with 250 and a spooled message, 421s idle sessions, refuses new connections, and exits 0 within shutdownGrace', async () => {
    const dir = cleanup.tempDir('prod-sigterm');
    const child = await startServeChild(dir, fileTargetYaml(dir, { shutdownGrace: '5s' }));
    cleanup.add(() => child.kill());
    const port = child.smtpPorts[0] ?? 0;

    const early = await sendOne(port, FROM, [TO], messageText({ from: FROM, to: TO, subject: 'before the signal' }));
    expect(early.code).toBe(250);
    const inData = await Promise.all([0, 1, 2].map((i) => sessionInData(port, cleanup, `in DATA ${String(i)}`)));
    const idle = await openWire(cleanup, port);
    await idle.read();
    expect((await idle.command('EHLO idle.test')).code).toBe(250);

    child.signal('SIGTERM');
    const signalledAt = Date.now();
    await child.waitForLog('"shutting down"', (l) => l.msg === 'shutting down');

    // While the sessions in DATA are still open, a new connection is refused or told 421.
    // (A connection the kernel completed just before the listener closed is reset without a
    // greeting: refused too. What must not happen is a 220, or a socket left hanging.)
    const late = await connectOutcome(port);
    if ('wire' in late) {
      cleanup.add(() => late.wire.close());
      if (late.greeting) expect(late.greeting.raw).toMatch(/^421 /);
      else expect(late.closed).toBe(true);
    } else {
      expect(late.refused).toBe('ECONNREFUSED');
    }

    for (const s of inData) s.wire.write(s.rest);
    const replies: SmtpReply[] = await Promise.all(inData.map((s) => s.wire.read(8000)));
    // Never a silent drop: every session gets an answer; SPEC 6 says they finish and are spooled.
    for (const r of replies) expect(r.raw).toMatch(/^(250 2\.0\.0 Ok: queued as |421 )/);
    expect(replies.map((r) => r.code)).toEqual([250, 250, 250]);
    expect((await idle.read(8000)).raw).toMatch(/^421 4\.3\.2 /);

    const exit = await withTimeout(child.exited, 5000 + 3000, 'serve to exit after SIGTERM');
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - signalledAt).toBeLessThan(5000 + 3000);
    expect(child.logs.some((l) => l.msg === 'stopped')).toBe(true);

    const spool = await openSpool(join(dir, 'spool'));
    cleanup.add(() => spool.close());
    for (const reply of [early, ...replies.filter((r) => r.code === 250)]) {
      const stored = await spool.getMessage(queueIdOf(reply));
      expect(stored).toMatchObject({ sender: FROM, recipients: [TO] });
    }
  });

  it('shuts down gracefully on SIGINT too, exiting 0 with the spool closed cleanly', async () => {
    const dir = cleanup.tempDir('prod-sigint');
    const child = await startServeChild(dir, fileTargetYaml(dir, { shutdownGrace: '5s' }));
    cleanup.add(() => child.kill());
    const reply = await sendOne(child.smtpPorts[0] ?? 0, FROM, [TO], messageText({ from: FROM, to: TO, subject: 'then SIGINT' }));
    expect(reply.code).toBe(250);
    child.signal('SIGINT');
    expect(await withTimeout(child.exited, 8000, 'serve to exit after SIGINT')).toMatchObject({ code: 0, signal: null });
    const spool = await openSpool(join(dir, 'spool'));
    cleanup.add(() => spool.close());
    expect(await spool.getMessage(queueIdOf(reply))).not.toBeNull();
  });

  it('exits at once on a second SIGTERM while the first waits for a slow delivery, losing nothing acknowledged; a restart delivers it', async () => {
    const dir = cleanup.tempDir('prod-second-signal');
    const sink = await startHttpSink({ respond: () => ({ status: 200, delayMs: 30_000 }) });
    cleanup.add(() => sink.close());
    const yaml = configYaml(dir, {
      shutdownGrace: '20s',
      targets: { hook: { type: 'http', url: sink.url, timeout: '60s' } },
      routes: [{ match: '*', target: 'hook' }],
    });
    const child = await startServeChild(dir, yaml);
    cleanup.add(() => child.kill());
    const port = child.smtpPorts[0] ?? 0;

    const acked = await sendOne(port, FROM, [TO], messageText({ from: FROM, to: TO, subject: 'acknowledged' }));
    const id = queueIdOf(acked);
    await sink.waitFor(1); // its delivery is in flight and will not finish
    const half = await sessionInData(port, cleanup, 'cut short');

    child.signal('SIGTERM');
    await child.waitForLog('"shutting down"', (l) => l.msg === 'shutting down');
    const stillRunning = await Promise.race([child.exited.then(() => false), sleep(500).then(() => true)]);
    expect(stillRunning).toBe(true); // waiting for the session in DATA and the delivery

    const secondAt = Date.now();
    child.signal('SIGTERM');
    const exit = await withTimeout(child.exited, 3000, 'serve to exit after a second SIGTERM');
    expect(exit.at - secondAt).toBeLessThan(1500);
    expect(exit.signal).toBeNull(); // it exited by itself, not by the default signal action

    // The half-sent message never got a 250, so dropping it loses nothing acknowledged.
    half.wire.write(half.rest);
    const late = await half.wire.read(2000).catch(() => null);
    expect(late?.code).not.toBe(250);

    const spool = await openSpool(join(dir, 'spool'));
    const stored = await spool.getMessage(id);
    const deliveries = await spool.getDeliveries(id);
    await spool.close();
    expect(stored).toMatchObject({ sender: FROM, recipients: [TO] });
    expect(deliveries.map((d) => d.state)).toEqual(['queued']); // the cut-off attempt comes back due

    sink.respond(() => ({ status: 200 }));
    const again = await startServeChild(dir, yaml);
    cleanup.add(() => again.kill());
    const requests = await sink.waitFor(2, 10_000);
    expect(requests[1]?.headers['x-onward-queue-id']).toBe(id);
    expect(requests[1]?.headers['idempotency-key']).toBe(requests[0]?.headers['idempotency-key']);
    again.signal('SIGTERM');
    expect(await withTimeout(again.exited, 8000, 'the restarted serve to exit')).toMatchObject({ code: 0 });
  });

  it('has its signal handlers in place once it logs "onward ready": a SIGTERM sent at once shuts down gracefully', async () => {
    // serve logs "onward ready" before process.on('SIGTERM'|'SIGINT'|'SIGHUP'); a signal in
    // between takes the default action (killed, no graceful shutdown; SIGHUP kills too).
    const outcomes: string[] = [];
    for (let round = 0; round < 5; round++) {
      const dir = cleanup.tempDir('prod-ready-signal');
      const child = await startServeChild(dir, fileTargetYaml(dir), { settleMs: 0, signalOnReady: 'SIGTERM' });
      cleanup.add(() => child.kill());
      const exit = await withTimeout(child.exited, 8000, 'serve to exit');
      outcomes.push(`code=${String(exit.code)} signal=${String(exit.signal)}`);
    }
    expect(outcomes).toEqual(Array.from({ length: 5 }, () => 'code=0 signal=null'));
  });
});
