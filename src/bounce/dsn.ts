/**
 * RFC 3464 delivery status notifications: a pure builder from what the scheduler knows about
 * a message's failed (or late) recipients to the RFC 5322 bytes of one report. Sending it is
 * the caller's job (envelope sender `<>`, through the spool like any message).
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import MimeNode from 'nodemailer/lib/mime-node/index.js';
import type { Reply } from '../delivery/types.js';
import { RelayError } from '../errors.js';
import { rfc5322Date } from '../message/headers.js';

export interface DsnRecipient {
  readonly address: string;
  readonly action: 'failed' | 'delayed';
  /** RFC 3463 enhanced status (`5.1.1`); see dsnStatusFor. */
  readonly status: string;
  /** The last reply seen for this recipient; null when no attempt produced one. */
  readonly reply: Reply | null;
  readonly lastAttemptAt: Date | null;
  /** Only written for `delayed` recipients (`Will-Retry-Until`). */
  readonly willRetryUntil?: Date | null;
}

export interface DsnInput {
  /** Our hostname: `Reporting-MTA: dns; <hostname>` and the Message-ID's domain. */
  readonly reportingMta: string;
  /** `bounces.from`. */
  readonly from: string;
  /** The original envelope sender; never empty (null-sender messages are not bounced). */
  readonly to: string;
  readonly queueId: string;
  readonly arrivalDate: Date;
  readonly recipients: readonly DsnRecipient[];
  /** The original message's header block, returned as `text/rfc822-headers`. */
  readonly originalHeaders: Buffer;
  readonly now?: Date;
}

const STATUS_RE = /^([245])\.(\d{1,3})\.(\d{1,3})$/;
const FOLD_AT = 78;
// RFC 5322's hard limit is 998 octets; leave room for the folding space.
const MAX_LINE = 990;
// A downstream error body can be arbitrarily long; the DSN only needs enough to diagnose.
const MAX_DIAGNOSTIC = 1000;
const CRLF = '\r\n';

/**
 * The RFC 3463 status for a recipient that failed permanently (`fail`) or ran out of retry
 * time (`expired`).
 *
 * Expired: class 4 ("persistent transient failure": the condition was temporary but lasted
 * until we gave up), reported with `Action: failed`, as Postfix does. The last reply's own
 * class-4 code is the most specific reason (`4.2.2` mailbox full); otherwise `4.4.7`
 * (delivery time expired). It is not rewritten to class 5: nothing said the address is bad.
 * A delay DSN uses the same status as an expiry would.
 */
export function dsnStatusFor(outcome: 'fail' | 'expired', reply: Reply | null): string {
  const enhanced = reply?.enhancedStatus?.trim() ?? null;
  const cls = enhanced !== null && STATUS_RE.test(enhanced) ? enhanced.charAt(0) : null;
  if (outcome === 'expired') return cls === '4' && enhanced !== null ? enhanced : '4.4.7';
  if (cls === '5' && enhanced !== null) return enhanced;
  if (reply === null || reply.code === null) return '5.0.0';
  if (reply.kind === 'http') {
    switch (reply.code) {
      case 404:
      case 410:
        return '5.1.1';
      case 401:
      case 403:
        return '5.7.1';
      case 413:
        return '5.3.4';
      default:
        return '5.0.0';
    }
  }
  return '5.0.0';
}

/** Builds one DSN covering every recipient given. Throws RelayError(BAD_ARGS) on unusable input. */
export async function buildDsn(input: DsnInput): Promise<Buffer> {
  validate(input);
  const now = input.now ?? new Date();
  const anyFailed = input.recipients.some((r) => r.action === 'failed');
  const host = input.reportingMta.trim();

  const root = new MimeNode('multipart/report; report-type=delivery-status', {
    newline: '\r\n',
    hostname: host,
  });
  root.setHeader('From', input.from.includes('<') ? input.from : `Mail Delivery System <${input.from}>`);
  root.setHeader('To', input.to);
  root.setHeader('Subject', anyFailed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)');
  root.setHeader('Date', rfc5322Date(now));
  root.setHeader('Message-ID', `<${randomUUID()}@${host}>`);
  root.setHeader('Auto-Submitted', 'auto-replied');

  root.createChild('text/plain').setContent(humanText(input, host));

  const status = root.createChild('message/delivery-status');
  // MimeNode leaves message/* unencoded; saying so keeps the part's 7bit promise explicit.
  status.setHeader('Content-Transfer-Encoding', '7bit');
  status.setContent(deliveryStatus(input, host));

  const headers = root.createChild('text/rfc822-headers');
  setHeaderContent(headers, input.originalHeaders);

  return root.build();
}

function validate(input: DsnInput): void {
  if (input.to.trim() === '' || input.to.trim() === '<>') {
    throw new RelayError('ONWARD_ERR_BAD_ARGS', `DSN for ${input.queueId} has no sender to return it to`);
  }
  if (input.recipients.length === 0) {
    throw new RelayError('ONWARD_ERR_BAD_ARGS', `DSN for ${input.queueId} lists no recipients`);
  }
  for (const r of input.recipients) {
    if (!STATUS_RE.test(r.status)) {
      throw new RelayError('ONWARD_ERR_BAD_ARGS', `DSN status "${r.status}" for ${r.address} is not x.y.z`);
    }
  }
}

