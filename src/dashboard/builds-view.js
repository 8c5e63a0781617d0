// Recent builds: the tenant's newest builds, their status kept live from their event streams.

import { apiJson, NeedsToken } from './api.js';
import { followBuild } from './build-events.js';
import { announce, FINAL_STATUSES, formatDuration, h, statusBadge, timeElement, updateStatusBadge } from './dom.js';

const LIST_LIMIT = 20;
/** New builds (submitted elsewhere) appear within this. */
const REFRESH_MS = 5000;
/**
 * Builds followed live at once. Browsers open at most 6 HTTP/1.1 connections per origin and
 * each stream holds one; the rest are refreshed with the list.
 */
const MAX_FOLLOWED = 4;

export function buildsView({ signal, onNeedsToken }) {
  const body = h('tbody');
  const empty = h('p', { hidden: true }, 'No builds yet. Submit one with POST /v1/builds.');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const rows = new Map(); // id → { row, badge, finished, duration, summary }
  const followed = new Set();

  const view = h(
    'section',
    { 'aria-labelledby': 'builds-title' },
    h('h1', { id: 'builds-title', tabindex: '-1' }, 'Recent builds'),
    error,
    empty,
    h(
      'table',
      { class: 'builds' },
      h('caption', { class: 'visually-hidden' }, 'Your newest builds, newest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Build'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Submitted'), h('th', { scope: 'col' }, 'Took'))),
      body,
    ),
  );

  const setStatus = (id, status, fields = {}) => {
    const entry = rows.get(id);
    if (!entry) return;
    const changed = entry.summary.status !== status;
    Object.assign(entry.summary, fields, { status });
    updateStatusBadge(entry.badge, status);
    entry.duration.textContent = formatDuration(entry.summary.startedAt, entry.summary.finishedAt);
    if (changed) announce(`${entry.summary.name}:${entry.summary.tag} is ${status}`);
  };

  const follow = (id) => {
    if (followed.has(id) || followed.size >= MAX_FOLLOWED) return;
    followed.add(id);
    followBuild(id, {
      signal,
      onEvent: (event) => {
        if (event.event === 'state') setStatus(id, event.data.status, event.data);
      },
    })
      .catch((err) => {
        if (err instanceof NeedsToken) onNeedsToken(err.message);
      })
      .finally(() => followed.delete(id));
  };

  const render = (summaries) => {
    empty.hidden = summaries.length > 0 || rows.size > 0;
    // Newest first: rows not seen before go on top, in order; known rows are updated in
    // place, so the keyboard focus stays where it was.
    let before = body.firstChild;
    for (const summary of summaries) {
      const known = rows.get(summary.id);
      if (known) {
        setStatus(summary.id, summary.status, summary);
        before = known.row.nextSibling;
      } else {
        const badge = statusBadge(summary.status);
        const duration = h('td', {}, formatDuration(summary.startedAt, summary.finishedAt));
        const row = h(
          'tr',
          { 'data-build': summary.id },
          h('th', { scope: 'row' }, h('a', { href: `#/builds/${summary.id}` }, `${summary.name}:${summary.tag}`), h('span', { class: 'build-id' }, summary.id)),
          h('td', {}, badge),
          h('td', {}, timeElement(summary.createdAt)),
          duration,
        );
        body.insertBefore(row, before);
        rows.set(summary.id, { row, badge, duration, summary: { ...summary } });
      }
      if (!FINAL_STATUSES.has(summary.status)) follow(summary.id);
    }
  };

  const refresh = async () => {
    try {
      const { builds } = await apiJson(`/v1/builds?limit=${LIST_LIMIT}`, { signal });
      error.hidden = true;
      render(builds);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof NeedsToken) return onNeedsToken(err.message);
      error.textContent = `Could not list builds: ${err.message}`;
      error.hidden = false;
    }
  };

  const load = refresh().then(() => {
    const timer = setInterval(refresh, REFRESH_MS);
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  });
  return { view, ready: load };
}
