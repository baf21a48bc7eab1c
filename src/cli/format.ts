/** Human renderings of the spool views: `mailq`-like, fixed columns, printed as rows arrive. */
import type { ListEntry, NodeView, ShowView, StatsView } from '../admin/index.js';
import type { CheckReport } from '../spool/index.js';

export function age(fromIso: string, now: number = Date.now()): string {
  return duration(now - Date.parse(fromIso));
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function row(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
}

const LIST_WIDTHS = [15, 9, 7, 9, 16];
export const LIST_HEADER = row(['ID', 'STATE', 'AGE', 'SIZE', 'NEXT ATTEMPT', 'SENDER'], LIST_WIDTHS);

/** One message: a line for the message, then one indented line per recipient. */
export function listRow(e: ListEntry, now: number = Date.now()): string {
  const next = e.nextAttemptAt === null ? '-' : Date.parse(e.nextAttemptAt) <= now ? 'now' : `in ${duration(Date.parse(e.nextAttemptAt) - now)}`;
  const lines = [row([e.id, e.state, age(e.receivedAt, now), bytes(e.size), next, e.sender === '' ? '<>' : e.sender], LIST_WIDTHS)];
  for (const r of e.recipients) {
    const via = r.domain === undefined ? r.target : `${r.target} (${r.domain})`;
    lines.push(`    -> ${r.address}  ${r.state} via ${via}${r.lastError ? `  (${r.lastError})` : ''}`);
  }
  return lines.join('\n');
}

export function statsText(s: StatsView): string {
  const counts = (c: Record<string, number>): string => Object.entries(c).map(([k, v]) => `${k} ${v}`).join('  ');
  const events = Object.values(s.events).some((n) => n > 0) ? [`events        ${counts(s.events)}`] : [];
  const lines = [
    `messages      ${counts(s.states)}`,
    ...events,
    `oldest queued ${s.oldestQueuedAgeSeconds === null ? '-' : duration(s.oldestQueuedAgeSeconds * 1000)}`,
    `spool size    ${bytes(s.spoolBytes)}`,
    `source        ${s.source === 'relay' ? 'running relay (admin API)' : 'stopped spool (opened directly)'}`,
    ...(s.nodes === undefined ? [] : [`nodes         ${s.nodes} alive (targets: up on any, concurrency summed)`]),
    '',
    row(['TARGET', 'QUEUED', 'DEFERRED', 'UP', 'CONCURRENCY'], [16, 8, 9, 5]),
  ];
  for (const [name, t] of Object.entries(s.targets)) {
    const up = t.up === null ? '-' : t.up ? 'yes' : 'DOWN';
    lines.push(row([name, String(t.queued), String(t.deferred), up, t.concurrency === null ? '-' : String(t.concurrency)], [16, 8, 9, 5]));
  }
  // mx targets of a running relay: the busiest domains' live window and circuit.
  for (const [target, domains] of Object.entries(s.domains ?? {})) {
    lines.push('', row([`DOMAIN (${target})`, 'IN FLIGHT', 'UP', 'CONCURRENCY'], [32, 9, 5]));
    for (const [domain, d] of Object.entries(domains)) lines.push(row([domain, String(d.inFlight), d.up ? 'yes' : 'DOWN', String(d.concurrency)], [32, 9, 5]));
  }
  return lines.join('\n');
}

export function showText(m: ShowView): string {
  const lines = [
    `id            ${m.id}`,
    `state         ${m.state}`,
    `sender        ${m.sender === '' ? '<>' : m.sender}`,
    `recipients    ${m.recipients.map((r) => r.address).join(', ')}`,
    `message-id    ${m.messageId ?? '-'}`,
    `size          ${bytes(m.size)}`,
    `received      ${m.receivedAt} (${age(m.receivedAt)} ago) from ${m.client.ip}${m.client.user ? ` as ${m.client.user}` : ''}`,
  ];
  if (m.finishedAt) lines.push(`finished      ${m.finishedAt}`);
  if (m.bounceOf) lines.push(`bounce of     ${m.bounceOf}`);
  if (m.eventOf) lines.push(`event of      ${m.eventOf} (its body is the event JSON: onward spool body ${m.id})`);
  const subject = m.headers.find(([k]) => k.toLowerCase() === 'subject');
  if (subject) lines.push(`subject       ${subject[1]}`);
  for (const d of m.deliveries) {
    lines.push('', `delivery ${d.id} -> ${d.targets.join(' then ')}${d.domain === undefined ? '' : ` (domain ${d.domain})`}: ${d.state}${d.nextAttemptAt ? `, next attempt ${d.nextAttemptAt}` : ''}`);
    for (const r of d.recipients) lines.push(`  ${r.address}  ${r.state}${r.lastError ? `  (${r.lastError})` : ''}`);
    for (const a of d.attempts) lines.push(`  attempt ${a.at}  ${a.target}  ${a.outcome.toUpperCase()}  ${a.durationMs} ms  ${a.reply}`);
  }
  return lines.join('\n');
}

export function checkText(r: CheckReport): string {
  const lines = [`checked ${r.messages} messages, ${r.deliveries} deliveries`];
  const kinds = Object.entries(r.counts);
  if (kinds.length === 0) lines.push('no problems found');
  for (const [kind, n] of kinds) lines.push(`  ${kind}: ${n}`);
  for (const p of r.problems) lines.push(`  ${p.repaired ? 'repaired' : 'found   '} ${p.kind}  ${p.detail}`);
  return lines.join('\n');
}

const NODE_WIDTHS = [20, 16, 7, 9, 9, 9, 5];
export const NODES_HEADER = row(['ID', 'HOST', 'PID', 'VERSION', 'STARTED', 'LAST SEEN', 'ALIVE', 'IN FLIGHT'], NODE_WIDTHS);

/** `spool nodes`: one line per node, ages relative to `now`. */
export function nodesText(nodes: readonly NodeView[], now: number = Date.now()): string {
  const lines = [NODES_HEADER];
  for (const n of nodes) {
    const cells = [n.id, n.host, String(n.pid), n.version, `${age(n.startedAt, now)} ago`, `${age(n.lastSeenAt, now)} ago`, n.alive ? 'yes' : 'NO', String(n.inFlight)];
    lines.push(row(cells, NODE_WIDTHS));
  }
  const alive = nodes.filter((n) => n.alive).length;
  lines.push(`-- ${nodes.length} node${nodes.length === 1 ? '' : 's'}, ${alive} alive`);
  return lines.join('\n');
}
