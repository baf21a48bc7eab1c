/**
 * The HTTP submission's promise across process deaths: `onward serve` (built, a child
 * process) restarted on the same LevelDB spool still knows an Idempotency-Key, and when
 * SIGKILLed under concurrent HTTP load every message answered 202 is there after the
 * restart, byte for byte, and gets delivered.
 */
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { freePort, spawnServeChild, useTeardown, waitUntil, type ServeChild } from '../../helpers/common.js';
import { messageBytes, readSpool, testConfigYaml } from '../../helpers/relay.js';
import { postJson, postRaw } from '../../helpers/submission.js';

const KEY = 'k-crash-0123456789abcdef';
const LANES = 8;
const KILLS = 2;

async function relayConfig(dir: string, port: number): Promise<string> {
  const path = join(dir, 'onward.yaml');
  await writeFile(
    path,
    testConfigYaml(
      dir,
      `listen: [{ host: 127.0.0.1, port: 0 }]\nshutdownGrace: 2s\nlog: { level: info }\n` +
        `submission: { listen: { host: 127.0.0.1, port: ${String(port)} }, keys: [{ name: app1, key: ${KEY} }] }`,
    ),
  );
  return path;
}

function rawMessage(marker: string): Buffer {
  const filler = randomBytes(1 + Math.floor(Math.random() * 4000)).toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    `From: load@client.test\r\nTo: lane@example.org\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@client.test>\r\n` +
      `Date: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\n${marker}\r\n${filler}\r\nend of ${marker}\r\n`,
    'latin1',
  );
}

describe('HTTP submission across restarts and crashes', () => {
  const teardown = useTeardown();

  it('knows an Idempotency-Key after a restart: the repeat is 200 duplicate with the original id, delivered once', async () => {
    const dir = teardown.tempDir('onward-submit-restart');
    const port = await freePort();
    const configPath = await relayConfig(dir, port);
    const doc = { from: 'app@client.test', to: ['user@example.org'], subject: 'restart', text: 'once only' };
    const headers = { 'idempotency-key': 'restart-1' };

    const first = await spawnServeChild(configPath);
    teardown.add(() => first.kill());
    const queued = await postJson(port, doc, { key: KEY, headers });
    expect(queued.status).toBe(202);
    first.signal('SIGTERM');
    expect((await first.exited).code).toBe(0);

    const second = await spawnServeChild(configPath);
    teardown.add(() => second.kill());
    const repeat = await postJson(port, doc, { key: KEY, headers });
    expect(repeat).toMatchObject({ status: 200, body: { id: queued.body.id, status: 'duplicate', messageId: queued.body.messageId } });
    const id = queued.body.id ?? '';
    await waitUntil('the delivery', async () => {
      const v = await fetch(`http://127.0.0.1:${String(port)}/v1/messages/${id}`, { headers: { authorization: `Bearer ${KEY}` } });
      return ((await v.json()) as { state?: string }).state === 'delivered';
    });
    second.signal('SIGTERM');
    await second.exited;
    const files = (await readdir(join(dir, 'outbox'))).filter((n) => n.endsWith('.eml'));
    expect(files).toHaveLength(1);
    expect(files[0]?.startsWith(`${id}.`)).toBe(true);
  }, 60_000);

  it('keeps every message answered 202 through SIGKILLs under concurrent HTTP load', async () => {
    const dir = teardown.tempDir('onward-submit-crash');
    const port = await freePort();
    const configPath = await relayConfig(dir, port);
    const acked = new Map<string, { raw: Buffer; marker: string }>();
    let cut = 0;

    const round = async (n: number, killAfter: number | null): Promise<void> => {
      const serve: ServeChild = await spawnServeChild(configPath, { timeoutMs: 20_000 });
      teardown.add(() => serve.kill());
      let ackedThisRound = 0;
      let stop = false;
      const lane = async (l: number): Promise<void> => {
        for (let i = 0; !stop && i < 200; i++) {
          const marker = `crash-${String(n)}-${String(l)}-${String(i)}-${randomBytes(4).toString('hex')}`;
          const raw = rawMessage(marker);
          try {
            const answer = await postRaw(port, raw, { key: KEY });
            if (answer.status !== 202) throw new Error(`answered ${String(answer.status)}`);
            acked.set(answer.body.id ?? '', { raw, marker });
            ackedThisRound += 1;
            if (killAfter !== null && ackedThisRound >= killAfter && !stop) {
              stop = true;
              serve.child.kill('SIGKILL'); // the other lanes are mid-request
            }
            if (killAfter === null && ackedThisRound >= 16) stop = true;
          } catch {
            cut += 1; // cut by the kill: never acknowledged, nothing owed
            if (stop) break;
          }
        }
      };
      await Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)));
      if (killAfter === null) serve.signal('SIGTERM');
      const exit = await serve.exited;
      expect(killAfter === null ? exit.code : exit.signal).toBe(killAfter === null ? 0 : 'SIGKILL');
    };

    for (let n = 0; n < KILLS; n++) await round(n, 20 + Math.floor(Math.random() * 20));
    await round(KILLS, null);

    expect(acked.size).toBeGreaterThanOrEqual(KILLS * 20);
    const stored = new Map((await readSpool(join(dir, 'spool'))).map((s) => [s.message.id, s]));
    const problems: string[] = [];
    for (const [id, { raw, marker }] of acked) {
      const entry = stored.get(id);
      if (!entry) {
        problems.push(`${id} (${marker}): answered 202 but not in the spool`);
        continue;
      }
      const bytes = await messageBytes(entry, join(dir, 'outbox'));
      if (!bytes || !bytes.subarray(bytes.length - raw.length).equals(raw)) problems.push(`${id} (${marker}): bytes differ or missing (state ${entry.message.state})`);
    }
    expect(problems).toEqual([]);
    expect(cut).toBeGreaterThan(0);
  }, 120_000);
});
