/**
 * Schema v2 of the shared PostgreSQL spool: delivery events (SPEC 11). An event is a spool
 * message of its own; `event_of` names the queue id whose delivery outcome it reports (null
 * on every ordinary message, old rows included). Listings split on it (`spool list` shows
 * messages, `spool list --events` events); no index: the split rides on the listing's own.
 */
export function schemaV2(s: string): string {
  return `
ALTER TABLE ${s}.messages ADD COLUMN event_of text;
`;
}
