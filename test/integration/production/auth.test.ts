/**
 * AUTH and relay policy (SPEC sections 2 and 3): `relay.users` with a plaintext password
 * from `${ENV}` and bcrypt / scrypt / argon2 hashes, AUTH PLAIN and LOGIN over TLS, the
 * per-IP failure limit (454 4.7.0), and who may relay: outside `allowNetworks` an
 * unauthenticated client gets 530 (users configured) or 550 (no users), an authenticated
 * one gets 250 and the spool records the user.
 */
import { randomBytes } from 'node:crypto';
import { hash as argon2Hash } from '@node-rs/argon2';
import { beforeAll, describe, expect, it } from '@jest/globals';
import bcrypt from 'bcryptjs';
import { hashPassword } from '../../../src/smtp/auth.js';
import { outboxRoute, useTeardown } from '../../helpers/common.js';
import { b64, makeCertificate, messageText, openSession, openWire, plainAuth, queueIdOf, startInProcess, transaction, type InProcessRelay, type SmtpWire } from '../../helpers/production.js';

const PASSWORDS = {
  plain: 'env-supplied-Pa55',
  bcrypt: 'bcrypt-Pa55-word',
  scrypt: 'scrypt-Pa55-word',
  argon2: 'argon2-Pa55-word',
} as const;
type Kind = keyof typeof PASSWORDS;
const KINDS = Object.keys(PASSWORDS) as Kind[];

describe('AUTH against relay.users over TLS', () => {
  const cleanup = useTeardown();
  let relay: InProcessRelay;
  let tlsPort: number;

  beforeAll(async () => {
    const dir = cleanup.tempDir('prod-auth');
    const cert = makeCertificate(dir);
    const users = [
      { username: 'user-plain', password: '${ONWARD_TEST_PLAIN_PASSWORD}' },
      { username: 'user-bcrypt', password: bcrypt.hashSync(PASSWORDS.bcrypt, 8) },
      { username: 'user-scrypt', password: await hashPassword(PASSWORDS.scrypt, randomBytes(16)) },
      { username: 'user-argon2', password: await argon2Hash(PASSWORDS.argon2) },
    ];
    expect(users.map((u) => u.password.slice(0, 4))).toEqual(['${ON', '$2b$', '$scr', '$arg']);
    relay = await startInProcess(
      dir,
      {
        listen: [{ host: '127.0.0.1', port: 0, implicitTls: true }],
        tls: { key: cert.keyPath, cert: cert.certPath },
        relay: { allowNetworks: ['10.0.0.0/8'], users },
        limits: { maxAuthFailures: 100 },
        ...outboxRoute(dir),
      },
      { ONWARD_TEST_PLAIN_PASSWORD: PASSWORDS.plain },
    );
    cleanup.add(() => relay.close());
    tlsPort = relay.ports[0] ?? 0;
  });

  async function session(): Promise<SmtpWire> {
    const wire = await openWire(cleanup, tlsPort, { implicitTls: {} });
    expect((await wire.read()).code).toBe(220);
    expect((await wire.command('EHLO client.test')).code).toBe(250);
    return wire;
  }

  async function authLogin(wire: SmtpWire, user: string, pass: string): Promise<number> {
    const first = await wire.command('AUTH LOGIN');
    expect(first.code).toBe(334);
    const second = await wire.command(b64(user));
    expect(second.code).toBe(334);
    return (await wire.command(b64(pass))).code;
  }

  it.each(KINDS)('accepts AUTH PLAIN with the right password for a %s user and relays with 250', async (kind) => {
    const wire = await session();
    expect((await wire.command(`AUTH PLAIN ${plainAuth(`user-${kind}`, PASSWORDS[kind])}`)).raw).toMatch(/^235 /);
    const reply = await transaction(wire, 'app@client.test', ['to@example.org'], messageText({ from: 'app@client.test', to: 'to@example.org', subject: kind }));
    expect(reply.code).toBe(250);
    const stored = await relay.relay.spool.getMessage(queueIdOf(reply));
    expect(stored?.client.user).toBe(`user-${kind}`);
  });

  it.each(KINDS)('accepts AUTH LOGIN with the right password for a %s user', async (kind) => {
    const wire = await session();
    expect(await authLogin(wire, `user-${kind}`, PASSWORDS[kind])).toBe(235);
  });

  it.each(KINDS)('answers 535 5.7.8 to a wrong password for a %s user, and the session stays unauthenticated', async (kind) => {
    const wire = await session();
    expect((await wire.command(`AUTH PLAIN ${plainAuth(`user-${kind}`, `${PASSWORDS[kind]}x`)}`)).raw).toMatch(/^535 5\.7\.8 /);
    expect(await authLogin(wire, `user-${kind}`, 'wrong')).toBe(535);
    expect((await wire.command('MAIL FROM:<app@client.test>')).raw).toMatch(/^530 5\.7\.0 /);
  });

  it("refuses another user's password and an unknown username", async () => {
    const wire = await session();
    expect((await wire.command(`AUTH PLAIN ${plainAuth('user-bcrypt', PASSWORDS.argon2)}`)).code).toBe(535);
    expect((await wire.command(`AUTH PLAIN ${plainAuth('nobody', PASSWORDS.plain)}`)).code).toBe(535);
    // The literal `${ENV}` text is not the password: it was substituted at load time.
    expect((await wire.command(`AUTH PLAIN ${plainAuth('user-plain', '${ONWARD_TEST_PLAIN_PASSWORD}')}`)).code).toBe(535);
  });
});

