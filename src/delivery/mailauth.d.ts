/**
 * Types for the one mailauth internal onward uses: the signer class behind `dkimSign`
 * (mailauth/lib/dkim/sign.js), subclassed in dkim.ts to oversign From. mailauth ships types
 * for `dkimSign` and `dkimVerify` only.
 */
declare module 'mailauth/lib/dkim/dkim-signer.js' {
  import { Writable } from 'node:stream';

  /** A header field as mailauth parsed it: `key` lower-cased, `casedKey` as written, `line` the raw field. */
  export interface ParsedHeader {
    key: string | null;
    casedKey: string | undefined;
    line: Buffer;
  }

  export interface ParsedHeaders {
    parsed: ParsedHeader[];
    original: Buffer;
  }

  export interface DkimSignerOptions {
    canonicalization?: string;
    signTime?: Date;
    /** Colon-separated field names (an array is ignored by this class). */
    headerList?: string;
    signatureData: { signingDomain: string; selector: string; privateKey: string; algorithm?: string }[];
  }

  export class DkimSigner extends Writable {
    constructor(options: DkimSignerOptions);
    headerList: string | undefined;
    signatureHeaders: string[];
    errors: { err: Error }[];
    messageHeaders(headers: ParsedHeaders): Promise<void>;
  }
}
