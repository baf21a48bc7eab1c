/**
 * SMTP smuggling defence: the DATA stream's content (after smtp-server removed the
 * terminator and dot-stuffing) must use CRLF only and hold no NUL byte. A bare LF or CR is
 * how a second message is hidden inside the first for a downstream that ends DATA on
 * `<LF>.<LF>`; a NUL does the same for one that strips NULs (`<CR><LF><NUL>.<CR><LF>`).
 */
export type LineEndingPolicy = 'reject' | 'normalize';

/** `found`: the byte that refused the message — a bare LF, a bare CR, or a NUL. */
export type LineEndingVerdict = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly found: 'LF' | 'CR' | 'NUL' };

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/**
 * `reject`: any bare LF, bare CR or NUL refuses the message. `normalize`: NULs are removed
 * first, then every bare LF becomes CRLF; a lone CR is still refused (its meaning is
 * ambiguous). Either way the body that comes back is CRLF-only and NUL-free.
 */
export function checkLineEndings(body: Buffer, policy: LineEndingPolicy): LineEndingVerdict {
  const hasNul = body.includes(NUL);
  if (hasNul && policy === 'reject') return { ok: false, found: 'NUL' };
  const text = hasNul ? withoutNul(body) : body;
  for (let i = text.indexOf(CR); i !== -1; i = text.indexOf(CR, i + 1)) {
    if (text[i + 1] !== LF) return { ok: false, found: 'CR' };
  }
  let bareLf = false;
  for (let i = text.indexOf(LF); i !== -1; i = text.indexOf(LF, i + 1)) {
    if (i === 0 || text[i - 1] !== CR) {
      bareLf = true;
      break;
    }
  }
  if (!bareLf) return { ok: true, body: text };
  if (policy === 'reject') return { ok: false, found: 'LF' };
  return { ok: true, body: normaliseBareLf(text) };
}

function withoutNul(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = body.indexOf(NUL); i !== -1; i = body.indexOf(NUL, i + 1)) {
    parts.push(body.subarray(start, i));
    start = i + 1;
  }
  parts.push(body.subarray(start));
  return Buffer.concat(parts);
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
