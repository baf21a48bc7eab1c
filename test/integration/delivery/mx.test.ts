/**
 * mx targets end to end over real sockets, nothing leaving the machine: a DNS server on
 * 127.0.0.1 serves the zone, SMTP sinks listen on 127.0.0.2, 127.0.0.3, … (all loopback on
 * Linux) on one shared port, which is the target's `port`. DSNs go through an smtp target
 * to a DSN sink on 127.0.0.1, where their Status and Remote-MTA are read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { freePort, useCleanup, waitForValue } from '../../helpers/common.js';
import { startDeliveryRelay, type DeliveryRelay } from '../../helpers/delivery-relay.js';
import { algorithm, dkimTxt, writeDkimKey } from '../../helpers/dkim.js';
import { resolverFor, startDnsServer, type DnsServer, type DnsZone } from '../../helpers/dns-server.js';
import { makeCertificate } from '../../helpers/production.js';
import { startSmtpSink, type SmtpSink, type SmtpSinkOptions } from '../../helpers/smtp-sink.js';

const dir = mkdtempSync(join(tmpdir(), 'onward-mx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function message(opts: { from?: string; to: string; subject: string; body?: string }): Buffer {
  return Buffer.from(
    [
      `From: Sender <${opts.from ?? 'sender@client.test'}>`,
      `To: ${opts.to}`,
      `Subject: ${opts.subject}`,
      'Date: Tue, 02 Jan 2024 03:04:05 +0000',
      `Message-ID: <${opts.subject.replace(/\W/g, '')}.${Date.now()}.${Math.random()}@client.test>`,
      '',
      opts.body ?? 'hello',
      '',
    ].join('\r\n'),
  );
}

/** A DSN's per-recipient fields (Status, Remote-MTA, ...) for `address`. */
function dsnFields(raw: Buffer, address: string): Record<string, string> {
  const text = raw.toString('utf8');
  const block = text.split(/\r\n\r\n/).find((b) => b.includes(`Final-Recipient: rfc822; ${address}`)) ?? '';
  return Object.fromEntries(
    block
      .split('\r\n')
      .map((l) => /^([A-Za-z-]+): (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] ?? '', m[2] ?? '']),
  );
}