describe('AUTH failure limit per client IP', () => {
  const cleanup = useTeardown();

  it('answers 454 4.7.0 after limits.maxAuthFailures failures from one IP, even to the right password and on a new connection', async () => {
    const dir = cleanup.tempDir('prod-auth-limit');
    const relay = await startInProcess(dir, {
      relay: { allowNetworks: ['10.0.0.0/8'], users: [{ username: 'app', password: 'right-password' }], allowInsecureAuth: true },
      limits: { maxAuthFailures: 3 },
      ...outboxRoute(dir),
    });
    cleanup.add(() => relay.close());
    const open = (): Promise<SmtpWire> => openSession(cleanup, relay.ports[0] ?? 0);

    const first = await open();
    // Control: the right password works before the limit is reached.
    expect((await first.command(`AUTH PLAIN ${plainAuth('app', 'right-password')}`)).code).toBe(235);

    const second = await open();
    for (let i = 0; i < 3; i++) expect((await second.command(`AUTH PLAIN ${plainAuth('app', `wrong-${String(i)}`)}`)).code).toBe(535);
    expect((await second.command(`AUTH PLAIN ${plainAuth('app', 'right-password')}`)).raw).toMatch(/^454 4\.7\.0 /);

    const third = await open();
    expect((await third.command(`AUTH PLAIN ${plainAuth('app', 'right-password')}`)).raw).toMatch(/^454 4\.7\.0 /);
    expect((await third.command('MAIL FROM:<app@client.test>')).code).toBe(530);
  });
});

describe('relay policy for a client outside relay.allowNetworks', () => {
  const cleanup = useTeardown();

  async function relayWith(users: { username: string; password: string }[]): Promise<InProcessRelay> {
    const dir = cleanup.tempDir('prod-policy');
    const relay = await startInProcess(dir, { relay: { allowNetworks: ['10.0.0.0/8'], users, allowInsecureAuth: true }, ...outboxRoute(dir) });
    cleanup.add(() => relay.close());
    return relay;
  }

  const open = (relay: InProcessRelay): Promise<SmtpWire> => openSession(cleanup, relay.ports[0] ?? 0);

  const message = messageText({ from: 'app@client.test', to: 'to@example.org', subject: 'policy' });

  it('answers 530 5.7.0 without AUTH when users are configured', async () => {
    const relay = await relayWith([{ username: 'app', password: 'pw-policy' }]);
    const wire = await open(relay);
    expect((await transaction(wire, 'app@client.test', ['to@example.org'], message)).raw).toMatch(/^530 5\.7\.0 /);
  });

  it('answers 550 5.7.1 when no users are configured', async () => {
    const relay = await relayWith([]);
    const wire = await open(relay);
    expect((await transaction(wire, 'app@client.test', ['to@example.org'], message)).raw).toMatch(/^550 5\.7\.1 /);
  });

  it('accepts with 250 after AUTH and records the user on the spooled message', async () => {
    const relay = await relayWith([{ username: 'app', password: 'pw-policy' }]);
    const wire = await open(relay);
    expect((await wire.command(`AUTH PLAIN ${plainAuth('app', 'pw-policy')}`)).code).toBe(235);
    const reply = await transaction(wire, 'app@client.test', ['to@example.org'], message);
    expect(reply.raw).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const stored = await relay.relay.spool.getMessage(queueIdOf(reply));
    expect(stored).toMatchObject({ sender: 'app@client.test', recipients: ['to@example.org'], client: { ip: '127.0.0.1', user: 'app' } });
  });
});
