/**
 * SIGHUP reload, key by key (SPEC section 6): each reloadable key takes effect for what
 * starts after the reload, shown on the real relay in this process (`relay.reload` is what
 * serve calls on SIGHUP); the keys that cannot be applied are returned for the
 * "needs a restart" log line (its child-process test is in reload.test.ts).
 */
import { describe, expect, it } from '@jest/globals';
import { sleep, useTeardown, type LogLine } from '../../helpers/common.js';
import { RawSmtpClient } from '../../helpers/relay.js';
import { ehloKeywords, makeCertificate, openSession, openWire, plainAuth, transaction } from '../../helpers/production.js';
import { startReloadable, type ReloadableRelay } from '../../helpers/reload.js';

const FROM = 'app@client.test';
const TO = 'user@a.test';
const USER = { username: 'app', password: 'app-Pa55-word' };

describe('reload applies each reloadable key', () => {
  const cleanup = useTeardown();

  const relayWith = (label: string, base: Record<string, unknown>, logs?: LogLine[]): Promise<ReloadableRelay> => startReloadable(cleanup, label, base, logs);

  it('relay.allowInsecureAuth: AUTH is advertised exactly when it is accepted, before and after the reload (never 538)', async () => {
    const dir = cleanup.tempDir('reload-cert');
    const cert = makeCertificate(dir);
    const t = await relayWith('insecure-auth', {
      tls: { key: cert.keyPath, cert: cert.certPath },
      relay: { allowNetworks: ['10.0.0.0/8'], users: [USER], allowInsecureAuth: false },
    });
    const before = await openWire(cleanup, t.port);
    await before.read();
    expect(ehloKeywords(await before.command('EHLO client.test')).some((k) => k.startsWith('AUTH'))).toBe(false);
    expect((await before.command(`AUTH PLAIN ${plainAuth(USER.username, USER.password)}`)).code).not.toBe(235);

    expect(t.reload({ relay: { allowNetworks: ['10.0.0.0/8'], users: [USER], allowInsecureAuth: true } })).toEqual([]);
    const after = await openWire(cleanup, t.port);
    await after.read();
    expect(ehloKeywords(await after.command('EHLO client.test'))).toContain('AUTH PLAIN LOGIN');
    expect((await after.command(`AUTH PLAIN ${plainAuth(USER.username, USER.password)}`)).code).toBe(235);

    // Back to false: a session that was offered AUTH keeps its offer; a new one is not offered it.
    const offered = await openWire(cleanup, t.port);
    await offered.read();
    expect(ehloKeywords(await offered.command('EHLO client.test'))).toContain('AUTH PLAIN LOGIN');
    t.reload({ relay: { allowNetworks: ['10.0.0.0/8'], users: [USER], allowInsecureAuth: false } });
    expect((await offered.command(`AUTH PLAIN ${plainAuth(USER.username, USER.password)}`)).code).toBe(235);
    const later = await openWire(cleanup, t.port);
    await later.read();
    expect(ehloKeywords(await later.command('EHLO client.test')).some((k) => k.startsWith('AUTH'))).toBe(false);
  });

  it('smtp.greetingDelay: a client talking 300 ms in is served before, and refused as an early talker after a reload to 5s', async () => {
    const t = await relayWith('greeting', { smtp: { greetingDelay: '0ms' } });
    const talk = async (): Promise<number> => {
      const c = await RawSmtpClient.connect(t.port);
      cleanup.add(() => c.close());
      await sleep(300); // the stimulus: when the client talks
      c.write('EHLO client.test\r\n');
      const first = await c.read(8000);
      return first.code === 220 ? (await c.read(8000)).code : first.code;
    };
    expect(await talk()).toBe(250);
    t.reload({ smtp: { greetingDelay: '5s' } });
    expect(await talk()).toBe(421);
  });

  it('smtp.bareLineEndings: a bare LF is refused before and queued after a reload to normalize', async () => {
    const t = await relayWith('bare', {});
    const send = async (): Promise<number> => {
      const s = await openSession(cleanup, t.port);
      return (await transaction(s, FROM, [TO], 'Subject: lf\r\n\r\none\ntwo\r\n')).code;
    };
    expect(await send()).toBe(550);
    t.reload({ smtp: { bareLineEndings: 'normalize' } });
    expect(await send()).toBe(250);
  });

  it('limits.maxRecipients and limits.maxMessageSize: the new limits answer and SIZE is advertised anew', async () => {
    const t = await relayWith('limits', { limits: { maxRecipients: 2, maxMessageSize: '1MB' } });
    const probe = async (): Promise<[string | undefined, number]> => {
      const s = await openWire(cleanup, t.port);
      await s.read();
      const size = ehloKeywords(await s.command('EHLO client.test')).find((k) => k.startsWith('SIZE'));
      await s.command(`MAIL FROM:<${FROM}>`);
      await s.command('RCPT TO:<a@a.test>');
      return [size, (await s.command('RCPT TO:<b@a.test>')).code];
    };
    expect(await probe()).toEqual(['SIZE 1048576', 250]);
    t.reload({ limits: { maxRecipients: 1, maxMessageSize: '2MB' } });
    expect(await probe()).toEqual(['SIZE 2097152', 452]);
  });

  it('relay.allowNetworks: a client that may relay is refused after its network is removed', async () => {
    const t = await relayWith('networks', {});
    const mail = async (): Promise<number> => (await (await openSession(cleanup, t.port)).command(`MAIL FROM:<${FROM}>`)).code;
    expect(await mail()).toBe(250);
    t.reload({ relay: { allowNetworks: ['10.0.0.0/8'] } });
    expect(await mail()).toBe(550);
  });

  it('shutdownGrace: close uses the reloaded value (a session in DATA finishes with 30s, where 0s would cut it off)', async () => {
    const t = await relayWith('grace', { shutdownGrace: '0s' });
    t.reload({ shutdownGrace: '30s' });
    const s = await openSession(cleanup, t.port);
    expect((await s.command(`MAIL FROM:<${FROM}>`)).code).toBe(250);
    expect((await s.command(`RCPT TO:<${TO}>`)).code).toBe(250);
    expect((await s.command('DATA')).code).toBe(354);
    s.write('Subject: grace\r\n\r\nfirst half\r\n');
    const closing = t.r.relay.close();
    s.write('second half\r\n.\r\n');
    expect((await s.read(10_000)).code).toBe(250);
    await closing;
  });

  it('log.level: after a reload to warn, info lines stop and warn lines still come', async () => {
    const logs: LogLine[] = [];
    const t = await relayWith('log-level', { relay: { allowNetworks: ['127.0.0.0/8'], users: [USER], allowInsecureAuth: true } }, logs);
    const sendAndFailAuth = async (): Promise<void> => {
      const s = await openSession(cleanup, t.port);
      expect((await transaction(s, FROM, [TO], 'Subject: level\r\n\r\nx\r\n')).code).toBe(250);
      expect((await s.command(`AUTH PLAIN ${plainAuth(USER.username, 'wrong')}`)).code).toBe(535);
    };
    await sendAndFailAuth();
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['message received', 'AUTH failed']));
    t.reload({ relay: { allowNetworks: ['127.0.0.0/8'], users: [USER], allowInsecureAuth: true }, log: { level: 'warn' } });
    const seen = logs.length;
    await sendAndFailAuth();
    // "AUTH failed" (warn) is written after the message's "message received" (info) would have been.
    const after = logs.slice(seen).map((l) => l.msg);
    expect(after).toContain('AUTH failed');
    expect(after.filter((m) => m !== 'AUTH failed')).toEqual([]);
  });

  it('returns the keys that need a restart: listen, hostname, spool, dedup, admin, and tls when it is turned on or off', async () => {
    const dir = cleanup.tempDir('reload-restart-cert');
    const cert = makeCertificate(dir);
    const t = await relayWith('restart', {});
    expect(
      t.reload({
        listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 }],
        hostname: 'other.test',
        spool: { maxQueued: 5 },
        dedup: { window: '1h' },
        admin: { host: '127.0.0.1', port: 0, token: 'secret-token' },
        tls: { key: cert.keyPath, cert: cert.certPath },
      }).sort(),
    ).toEqual(['admin', 'dedup', 'hostname', 'listen', 'spool', 'tls']);
    // Reloadable keys alone: nothing to restart.
    const u = await relayWith('no-restart', {});
    expect(u.reload({ limits: { maxErrors: 3 }, retry: { schedule: ['2s'] }, log: { level: 'warn' }, shutdownGrace: '5s' })).toEqual([]);
  });
});