describe('mx target', () => {
  const defer = useCleanup();

  /** Sinks on each host, all on one port (retried with another port if one is taken). */
  async function sinksOnOnePort(hosts: Record<string, SmtpSinkOptions>): Promise<{ port: number; sinks: Record<string, SmtpSink> }> {
    for (let tries = 0; ; tries++) {
      const port = await freePort();
      const sinks: Record<string, SmtpSink> = {};
      try {
        for (const [host, options] of Object.entries(hosts)) sinks[host] = await startSmtpSink({ ...options, host, port });
        for (const s of Object.values(sinks)) defer(() => s.close());
        return { port, sinks };
      } catch (err) {
        await Promise.all(Object.values(sinks).map((s) => s.close()));
        if (tries > 5) throw err;
      }
    }
  }

  async function relay(dns: DnsServer, port: number, mx: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<{ t: DeliveryRelay; dsn: SmtpSink }> {
    const dsn = await startSmtpSink();
    defer(() => dsn.close());
    const t = await startDeliveryRelay({
      hostname: 'relay.test',
      retry: { schedule: ['300ms'], jitter: 0 },
      targets: {
        internet: { type: 'mx', port, resolver: [dns.address], timeout: '2s', circuit: { failures: 1000 }, ...mx },
        dsnsink: { type: 'smtp', host: '127.0.0.1', port: dsn.port },
      },
      routes: [{ match: '*', target: 'internet' }],
      bounces: { from: 'MAILER-DAEMON@relay.test', via: 'dsnsink' },
      ...extra,
    });
    defer(() => t.close());
    return { t, dsn };
  }

  async function dns(zone: DnsZone): Promise<DnsServer> {
    const server = await startDnsServer(zone, { ttl: 1 });
    defer(() => server.close());
    return server;
  }

  it('delivers per domain: a backup MX when the preferred refuses or says 421, the A record without MX; null MX bounces 5.1.10, a refused RCPT 5.x with Remote-MTA', async () => {
    const { port, sinks } = await sinksOnOnePort({
      '127.0.0.3': {},
      '127.0.0.4': {},
      '127.0.0.5': { onConnect: () => ({ code: 421, message: '4.7.0 too busy, try later' }) },
      '127.0.0.6': {},
      '127.0.0.7': { onRcpt: () => ({ code: 550, message: '5.1.1 no such user here' }) },
    });
    const server = await dns({
      // 127.0.0.2: nothing listens (connection refused)
      'two.test': { MX: [{ preference: 20, exchange: 'mx2.two.test' }, { preference: 10, exchange: 'mx1.two.test' }] },
      'mx1.two.test': { A: ['127.0.0.2'] },
      'mx2.two.test': { A: ['127.0.0.3'] },
      'aonly.test': { A: ['127.0.0.4'] },
      'busy.test': { MX: [{ preference: 5, exchange: 'mx1.busy.test' }, { preference: 50, exchange: 'mx2.busy.test' }] },
      'mx1.busy.test': { A: ['127.0.0.5'] },
      'mx2.busy.test': { A: ['127.0.0.6'] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      'reject.test': { MX: [{ preference: 10, exchange: 'mx.reject.test' }] },
      'mx.reject.test': { A: ['127.0.0.7'] },
    });
    const { t, dsn } = await relay(server, port);
    const to = ['a@two.test', 'b@AOnly.test', 'c@busy.test', 'd@nullmx.test', 'e@reject.test'];
    const queueId = await t.send({ from: 'sender@client.test', to }, message({ to: 'many', subject: 'three domains' }));
    const deliveries = await t.waitForDeliveries(queueId, (ds) => ds.every((d) => d.state === 'delivered' || d.state === 'failed'));
    // One delivery per domain (lower-cased).
    expect(deliveries.map((d) => d.domain).sort()).toEqual(['aonly.test', 'busy.test', 'nullmx.test', 'reject.test', 'two.test']);
    const byDomain = new Map(deliveries.map((d) => [d.domain, d]));
    expect(byDomain.get('two.test')?.state).toBe('delivered');
    expect(byDomain.get('aonly.test')?.state).toBe('delivered');
    expect(byDomain.get('busy.test')?.state).toBe('delivered');
    expect(byDomain.get('nullmx.test')?.state).toBe('failed');
    expect(byDomain.get('reject.test')?.state).toBe('failed');
    expect(sinks['127.0.0.3']?.messages.map((m) => m.envelope.to)).toEqual([['a@two.test']]);
    expect(sinks['127.0.0.4']?.messages.map((m) => m.envelope.to)).toEqual([['b@aonly.test']]);
    expect(sinks['127.0.0.6']?.messages.map((m) => m.envelope.to)).toEqual([['c@busy.test']]);
    expect(sinks['127.0.0.5']?.messages).toHaveLength(0);

    // One DSN per failed delivery (each domain is its own delivery).
    const reports = await dsn.waitFor(2);
    const reportFor = (address: string): Buffer => {
      const found = reports.find((r) => r.raw.toString('utf8').includes(`Final-Recipient: rfc822; ${address}`));
      if (!found) throw new Error(`no DSN for ${address}`);
      expect(found.envelope.to).toEqual(['sender@client.test']);
      return found.raw;
    };
    expect(dsnFields(reportFor('d@nullmx.test'), 'd@nullmx.test')['Status']).toBe('5.1.10');
    expect(dsnFields(reportFor('d@nullmx.test'), 'd@nullmx.test')['Remote-MTA']).toBeUndefined();
    const rejected = dsnFields(reportFor('e@reject.test'), 'e@reject.test');
    expect(rejected['Status']).toBe('5.1.1');
    expect(rejected['Remote-MTA']).toBe('dns; mx.reject.test');
    expect(rejected['Diagnostic-Code']).toMatch(/^smtp; 550 5\.1\.1/);
  });

  it('bounces a domain that does not exist with 5.1.2', async () => {
    const { port } = await sinksOnOnePort({ '127.0.0.3': {} });
    const server = await dns({});
    const { t, dsn } = await relay(server, port);
    const queueId = await t.send({ from: 'sender@client.test', to: ['x@nowhere.test'] }, message({ to: 'x@nowhere.test', subject: 'nxdomain' }));
    await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'failed');
    const [report] = await dsn.waitFor(1);
    if (!report) throw new Error('no DSN');
    expect(dsnFields(report.raw, 'x@nowhere.test')['Status']).toBe('5.1.2');
  });

  it('defers on SERVFAIL and delivers once DNS answers', async () => {
    const { port, sinks } = await sinksOnOnePort({ '127.0.0.3': {} });
    const server = await dns({ 'flaky.test': { MX: [{ preference: 10, exchange: 'mx.flaky.test' }] }, 'mx.flaky.test': { A: ['127.0.0.3'] } });
    server.servfail('flaky.test');
    const { t } = await relay(server, port);
    const queueId = await t.send({ from: 'sender@client.test', to: ['y@flaky.test'] }, message({ to: 'y@flaky.test', subject: 'servfail' }));
    const [deferred] = await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'deferred');
    expect(deferred?.recipients[0]?.lastError).toMatch(/ESERVFAIL/);
    expect(sinks['127.0.0.3']?.messages).toHaveLength(0);
    server.servfail('flaky.test', false);
    await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'delivered');
    expect(sinks['127.0.0.3']?.messages.map((m) => m.envelope.to)).toEqual([['y@flaky.test']]);
  });

  it("keeps a domain whose hosts answer 421 deferred while another domain's mail flows", async () => {
    const { port, sinks } = await sinksOnOnePort({
      '127.0.0.3': {},
      '127.0.0.4': { onConnect: () => ({ code: 421, message: '4.3.2 not now' }) },
    });
    const server = await dns({ 'good.test': { A: ['127.0.0.3'] }, 'bad.test': { A: ['127.0.0.4'] } });
    const { t } = await relay(server, port, { concurrencyPerDomain: 4, circuit: { failures: 3, probe: '30s' } });
    const bad: string[] = [];
    for (let i = 0; i < 20; i++) bad.push(await t.send({ from: 'sender@client.test', to: [`u${i}@bad.test`] }, message({ to: 'bad', subject: `bad ${i}` })));
    const good: Promise<string>[] = [];
    for (let i = 0; i < 200; i++) good.push(t.send({ from: 'sender@client.test', to: [`u${i}@good.test`] }, message({ to: 'good', subject: `good ${i}` })));
    await Promise.all(good);
    await sinks['127.0.0.3']?.waitFor(200, 20_000);
    for (const id of bad) {
      const ds = await t.relay.spool.getDeliveries(id);
      expect(ds[0]?.state === 'deferred' || ds[0]?.state === 'queued').toBe(true);
    }
    expect(sinks['127.0.0.4']?.messages).toHaveLength(0);
    const stats = await t.relay.spool.stats();
    expect(stats.states.delivered).toBeGreaterThanOrEqual(200);
  }, 60_000);

  it('uses STARTTLS when offered; tls: required defers a host without it', async () => {
    const cert = makeCertificate(dir);
    const { port, sinks } = await sinksOnOnePort({ '127.0.0.3': { tls: { key: cert.key, cert: cert.cert } }, '127.0.0.4': {} });
    const server = await dns({ 'tls.test': { A: ['127.0.0.3'] }, 'plain.test': { A: ['127.0.0.4'] } });
    const { t } = await relay(server, port);
    const q1 = await t.send({ from: 'sender@client.test', to: ['a@tls.test', 'b@plain.test'] }, message({ to: 'x', subject: 'tls' }));
    await t.waitForDeliveries(q1, (ds) => ds.every((d) => d.state === 'delivered'));
    expect(sinks['127.0.0.3']?.messages[0]?.secure).toBe(true);
    expect(sinks['127.0.0.4']?.messages[0]?.secure).toBe(false);

    const { t: strict } = await relay(server, port, { tls: 'required' });
    const q2 = await strict.send({ from: 'sender@client.test', to: ['c@tls.test', 'd@plain.test'] }, message({ to: 'x', subject: 'tls required' }));
    const ds = await strict.waitForDeliveries(q2, (d) => d.some((x) => x.state === 'delivered') && d.some((x) => x.state === 'deferred'));
    expect(ds.find((d) => d.domain === 'tls.test')?.state).toBe('delivered');
    expect(ds.find((d) => d.domain === 'plain.test')?.state).toBe('deferred');
    expect(sinks['127.0.0.3']?.messages.map((m) => m.secure)).toEqual([true, true]);
    expect(sinks['127.0.0.4']?.messages).toHaveLength(1);
  });

  it('DKIM-signs on the way out: rsa-sha256 and ed25519-sha256 verified against the DNS server, a From: domain without a key unsigned', async () => {
    const rsa = writeDkimKey(dir, 'rsa');
    const ed = writeDkimKey(dir, 'ed25519');
    const { port, sinks } = await sinksOnOnePort({ '127.0.0.3': {} });
    const server = await dns({
      'dest.test': { MX: [{ preference: 10, exchange: 'mx.dest.test' }] },
      'mx.dest.test': { A: ['127.0.0.3'] },
      's2026._domainkey.example.com': { TXT: [dkimTxt(rsa.publicKey)] },
      'ed2026._domainkey.example.org': { TXT: [dkimTxt(ed.publicKey)] },
    });
    const { t } = await relay(server, port, {
      dkim: [
        { domain: 'example.com', selector: 's2026', privateKey: rsa.path },
        { domain: 'example.org', selector: 'ed2026', privateKey: ed.path },
      ],
    });
    const lookup = resolverFor(server);
    const resolver = (name: string, rrtype: string): Promise<string[] | string[][]> => lookup.resolve(name, rrtype) as Promise<string[] | string[][]>;
    const body = ['Grüße aus Köln — ünïcödé, 8-bit on the wire.  ', '.a line starting with a dot'].join('\r\n');
    const cases = [
      { from: 'juergen@example.com', algo: 'rsa-sha256', domain: 'example.com' },
      { from: 'news@mail.example.org', algo: 'ed25519-sha256', domain: 'example.org' },
      { from: 'someone@unsigned.test', algo: null, domain: null },
    ];
    for (const [i, c] of cases.entries()) {
      const raw = Buffer.concat([
        Buffer.from(`Subject: folded subject ${i}\r\n  across two lines\r\nTo: Bob <bob@dest.test>,\r\n\tCarol <carol@dest.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n`),
        message({ from: c.from, to: 'bob@dest.test', subject: `dkim ${i}`, body }),
      ]);
      const queueId = await t.send({ from: c.from, to: ['bob@dest.test', 'carol@dest.test'] }, raw);
      await t.waitForDeliveries(queueId, (ds) => ds.every((d) => d.state === 'delivered'));
      const received = (await sinks['127.0.0.3']?.waitFor(i + 1))?.[i]?.raw;
      if (!received) throw new Error('nothing received');
      if (c.algo === null) {
        expect(received.toString('latin1')).not.toMatch(/DKIM-Signature/i);
        continue;
      }
      const result = await dkimVerify(received, { resolver });
      expect(result.results).toHaveLength(1);
      expect(result.results[0]?.status.result).toBe('pass');
      expect(result.results[0]?.signingDomain).toBe(c.domain);
      expect(algorithm(result.results[0])).toBe(c.algo);
    }
  });

  it('lists and retries an mx delivery by target, its domain shown', async () => {
    const { port } = await sinksOnOnePort({ '127.0.0.4': { onConnect: () => ({ code: 421, message: '4.3.2 not now' }) } });
    const server = await dns({ 'later.test': { A: ['127.0.0.4'] } });
    const { t } = await relay(server, port, {}, { retry: { schedule: ['1h'], jitter: 0 } });
    const queueId = await t.send({ from: 'sender@client.test', to: ['z@later.test'] }, message({ to: 'z@later.test', subject: 'later' }));
    await t.waitForDeliveries(queueId, (ds) => ds[0]?.state === 'deferred');
    const lanes = await t.relay.spool.lanes();
    expect(lanes).toContain('internet@later.test');
    await waitForValue(() => t.relay.spool.getDeliveries(queueId), (ds) => ds[0]?.attemptCount === 1);
  });
});
