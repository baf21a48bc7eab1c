/**
 * Disk pressure (issue 7, SPEC section 3): while free space on the spool's filesystem is
 * below `spool.minFreeDisk`, new messages get `452 4.3.1 Insufficient system storage` (at
 * MAIL FROM, or at the end of DATA when the transaction was opened before); what is already
 * spooled stays intact and keeps being delivered; and once space returns acceptance resumes
 * by itself, without a restart.
 *
 * The spool lives on a small filesystem of its own: a 20 MB tmpfs mounted for the test
 * (needs root or CAP_SYS_ADMIN). Where mounting is not allowed, the test runs on the temp
 * folder's own filesystem instead, with `minFreeDisk` set 64 MB below its current free space
 * and a 128 MB filler file (a busy shared disk can make that variant flaky; set
 * ONWARD_DISK_PRESSURE_NO_MOUNT=1 to run it where mounting works). Free space drops when the
 * filler is written and comes back when it is deleted.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, statfsSync, writeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import {
  makeTempDir,
  queuedIdOrNull,
  refusalReply,
  removeDir,
  sendRaw,
  spoolContents,
  startRelayWith,
  testConfig,
  useCleanup,
  waitUntil,
} from '../../helpers/common.js';
import { FuzzClient, checkStored, type WireReply } from '../../helpers/fuzz.js';

const MB = 1024 * 1024;
const HOSTNAME = 'relay.test';
const FROM = 'sender@example.com';
const TO = 'rcpt@example.org';
const INSUFFICIENT = '452 4.3.1 Insufficient system storage';

const CAN_MOUNT = canMountTmpfs();

const defer = useCleanup();

/** Whether this process may mount a tmpfs (root or CAP_SYS_ADMIN). */
function canMountTmpfs(): boolean {
  if (process.env['ONWARD_DISK_PRESSURE_NO_MOUNT']) return false;
  const dir = mkdtempSync(join(tmpdir(), 'onward-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(dir);
  }
}

function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

interface Area {
  /** Where the spool goes. */
  readonly path: string;
  readonly kind: 'tmpfs' | 'shared';
  /** spool.minFreeDisk for this area. */
  readonly minFreeDisk: number;
  /** How big the filler must be to take free space below minFreeDisk (with a margin). */
  fillerBytes(): number;
}

/** A 20 MB tmpfs of its own when mounting is allowed, else a folder on the temp filesystem. */
async function smallFilesystem(base: string): Promise<Area> {
  if (!CAN_MOUNT) {
    console.log('disk-pressure: cannot mount a tmpfs here; using the temp filesystem with a relative minFreeDisk');
    const dir = join(base, 'fs');
    await mkdir(dir);
    const margin = 64 * MB;
    const minFreeDisk = freeBytes(dir) - margin;
    if (minFreeDisk < margin) throw new Error(`the temp filesystem has only ${freeBytes(dir)} bytes free; this variant needs 128 MB`);
    return { path: dir, kind: 'shared', minFreeDisk, fillerBytes: () => freeBytes(dir) - minFreeDisk + margin };
  }
  const mnt = await mountTmpfs(base, '20m');
  const minFreeDisk = 8 * MB;
  return { path: mnt, kind: 'tmpfs', minFreeDisk, fillerBytes: () => freeBytes(mnt) - minFreeDisk / 2 };
}

/** Writes `size` bytes of zeros (tmpfs and most disks allocate them) to `path`. */
function writeFiller(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(MB);
    for (let left = size; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, left));
  } finally {
    closeSync(fd);
  }
}

/** Mounts a tmpfs of `size` at a new folder under `base` (unmounted at teardown). */
async function mountTmpfs(base: string, size: string): Promise<string> {
  const mnt = join(base, 'fs');
  await mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mnt], { stdio: 'pipe' });
  defer(() => execFileSync('umount', ['-l', mnt], { stdio: 'pipe' }));
  return mnt;
}

/** The relay's final reply to one message from FROM to TO, a refusal included. */
function send(port: number, raw: string): Promise<string> {
  return sendRaw(port, { from: FROM, to: [TO] }, raw).catch(refusalReply);
}

function message(n: number): string {
  return `From: ${FROM}\r\nTo: ${TO}\r\nSubject: disk pressure ${n}\r\nMessage-ID: <disk-${n}-${Date.now()}@client.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\nbody ${n}\r\n${'line of text\r\n'.repeat(50)}`;
}

/** A raw session that has sent EHLO; `cmd` sends a line and reads its reply. */
async function session(port: number): Promise<{ c: FuzzClient; cmd: (line: string) => Promise<WireReply | null> }> {
  const c = await FuzzClient.connect(port);
  defer(() => c.destroy());
  expect((await c.next(5000))?.code).toBe(220);
  const cmd = async (line: string): Promise<WireReply | null> => {
    c.send(Buffer.from(line + '\r\n'));
    return c.next(5000);
  };
  expect((await cmd('EHLO client.test'))?.code).toBe(250);
  return { c, cmd };
}

