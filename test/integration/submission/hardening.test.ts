/**
 * HTTP submission against hostile or unlucky input (found by a review of the front door): a
 * reload may not strip the keys from a listener bound off loopback, a reload refused for its TLS
 * files changes nothing, a long run of newlines in an attachment cannot stall the process,
 * compressed bodies are refused clearly, and uploads share the front doors' memory budget.
 */
import { mkdirSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/index.js';
import { startTempRelay, testConfig } from '../../helpers/common.js';
import { makeCertificate } from '../../helpers/production.js';
import { call, postJson, postStreaming } from '../../helpers/submission.js';

const KEY = 'k-app1-0123456789abcdef';
const MESSAGE = { from: 'a@client.test', to: ['x@dest.test'], subject: 'hardening', text: 'hello' };

function doc(dir: string, submission: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return testConfig(dir, {
    submission,
    targets: { outbox: { type: 'file', path: `${dir}/outbox` } },
    routes: [{ match: '*@dest.test', target: 'outbox' }],
    ...extra,
  });
}

/** A JSON POST over HTTPS to the relay's self-signed listener; status and error code. */
function postHttps(port: number, body: unknown): Promise<{ status: number; code: string | null }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', rejectUnauthorized: false, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code: string } };
          resolve({ status: res.statusCode ?? 0, code: parsed.error?.code ?? null });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('HTTP submission hardening', () => {
  it('refuses a reload that would leave a listener bound off loopback without keys; the keys stay in force', async () => {
    // Bound to every interface (the case that needs keys); the test only talks to 127.0.0.1.
    const t = await startTempRelay('onward-submission-bound-', (dir) => doc(dir, { listen: { host: '0.0.0.0', port: 0 }, keys: [{ name: 'app1', key: KEY }] }));
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      expect((await postJson(port, MESSAGE)).status).toBe(401);
      for (const submission of [null, { listen: { host: '127.0.0.1', port }, keys: [] }]) {
        const next = parseConfig(stringify(doc(t.dir, submission)), {});
        expect(() => t.relay.reload(next)).toThrow(/submission\.keys: required while the submission listener is bound to 0\.0\.0\.0/);
        expect((await postJson(port, MESSAGE)).status).toBe(401);
      }
      expect((await postJson(port, MESSAGE, { key: KEY })).status).toBe(202);
    } finally {
      await t.close();
    }
  });

  it('a reload refused for its TLS files changes nothing: the old routes still apply', async () => {
    const t = await startTempRelay('onward-submission-tls-reload-', (dir) => {
      const cert = makeCertificate(dir);
      return doc(dir, { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] }, { tls: { key: cert.keyPath, cert: cert.certPath } });
    });
    try {
      const other = join(t.dir, 'other');
      mkdirSync(other);
      const mismatched = makeCertificate(other);
      const current = t.relay.config;
      const next = parseConfig(
        stringify(
          doc(t.dir, { listen: { host: '127.0.0.1', port: t.relay.submissionAddress?.port ?? 0 }, keys: [{ name: 'app1', key: KEY }] }, {
            tls: { key: mismatched.keyPath, cert: current.tls?.certPath },
            routes: [{ match: '*@new.test', target: 'outbox' }],
          }),
        ),
        {},
      );
      expect(() => t.relay.reload(next)).toThrow(/^tls: /);
      expect(t.relay.config).toBe(current);
      // The routes in force are still the old ones.
      const port = t.relay.submissionAddress?.port ?? 0;
      expect(await postHttps(port, { ...MESSAGE, to: ['x@dest.test'] })).toMatchObject({ status: 202 });
      expect(await postHttps(port, { ...MESSAGE, to: ['x@new.test'] })).toMatchObject({ status: 400, code: 'ONWARD_ERR_NO_ROUTE' });
    } finally {
      await t.close();
    }
  });

  it('answers an attachment of 200,000 newlines and one bad character with 400 (a linear check, no stall)', async () => {
    const t = await startTempRelay('onward-submission-redos-', (dir) =>
      doc(dir, { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] }, { limits: { maxMessageSize: '2MB' } }),
    );
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      const content = `${'\n'.repeat(200_000)}!`;
      const answer = await postJson(port, { ...MESSAGE, attachments: [{ filename: 'a.bin', content }] }, { key: KEY });
      expect(answer).toMatchObject({ status: 400, body: { error: { code: 'ONWARD_ERR_BAD_MESSAGE' } } });
      // Base64 with line breaks is still fine.
      const wrapped = `${Buffer.alloc(300, 7).toString('base64').replace(/(.{76})/g, '$1\r\n')}\r\n`;
      expect((await postJson(port, { ...MESSAGE, attachments: [{ filename: 'b.bin', content: wrapped }] }, { key: KEY })).status).toBe(202);
    } finally {
      await t.close();
    }
  }, 60_000);

  it('refuses a compressed body with 415 naming Content-Encoding', async () => {
    const t = await startTempRelay('onward-submission-encoding-', (dir) => doc(dir, { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] }));
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      const answer = await call(port, '/v1/messages', Buffer.from([0x1f, 0x8b, 8, 0]), { key: KEY, contentType: 'message/rfc822', headers: { 'content-encoding': 'gzip' } });
      expect(answer).toMatchObject({ status: 415, body: { error: { code: 'ONWARD_ERR_UNSUPPORTED_TYPE', field: 'Content-Encoding' } } });
    } finally {
      await t.close();
    }
  });

  it('holds uploads to limits.maxDataMemory with SMTP: over it 503 ONWARD_ERR_SPOOL_FULL with Retry-After, and the budget comes back', async () => {
    const t = await startTempRelay('onward-submission-budget-', (dir) =>
      doc(dir, { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] }, { limits: { maxMessageSize: '64KB', maxDataMemory: '80KB' } }),
    );
    try {
      const port = t.relay.submissionAddress?.port ?? 0;
      const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'message/rfc822' };
      const head = 'From: a@client.test\r\nTo: x@dest.test\r\nSubject: big\r\n\r\n';
      const line = `${'a'.repeat(1022)}\r\n`;
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      // The first upload sends 48 KB and waits, holding its bytes in the relay's memory.
      const first = postStreaming(port, headers, async (req) => {
        req.write(head);
        for (let i = 0; i < 48; i++) req.write(line);
        await held;
      });
      // A second of 40 KB does not fit beside it (once the first's bytes have arrived).
      let refused: { status: number; headers: Headers; body: { error?: { code: string } } } | null = null;
      for (let tries = 0; tries < 50 && refused === null; tries++) {
        const answer = await call(port, '/v1/messages', head + line.repeat(40), { key: KEY, contentType: 'message/rfc822' });
        if (answer.status === 503) refused = answer;
        else expect(answer.status).toBe(202);
      }
      expect(refused?.body.error?.code).toBe('ONWARD_ERR_SPOOL_FULL');
      expect(refused?.headers.get('retry-after')).toMatch(/^\d+$/);
      release();
      expect((await first).status).toBe(202);
      // The budget is whole again.
      expect((await call(port, '/v1/messages', head + line.repeat(60), { key: KEY, contentType: 'message/rfc822' })).status).toBe(202);
    } finally {
      await t.close();
    }
  });
});
