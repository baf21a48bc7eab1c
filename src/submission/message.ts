/**
 * What a submission request carries, turned into a message and its envelope: a raw
 * `message/rfc822` body (envelope from the X-Onward-Envelope-* headers or the address
 * headers), or a JSON document composed with nodemailer's MailComposer.
 */
import { createHash } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { z } from 'zod';
import { isAddress } from '../accept/index.js';
import { headerEnd, headerFields } from '../message/headers.js';

/** A request that cannot become a message: `field` names the part (a JSON path, a header name, `body`). */
export class BadMessage extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'BadMessage';
  }
}

export interface Submitted {
  readonly body: Buffer;
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The request as it names a message, for Idempotency-Key repeats. */
  readonly fingerprint: string;
  /** The Message-ID came from the client (else it is ours: never a resubmission). */
  readonly clientMessageId: boolean;
}

function fingerprintOf(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(typeof part === 'string' ? Buffer.from(part, 'utf8') : part).update('\0');
  return hash.digest('hex');
}

/** The mailboxes of an address list (groups flattened); any entry that is not local@domain is refused. */
function mailboxes(text: string, field: string): string[] {
  const list = addressparser(text, { flatten: true });
  const out: string[] = [];
  for (const entry of list) {
    const address = entry.address.trim();
    if (!isAddress(address)) throw new BadMessage(field, `${field}: not an address: ${JSON.stringify(address || entry.name)}`);
    out.push(address);
  }
  return out;
}

/** `X-Onward-Envelope-From`: one address, or `<>` / empty for the null sender. */
function envelopeSender(value: string): string {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === '<>') return '';
  const bare = trimmed.replace(/^<(.*)>$/, '$1').trim();
  if (!isAddress(bare)) throw new BadMessage('X-Onward-Envelope-From', `X-Onward-Envelope-From: not an address: ${JSON.stringify(trimmed)}`);
  return bare;
}

/**
 * A raw message. Its header block must parse; the envelope comes from the request headers
 * when given, else from From (Sender when From lists several) and To, Cc, Bcc. A Bcc
 * header is removed either way: it must not travel downstream.
 */
export function fromRaw(original: Buffer, envelope: { from: string | undefined; to: string | undefined }): Submitted {
  // The line ends the message will be stored with (the accept pipeline's normalize: NULs
  // removed, bare LF as CRLF) before looking for the header block: else a bare-LF message
  // is all header block, and a body line `Cc: x@y` would add a recipient.
  const raw = normaliseLineEnds(original);
  const headerBytes = headerEnd(raw);
  if (headerBytes === 0) throw new BadMessage('body', 'the message has no header block');
  const block = raw.subarray(0, headerBytes).toString('latin1').replace(/\r?\n/g, '\r\n');
  const fields = headerFields(block);
  const values = (name: string): string[] => fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => Buffer.from(v, 'latin1').toString('utf8'));
  let sender: string;
  if (envelope.from !== undefined) sender = envelopeSender(envelope.from);
  else {
    const from = values('from').flatMap((v) => mailboxes(v, 'From'));
    const senderHeader = values('sender').flatMap((v) => mailboxes(v, 'Sender'));
    const chosen = from.length === 1 ? from[0] : senderHeader[0] ?? from[0];
    if (chosen === undefined) throw new BadMessage('From', 'no envelope sender: give X-Onward-Envelope-From or a From header');
    sender = chosen;
  }
  let recipients: string[];
  if (envelope.to !== undefined) {
    recipients = envelope.to
      .split(',')
      .map((r) => r.trim().replace(/^<(.*)>$/, '$1').trim())
      .filter((r) => r !== '');
    const bad = recipients.find((r) => !isAddress(r));
    if (bad !== undefined) throw new BadMessage('X-Onward-Envelope-To', `X-Onward-Envelope-To: not an address: ${JSON.stringify(bad)}`);
  } else {
    recipients = [
      ...values('to').flatMap((v) => mailboxes(v, 'To')),
      ...values('cc').flatMap((v) => mailboxes(v, 'Cc')),
      ...values('bcc').flatMap((v) => mailboxes(v, 'Bcc')),
    ];
  }
  recipients = unique(recipients);
  if (recipients.length === 0) throw new BadMessage(envelope.to !== undefined ? 'X-Onward-Envelope-To' : 'To', 'no recipients: give X-Onward-Envelope-To or To, Cc, Bcc headers');
  const fingerprint = fingerprintOf('message/rfc822', envelope.from ?? '', envelope.to ?? '', original);
  const clientMessageId = fields.some(([n]) => n.toLowerCase() === 'message-id');
  return { body: withoutBcc(raw, headerBytes), sender, recipients, fingerprint, clientMessageId };
}

