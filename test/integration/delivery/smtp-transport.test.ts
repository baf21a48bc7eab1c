import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import type { SmtpTargetConfig } from '../../../src/config/types.js';
import { createSmtpTransport } from '../../../src/delivery/smtp.js';
import type { DeliveryJob, Transport } from '../../../src/delivery/types.js';
import { closedPort, useCleanup } from '../../helpers/common.js';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../../helpers/smtp-sink.js';

const BODY = Buffer.from(
  [
    'Received: from client (client [192.0.2.7]) by relay.example.com; Tue, 02 Jan 2024 03:04:06 +0000',
    'From: Alice <alice@example.com>',
    'To: bob@example.org',
    'Subject: =?UTF-8?Q?caf=C3=A9?=',
    'Message-ID: <m1@example.com>',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Ünïcödé line',
    '.a line that starts with a dot',
    '..and one with two',
    '   trailing spaces   ',
    '',
  ].join('\r\n'),
  'utf8',
);

function job(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  return {
    deliveryId: 'Q1AAAAAAAA.2',
    queueId: 'Q1AAAAAAAA',
    attempt: 1,
    envelope: { from: 'alice@example.com', to: ['bob@example.org'] },
    body: BODY,
    receivedAt: new Date(),
    ...overrides,
  };
}

function target(port: number, overrides: Partial<SmtpTargetConfig> = {}): SmtpTargetConfig {
  return {
    type: 'smtp',
    name: 'upstream',
    host: '127.0.0.1',
    port,
    secure: 'none',
    tlsRejectUnauthorized: true,
    auth: null,
    pool: { maxConnections: 2, maxMessagesPerConnection: 10 },
    timeoutMs: 2000,
    concurrency: 4,
    circuit: { failures: 5, probeMs: 30000 },
    dkim: [],
    ...overrides,
  };
}

