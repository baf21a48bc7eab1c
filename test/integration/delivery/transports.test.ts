/**
 * createTransport loads each transport's module on first use: a delivery through the
 * returned transport reaches the real target, and a transport that cannot be made answers
 * its deliveries with the reason instead of throwing at creation or crashing.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { FileTargetConfig, HttpTargetConfig } from '../../../src/config/types.js';
import { createTransport } from '../../../src/delivery/transports.js';
import type { DeliveryJob } from '../../../src/delivery/types.js';
import { makeTempDir, removeDir, useCleanup } from '../../helpers/common.js';

const BODY = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: lazy\r\n\r\nbody\r\n', 'utf8');
const circuit = { failures: 5, probeMs: 30_000 };

function job(): DeliveryJob {
  return { deliveryId: 'Q1LAZYAAAA.0', queueId: 'Q1LAZYAAAA', attempt: 1, envelope: { from: 'a@example.com', to: ['b@example.org'] }, body: BODY, receivedAt: new Date() };
}

describe('createTransport', () => {
  const defer = useCleanup();

  it('delivers through a transport whose module it loads on the first delivery', async () => {
    const dir = await makeTempDir('onward-transports-');
    defer(() => removeDir(dir));
    const target: FileTargetConfig = { type: 'file', name: 'outbox', path: dir, concurrency: 2, circuit };
    const transport = createTransport(target);
    // Two deliveries before the module has loaded: both wait for it, both are written.
    const results = await Promise.all([transport.deliver(job()), transport.deliver({ ...job(), deliveryId: 'Q1LAZYAAAA.1' })]);
    expect(results.flatMap((r) => r.recipients.map((x) => x.outcome))).toEqual(['ok', 'ok']);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.eml')).sort();
    expect(files).toEqual(['Q1LAZYAAAA.0.eml', 'Q1LAZYAAAA.1.eml']);
    expect(await readFile(join(dir, files[0] ?? ''), 'utf8')).toContain('Subject: lazy');
    await transport.close();
  });

  it('answers each delivery of a transport that cannot be made with the reason, and closes', async () => {
    const target: HttpTargetConfig = {
      type: 'http',
      name: 'broken-hook',
      url: 'not a url',
      format: 'raw',
      headers: {},
      signing: 'onward',
      signingSecrets: [],
      timeoutMs: 1000,
      concurrency: 1,
      circuit,
    };
    const transport = createTransport(target);
    await expect(transport.deliver(job())).rejects.toThrow(/cannot create the transport for target "broken-hook"/);
    await expect(transport.deliver(job())).rejects.toThrow(/cannot create the transport for target "broken-hook"/);
    await expect(transport.close()).resolves.toBeUndefined();
  });
});
