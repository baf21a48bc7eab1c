/**
 * Found by the front-door fuzzer (fuzz.test.ts counts transaction results): a client that
 * hangs up in the middle of DATA is booked as a spool failure. The relay logs it at error
 * level as "message refused" with the reply "451 4.3.0 Temporary local problem" (a reply
 * nobody receives) and counts it in onward_messages_received_total{result="error"}, the
 * series an operator alerts on for spool write failures. Nothing is stored, which is right.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { makeTempDir, outboxRoute, removeDir, spoolContents, startRelayWith, testConfig, useCleanup } from '../../helpers/common.js';
import { FuzzClient } from '../../helpers/fuzz.js';

const defer = useCleanup();

describe('a client that hangs up in the middle of DATA', () => {
  it('is not logged at error level or counted as result="error" (a spool failure), and nothing is stored', async () => {
    const dir = await makeTempDir('onward-abort-');
    defer(() => removeDir(dir));
    const logs: { level: number; msg: string; reply?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(line) as { level: number; msg: string });
        callback();
      },
    });
    const { relay, port } = await startRelayWith(testConfig(dir, outboxRoute(dir), { log: { level: 'info' } }), pino({ level: 'info' }, sink));
    defer(() => relay.close());

    const c = await FuzzClient.connect(port);
    expect((await c.next(5000))?.code).toBe(220);
    for (const [line, code] of [['EHLO client.test', 250], ['MAIL FROM:<a@example.com>', 250], ['RCPT TO:<b@example.org>', 250], ['DATA', 354]] as const) {
      c.send(Buffer.from(line + '\r\n'));
      expect((await c.next(5000))?.code).toBe(code);
    }
    c.send(Buffer.from('Subject: cut off\r\n\r\nhalf a mess'));
    await new Promise((r) => setTimeout(r, 100));
    c.destroy();
    await new Promise((r) => setTimeout(r, 300));

    const metrics = await (await fetch(`http://127.0.0.1:${relay.adminAddress.port}/metrics`)).text();
    const errorSeries = metrics.split('\n').filter((l) => l.startsWith('onward_messages_received_total{result="error",via="smtp"}'));
    const errorLogs = logs.filter((l) => l.level >= 50).map((l) => `${l.msg}: ${l.reply ?? ''}`);
    const stored = (await spoolContents(relay.spool)).map((e) => e.message.id);
    expect({ errorSeries, errorLogs, stored }).toEqual({ errorSeries: [], errorLogs: [], stored: [] });
  });
});
