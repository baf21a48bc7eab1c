/**
 * The part of DKIM signing that needs mailauth, in a module of its own so that dkim.ts can
 * load it on the first signature (a relay without keys never carries mailauth).
 */
import { DkimSigner, type ParsedHeaders } from 'mailauth/lib/dkim/dkim-signer.js';

/**
 * The fields signed when present (SPEC section 13), plus every `Content-*` field of the
 * message. From is also listed once more than it occurs (oversigned, RFC 6376 8.15), so a
 * From: field added on the way cannot pass as signed.
 */
const SIGNED_FIELDS = ['From', 'To', 'Cc', 'Subject', 'Date', 'Message-ID', 'Reply-To', 'MIME-Version'];

/**
 * mailauth's signer, told which fields to sign once it has seen the header, and oversigning
 * From. mailauth signs only fields present and writes `h=` from their names as written
 * (`casedKey`); naming the signed From field `From: From` puts one more From in `h=` than
 * the message has, which a verifier reads as an empty field (RFC 6376 5.4.2): exactly an
 * oversigned From. The header bytes hashed are untouched.
 */
export class OversigningSigner extends DkimSigner {
  override messageHeaders(headers: ParsedHeaders): Promise<void> {
    const contentFields = headers.parsed.filter((h) => h.key?.startsWith('content-')).map((h) => h.casedKey ?? '');
    this.headerList = [...SIGNED_FIELDS, ...new Set(contentFields)].join(':');
    // The bottom-most From is the one signed (fields are taken from the bottom up).
    const lastFrom = headers.parsed.findLastIndex((h) => h.key === 'from');
    const parsed = headers.parsed.map((h, i) => (i === lastFrom ? { ...h, casedKey: `${h.casedKey ?? 'From'}: From` } : h));
    return super.messageHeaders({ ...headers, parsed });
  }
}
