/**
 * Minimal header-block handling for the ingress: find the header names present, read the
 * Message-ID, and add the headers a relay must add. The body is never re-encoded.
 */
export interface HeaderInfo {
  /** Lower-cased names of the top-level headers. */
  readonly names: ReadonlySet<string>;
  /** Message-ID without angle brackets or surrounding space, or null. */
  readonly messageId: string | null;
  /** Byte length of the header block, see headerEnd. */
  readonly headerBytes: number;
}

/** A header field line: a name of printable ASCII except `:`, then `:` (RFC 5322 2.2, obs- space allowed). */
const FIELD_LINE = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/**
 * Byte length of the header block: up to and including the blank line that ends it, or up
 * to the first line that is neither a header field nor a folded continuation (body text
 * with no blank line before it, or no headers at all), or the whole message.
 */
export function headerEnd(body: Buffer): number {
  let pos = 0;
  while (pos < body.length) {
    const eol = body.indexOf('\r\n', pos);
    if (eol === pos) return pos + 2;
    const line = body.subarray(pos, eol === -1 ? body.length : eol).toString('latin1');
    const folded = pos > 0 && (line.startsWith(' ') || line.startsWith('\t'));
    if (!folded && !FIELD_LINE.test(line)) return pos;
    if (eol === -1) return body.length;
    pos = eol + 2;
  }
  return body.length;
}

export function readHeaders(body: Buffer): HeaderInfo {
  const headerBytes = headerEnd(body);
  const names = new Set<string>();
  let messageId: string | null = null;
  for (const [field, value] of headerFields(body.subarray(0, headerBytes).toString('latin1'))) {
    const name = field.toLowerCase();
    names.add(name);
    if (name === 'message-id' && messageId === null) messageId = normaliseMessageId(value);
  }
  return { names, messageId, headerBytes };
}

/**
 * RFC 5322 2.2.3 unfolding: a line break followed by white space is removed, the white space
 * stays. A bare LF counts too: some clients send one, and a parser must not split there.
 */
export function unfold(text: string): string {
  return text.replace(/\r?\n(?=[ \t])/g, '');
}

/**
 * The fields of a header block in order, as [name as written, value], unfolded and trimmed.
 * A line without a colon is no field and is skipped.
 */
export function headerFields(block: string): [string, string][] {
  const fields: [string, string][] = [];
  for (const line of unfold(block).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

/** `<Abc@Example.com>` → `Abc@example.com`: the domain part is case-insensitive, the local part is not. */
export function normaliseMessageId(raw: string): string | null {
  const trimmed = raw.trim().replace(/^<|>$/g, '').trim();
  if (!trimmed) return null;
  const at = trimmed.lastIndexOf('@');
  return at === -1 ? trimmed : trimmed.slice(0, at) + '@' + trimmed.slice(at + 1).toLowerCase();
}

export interface ReceivedInfo {
  readonly clientHostname: string;
  readonly clientIp: string;
  readonly helo: string;
  readonly hostname: string;
  readonly protocol: string;
  readonly queueId: string;
  readonly recipient: string | null;
  readonly date: Date;
  /** The authenticated sender named in the trace (HTTP submission's key name); absent: none shown. */
  readonly authenticatedAs?: string | null;
}

/** RFC 5322 date-time, e.g. `Fri, 27 Nov 2026 11:15:01 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

export function receivedHeader(r: ReceivedInfo): string {
  const reverse = r.clientHostname && r.clientHostname !== `[${r.clientIp}]` ? `${r.clientHostname} ` : '';
  const auth = r.authenticatedAs ? ` (Authenticated sender: ${r.authenticatedAs})` : '';
  const from = `from ${r.helo || 'unknown'} (${reverse}[${r.clientIp}])${auth}`;
  const forPart = r.recipient ? `\r\n\tfor <${r.recipient}>` : '';
  return `Received: ${from}\r\n\tby ${r.hostname} (onward) with ${r.protocol} id ${r.queueId}${forPart};\r\n\t${rfc5322Date(r.date)}\r\n`;
}

/**
 * The stored message: our Received header first, then the client's bytes, with
 * Message-ID and Date added to the header block when the client sent none.
 */
export function prepareMessage(body: Buffer, info: HeaderInfo, received: ReceivedInfo): { body: Buffer; messageId: string } {
  const added: string[] = [];
  let messageId = info.messageId;
  if (messageId === null) {
    messageId = `${received.queueId}@${received.hostname}`;
    added.push(`Message-ID: <${messageId}>\r\n`);
  }
  if (!info.names.has('date')) added.push(`Date: ${rfc5322Date(received.date)}\r\n`);
  // Added headers go at the end of the header block (before the blank line).
  const block = body.subarray(0, info.headerBytes).toString('latin1');
  const separated = block === '\r\n' || block.endsWith('\r\n\r\n');
  const blankAt = block === '\r\n' ? 0 : separated ? info.headerBytes - 2 : info.headerBytes;
  // Body text that follows the headers without a blank line (or comes with no headers at
  // all) gets one, so that it stays body text instead of turning into header lines.
  if (!separated && info.headerBytes < body.length) added.push('\r\n');
  // A message whose last header line has no line break (an HTTP body may end anywhere): end
  // that line first, so the added fields do not run on into it.
  if (added.length > 0 && blankAt === body.length && blankAt > 0 && body[blankAt - 1] !== 0x0a) added.unshift('\r\n');
  // UTF-8, never latin1: a HELO name or address is text, and latin1 would turn U+0D0A into a bare LF.
  const parts: Buffer[] = [Buffer.from(receivedHeader(received), 'utf8')];
  if (added.length === 0) parts.push(body);
  else parts.push(body.subarray(0, blankAt), Buffer.from(added.join(''), 'latin1'), body.subarray(blankAt));
  return { body: Buffer.concat(parts), messageId };
}
