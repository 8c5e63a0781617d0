// The token form: shown when the service needs a token and the tab has none (or a bad one).

import { storeToken } from './api.js';
import { h } from './dom.js';

/** `reason`: why it is asked for (e.g. the server said the token is unknown). `done()` after. */
export function tokenView({ reason, done }) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
  const form = h(
    'form',
    {
      class: 'token-form',
      onsubmit: (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        storeToken(token);
        done();
      },
    },
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'token-help', class: 'help' }, 'Kept in this tab only (sessionStorage) and sent as Authorization: Bearer on every call.'),
    h('button', { type: 'submit' }, 'Use token'),
  );
  return h(
    'section',
    { 'aria-labelledby': 'token-title' },
    h('h1', { id: 'token-title', tabindex: '-1' }, 'Sign in'),
    h('p', {}, 'This baler service needs a token.'),
    reason ? h('p', { class: 'error', role: 'alert' }, reason) : null,
    form,
  );
}
