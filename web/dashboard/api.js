// @ts-check
// The admin API as the page uses it: every call carries the bearer when the relay asked for
// one (kept in sessionStorage: never a cookie, so no CSRF; never in a URL, so never in a log).

const TOKEN_KEY = 'onward.adminToken';

/** An API refusal with the relay's stable code (`{ error: { code, message } }`). */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** JSON.parse typed as what it is until checked: unknown; bad JSON is null. @param {string} text @returns {unknown} */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** @returns {string | null} */
export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} token */
export function saveToken(token) {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** @param {RequestInit} [init] @returns {RequestInit} */
function withAuth(init = {}) {
  const headers = new Headers(init.headers);
  const token = savedToken();
  if (token !== null) headers.set('authorization', `Bearer ${token}`);
  headers.set('x-onward-actor', 'dashboard');
  return { ...init, headers };
}

/** @param {string} path @param {RequestInit} [init] @returns {Promise<Response>} */
export async function request(path, init) {
  const res = await fetch(path, withAuth(init));
  if (res.ok) return res;
  const text = await res.text().catch(() => '');
  const body = /** @type {{ error?: { code?: string, message?: string } } | null} */ (parseJson(text));
  throw new ApiError(res.status, body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? res.statusText);
}

/** @template T @param {string} path @param {RequestInit} [init] @returns {Promise<T>} */
export async function getJson(path, init) {
  const value = /** @type {unknown} */ (await (await request(path, init)).json());
  return /** @type {T} */ (value);
}

/** @template T @param {string} path @param {unknown} body @returns {Promise<T>} */
export function postJson(path, body) {
  return getJson(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/**
 * The listing (NDJSON) as an array: one page, never the whole queue.
 * @param {URLSearchParams} query @returns {Promise<import('./types.js').ListEntry[]>}
 */
export async function listPage(query) {
  const text = await (await request(`/api/spool/messages?${query.toString()}`)).text();
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => /** @type {import('./types.js').ListEntry} */ (parseJson(line)));
}

/**
 * Server-sent events read with fetch (EventSource cannot send an Authorization header).
 * Calls `onEvent(name, data)` per event until the stream ends or `signal` aborts.
 * @param {string} path
 * @param {(name: string, data: unknown) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function readEvents(path, onEvent, signal) {
  const res = await request(path, { signal, headers: { accept: 'text/event-stream' } });
  if (!res.body) throw new ApiError(res.status, 'NO_STREAM', 'the event stream has no body');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end;
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length > 0) onEvent(name, parseJson(data.join('\n')));
    }
  }
}