function normaliseLineEnds(raw: Buffer): Buffer {
  if (!raw.includes(0x0a) && !raw.includes(0x00)) return raw;
  return Buffer.from(raw.toString('latin1').replace(/\0/g, '').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
}

/** The message without its Bcc fields (with their folded lines); every other byte as it was. */
function withoutBcc(raw: Buffer, headerBytes: number): Buffer {
  const head = raw.subarray(0, headerBytes).toString('latin1');
  if (!/(^|\n)bcc[ \t]*:/i.test(head)) return raw;
  const lines = head.split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    const folded = line.startsWith(' ') || line.startsWith('\t');
    if (!folded) dropping = /^bcc[ \t]*:/i.test(line);
    if (!dropping) kept.push(line);
  }
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), raw.subarray(headerBytes)]);
}

function unique(addresses: string[]): string[] {
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const key = a.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** Headers the composer writes from the document's own fields (or that describe the MIME structure). */
const COMPOSED_HEADERS = new Set(['from', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'message-id', 'date', 'content-type', 'content-transfer-encoding', 'mime-version']);

const addressInput = z.union([z.string(), z.strictObject({ name: z.string().optional(), address: z.string() })]);
const addressList = z.union([addressInput, z.array(addressInput)]);

/** The JSON document of `POST /v1/messages` (docs/http-api.md). */
export const jsonMessage = z.strictObject({
  from: addressInput.optional(),
  to: addressList.optional(),
  cc: addressList.optional(),
  bcc: addressList.optional(),
  replyTo: addressList.optional(),
  subject: z.string().optional(),
  text: z.string().optional(),
  html: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  attachments: z
    .array(
      z.strictObject({
        filename: z.string().optional(),
        contentType: z.string().optional(),
        content: z.string().refine(isBase64, 'expected base64'),
      }),
    )
    .optional(),
  messageId: z.string().optional(),
  envelope: z.strictObject({ from: z.string().optional(), to: z.array(z.string()).optional() }).optional(),
});

/**
 * Base64, line breaks and other whitespace allowed anywhere. Whitespace is dropped first so that
 * the test is one linear pass: a pattern with two ways to match a newline (`[\r\n]*` then `\s*`)
 * backtracks quadratically on a long run of newlines, and one request would stall the process.
 */
function isBase64(content: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(content.replace(/\s+/g, ''));
}

export type JsonMessage = z.output<typeof jsonMessage>;

type AddressInput = z.output<typeof addressInput>;

/** Each input's mailbox addresses, checked; field names the position (`to[1]`). */
function addressesOf(input: AddressInput | AddressInput[] | undefined, field: string): string[] {
  if (input === undefined) return [];
  const list = Array.isArray(input) ? input : [input];
  return list.flatMap((entry, i) => {
    const where = Array.isArray(input) ? `${field}[${i}]` : field;
    if (typeof entry === 'string') return mailboxes(entry, where);
    const address = entry.address.trim();
    if (!isAddress(address)) throw new BadMessage(where, `${where}: not an address: ${JSON.stringify(address)}`);
    return [address];
  });
}

/** A JSON parse + schema check: the first problem names its field. */
export function parseJsonMessage(text: string): JsonMessage {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new BadMessage('body', `not JSON: ${(err as Error).message}`);
  }
  const parsed = jsonMessage.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || 'body' : 'body';
    throw new BadMessage(field, `${field}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/**
 * Composes the document with MailComposer (never by hand). `messageId` and `date` are
 * given when the client left them out so that the composition is reproducible; the
 * multipart boundaries derive from `boundary`.
 */
export async function fromJson(doc: JsonMessage, options: { messageId: string; date: Date; boundary: string }): Promise<Submitted> {
  const from = addressesOf(doc.from, 'from');
  const to = addressesOf(doc.to, 'to');
  const cc = addressesOf(doc.cc, 'cc');
  const bcc = addressesOf(doc.bcc, 'bcc');
  addressesOf(doc.replyTo, 'replyTo');
  const envFrom = doc.envelope?.from;
  let sender: string;
  if (envFrom !== undefined) sender = envFrom.trim() === '' || envFrom.trim() === '<>' ? '' : (addressesOf(envFrom, 'envelope.from')[0] ?? '');
  else {
    const first = from[0];
    if (first === undefined) throw new BadMessage('from', 'from: required (or envelope.from)');
    sender = first;
  }
  const recipients = unique(doc.envelope?.to !== undefined ? addressesOf(doc.envelope.to, 'envelope.to') : [...to, ...cc, ...bcc]);
  if (recipients.length === 0) throw new BadMessage(doc.envelope?.to !== undefined ? 'envelope.to' : 'to', 'no recipients: give to, cc, bcc or envelope.to');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(doc.headers ?? {})) {
    const field = `headers.${name}`;
    if (!HEADER_NAME.test(name)) throw new BadMessage(field, `${field}: not a header name`);
    if (COMPOSED_HEADERS.has(name.toLowerCase())) throw new BadMessage(field, `${field}: set by the message's own fields`);
    if (/[\r\n\0]/.test(value)) throw new BadMessage(field, `${field}: a header value is one line`);
    headers[name] = value;
  }
  const messageId = doc.messageId ?? options.messageId;
  if (!/^<?[^\s<>]+@[^\s<>]+>?$/.test(messageId.trim())) throw new BadMessage('messageId', 'messageId: expected local@domain');
  const composer = new MailComposer({
    ...(doc.from !== undefined ? { from: doc.from } : {}),
    ...(doc.to !== undefined ? { to: doc.to } : {}),
    ...(doc.cc !== undefined ? { cc: doc.cc } : {}),
    ...(doc.bcc !== undefined ? { bcc: doc.bcc } : {}),
    ...(doc.replyTo !== undefined ? { replyTo: doc.replyTo } : {}),
    ...(doc.subject !== undefined ? { subject: doc.subject } : {}),
    ...(doc.text !== undefined ? { text: doc.text } : {}),
    ...(doc.html !== undefined ? { html: doc.html } : {}),
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    ...(doc.attachments !== undefined
      ? {
          attachments: doc.attachments.map((a) => ({
            content: Buffer.from(a.content, 'base64'),
            ...(a.filename !== undefined ? { filename: a.filename } : {}),
            ...(a.contentType !== undefined ? { contentType: a.contentType } : {}),
          })),
        }
      : {}),
    messageId: messageId.trim().startsWith('<') ? messageId.trim() : `<${messageId.trim()}>`,
    date: options.date,
    baseBoundary: options.boundary,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  let body: Buffer;
  try {
    body = await composer.compile().build();
  } catch (err) {
    throw new BadMessage('body', `cannot compose the message: ${(err as Error).message}`);
  }
  const fingerprint = fingerprintOf('application/json', JSON.stringify(doc));
  return { body, sender, recipients, fingerprint, clientMessageId: doc.messageId !== undefined };
}
