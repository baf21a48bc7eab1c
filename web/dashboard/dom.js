// @ts-check
// Building DOM nodes from data. Everything a message carries (senders, headers, replies) is
// attacker-controlled: it only ever becomes text nodes, never markup.

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string | null)[]} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null) node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return node;
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/** "3m 20s" from milliseconds. @param {number} ms */
export function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A time as "12:03:04" today or "2026-12-01 12:03" otherwise. @param {string | null} iso */
export function when(iso) {
  if (iso === null) return '—';
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour12: false }) : `${d.toISOString().slice(0, 10)} ${d.toTimeString().slice(0, 5)}`;
}

/** @param {string} state */
export function stateBadge(state) {
  return el('span', { class: `state s-${state}` }, state);
}

/** @param {HTMLElement} body @param {HTMLElement[]} rows */
export function replaceRows(body, rows) {
  body.replaceChildren(...rows);
}
