// The dashboard: hash routes (`#/` recent builds, `#/builds/{id}` one build), a token form
// when the service needs one, and the views below. Plain ES modules, no build step.

import { forgetToken, NeedsToken, serviceInfo, storedToken } from './api.js';
import { buildView } from './build-view.js';
import { buildsView } from './builds-view.js';
import { h, showView } from './dom.js';
import { tokenView } from './token-view.js';

const BUILD_ROUTE = /^#\/builds\/([a-z2-7]{26})$/;

let service = { tokens: false };
/** Aborts the current view's requests and streams when another view replaces it. */
let current = new AbortController();

function route(reason) {
  current.abort();
  current = new AbortController();
  const signal = current.signal;
  const forget = document.getElementById('forget-token');
  forget.hidden = !storedToken();

  if (service.tokens && (!storedToken() || reason)) {
    // Show the page asked for once a token is given.
    showView(tokenView({ reason, done: () => route() }));
    return;
  }
  const onNeedsToken = (message) => {
    if (signal.aborted) return;
    forgetToken();
    route(`The service refused the token: ${message}`);
  };
  const hash = location.hash || '#/';
  const match = BUILD_ROUTE.exec(hash);
  const { view } = match
    ? buildView(match[1], { signal, onNeedsToken })
    : hash === '#/'
      ? buildsView({ signal, onNeedsToken })
      : { view: h('section', {}, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Recent builds'))) };
  showView(view);
}

async function start() {
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    // Not a route: move the focus to the content without changing the hash.
    event.preventDefault();
    document.getElementById('main').focus();
  });
  document.getElementById('forget-token').addEventListener('click', () => {
    forgetToken();
    route();
  });
  window.addEventListener('hashchange', () => route());
  try {
    service = await serviceInfo();
  } catch (err) {
    showView(h('section', {}, h('h1', { tabindex: '-1' }, 'baler'), h('p', { class: 'error', role: 'alert' }, err.message)));
    return;
  }
  route();
}

window.addEventListener('unhandledrejection', (event) => {
  // Streams of a view that was left end with an AbortError: expected, not an error.
  if (event.reason?.name === 'AbortError' || event.reason instanceof NeedsToken) event.preventDefault();
});

void start();
