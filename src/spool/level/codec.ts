import { withEventOf } from '../records.js';
import type { MessageRecord } from '../types.js';

/** Records are stored as JSON; bodies as raw bytes. */
export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export function decodeRecord<T>(buf: Buffer | undefined): T | null {
  return buf === undefined ? null : (JSON.parse(buf.toString('utf8')) as T);
}

/** A message record; one written before delivery events existed decodes with `eventOf: null`. */
export function decodeMessage(buf: Buffer | undefined): MessageRecord | null {
  const record = decodeRecord<MessageRecord>(buf);
  return record === null ? null : withEventOf(record);
}
