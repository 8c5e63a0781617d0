// Small DOM helpers: elements are built with createElement and textContent only (never
// innerHTML), so no text from the API can become markup.

/**
 * `h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child)`: an element with attributes
 * (`on…` functions become listeners, `false`/`null`/`undefined` are left out) and children.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** Say something to screen-reader users (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById('announcer');
  // Clearing first makes the same sentence twice in a row be read twice.
  region.textContent = '';
  setTimeout(() => (region.textContent = text), 50);
}

/** Show `view` as the page's content and put the keyboard focus on its heading. */
export function showView(view) {
  const main = document.getElementById('main');
  main.replaceChildren(view);
  const heading = main.querySelector('h1');
  (heading ?? main).focus();
}

export function formatBytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A timestamp as a `<time>` element: local time shown, the exact value machine-readable. */
export function timeElement(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return h('time', { datetime: iso, title: iso }, date.toLocaleString());
}

/** How long between two timestamps (the second defaults to now), e.g. `1 min 5 s`. */
export function formatDuration(fromIso, toIso) {
  if (!fromIso) return '';
  const seconds = Math.max(0, Math.round(((toIso ? Date.parse(toIso) : Date.now()) - Date.parse(fromIso)) / 1000));
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** `sha256:0123456789ab…` → `0123456789ab` (the short form Docker shows). */
export function shortDigest(digest) {
  return (digest ?? '').replace(/^sha256:/, '').slice(0, 12);
}

/** A build's status as a badge: text (never colour alone) plus a class for its colour. */
export function statusBadge(status) {
  return h('span', { class: `status status-${status}`, 'data-status': status }, status);
}

export function updateStatusBadge(badge, status) {
  badge.className = `status status-${status}`;
  badge.dataset.status = status;
  badge.textContent = status;
}

export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'cancelled']);
