/**
 * Crash safety: `onward serve` (the built relay, `npm run build` first) runs as a child
 * process under concurrent SMTP load and is killed with SIGKILL mid-stream, several times,
 * restarting on the same spool. Every message that got a 250 must afterwards be in the
 * spool (or, once delivered, in the file target's outbox) byte for byte.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import nodemailer from 'nodemailer';
import { BIN, BUILT_CLI, freePort, makeTempDir, queuedId, removeDir, REPO_ROOT } from '../helpers/common.js';
import { messageBytes, readSpool, testConfigYaml } from '../helpers/relay.js';

const LANES = 8;
const KILLS = 3;

interface Acked {
  readonly raw: Buffer;
  readonly marker: string;
  readonly to: string;
}

/** Resolves once something accepts TCP connections on the port and greets with 220. */
async function waitForSmtp(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`relay exited early (${child.exitCode ?? child.signalCode})`);
    const greeted = await new Promise<boolean>((done) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('error', () => done(false));
      socket.once('data', (d) => {
        socket.destroy();
        done(d.toString('latin1').startsWith('220'));
      });
    });
    if (greeted) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`relay did not listen on ${port} within ${timeoutMs}ms`);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** One message with a unique marker; sizes vary so that DATA arrives in different chunkings. */
function makeMessage(marker: string, to: string): Buffer {
  const filler = randomBytes(Math.floor(Math.random() * 6000)).toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    `From: load@client.test\r\nTo: ${to}\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@client.test>\r\n` +
      `Date: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\n${marker}\r\n${filler}\r\nend of ${marker}\r\n`,
    'latin1',
  );
}

describe('crash safety of acknowledged messages', () => {
  let child: ChildProcess | null = null;
  let dir: string | null = null;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    child = null;
    if (dir) await removeDir(dir);
    dir = null;
  });

  it('keeps every message answered 250 through repeated SIGKILLs under concurrent load', async () => {
    expect(existsSync(BUILT_CLI)).toBe(true); // run `npm run build` first
    dir = await makeTempDir('onward-crash-');
    const port = await freePort();
    const configPath = join(dir, 'onward.yaml');
    await writeFile(configPath, testConfigYaml(dir, `listen: [{ host: 127.0.0.1, port: ${port} }]\nshutdownGrace: 2s`));
    const spoolPath = join(dir, 'spool');
    const outboxPath = join(dir, 'outbox');

    const acked = new Map<string, Acked>();
    let refusedOrCut = 0;

    const runRound = async (round: number, stopAfter: number | null): Promise<void> => {
      const proc = spawn(process.execPath, [BIN, 'serve', '--config', configPath], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      let stderr = '';
      proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        await waitForSmtp(port, proc);
      } catch (err) {
        throw new Error(`${String(err)}\n${stderr}`, { cause: err });
      }
      let ackedThisRound = 0;
      let stop = false;
      const target = stopAfter ?? 16;
      const lane = async (n: number): Promise<void> => {
        const transport = nodemailer.createTransport({
          host: '127.0.0.1',
          port,
          secure: false,
          ignoreTLS: true,
          name: 'client.test',
          pool: true,
          maxConnections: 1,
          maxMessages: Infinity,
          connectionTimeout: 2000,
          socketTimeout: 3000,
        });
        try {
          for (let i = 0; !stop; i++) {
            const marker = `crash-${round}-${n}-${i}-${randomBytes(4).toString('hex')}`;
            const to = `lane${n}@example.org`;
            const raw = makeMessage(marker, to);
            try {
              const info = (await transport.sendMail({ envelope: { from: 'load@client.test', to: [to] }, raw })) as { response: string };
              acked.set(queuedId(info.response), { raw, marker, to });
              ackedThisRound += 1;
              if (stopAfter !== null && ackedThisRound >= stopAfter && proc.exitCode === null && proc.signalCode === null) {
                proc.kill('SIGKILL'); // mid-stream: the other lanes are in the middle of transactions
                stop = true;
              }
              if (stopAfter === null && ackedThisRound >= target) stop = true;
            } catch {
              refusedOrCut += 1; // cut by the kill: never acknowledged, so nothing is owed
              if (proc.exitCode !== null || proc.signalCode !== null || stop) break;
            }
          }
        } finally {
          transport.close();
        }
      };
      await Promise.all(Array.from({ length: LANES }, (_, n) => lane(n)));
      if (stopAfter === null) proc.kill('SIGTERM'); // the last round ends with a graceful stop
      await exited(proc);
      if (stopAfter === null) expect(proc.exitCode).toBe(0);
      else expect(proc.signalCode).toBe('SIGKILL');
    };

    for (let round = 0; round < KILLS; round++) await runRound(round, 20 + Math.floor(Math.random() * 20));
    await runRound(KILLS, null);

    expect(acked.size).toBeGreaterThanOrEqual(KILLS * 20);
    const stored = new Map((await readSpool(spoolPath)).map((s) => [s.message.id, s]));
    const problems: string[] = [];
    for (const [id, { raw, marker, to }] of acked) {
      const entry = stored.get(id);
      if (!entry) {
        problems.push(`${id} (${marker}): acknowledged but not in the spool`);
        continue;
      }
      if (entry.message.sender !== 'load@client.test' || entry.message.recipients.join() !== to) {
        problems.push(`${id} (${marker}): envelope ${entry.message.sender} -> ${entry.message.recipients.join()}`);
      }
      const bytes = await messageBytes(entry, outboxPath);
      if (!bytes) {
        problems.push(`${id} (${marker}): body neither in the spool nor in the outbox (state ${entry.message.state})`);
        continue;
      }
      const prefix = bytes.subarray(0, Math.max(0, bytes.length - raw.length)).toString('latin1');
      if (!bytes.subarray(bytes.length - raw.length).equals(raw) || !new RegExp(`^Received: [^]* id ${id}\\r\\n[^]*\\r\\n$`).test(prefix)) {
        problems.push(`${id} (${marker}): stored bytes differ from what the client sent`);
      }
    }
    expect(problems).toEqual([]);
    // Something was genuinely cut short, or the test did not test a crash mid-stream.
    expect(refusedOrCut).toBeGreaterThan(0);
  }, 30_000);
});
