/**
 * Found by the front-door fuzzer (fuzz.test.ts): the relay writes its Received header as
 * latin1, so every character of the EHLO name and of the recipient address (both may be
 * UTF-8 under SMTPUTF8) loses all but its low byte. U+0D0A becomes a bare LF, U+0D0D a bare
 * CR: a client that cannot send CR or LF on the wire gets them into the stored message, and
 * from there to every downstream (SPEC section 3: bare line endings are "never passed
 * downstream as such"). Plain non-ASCII names become invalid UTF-8 (ü -> 0xFC).
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { Relay } from '../../../src/app/index.js';
import { outboxRoute, startTempRelay, testConfig, useCleanup } from '../../helpers/common.js';
import { FuzzClient, bareLineEndingAt, queuedReply } from '../../helpers/fuzz.js';

const defer = useCleanup();

async function start(): Promise<{ relay: Relay; port: number; outbox: string }> {
  const t = await startTempRelay('onward-received-', (dir) => testConfig(dir, outboxRoute(dir)));
  defer(() => t.close());
  return { relay: t.relay, port: t.port, outbox: join(t.dir, 'outbox') };
}

/** One transaction over a raw socket (the lines are sent as UTF-8); resolves with the queue id. */
async function transaction(port: number, helo: string, rcpt: string): Promise<string> {
  const c = await FuzzClient.connect(port);
  defer(() => c.destroy());
  expect((await c.next(5000))?.code).toBe(220);
  const lines = [`EHLO ${helo}`, 'MAIL FROM:<sender@example.com> SMTPUTF8', `RCPT TO:<${rcpt}>`, 'DATA'];
  for (const line of lines) {
    c.send(Buffer.from(line + '\r\n', 'utf8'));
    const reply = await c.next(5000);
    expect({ line, code: reply?.code }).toEqual({ line, code: line === 'DATA' ? 354 : 250 });
  }
  c.send(Buffer.from('Subject: hi\r\nMessage-ID: <r1@client.test>\r\nDate: Fri, 27 Nov 2026 11:15:01 +0000\r\n\r\nbody\r\n.\r\n'));
  const q = queuedReply(await c.next(5000));
  expect(q).not.toBeNull();
  return q!.id;
}

/** The stored bytes (spool body) and, once delivered, the .eml the file target wrote. */
async function copies(relay: Relay, outbox: string, id: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const body = await relay.spool.getBody(id);
  if (body) out.push(body);
  for (let i = 0; i < 50 && out.length < 2; i++) {
    const name = (await readdir(outbox).catch(() => [] as string[])).find((n) => n.startsWith(`${id}.`) && n.endsWith('.eml'));
    if (name) out.push(await readFile(join(outbox, name)));
    else await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

const show = (b: Buffer, at: number): string => JSON.stringify(b.subarray(Math.max(0, at - 40), at + 40).toString('latin1'));

/** Sends one message with EHLO `helo` to `rcpt` and expects every stored copy of it to use CRLF only. */
async function expectCrlfOnly(helo: string, rcpt: string): Promise<void> {
  const { relay, port, outbox } = await start();
  const id = await transaction(port, helo, rcpt);
  for (const copy of await copies(relay, outbox, id)) {
    const at = bareLineEndingAt(copy);
    expect(at === -1 ? 'CRLF only' : `bare ${copy[at] === 0x0a ? 'LF' : 'CR'} at ${at}: ${show(copy, at)}`).toBe('CRLF only');
  }
}

describe('the Received header the relay adds', () => {
  it('cannot be made to carry a bare LF or CR (a fake end-of-data) by an EHLO name with U+0D0A / U+0D0D', async () => {
    // On the wire: e0 b4 8a / e0 b4 8d, no CR or LF byte anywhere.
    await expectCrlfOnly('x\u0d0a.\u0d0aMAIL\u0d20FROM:<evil@attacker.test>\u0d0d\u0d0a', 'rcpt@example.org');
  });

  it('cannot be made to carry a bare LF by a recipient address with U+0D0A (the "for <...>" clause)', async () => {
    await expectCrlfOnly('client.test', 'a\u0d0a.\u0d0ab@example.org');
  });

  it('keeps a UTF-8 EHLO name as valid UTF-8', async () => {
    const { relay, port } = await start();
    const id = await transaction(port, 'münchen.test', 'rcpt@example.org');
    const body = (await relay.spool.getBody(id)) ?? Buffer.alloc(0);
    const received = body.subarray(0, body.indexOf('\r\nSubject:'));
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(received)).not.toThrow();
    expect(received.toString('utf8')).toContain('münchen.test');
  });
});
