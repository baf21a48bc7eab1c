/**
 * DKIM on an smtp target, end to end over real sockets: the relay takes a message over SMTP,
 * spools it, and delivers it signed to a real SMTP sink; mailauth's verifier checks the bytes
 * the sink received, its TXT lookups answered from the test's own public keys, or from what
 * `onward dkim-record` prints. The spool keeps the unsigned original.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config/index.js';
import { useCleanup } from '../../helpers/common.js';
import { deliveryConfigDoc, startDeliveryRelay, type DeliveryRelay } from '../../helpers/delivery-relay.js';
import { runCli } from '../../helpers/cli.js';
import { algorithm, dkimTxt, signedFields, verifyDkim, writeDkimKey, type TestKey } from '../../helpers/dkim.js';
import { startSmtpSink, type SmtpSink } from '../../helpers/smtp-sink.js';

const keysDir = mkdtempSync(join(tmpdir(), 'onward-dkim-keys-'));
afterAll(() => rmSync(keysDir, { recursive: true, force: true }));

/** A message with folded headers and an 8-bit UTF-8 body, From: `from`. */
function message(from: string, label: string): Buffer {
  return Buffer.from(
    [
      `From: =?UTF-8?Q?J=C3=BCrgen?= <${from}>`,
      'To: Bob <bob@dest.test>,',
      '\tCarol <carol@dest.test>',
      `Subject: ${label}: a subject folded`,
      '  across two lines',
      'Date: Tue, 02 Jan 2024 03:04:05 +0000',
      `Message-ID: <${label}.${Date.now()}@relay.test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße aus Köln — ünïcödé, 8-bit on the wire.  ',
      '.a line starting with a dot',
      '',
    ].join('\r\n'),
    'utf8',
  );
}

describe('DKIM signing on an smtp target', () => {
  const defer = useCleanup();

  /** Per queue id, the body the spool held while the sink was receiving that message. */
  const spooled = new Map<string, Buffer | null>();

  async function relayWithKeys(rsa: TestKey, ed: TestKey): Promise<{ t: DeliveryRelay; sink: SmtpSink; overrides: Record<string, unknown> }> {
    const sink = await startSmtpSink();
    defer(() => sink.close());
    const overrides = {
      targets: {
        upstream: {
          type: 'smtp',
          host: '127.0.0.1',
          port: sink.port,
          dkim: [
            { domain: 'example.com', selector: 's2026', privateKey: rsa.path },
            { domain: 'example.org', selector: 'ed2026', privateKey: ed.path },
          ],
        },
      },
      routes: [{ match: '*', target: 'upstream' }],
    };
    const t = await startDeliveryRelay(overrides);
    defer(() => t.close());
    // The body is gone once its last delivery is final: read it while the attempt is on the wire.
    sink.onData(async (m) => {
      const queueId = /\(onward\) with \S+ id (\S+?)[;\s]/.exec(m.raw.toString('latin1'))?.[1];
      if (queueId !== undefined) spooled.set(queueId, await t.relay.spool.getBody(queueId));
      return null;
    });
    return { t, sink, overrides };
  }

  async function deliver(t: DeliveryRelay, sink: SmtpSink, from: string, label: string): Promise<{ queueId: string; received: Buffer }> {
    const before = sink.messages.length;
    const queueId = await t.send({ from, to: ['bob@dest.test', 'carol@dest.test'] }, message(from, label));
    await t.waitForDeliveries(queueId, (ds) => ds.every((d) => d.state === 'delivered'));
    const received = (await sink.waitFor(before + 1))[before]?.raw;
    if (received === undefined) throw new Error('the sink got nothing');
    return { queueId, received };
  }

  it('signs rsa-sha256 and ed25519-sha256 by From: domain, leaves other domains unsigned, and spools the original', async () => {
    const rsa = writeDkimKey(keysDir, 'rsa');
    const ed = writeDkimKey(keysDir, 'ed25519');
    const { t, sink } = await relayWithKeys(rsa, ed);
    const txt = new Map([
      ['s2026._domainkey.example.com', dkimTxt(rsa.publicKey)],
      ['ed2026._domainkey.example.org', dkimTxt(ed.publicKey)],
    ]);

    const cases = [
      { from: 'juergen@example.com', domain: 'example.com', algo: 'rsa-sha256' },
      { from: 'news@mail.example.org', domain: 'example.org', algo: 'ed25519-sha256' },
    ];
    for (const c of cases) {
      const { queueId, received } = await deliver(t, sink, c.from, c.algo);
      expect(received.toString('latin1')).toMatch(/^DKIM-Signature: /);
      const results = (await verifyDkim(received, txt)).results;
      expect(results).toHaveLength(1);
      expect(results[0]?.status.result).toBe('pass');
      expect(results[0]?.signingDomain).toBe(c.domain);
      expect(algorithm(results[0])).toBe(c.algo);
      expect(signedFields(received).filter((f) => f === 'from')).toHaveLength(2);
      // The spool holds the bytes it received: the sink got exactly those with the signature in front.
      const stored = spooled.get(queueId);
      if (!stored) throw new Error('no spooled body');
      expect(stored.toString('latin1')).not.toMatch(/DKIM-Signature/i);
      expect(received.subarray(received.length - stored.length).equals(stored)).toBe(true);
      expect(received.subarray(0, received.length - stored.length).toString('latin1')).toMatch(/^DKIM-Signature: [^]*\r\n$/);
    }

    const { queueId, received } = await deliver(t, sink, 'someone@unsigned.test', 'unsigned');
    expect(received.toString('latin1')).not.toMatch(/DKIM-Signature/i);
    expect(received.equals(spooled.get(queueId) ?? Buffer.alloc(0))).toBe(true);
    expect((await verifyDkim(received, txt)).results[0]?.status.result).toBe('none');
  });

  it('signs with the key read again on reload (SIGHUP), and refuses a reload whose key is bad', async () => {
    const rsa = writeDkimKey(keysDir, 'rsa');
    const ed = writeDkimKey(keysDir, 'ed25519');
    const { t, sink, overrides } = await relayWithKeys(rsa, ed);
    const configPath = join(t.dir, 'onward.yaml');
    writeFileSync(configPath, stringify(deliveryConfigDoc(t.dir, overrides)));

    // A new key in the same file: the reload (the loader SIGHUP uses) reads it.
    const rotated = writeDkimKey(keysDir, 'ed25519');
    writeFileSync(ed.path, ''); // a broken key first: refused, the running config stays
    expect(() => loadConfig(configPath)).toThrow(`targets.upstream.dkim[1].privateKey: cannot read ${ed.path}: not a PEM private key`);
    copyFileSync(rotated.path, ed.path);
    expect(t.relay.reload(loadConfig(configPath))).toEqual([]);

    const { received } = await deliver(t, sink, 'a@example.org', 'rotated');
    const newTxt = new Map([['ed2026._domainkey.example.org', dkimTxt(rotated.publicKey)]]);
    expect((await verifyDkim(received, newTxt)).results[0]?.status.result).toBe('pass');
    const oldTxt = new Map([['ed2026._domainkey.example.org', dkimTxt(ed.publicKey)]]);
    expect((await verifyDkim(received, oldTxt)).results[0]?.status.result).toBe('fail');
  });

  it('`onward dkim-record` prints the records whose p= verifies the relay\'s signatures', async () => {
    const rsa = writeDkimKey(keysDir, 'rsa');
    const ed = writeDkimKey(keysDir, 'ed25519');
    const { t, sink, overrides } = await relayWithKeys(rsa, ed);
    const configPath = join(t.dir, 'onward.yaml');
    writeFileSync(configPath, stringify(deliveryConfigDoc(t.dir, overrides)));

    const json = await runCli(null, ['dkim-record', '--config', configPath, '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const records = JSON.parse(json.stdout) as { name: string; type: string; value: string; targets: string[] }[];
    expect(records.map((r) => [r.name, r.type, r.value.replace(/p=.*$/, 'p='), r.targets])).toEqual([
      ['s2026._domainkey.example.com', 'TXT', 'v=DKIM1; k=rsa; p=', ['upstream']],
      ['ed2026._domainkey.example.org', 'TXT', 'v=DKIM1; k=ed25519; p=', ['upstream']],
    ]);
    const txt = new Map(records.map((r) => [r.name, r.value]));
    for (const from of ['a@example.com', 'b@example.org']) {
      const { received } = await deliver(t, sink, from, 'record');
      expect((await verifyDkim(received, txt)).results[0]?.status.result).toBe('pass');
    }

    const human = await runCli(null, ['dkim-record', '--config', configPath]);
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+VALUE$/);
    expect(lines.slice(1)).toEqual(records.map((r) => expect.stringMatching(new RegExp(`^${r.name.replace(/\./g, '\\.')}\\s+TXT\\s+${r.value.replace(/[+/]/g, '\\$&')}$`)) as unknown));
  });
});
