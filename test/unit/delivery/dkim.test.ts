/**
 * The DKIM signer (src/delivery/dkim.ts) against an independent verifier (mailauth's
 * dkimVerify with TXT answers from the test's own public keys), and the records
 * `dkimRecord` derives for publishing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { readDkimKey } from '../../../src/config/dkim-key.js';
import type { DkimKeyConfig } from '../../../src/config/types.js';
import { createDkimSigner, dkimRecord, fromDomain } from '../../../src/delivery/dkim.js';
import { algorithm, canonicalization, dkimTxt, signedFields, verifyDkim, writeDkimKey, type TestKey } from '../../helpers/dkim.js';

const dir = mkdtempSync(join(tmpdir(), 'onward-dkim-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rsa = writeDkimKey(dir, 'rsa');
const ed = writeDkimKey(dir, 'ed25519');

function keyConfig(domain: string, selector: string, key: TestKey): DkimKeyConfig {
  const read = readDkimKey(key.path);
  if (!read.ok) throw new Error(read.problem);
  return { domain, selector, keyPath: key.path, privateKeyPem: read.pem, algorithm: read.algorithm };
}

const KEYS = [keyConfig('example.com', 's2026', rsa), keyConfig('example.org', 'ed1', ed)];
const TXT = new Map([
  ['s2026._domainkey.example.com', dkimTxt(rsa.publicKey)],
  ['ed1._domainkey.example.org', dkimTxt(ed.publicKey)],
]);

function message(from: string, extra: readonly string[] = []): Buffer {
  return Buffer.from(
    [
      'Received: from client (client [192.0.2.7])',
      '\tby relay.test; Tue, 02 Jan 2024 03:04:06 +0000',
      `From: =?UTF-8?Q?Ren=C3=A9?= <${from}>`,
      'To: Bob <bob@example.net>,',
      '  Carol <carol@example.net>',
      'Subject: a subject that is folded',
      '   over two lines',
      'Date: Tue, 02 Jan 2024 03:04:05 +0000',
      'Message-ID: <m1@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      'X-Mailer: not signed',
      ...extra,
      '',
      'Grüße, ünïcödé body  ',
      'with trailing space and a tab\t',
      '',
      '',
    ].join('\r\n'),
    'utf8',
  );
}

describe('DKIM signer', () => {
  const sign = createDkimSigner(KEYS);

  it('signs with an RSA key as rsa-sha256, relaxed/relaxed, and mailauth verifies it', async () => {
    const original = message('rene@example.com');
    const signed = await sign(original);
    expect(signed.subarray(signed.length - original.length).equals(original)).toBe(true);
    const [result, ...others] = (await verifyDkim(signed, TXT)).results;
    expect(others).toEqual([]);
    expect(result?.status.result).toBe('pass');
    expect(result?.signingDomain).toBe('example.com');
    expect(result?.selector).toBe('s2026');
    expect(algorithm(result)).toBe('rsa-sha256');
    expect(canonicalization(result)).toBe('relaxed/relaxed');
  });

  it('signs with an Ed25519 key as ed25519-sha256', async () => {
    const [result] = (await verifyDkim(await sign(message('rene@example.org')), TXT)).results;
    expect(result?.status.result).toBe('pass');
    expect(algorithm(result)).toBe('ed25519-sha256');
    expect(result?.signingDomain).toBe('example.org');
  });

  it('signs the listed fields and the Content-* ones, with From oversigned', async () => {
    const signed = await sign(message('rene@example.com', ['Reply-To: r@example.com', 'Cc: c@example.net', 'Content-Language: de']));
    expect(signedFields(signed).sort()).toEqual(
      ['cc', 'content-language', 'content-transfer-encoding', 'content-type', 'date', 'from', 'from', 'message-id', 'mime-version', 'reply-to', 'subject', 'to'].sort(),
    );
  });

  it('fails verification when a From field is added or a signed field changes after signing', async () => {
    const signed = await sign(message('rene@example.com'));
    const addedFrom = Buffer.concat([Buffer.from('From: mallory@example.com\r\n'), signed]);
    expect((await verifyDkim(addedFrom, TXT)).results[0]?.status.result).toBe('fail');
    const changed = Buffer.from(signed.toString('latin1').replace('Subject: a subject', 'Subject: b subject'), 'latin1');
    expect((await verifyDkim(changed, TXT)).results[0]?.status.result).toBe('fail');
    // An unsigned field may change.
    const unsigned = Buffer.from(signed.toString('latin1').replace('X-Mailer: not signed', 'X-Mailer: changed'), 'latin1');
    expect((await verifyDkim(unsigned, TXT)).results[0]?.status.result).toBe('pass');
  });

  it('uses the closest parent domain key for a subdomain', async () => {
    const [result] = (await verifyDkim(await sign(message('news@mail.example.com')), TXT)).results;
    expect(result?.status.result).toBe('pass');
    expect(result?.signingDomain).toBe('example.com');
  });

  it('passes a message whose From: domain has no key through unchanged', async () => {
    const original = message('someone@example.net');
    expect((await sign(original)).equals(original)).toBe(true);
    const notParent = message('someone@notexample.com');
    expect((await sign(notParent)).equals(notParent)).toBe(true);
    const noFrom = Buffer.from('To: a@example.com\r\n\r\nbody\r\n');
    expect((await sign(noFrom)).equals(noFrom)).toBe(true);
  });

  it('with no keys, is the identity', async () => {
    const original = message('rene@example.com');
    expect(await createDkimSigner([])(original)).toBe(original);
  });

  it('reads the From: domain through display names, groups, case and IDNs', () => {
    const from = (value: string) => fromDomain(Buffer.from(`Subject: x\r\nFrom: ${value}\r\n\r\n`, 'utf8'));
    expect(from('"Doe, Jane" <Jane@Example.COM>')).toBe('example.com');
    expect(from('team: a@example.org, b@example.com;')).toBe('example.org');
    expect(from('x@bücher.example')).toBe('xn--bcher-kva.example');
    expect(from('undisclosed')).toBeNull();
  });
});

describe('dkimRecord', () => {
  it('publishes p= as the SPKI for RSA and the raw 32 bytes for Ed25519 (RFC 8463)', () => {
    const [r, e] = KEYS.map(dkimRecord);
    expect(r).toEqual({ name: 's2026._domainkey.example.com', domain: 'example.com', selector: 's2026', algorithm: 'rsa-sha256', value: dkimTxt(rsa.publicKey) });
    expect(e?.name).toBe('ed1._domainkey.example.org');
    expect(e?.value).toBe(dkimTxt(ed.publicKey));
    expect(Buffer.from(e?.value.split('p=')[1] ?? '', 'base64')).toHaveLength(32);
  });
});
