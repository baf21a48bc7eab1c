// @ts-check
// The message list (filters, paging by cursor: one page of 50 at a time, never the whole
// queue), the message view, and the actions on one message or on all that match the filter.
import { ApiError, getJson, listPage, postJson, request } from './api.js';
import { age, byId, el, replaceRows, stateBadge, when } from './dom.js';

const PAGE = 50;
const FILTER_KEYS = /** @type {const} */ (['state', 'target', 'sender', 'recipient', 'messageId', 'olderThan']);

export class Messages {
  /** @param {(err: unknown) => void} onError */
  constructor(onError) {
    this.onError = onError;
    /** Cursors of the pages before this one (`after` values; '' is the first page). @type {string[]} */
    this.cursors = [''];
    /** @type {import('./types.js').ListEntry[]} */
    this.rows = [];
    this.loading = false;
    this.again = false;
    this.form = /** @type {HTMLFormElement} */ (byId('filter'));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.cursors = [''];
      void this.load();
    });
    this.form.addEventListener('reset', () => {
      this.cursors = [''];
      setTimeout(() => void this.load()); // after the form has cleared its fields
    });
    byId('next').addEventListener('click', () => {
      const last = this.rows[this.rows.length - 1];
      if (!last) return;
      this.cursors.push(last.id);
      void this.load();
    });
    byId('prev').addEventListener('click', () => {
      if (this.cursors.length > 1) this.cursors.pop();
      void this.load();
    });
    for (const button of document.querySelectorAll('[data-bulk]')) {
      button.addEventListener('click', () => void this.bulk(/** @type {HTMLElement} */ (button).dataset.bulk ?? ''));
    }
    this.view = new MessageView(() => void this.load(), onError);
  }

  /** The filter as the API takes it (only the fields filled in). @returns {Record<string, string>} */
  filter() {
    const data = new FormData(this.form);
    /** @type {Record<string, string>} */
    const f = {};
    for (const k of FILTER_KEYS) {
      const raw = data.get(k);
      const v = typeof raw === 'string' ? raw.trim() : '';
      if (v !== '') f[k] = v;
    }
    return f;
  }

  /** Reloads the current page (a tick said the spool changed, or the filter moved). */
  async load() {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      const query = new URLSearchParams({ ...this.filter(), limit: String(PAGE + 1) });
      const after = this.cursors[this.cursors.length - 1];
      if (after) query.set('after', after);
      const entries = await listPage(query);
      this.rows = entries.slice(0, PAGE);
      this.render(entries.length > PAGE);
      window.onwardDashboard.listLoads += 1;
    } catch (err) {
      this.onError(err);
    } finally {
      this.loading = false;
      if (this.again) {
        this.again = false;
        void this.load();
      }
    }
  }

  /** @param {boolean} more */
  render(more) {
    const now = Date.now();
    replaceRows(
      byId('messages-body'),
      this.rows.map((m) => {
        const row = el(
          'tr',
          { 'data-testid': 'message-row', 'data-id': m.id, 'data-state': m.state, tabindex: '0' },
          el('td', { class: 'mono' }, m.id),
          el('td', {}, stateBadge(m.state)),
          el('td', { class: 'num' }, age(now - Date.parse(m.receivedAt))),
          el('td', {}, m.sender === '' ? '<>' : m.sender),
          el('td', {}, m.recipients.map((r) => r.address).join(', ')),
          el('td', {}, when(m.nextAttemptAt)),
        );
        row.addEventListener('click', () => void this.view.open(m.id));
        row.addEventListener('keydown', (e) => e.key === 'Enter' && void this.view.open(m.id));
        return row;
      }),
    );
    const page = this.cursors.length;
    byId('page-info').textContent = this.rows.length === 0 ? 'no messages match' : `page ${page} · ${this.rows.length} shown`;
    /** @type {HTMLButtonElement} */ (byId('prev')).disabled = page === 1;
    /** @type {HTMLButtonElement} */ (byId('next')).disabled = !more;
  }

  /** "hold all matching": count first (dry run), confirm naming the count, then act. @param {string} action */
  async bulk(action) {
    const result = byId('bulk-result');
    try {
      const f = this.filter();
      const filter = Object.keys(f).length === 0 ? { state: 'queued,deferred,held' } : f;
      /** @type {{ matched: number, changed: number }} */
      const dry = await postJson('/api/spool/actions', { action, filter, dryRun: true });
      if (dry.matched === 0) {
        result.textContent = `${action}: no message matches`;
        return;
      }
      const ok = await confirmDialog(`${action[0]?.toUpperCase()}${action.slice(1)} ${dry.matched} message${dry.matched === 1 ? '' : 's'} matching ${describe(filter)}?`);
      if (!ok) return;
      /** @type {{ matched: number, changed: number }} */
      const done = await postJson('/api/spool/actions', { action, filter });
      result.textContent = `${action}: ${done.matched} matched, ${done.changed} changed`;
      await this.load();
    } catch (err) {
      this.onError(err);
    }
  }
}

