/**
 * SIGHUP reload (SPEC section 6), with `node bin/onward serve` as a child process and two
 * real HTTP sinks: a changed route takes effect for new messages without dropping an open
 * session; a broken config (invalid YAML, unknown target) is rejected and the running
 * config stays in force.
 */
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTeardown, type ServeChild } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { configYaml, messageText, openWire, queueIdOf, sendOne, startServeChild, transaction } from '../../helpers/production.js';

const FROM = 'app@client.test';
const TO = 'user@a.test';

function yamlRoutingTo(dir: string, a: HttpSink, b: HttpSink, target: string): string {
  return configYaml(dir, {
    targets: { A: { type: 'http', url: a.url }, B: { type: 'http', url: b.url } },
    routes: [{ match: '*@a.test', target }],
  });
}

/** Rewrites the config file, sends SIGHUP, and waits for the child's verdict on it. */
async function reload(child: ServeChild, text: string): Promise<string> {
  const seen = child.logs.length;
  writeFileSync(child.configPath, text);
  child.signal('SIGHUP');
  const line = await child.waitForLog('a reload verdict', (l) => child.logs.indexOf(l) >= seen && /^config reload/.test(l.msg));
  return line.msg;
}

/** The target of the successful delivery attempt of `queueId` (from its log line): every request for it has been made then. */
async function deliveredVia(child: ServeChild, queueId: string): Promise<unknown> {
  const line = await child.waitForLog(`${queueId} delivered`, (l) => l.msg === 'delivery attempt' && l['queueId'] === queueId && l['outcome'] === 'ok');
  return line['target'];
}

async function send(child: ServeChild, subject: string): Promise<string> {
  const reply = await sendOne(child.smtpPorts[0] ?? 0, FROM, [TO], messageText({ from: FROM, to: TO, subject }));
  expect(reply.code).toBe(250);
  return queueIdOf(reply);
}

describe('serve on SIGHUP', () => {
  const cleanup = useTeardown();

  async function setUp(label: string): Promise<{ dir: string; a: HttpSink; b: HttpSink; child: ServeChild }> {
    const dir = cleanup.tempDir(`prod-${label}`);
    const a = await startHttpSink();
    cleanup.add(() => a.close());
    const b = await startHttpSink();
    cleanup.add(() => b.close());
    const child = await startServeChild(dir, yamlRoutingTo(dir, a, b, 'A'));
    cleanup.add(() => child.kill());
    return { dir, a, b, child };
  }

  it('routes new messages by the changed route after SIGHUP, and a session open across the reload still sends', async () => {
    const { dir, a, b, child } = await setUp('reload');
    const first = await send(child, 'before reload');
    await a.waitFor(1);
    expect(a.requests[0]?.headers['x-onward-queue-id']).toBe(first);

    const open = await openWire(cleanup, child.smtpPorts[0] ?? 0);
    await open.read();
    expect((await open.command('EHLO client.test')).code).toBe(250);

    expect(await reload(child, yamlRoutingTo(dir, a, b, 'B'))).toBe('config reloaded');

    const second = await send(child, 'after reload');
    await b.waitFor(1);
    expect(b.requests[0]?.headers['x-onward-queue-id']).toBe(second);

    const viaOpen = await transaction(open, FROM, [TO], messageText({ from: FROM, to: TO, subject: 'open across reload' }));
    expect(viaOpen.code).toBe(250);
    await b.waitFor(2);
    expect(b.requests[1]?.headers['x-onward-queue-id']).toBe(queueIdOf(viaOpen));

    // Every message's delivery is finished: a stray request to A could only have come before these lines.
    expect([await deliveredVia(child, first), await deliveredVia(child, second), await deliveredVia(child, queueIdOf(viaOpen))]).toEqual(['A', 'B', 'B']);
    expect(a.requests).toHaveLength(1);
  });

  it('rejects a reload with invalid YAML, then one naming an unknown target, logging "config reload rejected" and routing the old way after each', async () => {
    const { dir, a, b, child } = await setUp('reload-broken');

    expect(await reload(child, 'routes: [ { match: "*@a.test", target: B }\n  this is: : not yaml\n')).toMatch(/^config reload rejected/);
    expect(child.child.exitCode).toBeNull();
    const afterYaml = await send(child, 'after invalid YAML');
    await a.waitFor(1);
    expect(a.requests[0]?.headers['x-onward-queue-id']).toBe(afterYaml);

    expect(await reload(child, yamlRoutingTo(dir, a, b, 'nosuchtarget'))).toMatch(/^config reload rejected/);
    const rejections = child.logs.filter((l) => l.msg.startsWith('config reload rejected'));
    expect(rejections).toHaveLength(2);
    expect(JSON.stringify(rejections[1])).toContain('nosuchtarget');
    const afterTarget = await send(child, 'after an unknown target');
    await a.waitFor(2);
    expect(a.requests[1]?.headers['x-onward-queue-id']).toBe(afterTarget);

    expect([await deliveredVia(child, afterYaml), await deliveredVia(child, afterTarget)]).toEqual(['A', 'A']);
    expect(b.requests).toHaveLength(0);
  });

  it('names the changed keys that need a restart in the reload log line, and applies the rest', async () => {
    const { dir, a, b, child } = await setUp('reload-restart');
    const base = { targets: { A: { type: 'http', url: a.url }, B: { type: 'http', url: b.url } }, routes: [{ match: '*@a.test', target: 'B' }] };
    writeFileSync(child.configPath, configYaml(dir, { ...base, hostname: 'renamed.test', dedup: { window: '1h' }, spool: { maxQueued: 10 } }));
    const seen = child.logs.length;
    child.signal('SIGHUP');
    const line = await child.waitForLog('the reload verdict', (l) => child.logs.indexOf(l) >= seen && /^config reload/.test(l.msg));
    expect(line.msg).toBe('config reloaded; some changes need a restart');
    expect(line.level).toBe(40);
    expect([...(line['needsRestart'] as string[])].sort()).toEqual(['dedup', 'hostname', 'spool']);
    // The route change in the same file took effect.
    expect(await deliveredVia(child, await send(child, 'after a partial reload'))).toBe('B');
  });
});
