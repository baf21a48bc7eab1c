/**
 * File target: each delivery becomes `<delivery id>.eml` in a directory, written so that a
 * reader never sees a partial file and a repeat never clobbers the first copy (SPEC section 4).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileTargetConfig } from '../config/types.js';
import { describeError } from './classify.js';
import { localReply } from './results.js';
import type { DeliveryJob, Outcome, Transport, TransportResult } from './types.js';

/**
 * Writes `<delivery id>.eml` into `target.path` (created when missing): the envelope lines of
 * `envelopeHeader` followed by the stored bytes, via a temp file, fsync, rename and a directory
 * fsync. An existing file is a repeat and is left alone (OK). Failures are ERROR; never rejects.
 */
export function createFileTransport(target: FileTargetConfig): Transport {
  return {
    deliver: (job) => deliverFile(target.path, job),
    close: () => Promise.resolve(),
  };
}

/** The envelope lines the file target prepends to the stored bytes. */
export function envelopeHeader(envelope: DeliveryJob['envelope']): string {
  const from = envelope.from === '' ? '<>' : envelope.from;
  return `X-Onward-Envelope-From: ${from}\r\nX-Onward-Envelope-To: ${envelope.to.join(', ')}\r\n`;
}

async function deliverFile(dir: string, job: DeliveryJob): Promise<TransportResult> {
  const startedAt = performance.now();
  const finish = (outcome: Outcome, text: string): TransportResult => {
    const reply = localReply(text);
    return {
      recipients: job.envelope.to.map((address) => ({ address, outcome, reply })),
      durationMs: Math.round(performance.now() - startedAt),
      retryAfterMs: null,
      contention: false,
    };
  };
  const finalPath = join(dir, `${job.deliveryId}.eml`);
  try {
    await mkdir(dir, { recursive: true });
    if (await exists(finalPath)) return finish('ok', `already written to ${finalPath}`);
    await writeAtomically(dir, finalPath, Buffer.concat([Buffer.from(envelopeHeader(job.envelope), 'utf8'), job.body]));
    return finish('ok', `written to ${finalPath}`);
  } catch (err) {
    return finish('error', describeError(err));
  }
}

async function writeAtomically(dir: string, finalPath: string, data: Buffer): Promise<void> {
  // Dot-prefixed so that readers globbing *.eml never pick up a file still being written.
  const tempPath = join(dir, `.${randomBytes(8).toString('hex')}.tmp`);
  try {
    const handle = await open(tempPath, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tempPath, finalPath);
  } catch (err) {
    await unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

/** Without this the rename itself may not survive a power cut, and the delivery would count as done. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some platforms and filesystems cannot fsync a directory; the rename is as durable as they allow.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
