// @ts-check
// Targets and cluster nodes, redrawn from each tick.
import { age, byId, el, replaceRows, when } from './dom.js';

/** @param {import('./types.js').TargetRow[]} targets */
export function renderTargets(targets) {
  replaceRows(
    byId('targets-body'),
    targets.map((t) =>
      el(
        'tr',
        { 'data-testid': 'target-row', 'data-target': t.name },
        el('td', {}, t.name),
        el('td', {}, t.up === null ? '—' : el('span', { class: `pill ${t.up ? 'up' : 'down'}` }, t.up ? 'up' : 'down')),
        el('td', { class: 'num' }, t.inFlight === null ? '—' : `${t.inFlight} / ${t.limit ?? '—'}`),
        el('td', { class: 'num' }, String(t.queued)),
        el('td', { class: 'num' }, String(t.deferred)),
        el('td', { class: 'reply' }, t.lastError === null ? '' : `${when(t.lastError.at)} ${t.lastError.text}`),
      ),
    ),
  );
}

/** @param {import('./types.js').NodeRow[] | null} nodes */
export function renderNodes(nodes) {
  const card = byId('nodes-card');
  card.hidden = nodes === null;
  if (nodes === null) return;
  replaceRows(
    byId('nodes-body'),
    nodes.map((n) =>
      el(
        'tr',
        { 'data-testid': 'node-row' },
        el('td', {}, n.id),
        el('td', {}, n.host),
        el('td', { class: 'num' }, String(n.pid)),
        el('td', {}, n.version),
        el('td', {}, el('span', { class: `pill ${n.alive ? 'up' : 'down'}` }, n.alive ? 'alive' : 'gone')),
        el('td', { class: 'num' }, String(n.inFlight)),
        el('td', {}, `${age(Date.now() - Date.parse(n.lastSeenAt))} ago`),
      ),
    ),
  );
}

/** The header's figures. @param {Record<string, number>} states */
export function renderCounts(states) {
  const parts = ['queued', 'deferred', 'held', 'delivered', 'bounced'].map((s) =>
    el('span', { class: `count s-${s}`, 'data-testid': `count-${s}` }, `${s} ${states[s] ?? 0}`),
  );
  byId('counts').replaceChildren(...parts);
}