function humanText(input: DsnInput, host: string): string {
  const failed = input.recipients.filter((r) => r.action === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const out: string[] = [`This is the mail system at host ${host}.`, ''];
  if (failed.length > 0) {
    out.push(
      ...wrap(
        'Your message could not be delivered to one or more recipients. ' +
          'The mail system has stopped trying to deliver it to the addresses below. ' +
          'The headers of your message are attached.',
      ),
      '',
      ...failed.flatMap(recipientLines),
    );
  }
  if (delayed.length > 0) {
    const until = delayed.map((r) => r.willRetryUntil).find((d): d is Date => d instanceof Date);
    out.push(
      ...wrap(
        'Your message has not yet been delivered to one or more recipients; ' +
          `the mail system will keep trying${until ? ` until ${rfc5322Date(until)}` : ''}. ` +
          'You do not need to send it again.',
      ),
      '',
      ...delayed.flatMap(recipientLines),
    );
  }
  out.push(`Queue ID: ${input.queueId}`, `Arrived: ${rfc5322Date(input.arrivalDate)}`, '');
  return out.join(CRLF);
}

function recipientLines(r: DsnRecipient): string[] {
  const reason = r.reply ? oneLine(r.reply.text) : fallbackDiagnostic(r);
  return [`<${oneLine(r.address)}>`, ...wrap(`Status ${r.status}: ${reason}`, '    '), ''];
}

function deliveryStatus(input: DsnInput, host: string): string {
  const perMessage = [
    field('Reporting-MTA', `dns; ${host}`),
    field('X-Onward-Queue-Id', input.queueId),
    field('Arrival-Date', rfc5322Date(input.arrivalDate)),
  ];
  const blocks = input.recipients.map((r) => {
    const lines = [
      field('Final-Recipient', addressField(r.address)),
      field('Action', r.action),
      field('Status', r.status),
    ];
    // The host that answered, when the delivery went to a mail exchanger (mx targets).
    if (r.reply?.remoteMta !== undefined) lines.push(field('Remote-MTA', `dns; ${oneLine(r.reply.remoteMta)}`));
    lines.push(field('Diagnostic-Code', diagnosticCode(r)));
    if (r.lastAttemptAt) lines.push(field('Last-Attempt-Date', rfc5322Date(r.lastAttemptAt)));
    if (r.action === 'delayed' && r.willRetryUntil) {
      lines.push(field('Will-Retry-Until', rfc5322Date(r.willRetryUntil)));
    }
    return lines.join(CRLF);
  });
  return [perMessage.join(CRLF), ...blocks].join(CRLF + CRLF) + CRLF;
}

function diagnosticCode(r: DsnRecipient): string {
  if (r.reply === null) return `x-onward; ${fallbackDiagnostic(r)}`;
  let text = oneLine(r.reply.text);
  if (r.reply.kind === 'smtp' && r.reply.code !== null && !text.startsWith(String(r.reply.code))) {
    text = `${r.reply.code} ${text}`;
  }
  if (text.length > MAX_DIAGNOSTIC) text = `${text.slice(0, MAX_DIAGNOSTIC)}...`;
  // `smtp;`/`http;` name a reply of that protocol; a network error without one is ours to describe.
  return `${r.reply.code === null ? 'x-onward' : r.reply.kind}; ${text}`;
}

function fallbackDiagnostic(r: DsnRecipient): string {
  if (r.action === 'delayed') return 'delivery has not succeeded yet';
  return r.status.startsWith('4.') ? 'delivery time expired' : 'delivery failed';
}

/**
 * `rfc822; addr` for ASCII addresses. An internationalised address uses RFC 6533's `utf-8`
 * type in its xtext form (`\x{HEX}`), which a plain message/delivery-status may carry.
 */
function addressField(address: string): string {
  const addr = oneLine(address).replace(/^<|>$/g, '');
  if (/^[\x20-\x7e]*$/.test(addr)) return `rfc822; ${addr}`;
  let out = '';
  for (const ch of addr) {
    const cp = ch.codePointAt(0) ?? 0;
    out += cp < 0x21 || cp > 0x7e || ch === '\\' ? `\\x{${cp.toString(16).toUpperCase()}}` : ch;
  }
  return `utf-8; ${out}`;
}

/** One header-style field, 7bit, folded at whitespace so no line passes MAX_LINE octets. */
function field(name: string, value: string): string {
  const head = `${name}:`;
  const lines: string[] = [];
  let line = head;
  for (const word of ascii(oneLine(value)).split(' ')) {
    if (word === '') continue;
    for (let i = 0; i < word.length; i += MAX_LINE - 1) {
      const piece = word.slice(i, i + MAX_LINE - 1);
      if (line !== head && line.length + 1 + piece.length > FOLD_AT) {
        lines.push(line);
        line = '';
      }
      line += ` ${piece}`;
    }
  }
  lines.push(line);
  return lines.join(CRLF);
}

/** Word-wraps prose for the human part so it stays 7bit-friendly (no QP soft breaks). */
function wrap(text: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of oneLine(text).split(' ')) {
    if (word === '') continue;
    if (line !== '' && indent.length + line.length + 1 + word.length > 72) {
      lines.push(indent + line);
      line = '';
    }
    line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
}

function ascii(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * Plain ASCII headers go as a string so MimeNode can pick 7bit; anything else goes as bytes
 * with quoted-printable, so headers in an unknown 8-bit charset come back byte-for-byte.
 */
function setHeaderContent(node: MimeNode, raw: Buffer): void {
  const text = raw.toString('latin1').replace(/(\r?\n)+$/, '');
  const block = `${text === '' ? 'X-Onward-Note: original headers unavailable' : text}${CRLF}`;
  const bytes = Buffer.from(block, 'latin1');
  if (!bytes.some((b) => b > 0x7e || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d))) {
    node.setContent(block);
    return;
  }
  if (isUtf8(bytes)) node.setHeader('Content-Type', 'text/rfc822-headers; charset=utf-8');
  node.setHeader('Content-Transfer-Encoding', 'quoted-printable');
  node.setContent(bytes);
}
