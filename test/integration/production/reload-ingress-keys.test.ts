/**
 * SIGHUP reload, the SMTP-side keys (SPEC section 6) that reload-keys.test.ts does not
 * cover: the other `limits.*`, `relay.users` and the TLS files. Each is shown to take effect
 * for sessions that start after `relay.reload` (what serve calls on SIGHUP), on the real
 * relay in this process over real sockets.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTeardown } from '../../helpers/common.js';
import { makeCertificate, messageText, openSession, openWire, plainAuth, transaction, type SmtpReply, type SmtpWire } from '../../helpers/production.js';
import { startReloadable } from '../../helpers/reload.js';

const FROM = 'app@client.test';
const TO = 'user@a.test';
const ALICE = { username: 'alice', password: 'alice-Pa55-word' };
const BOB = { username: 'bob', password: 'bob-Pa55-word' };

describe('reload applies the SMTP-side keys', () => {
  const cleanup = useTeardown();

  /** Connects and reads the first reply (the greeting, or the refusal in its place). */
  async function connect(port: number): Promise<{ wire: SmtpWire; first: SmtpReply }> {
    const wire = await openWire(cleanup, port);
    return { wire, first: await wire.read() };
  }

  /** Writes `lines` at once and reads replies until a 421 or the connection closes. */
  async function burst(wire: SmtpWire, lines: readonly string[]): Promise<number[]> {
    wire.write(lines.map((l) => `${l}\r\n`).join(''));
    const codes: number[] = [];
    while (codes.length < lines.length) {
      const reply = await wire.read().catch(() => null);
      if (!reply) break;
      codes.push(reply.code);
      if (reply.code === 421) break;
    }
    return codes;
  }

  async function auth(port: number, user: { username: string; password: string }): Promise<number> {
    const s = await openSession(cleanup, port);
    return (await s.command(`AUTH PLAIN ${plainAuth(user.username, user.password)}`)).code;
  }

  it.each([
    { key: 'maxConnections', other: 'maxConnectionsPerIp', refusal: /^421 .*Too many connected clients/ },
    { key: 'maxConnectionsPerIp', other: 'maxConnections', refusal: /^421 4\.7\.0 Too many connections from your address/ },
  ])('limits.$key: with two sessions open, a third is refused after a reload from 3 to 2, and a fourth served after one to 4', async ({ key, other, refusal }) => {
    const limits = (n: number): Record<string, unknown> => ({ limits: { [key]: n, [other]: 100 } });
    const t = await startReloadable(cleanup, key, limits(3));
    expect((await connect(t.port)).first.code).toBe(220);
    expect((await connect(t.port)).first.code).toBe(220);
    t.reload(limits(2));
    expect((await connect(t.port)).first.raw).toMatch(refusal); // 3 would have let it in
    t.reload(limits(4));
    expect((await connect(t.port)).first.code).toBe(220); // 2 would have refused it
  });

  it('limits.idleTimeout: after a reload from 1h to 300ms a silent new session is closed with 421', async () => {
    const t = await startReloadable(cleanup, 'idle', { limits: { idleTimeout: '1h' } });
    t.reload({ limits: { idleTimeout: '300ms' } });
    const { wire, first } = await connect(t.port);
    expect(first.code).toBe(220);
    expect((await wire.read(10_000)).raw).toBe('421 4.4.2 Timeout - closing connection');
    await wire.closed;
  });

  it('limits.sessionTimeout: after a reload from 30m to 500ms a new session is closed with 421 4.4.2', async () => {
    const t = await startReloadable(cleanup, 'session-time', { limits: { sessionTimeout: '30m' } });
    t.reload({ limits: { sessionTimeout: '500ms' } });
    const { wire, first } = await connect(t.port);
    expect(first.code).toBe(220);
    expect((await wire.read(10_000)).raw).toMatch(/^421 4\.4\.2 Session time limit exceeded/);
    await wire.closed;
  });

  it('limits.maxCommands: six NOOPs pass before, and are cut off with 421 after a reload to 3', async () => {
    const t = await startReloadable(cleanup, 'commands', { limits: { maxCommands: 10_000 } });
    const noops = Array.from({ length: 6 }, () => 'NOOP');
    expect(await burst((await connect(t.port)).wire, noops)).toEqual([250, 250, 250, 250, 250, 250]);
    t.reload({ limits: { maxCommands: 3 } });
    const codes = await burst((await connect(t.port)).wire, noops);
    expect(codes.at(-1)).toBe(421);
    expect(codes.filter((c) => c === 250).length).toBeLessThanOrEqual(3);
  });

  it('limits.maxErrors: three bad commands are answered before, and the second ends the session after a reload to 2', async () => {
    const t = await startReloadable(cleanup, 'errors', { limits: { maxErrors: 10 } });
    const junk = ['JUNK1', 'JUNK2', 'JUNK3'];
    const before = (await connect(t.port)).wire;
    expect(await burst(before, junk)).toEqual([500, 500, 500]);
    expect((await before.command('NOOP')).code).toBe(250);
    t.reload({ limits: { maxErrors: 2 } });
    expect(await burst((await connect(t.port)).wire, junk)).toEqual([500, 500, 421]);
  });

  it('limits.maxDataMemory: an 8 KB message is queued before, and answered 452 4.3.1 after a reload to 1KB', async () => {
    const t = await startReloadable(cleanup, 'data-memory', {});
    const message = messageText({ from: FROM, to: TO, subject: 'memory', body: 'x'.repeat(8 * 1024) });
    const send = async (): Promise<string> => (await transaction(await openSession(cleanup, t.port), FROM, [TO], message)).raw;
    expect(await send()).toMatch(/^250 /);
    t.reload({ limits: { maxDataMemory: '1KB' } });
    expect(await send()).toMatch(/^452 4\.3\.1 /);
  });

  it('limits.maxAuthFailures: one failure leaves AUTH open under 3, and blocks it (454) after a reload to 1', async () => {
    const relay = (max: number): Record<string, unknown> => ({ limits: { maxAuthFailures: max }, relay: { users: [ALICE], allowInsecureAuth: true } });
    const t = await startReloadable(cleanup, 'auth-failures', relay(3));
    const s = await openSession(cleanup, t.port);
    expect((await s.command(`AUTH PLAIN ${plainAuth(ALICE.username, 'wrong')}`)).code).toBe(535);
    expect((await s.command(`AUTH PLAIN ${plainAuth(ALICE.username, ALICE.password)}`)).code).toBe(235);
    t.reload(relay(1));
    expect(await auth(t.port, ALICE)).toBe(454);
  });

  it('relay.users: after a reload from [alice] to [bob], bob can AUTH and alice cannot', async () => {
    const users = (list: unknown[]): Record<string, unknown> => ({ relay: { users: list, allowInsecureAuth: true } });
    const t = await startReloadable(cleanup, 'users', users([ALICE]));
    expect([await auth(t.port, ALICE), await auth(t.port, BOB)]).toEqual([235, 535]);
    t.reload(users([BOB]));
    expect([await auth(t.port, ALICE), await auth(t.port, BOB)]).toEqual([535, 235]);
  });

  it('tls.key / tls.cert: a renewed certificate (same paths) and then one at new paths is what new STARTTLS sessions get', async () => {
    const [first, renewed, moved] = ['tls-a', 'tls-b', 'tls-c'].map((label) => makeCertificate(cleanup.tempDir(`reload-${label}`)));
    if (!first || !renewed || !moved) throw new Error('three certificates');
    const fingerprint = (pem: Buffer): string => new X509Certificate(pem).fingerprint256;
    const tls = (cert: typeof first): Record<string, unknown> => ({ tls: { key: cert.keyPath, cert: cert.certPath } });
    const t = await startReloadable(cleanup, 'tls', tls(first));
    const served = async (): Promise<string | null> => {
      const s = await openSession(cleanup, t.port);
      expect((await s.startTls()).code).toBe(220);
      expect((await s.command('EHLO client.test')).code).toBe(250);
      return s.peerFingerprint256;
    };
    expect(await served()).toBe(fingerprint(first.cert));

    // Renewal in place: the config is unchanged, the files are re-read.
    copyFileSync(renewed.keyPath, first.keyPath);
    copyFileSync(renewed.certPath, first.certPath);
    expect(t.reload(tls(first))).toEqual([]);
    expect(await served()).toBe(fingerprint(renewed.cert));

    expect(t.reload(tls(moved))).toEqual([]);
    expect(await served()).toBe(fingerprint(moved.cert));
  });
});
