/**
 * TLS on the SMTP listeners (SPEC sections 2 and 3): STARTTLS on the plain listener,
 * TLS from the first byte on an `implicitTls` listener, both with a self-signed
 * certificate made by openssl for this test; TLS 1.2 or newer only; AUTH offered only
 * once the session is encrypted (unless `relay.allowInsecureAuth`).
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { outboxRoute, useTeardown } from '../../helpers/common.js';
import {
  SmtpWire,
  ehloKeywords,
  makeCertificate,
  messageText,
  openWire,
  plainAuth,
  queueIdOf,
  startInProcess,
  transaction,
  type Certificate,
  type InProcessRelay,
} from '../../helpers/production.js';

const USER = 'app';
const PASSWORD = 'tls-test-password';
/** A client that can speak TLS 1.0/1.1 at most (OpenSSL 3 needs SECLEVEL=0 for that). */
const OLD_CLIENT: tls.ConnectionOptions = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };

describe('TLS on the SMTP listeners', () => {
  const cleanup = useTeardown();
  let cert: Certificate;
  let relay: InProcessRelay;
  let plainPort: number;
  let tlsPort: number;

  beforeAll(async () => {
    const dir = cleanup.tempDir('prod-tls');
    cert = makeCertificate(dir);
    relay = await startInProcess(dir, {
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, implicitTls: true },
      ],
      tls: { key: cert.keyPath, cert: cert.certPath },
      relay: { allowNetworks: ['10.0.0.0/8'], users: [{ username: USER, password: PASSWORD }] },
      limits: { maxAuthFailures: 100 },
      ...outboxRoute(dir),
    });
    cleanup.add(() => relay.close());
    [plainPort = 0, tlsPort = 0] = relay.ports;
  });

  /** A session on the plain listener, or with `implicitTls` on the TLS one, greeted with 220. */
  async function connect(implicitTls?: tls.ConnectionOptions): Promise<SmtpWire> {
    const wire = await openWire(cleanup, implicitTls ? tlsPort : plainPort, implicitTls ? { implicitTls } : {});
    expect((await wire.read()).code).toBe(220);
    return wire;
  }
  const connectPlain = (): Promise<SmtpWire> => connect();
  const connectImplicit = (): Promise<SmtpWire> => connect({});

  it('upgrades a plain session with STARTTLS to TLS 1.2 or newer using the configured certificate', async () => {
    const wire = await connectPlain();
    const ehlo = await wire.command('EHLO client.test');
    expect(ehloKeywords(ehlo)).toContain('STARTTLS');

    expect((await wire.startTls()).code).toBe(220);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(wire.protocol);
    expect(wire.peerFingerprint256).toBe(new X509Certificate(cert.cert).fingerprint256);

    const again = await wire.command('EHLO client.test');
    expect(again.code).toBe(250);
    expect(ehloKeywords(again)).not.toContain('STARTTLS');
  });

  it('speaks TLS 1.2 or newer from the first byte on an implicitTls listener, with the configured certificate', async () => {
    const wire = await connectImplicit();
    expect(['TLSv1.2', 'TLSv1.3']).toContain(wire.protocol);
    expect(wire.peerFingerprint256).toBe(new X509Certificate(cert.cert).fingerprint256);
    expect((await wire.command('EHLO client.test')).code).toBe(250);
  });

  it('proves the TLS 1.1 test client works against a server that still allows TLS 1.1', async () => {
    // Control for the next test: without it, a refusal could be this client's own doing.
    const server = tls.createServer({ key: cert.key, cert: cert.cert, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
    cleanup.add(() => new Promise<void>((r) => server.close(() => r())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...OLD_CLIENT }, () => {
        resolve(s.getProtocol());
        s.destroy();
      });
      s.once('error', reject);
    });
    expect(protocol).toBe('TLSv1.1');
  });

  it('refuses a client that offers at most TLS 1.1, on the implicitTls listener and after STARTTLS', async () => {
    await expect(SmtpWire.connect(tlsPort, { implicitTls: OLD_CLIENT })).rejects.toThrow(/protocol|version|handshake|alert/i);

    const wire = await connectPlain();
    await wire.command('EHLO client.test');
    await expect(wire.startTls(OLD_CLIENT)).rejects.toThrow(/protocol|version|handshake|alert/i);
  });

  it('does not offer AUTH in EHLO before STARTTLS and offers AUTH PLAIN LOGIN after it', async () => {
    const wire = await connectPlain();
    const before = await wire.command('EHLO client.test');
    expect(before.code).toBe(250);
    expect(ehloKeywords(before).filter((k) => k.startsWith('AUTH'))).toEqual([]);

    await wire.startTls();
    const after = await wire.command('EHLO client.test');
    expect(ehloKeywords(after)).toContain('AUTH PLAIN LOGIN');
    expect((await wire.command(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)).code).toBe(235);
    const reply = await transaction(wire, 'app@client.test', ['someone@example.org'], messageText({ from: 'app@client.test', to: 'someone@example.org', subject: 'over STARTTLS' }));
    expect(reply.code).toBe(250);
    expect((await relay.relay.spool.getMessage(queueIdOf(reply)))?.client.user).toBe(USER);
  });

  it('refuses AUTH sent in plaintext before STARTTLS, even with the right password', async () => {
    const wire = await connectPlain();
    await wire.command('EHLO client.test');
    const auth = await wire.command(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`);
    expect(auth.code).toBeGreaterThanOrEqual(500);
    // Still unauthenticated: 127.0.0.1 is outside allowNetworks here.
    expect((await wire.command('MAIL FROM:<app@client.test>')).raw).toMatch(/^530 5\.7\.0 /);
  });

  it('offers AUTH PLAIN LOGIN at once on the implicitTls listener', async () => {
    const wire = await connectImplicit();
    const ehlo = await wire.command('EHLO client.test');
    expect(ehloKeywords(ehlo)).toContain('AUTH PLAIN LOGIN');
    expect(ehloKeywords(ehlo)).not.toContain('STARTTLS');
  });
});

describe('AUTH without TLS when relay.allowInsecureAuth is true', () => {
  const cleanup = useTeardown();

  it('offers AUTH PLAIN LOGIN in plaintext and accepts the right password', async () => {
    const dir = cleanup.tempDir('prod-insecure-auth');
    const relay = await startInProcess(dir, {
      relay: { allowNetworks: ['10.0.0.0/8'], users: [{ username: USER, password: PASSWORD }], allowInsecureAuth: true },
      ...outboxRoute(dir),
    });
    cleanup.add(() => relay.close());
    const wire = await openWire(cleanup, relay.ports[0] ?? 0);
    await wire.read();
    const ehlo = await wire.command('EHLO client.test');
    expect(ehloKeywords(ehlo)).toContain('AUTH PLAIN LOGIN');
    expect(wire.protocol).toBeNull();
    expect((await wire.command(`AUTH PLAIN ${plainAuth(USER, PASSWORD)}`)).code).toBe(235);
  });
});
