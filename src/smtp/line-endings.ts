/**
 * SMTP smuggling defence: the DATA stream's content (after smtp-server removed the
 * terminator and dot-stuffing) must use CRLF only. A bare LF or CR is how a second
 * message is hidden inside the first for a downstream that ends DATA on `<LF>.<LF>`.
 */
export type LineEndingPolicy = 'reject' | 'normalize';

export type LineEndingVerdict = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly bare: 'LF' | 'CR' };

const CR = 0x0d;
const LF = 0x0a;

export function checkLineEndings(body: Buffer, policy: LineEndingPolicy): LineEndingVerdict {
  let bareLf = false;
  for (let i = body.indexOf(CR); i !== -1; i = body.indexOf(CR, i + 1)) {
    if (body[i + 1] !== LF) return { ok: false, bare: 'CR' };
  }
  for (let i = body.indexOf(LF); i !== -1; i = body.indexOf(LF, i + 1)) {
    if (i === 0 || body[i - 1] !== CR) {
      bareLf = true;
      break;
    }
  }
  if (!bareLf) return { ok: true, body };
  if (policy === 'reject') return { ok: false, bare: 'LF' };
  return { ok: true, body: normaliseBareLf(body) };
}

function normaliseBareLf(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = body.indexOf(LF); i !== -1; i = body.indexOf(LF, i + 1)) {
    if (i === 0 || body[i - 1] !== CR) {
      parts.push(body.subarray(start, i), Buffer.from('\r\n'));
      start = i + 1;
    }
  }
  parts.push(body.subarray(start));
  return Buffer.concat(parts);
}
