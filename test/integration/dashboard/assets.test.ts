/** SPEC 12: the dashboard page and its assets on the admin listener: open, gzip, ETag, CSP. */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { gunzipSync } from 'node:zlib';
import { useTestRelays } from '../../helpers/relay.js';

const TOKEN = 'dashboard-token-for-tests-0123456789';

describe('dashboard assets', () => {
  const start = useTestRelays();

  async function base(): Promise<string> {
    const t = await start(`admin: { token: ${TOKEN} }`);
    return `http://127.0.0.1:${t.relay.adminAddress.port}`;
  }

  it('serves the page without a token, with CSP and no-sniff, while /api/* needs the token', async () => {
    const url = await base();
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(
      "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    );
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(await page.text()).toBe(readFileSync(new URL('../../../web/dashboard/index.html', import.meta.url), 'utf8'));
    expect((await fetch(`${url}/api/spool/stats`)).status).toBe(401);
    expect((await fetch(`${url}/api/spool/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('serves uPlot gzipped when accepted, and answers a matching If-None-Match with 304', async () => {
    const url = await base();
    const original = readFileSync(new URL('../../../node_modules/uplot/dist/uPlot.iife.min.js', import.meta.url));
    // node:http, not fetch: fetch decodes gzip itself and hides the encoding
    const raw = await new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      request(`${url}/dashboard/uPlot.iife.min.js`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
    expect(raw.status).toBe(200);
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers['content-type']).toMatch(/^text\/javascript/);
    expect(raw.body.length).toBeLessThan(original.length / 2);
    expect(gunzipSync(raw.body).equals(original)).toBe(true);

    const plain = await fetch(`${url}/dashboard/uPlot.min.css`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-type')).toMatch(/^text\/css/);
    const etag = plain.headers.get('etag');
    expect(etag).toBeTruthy();
    await plain.arrayBuffer();
    const again = await fetch(`${url}/dashboard/uPlot.min.css`, { headers: { 'accept-encoding': 'identity', 'if-none-match': etag ?? '' } });
    expect(again.status).toBe(304);
    const other = await fetch(`${url}/dashboard/uPlot.min.css`, { headers: { 'accept-encoding': 'identity', 'if-none-match': '"other"' } });
    expect(other.status).toBe(200);
    await other.arrayBuffer();
  });

  it('answers an unknown file with a coded 404 and never serves a path outside the asset set', async () => {
    const url = await base();
    const missing = await fetch(`${url}/dashboard/nope.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('ONWARD_ERR_NOT_FOUND');
    for (const path of ['/dashboard/..%2f..%2fpackage.json', '/dashboard/%2e%2e/%2e%2e/package.json', '/dashboard/../../package.json']) {
      const r = await fetch(`${url}${path}`);
      const text = await r.text();
      expect(text).not.toContain('"dependencies"');
      expect([401, 404]).toContain(r.status);
    }
  });
});