/** Polls MAIL FROM (never completing a transaction) until its reply code is `code`; resolves with the time it took. */
async function untilMailFromAnswers(port: number, code: number, withinMs: number): Promise<{ ms: number; reply: string }> {
  const { c, cmd } = await session(port);
  const started = Date.now();
  let last = '';
  while (Date.now() - started < withinMs) {
    const r = await cmd(`MAIL FROM:<${FROM}>`);
    last = `${r?.code} ${r?.text}`;
    if (r?.code === code) {
      await cmd('RSET');
      c.destroy();
      return { ms: Date.now() - started, reply: last };
    }
    await cmd('RSET');
    await new Promise((r) => setTimeout(r, 100));
  }
  c.destroy();
  throw new Error(`MAIL FROM still answered "${last}" after ${withinMs} ms, expected ${code}`);
}

/** The delivered .eml files in `outbox`, keyed by queue id, without their two envelope lines. */
async function delivered(outbox: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of await readdir(outbox).catch(() => [] as string[])) {
    if (!name.endsWith('.eml')) continue;
    const file = await readFile(join(outbox, name));
    const first = file.indexOf('\r\n');
    out.set(name.slice(0, name.indexOf('.')), file.subarray(file.indexOf('\r\n', first + 2) + 2));
  }
  return out;
}

