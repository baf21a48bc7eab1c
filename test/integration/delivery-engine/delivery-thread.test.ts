/**
 * The delivery thread (src/delivery/transport-host.ts): transports run in a worker thread
 * and only jobs and results cross. With the compiled worker, a real HTTP delivery goes out
 * from the thread; with a worker script that dies mid-attempt, the attempt ends as ERROR
 * (never lost, never OK) and a new thread, with the transports re-opened, takes the next one.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { parseConfig } from '../../../src/config/index.js';
import type { TargetConfig } from '../../../src/config/types.js';
import { TransportHost, type DeliveryJob } from '../../../src/delivery/index.js';
import { ensureBuilt, makeTempDir, removeDir, REPO_ROOT, useCleanup, waitForValue } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';

const silent = pino({ level: 'silent' });

function job(deliveryId: string, body: string): DeliveryJob {
  return {
    deliveryId,
    queueId: deliveryId.split('.')[0] ?? deliveryId,
    attempt: 1,
    envelope: { from: 'sender@client.test', to: ['a@example.org', 'b@example.org'] },
    body: Buffer.from(body),
    receivedAt: new Date(),
  };
}

function httpTarget(url: string): TargetConfig {
  const config = parseConfig(`targets:\n  hook: { type: http, url: "${url}", format: raw }\nroutes: [{ match: "*", target: hook }]\n`);
  const target = config.targets['hook'];
  if (!target) throw new Error('no target parsed');
  return target;
}

describe('delivery thread', () => {
  const defer = useCleanup();

  beforeAll(() => {
    ensureBuilt();
  }, 120_000);

  it('delivers from the compiled worker thread: the downstream gets the exact bytes and the result comes back', async () => {
    const sink = await startHttpSink();
    defer(() => sink.close());
    const host = new TransportHost(silent, pathToFileURL(join(REPO_ROOT, 'dist/delivery/transport-worker.js')));
    defer(() => host.close());
    const transport = host.open(httpTarget(`${sink.url}/hook`), {});
    const body = 'Subject: thread\r\n\r\nbytes \u00e9 unchanged\r\n';
    const result = await transport.deliver(job('0THREAD0000001.0', body));
    expect(result.recipients.map((r) => [r.address, r.outcome])).toEqual([
      ['a@example.org', 'ok'],
      ['b@example.org', 'ok'],
    ]);
    expect(sink.requests).toHaveLength(1);
    expect(sink.requests[0]?.body.equals(Buffer.from(body))).toBe(true);
    expect(sink.requests[0]?.headers['idempotency-key']).toBe('0THREAD0000001.0');
    await transport.close();
  });

  it('ends an attempt as ERROR when the thread dies under it, and re-opens the transports on a new thread', async () => {
    const dir = await makeTempDir('onward-thread-');
    defer(() => removeDir(dir));
    // A stand-in worker speaking the host's protocol: it dies on delivery id "*.die", answers OK
    // for transports it was told to open, and ERROR for ids it never saw opened.
    const script = join(dir, 'dying-worker.mjs');
    await writeFile(
      script,
      `import { parentPort } from 'node:worker_threads';
const open = new Set();
parentPort.on('message', (m) => {
  if (m.kind === 'open') open.add(m.id);
  else if (m.kind === 'close') parentPort.postMessage({ call: m.call, result: null, error: null });
  else if (m.job.deliveryId.endsWith('.die')) process.exit(7);
  else if (!open.has(m.id)) parentPort.postMessage({ call: m.call, result: null, error: 'transport never opened here' });
  else parentPort.postMessage({ call: m.call, error: null, result: {
    recipients: m.job.envelope.to.map((address) => ({ address, outcome: 'ok', reply: { kind: 'x-onward', code: null, enhancedStatus: null, text: 'done by a thread' } })),
    durationMs: 1, retryAfterMs: null, contention: false } });
});
`,
    );
    const host = new TransportHost(silent, pathToFileURL(script));
    defer(() => host.close());
    const transport = host.open(httpTarget('http://127.0.0.1:9/unused'), {});

    const lost = await transport.deliver(job('0THREAD0000002.die', 'x'));
    expect(lost.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(lost.recipients[0]?.reply.text).toMatch(/delivery thread exited \(code 7\)/);
    expect(lost.localFailure).toBe(true); // the target is not blamed for it

    // The replacement starts after a short pause (the first thread died young); meanwhile
    // attempts end as local failures too, never as OK.
    const next = await waitForValue(
      () => transport.deliver(job('0THREAD0000003.0', 'y')),
      (r) => r.recipients.every((x) => x.outcome === 'ok') || r.localFailure !== true,
      5_000,
      'an attempt on the new thread',
    );
    expect(next.recipients.map((r) => [r.outcome, r.reply.text])).toEqual([
      ['ok', 'done by a thread'],
      ['ok', 'done by a thread'],
    ]);
  });

  it('backs off when every new thread dies at once, instead of respawning in a tight loop', async () => {
    const dir = await makeTempDir('onward-thread-');
    defer(() => removeDir(dir));
    const script = join(dir, 'broken-worker.mjs');
    await writeFile(script, 'process.exit(9);\n');
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) });
    const host = new TransportHost(logger, pathToFileURL(script));
    defer(() => host.close());
    const transport = host.open(httpTarget('http://127.0.0.1:9/unused'), {});
    const exits = (): { restartInMs: number; time: number }[] =>
      lines.filter((l) => l.includes('delivery thread exited')).map((l) => JSON.parse(l) as { restartInMs: number; time: number });
    const seen = await waitForValue(exits, (e) => e.length >= 4, 10_000, 'four thread exits');
    // Pauses 100, 200, 400, 800 ms…, each waited out before the next thread (a tight loop
    // would log hundreds of exits with no pause).
    expect(seen.slice(0, 4).map((e) => e.restartInMs)).toEqual([100, 200, 400, 800]);
    for (let i = 1; i < 4; i++) expect(seen[i]!.time - seen[i - 1]!.time).toBeGreaterThanOrEqual(seen[i - 1]!.restartInMs);
    const result = await transport.deliver(job('0THREAD0000004.0', 'z'));
    expect(result.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(result.localFailure).toBe(true);
  });
});
