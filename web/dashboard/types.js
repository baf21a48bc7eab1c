// @ts-check
// The shapes the page reads (src/admin/views.ts and the dashboard's event stream).
/**
 * @typedef {{ address: string, state: string, target: string, lastError: string | null }} ListRecipient
 * @typedef {{ id: string, state: string, sender: string, recipients: ListRecipient[], size: number,
 *   receivedAt: string, nextAttemptAt: string | null, messageId: string | null }} ListEntry
 * @typedef {{ at: string, target: string, outcome: string, reply: string, durationMs: number }} Attempt
 * @typedef {{ id: string, target: string, targets: string[], state: string, attemptCount: number,
 *   nextAttemptAt: string | null, recipients: { address: string, state: string, lastError: string | null }[],
 *   attempts: Attempt[] }} DeliveryView
 * @typedef {ListEntry & { client: { ip: string, hostname: string, helo: string, user: string | null },
 *   finishedAt: string | null, bounceOf: string | null, headers: [string, string][], deliveries: DeliveryView[] }} ShowView
 * @typedef {{ t: number, queued: number, deferred: number, held: number, received: number, delivered: number, failed: number }} Sample
 * @typedef {{ name: string, up: boolean | null, inFlight: number | null, limit: number | null, queued: number,
 *   deferred: number, lastError: { at: string, text: string } | null }} TargetRow
 * @typedef {{ id: string, host: string, pid: number, version: string, alive: boolean, inFlight: number, lastSeenAt: string }} NodeRow
 * @typedef {{ sample: Sample, states: Record<string, number>, targets: TargetRow[], nodes: NodeRow[] | null, changed: number }} Tick
 */
export {};
