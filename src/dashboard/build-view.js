// One build: its status, steps, progress and log following live, its layers, and buttons to
// download the image (every format the image route makes) or cancel the build.

import { ApiError, apiFetch, apiJson, NeedsToken, problemDetail, storedToken } from './api.js';
import { followBuild } from './build-events.js';
import { announce, FINAL_STATUSES, formatBytes, formatDuration, h, shortDigest, statusBadge, timeElement, updateStatusBadge } from './dom.js';

/** The formats GET /v1/builds/{id}/image can make (OutputFormat in openapi.yaml). */
const IMAGE_FORMATS = [
  { format: 'docker-archive', label: 'docker-archive (docker load)' },
  { format: 'docker-archive-oci', label: 'docker-archive-oci (Docker 25 save)' },
  { format: 'oci-archive', label: 'oci-archive (OCI layout)' },
  { format: 'rootfs', label: 'rootfs (flattened filesystem)' },
];

export function buildView(id, { signal, onNeedsToken }) {
  const title = h('h1', { id: 'build-title', tabindex: '-1' }, `Build ${id}`);
  const badge = statusBadge('…');
  const facts = h('dl', { class: 'facts' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const cancelButton = h('button', { type: 'button', class: 'danger' }, 'Cancel build');
  const actionMessage = h('p', { class: 'help', role: 'status' });
  const downloads = h('ul', { class: 'downloads' });
  const downloadSection = h('section', { 'aria-labelledby': 'downloads-title', hidden: true }, h('h2', { id: 'downloads-title' }, 'Download the image'), downloads);
  const steps = h('ol', { class: 'steps' });
  const progress = h('progress', { id: 'progress', max: 1, value: 0 });
  const progressLabel = h('label', { for: 'progress' }, 'Progress');
  const progressBox = h('p', { class: 'progress', hidden: true }, progressLabel, ' ', progress);
  // Shown once the events say something about steps (a polled build has none to show).
  const stepsSection = h('section', { 'aria-labelledby': 'steps-title', hidden: true }, h('h2', { id: 'steps-title' }, 'Steps'), progressBox, steps);
  const log = h('pre', { class: 'log', tabindex: '0', 'aria-labelledby': 'log-title' });
  const layersBody = h('tbody');
  const layersSection = h(
    'section',
    { 'aria-labelledby': 'layers-title', hidden: true },
    h('h2', { id: 'layers-title' }, 'Layers'),
    h(
      'table',
      { class: 'layers' },
      h('caption', { class: 'visually-hidden' }, 'Image layers, bottom first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '#'), h('th', { scope: 'col' }, 'Digest (diff_id)'), h('th', { scope: 'col' }, 'Size'), h('th', { scope: 'col' }, 'Cached'))),
      layersBody,
    ),
  );
  const view = h(
    'article',
    { class: 'build', 'aria-labelledby': 'build-title', 'data-build': id },
    h('div', { class: 'build-head' }, title, badge),
    error,
    facts,
    h('div', { class: 'actions' }, cancelButton, actionMessage),
    downloadSection,
    stepsSection,
    layersSection,
    h('section', { 'aria-labelledby': 'log-title' }, h('h2', { id: 'log-title' }, 'Log'), log),
  );

  let build = null;
  /** Layers a step took from the layer cache (`cached` step events name them). */
  const cachedLayers = new Set();
  const stepItems = new Map();

  const renderFacts = () => {
    const rows = [
      ['Id', h('code', {}, id)],
      ['Image', `${build.spec.name}:${build.spec.tag}`],
      ['Submitted', timeElement(build.createdAt)],
      ['Started', timeElement(build.startedAt)],
      ['Finished', timeElement(build.finishedAt)],
      ['Took', build.finishedAt ? formatDuration(build.startedAt, build.finishedAt) : ''],
      ['Attempt', build.attempt > 1 ? String(build.attempt) : ''],
      ['Built before by', build.cachedFrom ? h('a', { href: `#/builds/${build.cachedFrom}` }, build.cachedFrom) : ''],
    ];
    facts.replaceChildren(...rows.filter(([, value]) => value).flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  };

  const setStatus = (status) => {
    const changed = badge.dataset.status !== status;
    updateStatusBadge(badge, status);
    view.dataset.status = status;
    const active = !FINAL_STATUSES.has(status);
    cancelButton.setAttribute('aria-disabled', String(!active));
    if (changed && build) announce(`Build ${build.spec.name}:${build.spec.tag} is ${status}`);
  };

  const render = () => {
    title.textContent = `${build.spec.name}:${build.spec.tag}`;
    setStatus(build.status);
    renderFacts();
    error.hidden = !build.error;
    error.textContent = build.error ? `Failed: ${build.error.detail ?? build.error.title}` : '';
    renderLayers();
    renderDownloads();
  };

  const renderLayers = () => {
    const layers = build.result?.layers ?? build.result?.diffIds?.map((diffId) => ({ diffId })) ?? [];
    layersSection.hidden = layers.length === 0;
    layersBody.replaceChildren(
      ...layers.map((layer, i) => {
        const cached = build.cached ? `yes, build ${build.cachedFrom}` : cachedLayers.has(layer.diffId) ? 'yes, layer cache' : 'no';
        return h(
          'tr',
          {},
          h('td', {}, String(i + 1)),
          h('td', {}, h('code', { title: layer.diffId }, shortDigest(layer.diffId))),
          h('td', { 'data-bytes': layer.size ?? '' }, formatBytes(layer.size)),
          h('td', {}, cached),
        );
      }),
    );
  };

  const renderDownloads = () => {
    downloadSection.hidden = build.status !== 'succeeded';
    if (downloadSection.hidden || downloads.childElementCount > 0) return;
    downloads.replaceChildren(
      ...IMAGE_FORMATS.map(({ format, label }) => {
        const href = `/v1/builds/${id}/image?format=${format}`;
        const link = h('a', { href, download: '', class: 'button', 'data-format': format }, `Download ${label}`);
        link.addEventListener('click', (event) => {
          // Without a token the browser downloads the link itself (streamed to disk). A token
          // cannot go on a link: fetch it with the header, and hand the result over as a file.
          if (!storedToken()) return;
          event.preventDefault();
          void downloadWithToken(href, link);
        });
        return h('li', {}, link);
      }),
    );
    if (build.result?.archive?.size) {
      downloads.append(h('li', { class: 'help' }, `The build's own archive: ${formatBytes(build.result.archive.size)}`));
    }
  };

  const downloadWithToken = async (href, link) => {
    actionMessage.textContent = 'Downloading…';
    try {
      const res = await apiFetch(href, { signal });
      if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
      const filename = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') ?? '')?.[1] ?? 'image.tar';
      // Chromium keeps big blobs on disk, not in memory.
      const url = URL.createObjectURL(await res.blob());
      const save = h('a', { href: url, download: filename, hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      actionMessage.textContent = `Downloaded ${filename}.`;
    } catch (err) {
      if (err instanceof NeedsToken) return onNeedsToken(err.message);
      if (!signal.aborted) actionMessage.textContent = `Download failed: ${err.message}`;
    }
    link.focus();
  };

  cancelButton.addEventListener('click', async () => {
    if (cancelButton.getAttribute('aria-disabled') === 'true') return;
    actionMessage.textContent = 'Cancelling…';
    try {
      build = { ...build, ...(await apiJson(`/v1/builds/${id}/cancel`, { method: 'POST', signal })) };
      render();
      actionMessage.textContent = 'Cancelled.';
    } catch (err) {
      if (err instanceof NeedsToken) return onNeedsToken(err.message);
      if (!signal.aborted) actionMessage.textContent = `Could not cancel: ${err.message}`;
    }
  });

  const onStep = ({ name, phase, index, durationMs, detail }) => {
    for (const diffId of detail?.layers ?? []) if (phase === 'cached') cachedLayers.add(diffId);
    stepsSection.hidden = false;
    let item = stepItems.get(index);
    if (!item) {
      item = h('li', {});
      stepItems.set(index, item);
      steps.append(item);
    }
    const took = durationMs === undefined ? '' : durationMs < 1000 ? ` in ${durationMs} ms` : ` in ${(durationMs / 1000).toFixed(1)} s`;
    const what = phase === 'cached' ? 'cached' : phase === 'finished' ? `done${took}` : 'running…';
    item.dataset.phase = phase;
    item.textContent = `${name}: ${what}`;
  };

  const onProgress = ({ what, bytesDone, bytesTotal }) => {
    stepsSection.hidden = false;
    progressBox.hidden = false;
    progressLabel.textContent = `${what}: ${formatBytes(bytesDone)}${bytesTotal ? ` of ${formatBytes(bytesTotal)}` : ''}`;
    if (bytesTotal) {
      progress.max = bytesTotal;
      progress.value = bytesDone;
    } else {
      progress.removeAttribute('value'); // indeterminate
    }
  };

  const appendLog = (text) => {
    // Follow the end unless the reader scrolled up to read something.
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(text);
    if (atEnd) log.scrollTop = log.scrollHeight;
  };

  const onEvent = ({ event, data }) => {
    if (event === 'state') {
      // Each attempt (a retry after a worker was lost) starts its log and steps afresh.
      if (data.status === 'running') {
        log.textContent = '';
        steps.replaceChildren();
        stepItems.clear();
        cachedLayers.clear();
      }
      build = { ...build, ...data };
      render();
    } else if (event === 'step') onStep(data);
    else if (event === 'log') appendLog(data.text);
    else if (event === 'progress') onProgress(data);
  };

  /** At the end, the record and the log as stored (the events may have been trimmed). */
  const settle = async () => {
    build = await apiJson(`/v1/builds/${id}`, { signal });
    const res = await apiFetch(`/v1/builds/${id}/logs`, { signal });
    if (res.ok) log.textContent = await res.text();
    progressBox.hidden = true;
    render();
  };

  const ready = (async () => {
    try {
      build = await apiJson(`/v1/builds/${id}`, { signal });
      render();
      await followBuild(id, { signal, onEvent, onSource: (source) => (view.dataset.live = source) });
      await settle();
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof NeedsToken) return onNeedsToken(err.message);
      error.hidden = false;
      error.textContent = err.status === 404 ? `Build ${id} not found.` : `Could not load build ${id}: ${err.message}`;
    }
  })();
  return { view, ready };
}
