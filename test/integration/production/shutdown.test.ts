/**
 * Graceful stop (SPEC section 6: "let in-flight deliveries finish up to shutdownGrace, close
 * the spool cleanly"), in-process: a backlog of messages is being delivered to a file target
 * and the relay is closed in the middle of it. When `close()` resolves, no delivery may still
 * be running: otherwise its side effect (a file in the outbox) happens after shutdown, its
 * result cannot be written to the closed spool, and it is delivered again after a restart.
 */
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { newQueueId } from '../../../src/spool/index.js';
import { openSpool, outboxRoute, sleep, useTeardown, waitUntil, type LogLine } from '../../helpers/common.js';
import { messageText, startInProcess } from '../../helpers/production.js';

const FROM = 'app@client.test';
const TO = 'someone@example.org';
const BACKLOG = 150;

/**
 * One message over a raw socket; `close` is called synchronously in the socket's data
 * handler the moment the 250 arrives (no promise hops), to land inside the scheduler's claim.
 */
function submitThenClose(port: number, close: () => Promise<void>): Promise<{ closing: Promise<void>; queueId: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const steps = ['EHLO client.test\r\n', `MAIL FROM:<${FROM}>\r\n`, `RCPT TO:<${TO}>\r\n`, 'DATA\r\n', `${messageText({ from: FROM, to: TO, subject: 'close now' })}.\r\n`];
    let pending = '';
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      if (!/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(pending)) return; // wait for a complete (last) reply line
      const last = pending;
      pending = '';
      const queued = /250 2\.0\.0 Ok: queued as (\S+)\r\n$/.exec(last);
      if (queued?.[1]) {
        const closing = close();
        socket.destroy();
        resolve({ closing, queueId: queued[1] });
        return;
      }
      if (/^[45]/m.test(last.split('\r\n').at(-2) ?? '')) return reject(new Error(`refused: ${last}`));
      const next = steps.shift();
      if (next) socket.write(next);
    });
  });
}

function emlFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.eml')) : [];
}

describe('relay.close() while deliveries are under way or being claimed', () => {
  const cleanup = useTeardown();

  it('leaves no delivery running once close() resolves: nothing is written or logged afterwards, and every file written is recorded as delivered', async () => {
    const dir = cleanup.tempDir('prod-close');
    const spoolPath = join(dir, 'spool');
    const outbox = join(dir, 'outbox');

    // A backlog, written straight into the spool the relay will open.
    const seed = await openSpool(spoolPath, { create: true });
    const ids: string[] = [];
    for (let i = 0; i < BACKLOG; i++) {
      const queueId = newQueueId();
      ids.push(queueId);
      await seed.accept({
        queueId,
        sender: FROM,
        recipients: [TO],
        messageId: `${queueId}@client.test`,
        body: Buffer.from(messageText({ from: FROM, to: TO, subject: `backlog ${String(i)}` })),
        client: { ip: '127.0.0.1', hostname: 'localhost', helo: 'client.test', user: null },
        deliveries: [{ targets: ['outbox'], recipients: [TO] }],
        dedupKey: null,
        bounceOf: null,
      });
    }
    await seed.close();

    const logs: LogLine[] = [];
    const relay = await startInProcess(
      dir,
      { targets: { outbox: { type: 'file', path: outbox, concurrency: 4 } }, routes: [{ match: '*', target: 'outbox' }] },
      {},
      logs,
    );
    cleanup.add(() => relay.close());
    await waitUntil('a few deliveries', () => emlFiles(outbox).length >= 5);

    await relay.close();
    const linesAtClose = logs.length;
    const filesAtClose = emlFiles(outbox).length;
    await sleep(300);

    const problems: string[] = [];
    const filesAfter = emlFiles(outbox);
    if (filesAfter.length !== filesAtClose) problems.push(`${String(filesAfter.length - filesAtClose)} file(s) written to the outbox after close() resolved`);
    for (const line of logs.slice(linesAtClose)) {
      const err = line['err'] as { message?: string } | undefined;
      problems.push(`logged after close() resolved: "${line.msg}"${err?.message ? ` (${err.message})` : ''}`);
    }
    const spool = await openSpool(spoolPath);
    cleanup.add(() => spool.close());
    for (const file of filesAfter) {
      const deliveryId = file.replace(/\.eml$/, '');
      const [delivery] = await spool.getDeliveries(deliveryId.split('.')[0] ?? '');
      if (delivery?.state !== 'delivered') problems.push(`${file} is in the outbox but its delivery is recorded as "${String(delivery?.state)}" (it will be written again after a restart)`);
    }
    // Nothing acknowledged is lost either way.
    for (const id of ids) expect(await spool.getMessage(id)).not.toBeNull();
    expect(problems).toEqual([]);
  });

  it('leaves no delivery running once close() resolves when it is called the moment a message gets its 250', async () => {
    // The scheduler is claiming the new message's delivery while close() begins: that
    // claim must be handed back or finished, not started after the spool is closed.
    const problems: string[] = [];
    for (let round = 0; round < 4; round++) {
      const dir = cleanup.tempDir('prod-close-now');
      const logs: LogLine[] = [];
      const outbox = join(dir, 'outbox');
      const relay = await startInProcess(dir, outboxRoute(dir), {}, logs);
      cleanup.add(() => relay.close());
      const { closing, queueId } = await submitThenClose(relay.ports[0] ?? 0, () => relay.close());
      await closing;
      const linesAtClose = logs.length;
      const filesAtClose = emlFiles(outbox).length;
      await sleep(300);
      const tag = `round ${String(round)}:`;
      if (emlFiles(outbox).length !== filesAtClose) problems.push(`${tag} file written to the outbox after close() resolved`);
      for (const line of logs.slice(linesAtClose)) {
        const err = line['err'] as { message?: string } | undefined;
        problems.push(`${tag} logged after close() resolved: "${line.msg}"${err?.message ? ` (${err.message})` : ''}`);
      }
      const spool = await openSpool(join(dir, 'spool'));
      const [delivery] = await spool.getDeliveries(queueId);
      await spool.close();
      if (emlFiles(outbox).length > 0 && delivery?.state !== 'delivered') problems.push(`${tag} written to the outbox but recorded as "${String(delivery?.state)}"`);
      if (emlFiles(outbox).length === 0) {
        // Handed back: untouched (no attempt spent) and due at once on the next start.
        const untouched = delivery !== undefined && ['queued', 'deferred'].includes(delivery.state) && delivery.attempts.length === 0 && delivery.attemptCount === 0 && (delivery.dueAt ?? Infinity) <= Date.now();
        if (!untouched) problems.push(`${tag} not written, and not handed back untouched and due: ${JSON.stringify(delivery)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
