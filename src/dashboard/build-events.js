// A build's live events: GET /v1/builds/{id}/events as NDJSON (one `{id, event, data}` a line),
// read with fetch so the token can go in a header (EventSource cannot send one). A dropped
// stream is resumed with Last-Event-ID. Where the service has no events route (404 while the
// build exists), the build and its log are polled instead and told as the same events.

import { ApiError, apiFetch, apiJson, NeedsToken, problemDetail } from './api.js';
import { FINAL_STATUSES } from './dom.js';

const RETRY_MS = 1000;
const POLL_MS = 1000;

/**
 * Calls `onEvent({event, data})` for each event of build `id` until its final state (or until
 * `signal` aborts). `onSource('events' | 'polling')` says where they come from. Resolves after
 * the final state; rejects with NeedsToken or ApiError (e.g. the build is not found).
 */
export async function followBuild(id, { onEvent, onSource = () => {}, signal }) {
  let lastEventId = null;
  let reported = false;
  while (!signal.aborted) {
    const headers = { Accept: 'application/x-ndjson' };
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    let res;
    try {
      res = await apiFetch(`/v1/builds/${id}/events`, { headers, signal });
    } catch (err) {
      if (signal.aborted || err instanceof NeedsToken) throw err;
      await sleep(RETRY_MS, signal); // the network or the service is away for a moment
      continue;
    }
    if (res.status === 404) {
      // No such build (rethrown by the GET), or an older service without the events route.
      await apiJson(`/v1/builds/${id}`, { signal });
      onSource('polling');
      return pollBuild(id, { onEvent, signal });
    }
    if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
    if (!reported) onSource('events');
    reported = true;
    try {
      for await (const event of ndjson(res.body, signal)) {
        lastEventId = event.id;
        onEvent(event);
        if (event.event === 'state' && FINAL_STATUSES.has(event.data.status)) return;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      // The stream broke: resume below.
    }
    await sleep(RETRY_MS, signal);
  }
  throw signal.reason;
}

/** The objects of an NDJSON body, as they arrive. */
async function* ndjson(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  let buffered = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line);
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
}

/**
 * The fallback: the record's status and the log's new text, told as state and log events. A
 * new attempt (a retry) is told as a new `running` state, as the events route does.
 */
async function pollBuild(id, { onEvent, signal }) {
  let told = null;
  let logLength = 0;
  for (;;) {
    const build = await apiJson(`/v1/builds/${id}`, { signal });
    const { id: _id, tenant: _tenant, spec: _spec, pushes: _pushes, ...state } = build;
    const res = await apiFetch(`/v1/builds/${id}/logs`, { signal });
    const log = res.ok ? await res.text() : '';
    // A retried build starts its log again (maybe before its new attempt was seen).
    const restarted = log.length < logLength;
    if (restarted) logLength = 0;
    const now = `${build.status}/${build.attempt ?? 1}`;
    if (now !== told || restarted) {
      onEvent({ event: 'state', data: state });
      // The page starts the log afresh with each `running`: send it all again.
      if (build.status === 'running') logLength = 0;
    }
    told = now;
    if (log.length > logLength) onEvent({ event: 'log', data: { text: log.slice(logLength) } });
    logLength = log.length;
    if (FINAL_STATUSES.has(build.status)) return;
    await sleep(POLL_MS, signal);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
}
