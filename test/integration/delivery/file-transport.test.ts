import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { FileTargetConfig } from '../../../src/config/types.js';
import { createFileTransport } from '../../../src/delivery/file.js';
import type { DeliveryJob } from '../../../src/delivery/types.js';
import { makeTempDir, removeDir, useCleanup } from '../../helpers/common.js';

const BODY = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n', 'utf8');

function job(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  return {
    deliveryId: 'Q1AAAAAAAA.1',
    queueId: 'Q1AAAAAAAA',
    attempt: 1,
    envelope: { from: 'a@example.com', to: ['b@example.org', 'c@example.org'] },
    body: BODY,
    receivedAt: new Date(),
    ...overrides,
  };
}

function target(path: string): FileTargetConfig {
  return { type: 'file', name: 'outbox', path, concurrency: 1, circuit: { failures: 5, probeMs: 30000 } };
}

describe('file transport', () => {
  const defer = useCleanup();
  const tempDir = async (): Promise<string> => {
    const dir = await makeTempDir('onward-file-');
    defer(() => removeDir(dir));
    return dir;
  };

  it('writes <delivery id>.eml with the envelope prepended, creating the directory', async () => {
    const root = await tempDir();
    const outbox = join(root, 'deep', 'outbox');
    const result = await createFileTransport(target(outbox)).deliver(job());
    expect(result.recipients.map((r) => r.outcome)).toEqual(['ok', 'ok']);
    expect(result.recipients[0]?.reply).toMatchObject({ kind: 'x-onward', code: null });
    const written = await readFile(join(outbox, 'Q1AAAAAAAA.1.eml'));
    expect(written.toString('utf8')).toBe(
      'X-Onward-Envelope-From: a@example.com\r\nX-Onward-Envelope-To: b@example.org, c@example.org\r\n' + BODY.toString('utf8'),
    );
    expect(await readdir(outbox)).toEqual(['Q1AAAAAAAA.1.eml']);
  });

  it('writes <> as the envelope sender of a bounce', async () => {
    const outbox = await tempDir();
    await createFileTransport(target(outbox)).deliver(job({ envelope: { from: '', to: ['a@example.com'] } }));
    const written = await readFile(join(outbox, 'Q1AAAAAAAA.1.eml'), 'utf8');
    expect(written.startsWith('X-Onward-Envelope-From: <>\r\nX-Onward-Envelope-To: a@example.com\r\n')).toBe(true);
  });

  it('leaves an existing file alone on a repeat and still reports OK', async () => {
    const outbox = await tempDir();
    const transport = createFileTransport(target(outbox));
    await transport.deliver(job());
    const first = await readFile(join(outbox, 'Q1AAAAAAAA.1.eml'));
    const again = await transport.deliver(job({ attempt: 2, body: Buffer.from('changed\r\n') }));
    expect(again.recipients.map((r) => r.outcome)).toEqual(['ok', 'ok']);
    expect(again.recipients[0]?.reply.text).toMatch(/^already written/);
    expect((await readFile(join(outbox, 'Q1AAAAAAAA.1.eml'))).equals(first)).toBe(true);
    expect(await readdir(outbox)).toEqual(['Q1AAAAAAAA.1.eml']);
  });

  it('defers when the directory cannot be created', async () => {
    const root = await tempDir();
    const blocker = join(root, 'not-a-dir');
    await writeFile(blocker, 'x');
    const result = await createFileTransport(target(join(blocker, 'outbox'))).deliver(job());
    expect(result.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(result.recipients[0]?.reply.text).toMatch(/^(ENOTDIR|EEXIST)/);
    expect(result.contention).toBe(false);
  });

  const itUnlessRoot = process.getuid?.() === 0 ? it.skip : it;
  itUnlessRoot('defers with the error text when the directory is not writable', async () => {
    const outbox = await tempDir();
    await chmod(outbox, 0o500);
    const result = await createFileTransport(target(outbox)).deliver(job());
    await chmod(outbox, 0o700);
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply.text).toMatch(/^EACCES/);
    expect(await readdir(outbox)).toEqual([]);
  });
});
