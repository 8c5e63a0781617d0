// Calls to the baler API from the page: the token (when the service has tokens) goes as
// `Authorization: Bearer` on every call; it is kept in sessionStorage, so it is gone with the tab.

const TOKEN_KEY = 'baler.token';

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A response that is not 2xx, with the server's problem detail when it sent one. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Raised when the API wants a (another) token: the page then shows the token form. */
export class NeedsToken extends ApiError {}

/** What the service says about itself to the page (public): whether it needs a token. */
export async function serviceInfo() {
  const res = await fetch('config.json');
  if (!res.ok) throw new ApiError(res.status, 'the dashboard configuration could not be read');
  return res.json();
}

/** fetch() with the token; resolves with the response whatever its status, but 401 throws NeedsToken. */
export async function apiFetch(path, init = {}) {
  const headers = new Headers(init.headers);
  const token = storedToken();
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) throw new NeedsToken(401, await problemDetail(res));
  return res;
}

/** A JSON call that must succeed: the parsed body, or ApiError with the problem's detail. */
export async function apiJson(path, init) {
  const res = await apiFetch(path, init);
  if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
  return res.json();
}

export async function problemDetail(res) {
  const text = await res.text().catch(() => '');
  try {
    const problem = JSON.parse(text);
    return problem.detail || problem.title || text;
  } catch {
    return text;
  }
}