describe('a spool whose filesystem runs short of space', () => {
  it('refuses new mail with "452 4.3.1" while free space is below spool.minFreeDisk, keeps delivering what it holds, and accepts again by itself once space returns', async () => {
    const base = await makeTempDir('onward-disk-');
    defer(() => removeDir(base));
    const area = await smallFilesystem(base);
    // The file target's folder sits under a plain file at first: every delivery fails (ERROR)
    // and is retried every 300 ms, so the first messages wait in the spool.
    const blocker = join(base, 'blocker');
    await writeFile(blocker, 'not a directory');
    const outbox = join(blocker, 'outbox');
    const { relay, port } = await startRelayWith(
      testConfig(base, {
        hostname: HOSTNAME,
        spool: { path: join(area.path, 'spool'), minFreeDisk: area.minFreeDisk },
        targets: { outbox: { type: 'file', path: outbox, circuit: { failures: 1000, probe: '300ms' } } },
        routes: [{ match: '*', target: 'outbox' }],
        retry: { schedule: ['300ms'], jitter: 0 },
      }),
    );
    defer(() => relay.close());

    // 1. Plenty of space: three messages are queued (and wait, their target being broken).
    const before = new Map<string, string>();
    for (let n = 1; n <= 3; n++) {
      const raw = message(n);
      const reply = await send(port, raw);
      const id = queuedIdOrNull(reply);
      expect({ n, reply, queued: id !== null }).toEqual({ n, reply, queued: true });
      before.set(id!, raw);
    }
    // A transaction opened while space is still fine: MAIL and RCPT accepted.
    const open = await session(port);
    expect((await open.cmd(`MAIL FROM:<${FROM}>`))?.code).toBe(250);
    expect((await open.cmd(`RCPT TO:<${TO}>`))?.code).toBe(250);

    // 2. Space runs low: MAIL FROM gets 452 4.3.1 within the 1 s re-check interval (and a bit).
    const filler = join(area.path, 'filler');
    writeFiller(filler, area.fillerBytes());
    defer(() => rm(filler, { force: true }));
    expect(freeBytes(area.path)).toBeLessThan(area.minFreeDisk);
    const low = await untilMailFromAnswers(port, 452, 3000);
    expect(low.reply).toBe(INSUFFICIENT);

    // ... the transaction opened before is refused at the end of DATA, with the same reply ...
    expect((await open.cmd('DATA'))?.code).toBe(354);
    open.c.send(Buffer.from(`${message(99)}.\r\n`));
    const endOfData = await open.c.next(5000);
    expect(`${endOfData?.code} ${endOfData?.text}`).toBe(INSUFFICIENT);
    // ... and so is a normal client.
    expect(await send(port, message(4))).toBe(INSUFFICIENT);

    // 3. Still low: what was queued before is intact, and is delivered once its target works.
    for (const [id, raw] of before) {
      const body = await relay.spool.getBody(id);
      expect(body).not.toBeNull();
      expect(checkStored(body!, Buffer.from(raw), id, HOSTNAME)).toEqual({ problem: null, category: null });
    }
    const stored = new Map<string, Buffer>();
    for (const id of before.keys()) stored.set(id, (await relay.spool.getBody(id))!);
    await rm(blocker);
    const files = await waitUntil(
      'the queued messages to be delivered while space is low',
      async () => {
        const d = await delivered(outbox);
        return [...before.keys()].every((id) => d.has(id)) ? d : null;
      },
      10_000,
      100,
    );
    for (const [id, body] of stored) expect(files.get(id)?.equals(body)).toBe(true);
    for (const id of before.keys()) {
      await waitUntil(`${id} to be recorded as delivered`, async () => (await relay.spool.getMessage(id))?.state === 'delivered', 5000, 100);
    }
    expect(freeBytes(area.path)).toBeLessThan(area.minFreeDisk);
    expect(await send(port, message(5))).toBe(INSUFFICIENT);
    const report = await relay.spool.check(false);
    expect(report.problems).toEqual([]);

    // 4. Space comes back: acceptance resumes by itself within a couple of seconds, no restart.
    await rm(filler);
    expect(freeBytes(area.path)).toBeGreaterThan(area.minFreeDisk);
    const back = await untilMailFromAnswers(port, 250, 3000);
    const reply = await send(port, message(6));
    const id = queuedIdOrNull(reply);
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await waitUntil('the message accepted after recovery to be delivered', async () => (await delivered(outbox)).has(id!), 5000, 100);
    // Only the messages that got a 250 were ever stored.
    const all = (await spoolContents(relay.spool)).map((e) => e.message.id);
    expect(all.sort()).toEqual([...before.keys(), id!].sort());
    console.log(`disk-pressure (${area.kind}, minFreeDisk ${area.minFreeDisk} bytes): 452 after ${low.ms} ms of low space, accepting again ${back.ms} ms after space returned`);
  });

  // Free space above minFreeDisk does not mean room for the next message: a message bigger
  // than the headroom makes the spool write fail with ENOSPC (the client gets a 4xx and keeps
  // it, which is right). What must not happen is that this failed write damages the spool for
  // the messages acknowledged after it. Found while writing this test: after the failed
  // write, LevelDB keeps appending to the same log file behind a torn record, and recovery
  // cannot read anything after it, so every message acknowledged after it (synced, answered
  // 250, visible while the process runs) is gone after a restart (40 of 40 in a probe).
  // Reopening the spool right after a failed write (or refusing everything until a restart)
  // avoids it: nothing acknowledged is written behind the torn record then.
  (CAN_MOUNT ? it : it.skip)('keeps every message acknowledged after a spool write failed with ENOSPC, across a restart (needs a tmpfs mount)', async () => {
    const base = await makeTempDir('onward-enospc-');
    defer(() => removeDir(base));
    const mnt = await mountTmpfs(base, '20m');
    // The target cannot take anything (its folder sits under a plain file): every message waits in the spool.
    await writeFile(join(base, 'blocker'), 'not a directory');
    const config = testConfig(mnt, {
      hostname: HOSTNAME,
      limits: { maxMessageSize: '10MB' },
      targets: { outbox: { type: 'file', path: join(base, 'blocker', 'outbox') } },
      routes: [{ match: '*', target: 'outbox' }],
      retry: { schedule: ['1h'], jitter: 0 },
    });
    const { relay, port } = await startRelayWith(config);
    defer(() => relay.close());
    const acknowledged: string[] = [];
    const first = queuedIdOrNull(await send(port, message(1)));
    expect(first).not.toBeNull();
    acknowledged.push(first!);

    // 1.5 MB left: above the 1 MB floor, so the relay takes a 3 MB message, and its spool write fails.
    const filler = join(mnt, 'filler');
    writeFiller(filler, freeBytes(mnt) - Math.floor(1.5 * MB));
    defer(() => rm(filler, { force: true }));
    await new Promise((r) => setTimeout(r, 1100)); // the free-space check is re-read once a second
    expect(freeBytes(mnt)).toBeGreaterThan(MB);
    const big = `From: ${FROM}\r\nTo: ${TO}\r\nSubject: big\r\nMessage-ID: <big-${Date.now()}@client.test>\r\n\r\n${('y'.repeat(998) + '\r\n').repeat(3000)}`;
    expect(await send(port, big)).toMatch(/^45[12] 4\.3\.[01] /);

    // Space comes back; four more messages are acknowledged.
    await rm(filler);
    await new Promise((r) => setTimeout(r, 1100));
    for (let n = 2; n <= 5; n++) {
      const reply = await send(port, message(n));
      const id = queuedIdOrNull(reply);
      expect({ n, reply, queued: id !== null }).toEqual({ n, reply, queued: true });
      acknowledged.push(id!);
    }

    // The running relay has them all, waiting for their target ...
    for (const id of acknowledged) expect(await relay.spool.getBody(id)).not.toBeNull();
    // ... and a restart (say, by the operator who just cleaned up the disk) must find every one of them.
    await relay.close();
    const { relay: restarted } = await startRelayWith(config);
    defer(() => restarted.close());
    const lost: string[] = [];
    for (const id of acknowledged) if ((await restarted.spool.getBody(id)) === null) lost.push(id);
    expect(lost).toEqual([]);
  });
});