/** @param {Record<string, string>} filter */
function describe(filter) {
  return Object.entries(filter).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** @param {string} text @returns {Promise<boolean>} */
function confirmDialog(text) {
  const dialog = /** @type {HTMLDialogElement} */ (byId('confirm'));
  byId('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

class MessageView {
  /** @param {() => void} onChange @param {(err: unknown) => void} onError */
  constructor(onChange, onError) {
    this.dialog = /** @type {HTMLDialogElement} */ (byId('message'));
    /** @type {string | null} */
    this.id = null;
    for (const button of this.dialog.querySelectorAll('[data-act]')) {
      const action = /** @type {HTMLElement} */ (button).dataset.act ?? '';
      button.addEventListener('click', () => void this.act(action, onChange, onError));
    }
    byId('download').addEventListener('click', () => void this.download(onError));
  }

  /** @param {string} action @param {() => void} onChange @param {(err: unknown) => void} onError */
  async act(action, onChange, onError) {
    const id = this.id;
    if (id === null) return;
    try {
      if ((action === 'bounce' || action === 'delete') && !(await confirmDialog(`${action[0]?.toUpperCase()}${action.slice(1)} message ${id}?`))) return;
      await postJson(`/api/spool/messages/${encodeURIComponent(id)}/${action}`, {});
      await this.open(id);
      onChange();
    } catch (err) {
      onError(err);
    }
  }

  /** @param {(err: unknown) => void} onError */
  async download(onError) {
      if (this.id === null) return;
      try {
        // Fetched with the bearer and saved from a Blob URL: the token stays out of the link.
        const blob = await (await request(`/api/spool/messages/${encodeURIComponent(this.id)}/body`)).blob();
        const url = URL.createObjectURL(blob);
        const a = el('a', { href: url, download: `${this.id}.eml` });
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      } catch (err) {
        onError(err instanceof ApiError && err.code === 'ONWARD_ERR_NOT_FOUND' ? new ApiError(404, err.code, 'the body is no longer kept (the message is finished)') : err);
      }
  }

  /** @param {string} id */
  async open(id) {
    this.id = id;
    /** @type {import('./types.js').ShowView} */
    const m = await getJson(`/api/spool/messages/${encodeURIComponent(id)}`);
    const dl = (/** @type {[string, string | null][]} */ pairs) =>
      el('dl', {}, ...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v ?? '—')]));
    byId('message-content').replaceChildren(
      el('h2', {}, 'Message ', el('span', { class: 'mono', 'data-testid': 'view-id' }, m.id), ' ', stateBadge(m.state)),
      dl([
        ['sender', m.sender === '' ? '<>' : m.sender],
        ['recipients', m.recipients.map((r) => `${r.address} (${r.state})`).join(', ')],
        ['Message-ID', m.messageId],
        ['received', `${m.receivedAt} from ${m.client.hostname} [${m.client.ip}]${m.client.user ? ` as ${m.client.user}` : ''}`],
        ['size', `${m.size} bytes`],
        ['finished', m.finishedAt],
        ...(m.bounceOf ? /** @type {[string, string][]} */ ([['bounce of', m.bounceOf]]) : []),
      ]),
      el('h3', {}, 'Deliveries'),
      ...m.deliveries.map((d) =>
        el(
          'section',
          { class: 'delivery', 'data-testid': 'delivery', 'data-id': d.id },
          el('h4', {}, `${d.id} → ${d.targets.join(' → ')} `, stateBadge(d.state), ` ${d.attemptCount} attempt${d.attemptCount === 1 ? '' : 's'}, next ${when(d.nextAttemptAt)}`),
          el('p', {}, d.recipients.map((r) => `${r.address}: ${r.state}${r.lastError ? ` (${r.lastError})` : ''}`).join(' · ')),
          el(
            'table',
            { class: 'attempts' },
            el('thead', {}, el('tr', {}, el('th', {}, 'at'), el('th', {}, 'target'), el('th', {}, 'outcome'), el('th', {}, 'reply'), el('th', {}, 'ms'))),
            el(
              'tbody',
              {},
              ...d.attempts.map((a) =>
                el(
                  'tr',
                  { 'data-testid': 'attempt' },
                  el('td', {}, when(a.at)),
                  el('td', {}, a.target),
                  el('td', {}, el('span', { class: `outcome o-${a.outcome}` }, a.outcome)),
                  el('td', { class: 'reply', 'data-testid': 'attempt-reply' }, a.reply),
                  el('td', { class: 'num' }, String(a.durationMs)),
                ),
              ),
            ),
          ),
        ),
      ),
      el('h3', {}, 'Headers'),
      el('pre', { class: 'headers', 'data-testid': 'headers' }, m.headers.map(([k, v]) => `${k}: ${v}`).join('\n')),
    );
    if (!this.dialog.open) this.dialog.showModal();
  }
}
