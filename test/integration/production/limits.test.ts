/**
 * Session limits (SPEC section 3, "what an operator would expect"): a client that earns
 * `limits.maxErrors` error replies is cut off with 421 4.7.0 while others carry on, and a
 * silent session is closed after `limits.idleTimeout`.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { outboxRoute, sleep, useTeardown } from '../../helpers/common.js';
import { messageText, openWire, queueIdOf, startInProcess, type InProcessRelay, type SmtpReply, type SmtpWire } from '../../helpers/production.js';

describe('session limits', () => {
  const cleanup = useTeardown();
  let relay: InProcessRelay;
  let port: number;

  beforeAll(async () => {
    const dir = cleanup.tempDir('prod-limits');
    relay = await startInProcess(dir, { limits: { maxErrors: 5, idleTimeout: '500ms' }, ...outboxRoute(dir) });
    cleanup.add(() => relay.close());
    port = relay.ports[0] ?? 0;
  });

  async function open(): Promise<SmtpWire> {
    const wire = await openWire(cleanup, port);
    expect((await wire.read()).code).toBe(220);
    return wire;
  }

  it('disconnects a client flooding junk commands with 421 4.7.0 after maxErrors, while another client sends a message', async () => {
    const good = await open();
    expect((await good.command('EHLO good.test')).code).toBe(250);
    expect((await good.command('MAIL FROM:<good@client.test>')).code).toBe(250);

    const flood = await open();
    flood.write(Array.from({ length: 50 }, (_, i) => `JUNK${String(i)} x\r\n`).join(''));
    const replies: SmtpReply[] = [];
    for (;;) {
      const reply = await flood.read().catch(() => null);
      if (!reply) break;
      replies.push(reply);
      if (reply.code === 421) break;
    }
    expect(replies.slice(0, 5).every((r) => r.code >= 500 && r.code < 600)).toBe(true);
    expect(replies.map((r) => r.code)).toEqual([500, 500, 500, 500, 500, 421]);
    expect(replies.at(-1)?.raw).toMatch(/^421 4\.7\.0 /);
    expect(await flood.closesWithin(2000)).toBe(true);

    // The other session, open all along, is unaffected.
    expect((await good.command('RCPT TO:<to@example.org>')).code).toBe(250);
    expect((await good.command('DATA')).code).toBe(354);
    good.write(`${messageText({ from: 'good@client.test', to: 'to@example.org', subject: 'during a flood' })}.\r\n`);
    const done = await good.read();
    expect(done.code).toBe(250);
    expect(await relay.relay.spool.getMessage(queueIdOf(done))).not.toBeNull();
  });

  it('closes a silent session after idleTimeout (500ms) with a 421', async () => {
    const wire = await open();
    const started = Date.now();
    const reply = await wire.read(3000);
    expect(reply.code).toBe(421);
    expect(await wire.closesWithin(1000)).toBe(true);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(2500);
  });

  it('keeps a session that talks more often than idleTimeout, beyond idleTimeout', async () => {
    const wire = await open();
    for (let i = 0; i < 6; i++) {
      await sleep(250);
      expect((await wire.command('NOOP')).code).toBe(250);
    }
    expect(wire.isClosed).toBe(false);
  });
});
