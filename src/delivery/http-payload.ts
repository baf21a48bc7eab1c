/**
 * The `format: json` webhook body (SPEC section 4), built with mailparser from the stored bytes.
 */
import type { AddressObject, EmailAddress } from 'mailparser';
import { RelayError } from '../errors.js';
import { unfold } from '../message/headers.js';
import type { DeliveryJob } from './types.js';

export interface JsonAddress {
  readonly address: string;
  /** The display name, "" when the header has none. */
  readonly name: string;
}

export interface JsonAttachment {
  readonly filename: string | null;
  readonly contentType: string;
  /** Decoded size in bytes. */
  readonly size: number;
  /** The decoded content, base64. */
  readonly content: string;
}

/** What a `format: json` HTTP target receives. Absent values are null (or empty lists), never missing. */
export interface JsonPayload {
  /** The delivery id, also sent as `Idempotency-Key`. */
  readonly id: string;
  readonly queueId: string;
  /** The Message-ID without angle brackets. */
  readonly messageId: string | null;
  /** Bare addresses; `from` is "" for the null sender. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** Every header in message order as [name as written, value unfolded and RFC 2047-decoded]. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly subject: string | null;
  readonly from: JsonAddress | null;
  readonly to: readonly JsonAddress[];
  readonly cc: readonly JsonAddress[];
  /** The Date header, ISO 8601. */
  readonly date: string | null;
  readonly text: string | null;
  readonly html: string | null;
  readonly attachments: readonly JsonAttachment[];
  /** When onward accepted the message, ISO 8601. */
  readonly receivedAt: string;
}

/** How long mailparser may take on one message: it never settles on some malformed MIME (found by npm run fuzz). */
export const PARSE_TIMEOUT_MS = 30_000;

/** mailparser is loaded for the first json payload (once, for every caller): a relay with only raw webhooks never carries it. */
let mailparser: Promise<typeof import('mailparser')> | undefined;
const loadMailparser = (): Promise<typeof import('mailparser')> => (mailparser ??= import('mailparser'));

/** @throws RelayError ONWARD_ERR_BAD_MESSAGE when mailparser has not finished within `parseTimeoutMs`. */
export async function buildJsonPayload(job: DeliveryJob, parseTimeoutMs = PARSE_TIMEOUT_MS): Promise<JsonPayload> {
  const { simpleParser } = await loadMailparser();
  // keepCidLinks: inline images travel as attachments, not as data: URIs grafted into the HTML.
  const mail = await withTimeout(simpleParser(job.body, { keepCidLinks: true, skipTextToHtml: true }), parseTimeoutMs, job.queueId);
  const from = mail.from ? flattenAddresses(mail.from)[0] : undefined;
  return {
    id: job.deliveryId,
    queueId: job.queueId,
    messageId: mail.messageId ? mail.messageId.replace(/^<|>$/g, '') : null,
    envelope: { from: job.envelope.from, to: [...job.envelope.to] },
    headers: mail.headerLines.map(({ line }) => splitHeaderLine(line)),
    subject: mail.subject ?? null,
    from: from ?? null,
    to: mail.to ? flattenAddresses(mail.to) : [],
    cc: mail.cc ? flattenAddresses(mail.cc) : [],
    date: mail.date && !Number.isNaN(mail.date.getTime()) ? mail.date.toISOString() : null,
    text: mail.text ?? null,
    html: typeof mail.html === 'string' ? mail.html : null,
    attachments: mail.attachments.map((a) => ({
      filename: a.filename ?? null,
      // mailparser says false for a part whose Content-Type has no media type (`Content-Type: ;`).
      contentType: typeof a.contentType === 'string' && a.contentType !== '' ? a.contentType : 'application/octet-stream',
      size: a.content.length,
      content: a.content.toString('base64'),
    })),
    receivedAt: job.receivedAt.toISOString(),
  };
}

function withTimeout<T>(work: Promise<T>, ms: number, queueId: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RelayError('ONWARD_ERR_BAD_MESSAGE', `message ${queueId}: the MIME parser did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function flattenAddresses(value: AddressObject | AddressObject[]): JsonAddress[] {
  const out: JsonAddress[] = [];
  const visit = (list: readonly EmailAddress[]): void => {
    for (const entry of list) {
      if (entry.group) visit(entry.group);
      else if (entry.address !== undefined) out.push({ address: entry.address, name: entry.name });
    }
  };
  for (const obj of Array.isArray(value) ? value : [value]) visit(obj.value);
  return out;
}

function splitHeaderLine(binaryLine: string): [string, string] {
  const line = rawHeaderText(binaryLine);
  const colon = line.indexOf(':');
  if (colon < 0) return [line.trim(), ''];
  const unfolded = unfold(line.slice(colon + 1));
  return [line.slice(0, colon).trim(), decodeHeaderValue(unfolded.trim())];
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * mailparser hands header lines over as one char per byte. Raw 8-bit header text is UTF-8 in
 * practice (RFC 6532); anything that does not decode as UTF-8 stays as Latin-1.
 */
function rawHeaderText(binary: string): string {
  if (!/[\x80-\xff]/.test(binary)) return binary;
  try {
    return STRICT_UTF8.decode(Buffer.from(binary, 'latin1'));
  } catch {
    return binary;
  }
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/**
 * Decodes RFC 2047 encoded words in an unfolded header value. Whitespace between adjacent
 * encoded words is dropped, and adjacent words in the same charset are decoded together so a
 * multi-byte character split across two words survives. Unknown charsets stay encoded.
 */
export function decodeHeaderValue(value: string): string {
  const parts: string[] = [];
  let run: { charset: string; bytes: Buffer[]; raw: string } | undefined;
  let last = 0;
  for (const match of value.matchAll(ENCODED_WORD)) {
    const [raw, rawCharset = '', encoding = '', text = ''] = match;
    const between = value.slice(last, match.index);
    const charset = (rawCharset.split('*')[0] ?? '').toLowerCase();
    const bytes = encoding.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : decodeQ(text);
    const adjacent = /^[ \t]*$/.test(between);
    if (run !== undefined && adjacent && run.charset === charset) {
      run.bytes.push(bytes);
      run.raw += between + raw;
    } else {
      if (run !== undefined) parts.push(decodeRun(run));
      if (run === undefined || !adjacent) parts.push(between);
      run = { charset, bytes: [bytes], raw };
    }
    last = match.index + raw.length;
  }
  if (run !== undefined) parts.push(decodeRun(run));
  parts.push(value.slice(last));
  return parts.join('');
}

function decodeQ(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    const hex = ch === '=' ? text.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(ch === '_' ? 0x20 : text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeRun(run: { charset: string; bytes: Buffer[]; raw: string }): string {
  try {
    return new TextDecoder(run.charset).decode(Buffer.concat(run.bytes));
  } catch {
    return run.raw;
  }
}