describe('SMTP transport', () => {
  const defer = useCleanup();
  const sinkAndTransport = async (
    sinkOptions: SmtpSinkOptions = {},
    overrides: Partial<SmtpTargetConfig> = {},
  ): Promise<{ sink: SmtpSink; transport: Transport }> => {
    const sink = await startSmtpSink(sinkOptions);
    defer(() => sink.close());
    const transport = createSmtpTransport(target(sink.port, overrides), { heloName: 'relay.test' });
    defer(() => transport.close());
    return { sink, transport };
  };

  it('delivers the stored bytes unchanged with our envelope', async () => {
    const { sink, transport } = await sinkAndTransport();
    const result = await transport.deliver(job({ envelope: { from: 'bounce+x@example.com', to: ['bob@example.org', 'carol@example.org'] } }));
    expect(result.recipients.map((r) => r.outcome)).toEqual(['ok', 'ok']);
    expect(result.recipients[0]?.reply.kind).toBe('smtp');
    expect(result.recipients[0]?.reply.code).toBe(250);
    expect(result.contention).toBe(false);
    const [message] = await sink.waitFor(1);
    expect(message?.envelope).toEqual({ from: 'bounce+x@example.com', to: ['bob@example.org', 'carol@example.org'] });
    expect(message?.raw.equals(BODY)).toBe(true);
  });

  it('reuses at most pool.maxConnections connections for many deliveries', async () => {
    const { sink, transport } = await sinkAndTransport();
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => transport.deliver(job({ deliveryId: `Q1.${String(n)}` }))));
    expect(results.flatMap((r) => r.recipients.map((x) => x.outcome))).toEqual(Array(6).fill('ok'));
    expect(await sink.waitFor(6)).toHaveLength(6);
    expect(sink.sessions).toBeLessThanOrEqual(2);
  });

  it('sends MAIL FROM:<> for the null sender', async () => {
    const seen: string[] = [];
    const { sink, transport } = await sinkAndTransport({ onMailFrom: (from) => void seen.push(from) });
    const result = await transport.deliver(job({ envelope: { from: '', to: ['bob@example.org'] } }));
    expect(result.recipients[0]?.outcome).toBe('ok');
    expect(seen).toEqual(['']);
    expect((await sink.waitFor(1))[0]?.envelope.from).toBe('');
  });

  it('fails a recipient refused with 550 5.1.1 and delivers to the one accepted', async () => {
    const { sink, transport } = await sinkAndTransport({
      onRcpt: (to) => (to === 'nobody@example.org' ? { code: 550, message: '5.1.1 <nobody@example.org>: user unknown' } : null),
    });
    const result = await transport.deliver(job({ envelope: { from: 'alice@example.com', to: ['nobody@example.org', 'bob@example.org'] } }));
    expect(result.recipients[0]).toEqual({
      address: 'nobody@example.org',
      outcome: 'fail',
      reply: { kind: 'smtp', code: 550, enhancedStatus: '5.1.1', text: '550 5.1.1 <nobody@example.org>: user unknown' },
    });
    expect(result.recipients[1]?.address).toBe('bob@example.org');
    expect(result.recipients[1]?.outcome).toBe('ok');
    expect(result.recipients[1]?.reply.code).toBe(250);
    expect((await sink.waitFor(1))[0]?.envelope.to).toEqual(['bob@example.org']);
  });

  it('classifies each recipient by its own reply when all are refused', async () => {
    const { sink, transport } = await sinkAndTransport({
      onRcpt: (to) =>
        to.startsWith('gone') ? { code: 550, message: '5.1.1 no such user' } : { code: 450, message: '4.2.1 try later' },
    });
    const result = await transport.deliver(job({ envelope: { from: 'alice@example.com', to: ['gone@Example.ORG', 'busy@example.org'] } }));
    expect(result.recipients.map((r) => [r.address, r.outcome, r.reply.enhancedStatus])).toEqual([
      ['gone@Example.ORG', 'fail', '5.1.1'],
      ['busy@example.org', 'error', '4.2.1'],
    ]);
    expect(sink.messages).toHaveLength(0);
  });

  it('defers every recipient when the end of DATA gets 451', async () => {
    const { transport } = await sinkAndTransport({ onData: () => ({ code: 451, message: '4.3.0 queue write error' }) });
    const result = await transport.deliver(job({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'carol@example.org'] } }));
    expect(result.recipients.map((r) => r.outcome)).toEqual(['error', 'error']);
    expect(result.recipients[0]?.reply).toEqual({ kind: 'smtp', code: 451, enhancedStatus: '4.3.0', text: '451 4.3.0 queue write error' });
    expect(result.contention).toBe(false);
  });

  it('fails every recipient when MAIL FROM is refused with 553', async () => {
    const { transport } = await sinkAndTransport({ onMailFrom: () => ({ code: 553, message: '5.7.1 sender rejected' }) });
    const result = await transport.deliver(job({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'carol@example.org'] } }));
    expect(result.recipients.map((r) => [r.outcome, r.reply.code, r.reply.enhancedStatus])).toEqual([
      ['fail', 553, '5.7.1'],
      ['fail', 553, '5.7.1'],
    ]);
  });

  it('logs in with the configured credentials', async () => {
    const { sink, transport } = await sinkAndTransport(
      { auth: { user: 'relay', pass: 'pw' } },
      { auth: { user: 'relay', pass: 'pw' } },
    );
    expect((await transport.deliver(job())).recipients[0]?.outcome).toBe('ok');
    expect((await sink.waitFor(1))[0]?.user).toBe('relay');
  });

  it('defers rather than bounces when the upstream refuses our credentials', async () => {
    const { transport } = await sinkAndTransport({ auth: { user: 'relay', pass: 'pw' } }, { auth: { user: 'relay', pass: 'wrong' } });
    const result = await transport.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply.code).toBe(535);
  });

  it('defers with contention when the connection is refused', async () => {
    const port = await closedPort();
    const transport = createSmtpTransport(target(port));
    defer(() => transport.close());
    const result = await transport.deliver(job());
    expect(result.recipients[0]).toEqual({
      address: 'bob@example.org',
      outcome: 'error',
      reply: { kind: 'smtp', code: null, enhancedStatus: null, text: `connect ECONNREFUSED 127.0.0.1:${String(port)}` },
    });
    expect(result.contention).toBe(true);
  });

  it('defers with contention when the server never greets', async () => {
    const { server, port } = await silentServer();
    defer(() => closeServer(server));
    const transport = createSmtpTransport(target(port, { timeoutMs: 200 }));
    defer(() => transport.close());
    const result = await transport.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply.code).toBeNull();
    expect(result.recipients[0]?.reply.text).toMatch(/^timeout after 200 ms/);
    expect(result.contention).toBe(true);
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('defers with contention when the server greets with 421', async () => {
    const { transport } = await sinkAndTransport({ onConnect: () => ({ code: 421, message: '4.7.0 too many connections' }) });
    const result = await transport.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(result.recipients[0]?.reply).toMatchObject({ kind: 'smtp', code: 421, enhancedStatus: '4.7.0' });
    expect(result.contention).toBe(true);
  });

  it('answers ERROR instead of hanging when used after close', async () => {
    const { sink, transport } = await sinkAndTransport();
    await transport.close();
    const result = await transport.deliver(job());
    expect(result.recipients[0]?.outcome).toBe('error');
    expect(sink.messages).toHaveLength(0);
  });

  describe('with TLS', () => {
    const pair = selfSignedPair();
    const itWithOpenssl = pair ? it : it.skip;

    itWithOpenssl('upgrades with STARTTLS when asked to', async () => {
      const { sink, transport } = await sinkAndTransport({ tls: pair ?? { key: '', cert: '' } }, { secure: 'starttls', tlsRejectUnauthorized: false });
      expect((await transport.deliver(job())).recipients[0]?.outcome).toBe('ok');
      expect((await sink.waitFor(1))[0]?.secure).toBe(true);
    });

    itWithOpenssl('defers without contention when the certificate is not trusted', async () => {
      const { sink, transport } = await sinkAndTransport({ tls: pair ?? { key: '', cert: '' } }, { secure: 'starttls' });
      const result = await transport.deliver(job());
      expect(result.recipients[0]?.outcome).toBe('error');
      expect(result.recipients[0]?.reply.text).toMatch(/certificate/i);
      expect(result.contention).toBe(false);
      expect(sink.messages).toHaveLength(0);
    });
  });
});

/** A PEM key and self-signed certificate from the openssl CLI, or null where it is missing. */
function selfSignedPair(): { key: string; cert: string } | null {
  try {
    const pem = execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', '-', '-out', '-', '-subj', '/CN=localhost', '-days', '1'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(pem)?.[0];
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
    return key && cert ? { key, cert } : null;
  } catch {
    return null;
  }
}

/** Accepts connections and says nothing: a greeting that never comes. */
async function silentServer(): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('close', () => {
    for (const socket of sockets) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.emit('close');
  });
}
