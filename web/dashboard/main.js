// @ts-check
// Start-up: find out whether the relay wants a token (ask once, keep it for the tab), then
// follow the live event stream (history first, a tick every interval) and draw from it.
import { ApiError, getJson, readEvents, saveToken, savedToken } from './api.js';
import { byId } from './dom.js';
import { Messages } from './messages.js';
import { renderCounts, renderNodes, renderTargets } from './panels.js';
import { Plots } from './plots.js';

window.onwardDashboard = { plots: null, listLoads: 0 };

const errorBox = byId('error');
const live = byId('live');

/** @param {unknown} err */
function showError(err) {
  if (err instanceof ApiError && err.status === 401) return askToken(true);
  errorBox.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : `Something went wrong: ${String(err)}`;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = '';
}

/** @param {boolean} refused */
function askToken(refused) {
  const form = /** @type {HTMLFormElement} */ (byId('token-form'));
  if (refused && savedToken() !== null) {
    errorBox.textContent = 'The token was refused (ONWARD_ERR_UNAUTHORIZED): enter the admin token again.';
    errorBox.hidden = false;
  }
  saveToken(null);
  byId('app').hidden = true;
  form.hidden = false;
  /** @type {HTMLInputElement} */ (byId('token')).focus();
}

byId('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId('token'));
  saveToken(input.value);
  input.value = '';
  void start();
});

/** @type {AbortController | null} */
let stream = null;
/** @type {Messages | null} */
let messages = null;

async function start() {
  try {
    await getJson('/api/spool/stats');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return askToken(savedToken() !== null);
    return showError(err);
  }
  clearError();
  byId('token-form').hidden = true;
  byId('app').hidden = false;
  window.onwardDashboard.plots ??= new Plots(byId('depth-plot'), byId('rate-plot'));
  messages ??= new Messages(showError);
  void messages.load();
  stream?.abort();
  stream = new AbortController();
  void follow(stream.signal);
}

/** The event stream, reconnected after a pause when it drops (relay restart, network). @param {AbortSignal} signal */
async function follow(signal) {
  let lastChanged = -1;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let reload = null;
  while (!signal.aborted) {
    try {
      await readEvents(
        '/api/dashboard/events',
        (name, data) => {
          const plots = window.onwardDashboard.plots;
          if (name === 'history' && plots) {
            plots.reset(/** @type {{ samples: import('./types.js').Sample[] }} */ (data).samples);
            live.textContent = 'live';
            live.className = 'pill up';
          } else if (name === 'tick' && plots) {
            const tick = /** @type {import('./types.js').Tick} */ (data);
            plots.add(tick.sample);
            renderTargets(tick.targets);
            renderNodes(tick.nodes);
            renderCounts(tick.states);
            if (tick.changed !== lastChanged) {
              if (lastChanged !== -1 && reload === null) {
                reload = setTimeout(() => {
                  reload = null;
                  void messages?.load();
                }, 300);
              }
              lastChanged = tick.changed;
            }
          }
        },
        signal,
      );
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status === 401) return askToken(true);
    }
    live.textContent = 'reconnecting…';
    live.className = 'pill down';
    await new Promise((r) => setTimeout(r, 2000));
  }
}

void start();
