/**
 * Reads an RFC 3464 DSN back into plain data for assertions. mailparser folds the
 * message/delivery-status part into `text`, so this walks the MIME tree itself: a DSN from
 * any MTA (nested multiparts, 7bit/QP/base64 parts, LF or CRLF) should come apart the same way.
 */

export interface ParsedDsn {
  /** Top-level header fields: lower-cased names, unfolded and RFC 2047-decoded; repeats joined by "\n". */
  readonly headers: Map<string, string>;
  /** The first text/plain part, decoded. */
  readonly humanText: string;
  /** The delivery-status part's first block (Reporting-MTA, Arrival-Date, ...), lower-cased names. */
  readonly perMessage: Record<string, string>;
  /** One record per recipient block, lower-cased names. */
  readonly recipients: Array<Record<string, string>>;
  /** The returned header block (text/rfc822-headers, or the headers of a returned message/rfc822). */
  readonly originalHeaders: string;
}

interface Part {
  readonly type: string;
  readonly params: Record<string, string>;
  readonly fields: Array<[string, string]>;
  readonly body: Buffer;
}

export function parseDsn(raw: Buffer): ParsedDsn {
  const root = parsePart(raw);
  if (root.type !== 'multipart/report') {
    throw new Error(`not a DSN: top-level content-type is ${root.type}`);
  }
  const leaves = flatten(root);
  const human = leaves.find((p) => p.type === 'text/plain');
  const status = leaves.find((p) => /^message\/(global-)?delivery-status$/.test(p.type));
  if (!status) throw new Error('not a DSN: no message/delivery-status part');
  const returned = leaves.find((p) => /^(text\/rfc822-headers|message\/(rfc822|global(-headers)?))$/.test(p.type));

  const blocks = decodeText(status)
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .filter((b) => b.trim() !== '')
    .map((b) => firstWins(parseFields(b)));
  const headers = new Map<string, string>();
  for (const [k, v] of root.fields) {
    const value = decodeWords(v);
    const prev = headers.get(k);
    headers.set(k, prev === undefined ? value : `${prev}\n${value}`);
  }
  return {
    headers,
    humanText: human ? decodeText(human) : '',
    perMessage: blocks[0] ?? {},
    recipients: blocks.slice(1),
    originalHeaders: returned ? splitHeadBody(decodeText(returned)).head.replace(/(\r?\n)+$/, '') : '',
  };
}

function parsePart(raw: Buffer): Part {
  const { head, body } = splitHeadBody(raw.toString('latin1'));
  const fields = parseFields(head);
  const ct = parseContentType(fields.find(([k]) => k === 'content-type')?.[1] ?? 'text/plain');
  const cte = (fields.find(([k]) => k === 'content-transfer-encoding')?.[1] ?? '7bit').toLowerCase().trim();
  return { ...ct, fields, body: decodeTransfer(body, cte) };
}

function flatten(part: Part): Part[] {
  const boundary = part.params['boundary'];
  if (!part.type.startsWith('multipart/') || boundary === undefined) return [part];
  const esc = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const delim = new RegExp(`\\r?\\n--${esc}(--)?[ \\t]*(?=\\r?\\n|$)`, 'g');
  const text = `\r\n${part.body.toString('latin1')}`;
  const children: Part[] = [];
  let start = -1;
  for (let m = delim.exec(text); m !== null; m = delim.exec(text)) {
    if (start >= 0) children.push(parsePart(Buffer.from(text.slice(start, m.index).replace(/^\r?\n/, ''), 'latin1')));
    if (m[1] !== undefined) break;
    start = m.index + m[0].length;
  }
  return children.flatMap(flatten);
}

function splitHeadBody(text: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(text);
  if (m === null) return { head: text, body: '' };
  return { head: text.slice(0, m.index), body: text.slice(m.index + m[0].length) };
}

function parseFields(block: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of block.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}

function firstWins(fields: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of fields) if (!Object.hasOwn(out, k)) out[k] = v;
  return out;
}

function parseContentType(value: string): { type: string; params: Record<string, string> } {
  const [type = '', ...rest] = value.split(';');
  const params: Record<string, string> = {};
  const re = /([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (let m = re.exec(rest.join(';')); m !== null; m = re.exec(rest.join(';'))) {
    const v = (m[2] ?? '').trim();
    params[(m[1] ?? '').toLowerCase()] = v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
  }
  return { type: type.trim().toLowerCase(), params };
}

function decodeTransfer(body: string, cte: string): Buffer {
  if (cte === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (cte === 'quoted-printable') {
    const unsoft = body.replace(/=\r?\n/g, '');
    const bytes: number[] = [];
    for (let i = 0; i < unsoft.length; i++) {
      const hex = unsoft.slice(i + 1, i + 3);
      if (unsoft[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else {
        bytes.push(unsoft.charCodeAt(i) & 0xff);
      }
    }
    return Buffer.from(bytes);
  }
  return Buffer.from(body, 'latin1');
}

function decodeText(part: Part): string {
  return decodeCharset(part.body, part.params['charset'] ?? 'utf-8');
}

function decodeCharset(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[bBqQ]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=/g, (_all, charset: string, enc: string, text: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(text, 'base64')
          : decodeTransfer(text.replace(/_/g, ' '), 'quoted-printable');
      return decodeCharset(bytes, charset);
    });
}
