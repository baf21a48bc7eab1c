import { describe, expect, it } from '@jest/globals';
import { buildJsonPayload } from '../../../src/delivery/http-payload.js';

const job = (body: string) => ({
  deliveryId: 'D1',
  queueId: 'Q1',
  attempt: 1,
  envelope: { from: 'a@b.test', to: ['c@d.test'] },
  body: Buffer.from(body, 'latin1'),
  receivedAt: new Date(Date.UTC(2026, 4, 27, 11, 15, 1)),
});

describe('buildJsonPayload', () => {
  it('gives every attachment a string contentType, even a part whose Content-Type names no media type (found by npm run fuzz)', async () => {
    const body =
      'From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
      '--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n' +
      '--b\r\nContent-Type:; text/plain; charset=utf-8\r\n\r\n   \r\n' +
      '--b--\r\n';
    const payload = await buildJsonPayload(job(body));
    expect(payload.attachments.length).toBeGreaterThan(0);
    for (const a of payload.attachments) expect(typeof a.contentType).toBe('string');
    expect(payload.attachments.map((a) => a.contentType)).toContain('application/octet-stream');
  });
});

describe('buildJsonPayload on a message mailparser never finishes', () => {
  it('rejects with ONWARD_ERR_BAD_MESSAGE after the parse timeout instead of hanging the delivery (found by npm run fuzz)', async () => {
    const { readFile } = await import('node:fs/promises');
    const body = await readFile(new URL('./mailparser-never-settles.eml', import.meta.url));
    const started = Date.now();
    await expect(buildJsonPayload({ ...job(''), body }, 300)).rejects.toMatchObject({ code: 'ONWARD_ERR_BAD_MESSAGE' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
