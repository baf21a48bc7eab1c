/** Records are stored as JSON; bodies as raw bytes. */
export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export function decodeRecord<T>(buf: Buffer | undefined): T | null {
  return buf === undefined ? null : (JSON.parse(buf.toString('utf8')) as T);
}
