/**
 * `dkim` keys on smtp targets: read and checked at load, every problem naming the key's
 * config path and file.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { parseConfig } from '../../../src/config/index.js';
import { writeDkimKey } from '../../helpers/dkim.js';

const dir = mkdtempSync(join(tmpdir(), 'onward-dkim-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(dkim: string): ReturnType<typeof parseConfig> {
  return parseConfig(`targets:\n  upstream:\n    type: smtp\n    host: 127.0.0.1\n    dkim:\n${dkim}\nroutes: [{ match: "*", target: upstream }]\n`, {});
}

function problems(dkim: string): string {
  try {
    load(dkim);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
}

describe('config: dkim keys', () => {
  it('reads RSA and Ed25519 keys into the target, domains lower-cased and punycoded', () => {
    const rsa = writeDkimKey(dir, 'rsa');
    const ed = writeDkimKey(dir, 'ed25519');
    const config = load(
      `      - { domain: Example.COM., selector: s2026, privateKey: ${rsa.path} }\n      - { domain: bücher.example, selector: ed, privateKey: ${ed.path} }`,
    );
    const target = config.targets['upstream'];
    if (target?.type !== 'smtp') throw new Error('expected an smtp target');
    expect(target.dkim.map((k) => [k.domain, k.selector, k.algorithm, k.keyPath])).toEqual([
      ['example.com', 's2026', 'rsa-sha256', rsa.path],
      ['xn--bcher-kva.example', 'ed', 'ed25519-sha256', ed.path],
    ]);
    expect(target.dkim[0]?.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('defaults to no keys', () => {
    const config = parseConfig('targets: { up: { type: smtp, host: 127.0.0.1 } }\nroutes: [{ match: "*", target: up }]\n', {});
    expect(config.targets['up']).toMatchObject({ dkim: [] });
  });

  it('refuses a key file that cannot be read, naming the config path and the file', () => {
    const path = join(dir, 'missing.pem');
    expect(problems(`      - { domain: example.com, selector: s1, privateKey: ${path} }`)).toBe(
      `targets.upstream.dkim[0].privateKey: cannot read ${path}: ENOENT: no such file or directory, open '${path}'`,
    );
  });

  it('refuses a file that is not a private key (a public key, garbage)', () => {
    const publicPem = join(dir, 'public.pem');
    writeFileSync(publicPem, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a key\n');
    const text = problems(`      - { domain: example.com, selector: s1, privateKey: ${publicPem} }\n      - { domain: example.org, selector: s1, privateKey: ${garbage} }`);
    const lines = text.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^targets\\.upstream\\.dkim\\[0\\]\\.privateKey: cannot read ${publicPem}: not a PEM private key`));
    expect(lines[1]).toMatch(new RegExp(`^targets\\.upstream\\.dkim\\[1\\]\\.privateKey: cannot read ${garbage}: not a PEM private key`));
  });

  it('refuses key types DKIM cannot use and RSA keys under 1024 bits', () => {
    const ec = join(dir, 'ec.pem');
    writeFileSync(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const short = writeDkimKey(dir, 'rsa', 512);
    const text = problems(`      - { domain: example.com, selector: s1, privateKey: ${ec} }\n      - { domain: example.org, selector: s1, privateKey: ${short.path} }`);
    expect(text.split('\n')).toEqual([
      `targets.upstream.dkim[0].privateKey: ${ec}: unsupported key type ec; DKIM keys are RSA (at least 1024 bits) or Ed25519`,
      `targets.upstream.dkim[1].privateKey: ${short.path}: an RSA key of 512 bits is too short for DKIM (at least 1024, 2048 recommended)`,
    ]);
  });

  it('refuses two keys for one domain and a bad domain or selector', () => {
    const ed = writeDkimKey(dir, 'ed25519');
    expect(problems(`      - { domain: example.com, selector: a, privateKey: ${ed.path} }\n      - { domain: EXAMPLE.com, selector: b, privateKey: ${ed.path} }`)).toBe(
      'targets.upstream.dkim[1].domain: domain example.com already has a key (dkim[0]); rotate by replacing that entry\'s selector and key',
    );
    const text = problems(`      - { domain: "exa mple.com", selector: "s_1", privateKey: ${ed.path} }`);
    expect(text).toMatch(/^targets\.upstream\.dkim\[0\]\.domain: expected a domain name/m);
    expect(text).toMatch(/^targets\.upstream\.dkim\[0\]\.selector: expected a selector/m);
  });
});
