// The orch HTTP API with the bearer token from the login page. The token lives in
// sessionStorage (gone with the tab) and only ever travels in the Authorization header.

const TOKEN_KEY = 'orch.token';

/** The token store. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An API answer that was not 2xx: `status` and orch's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}, candidate = null) {
  const out = { Accept: 'application/json', ...extra };
  const t = candidate ?? token.get();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch {
    // Not JSON: keep the status line.
  }
  const error = new ApiError(response.status, message);
  if (response.status === 401) window.dispatchEvent(new CustomEvent('orch-unauthorized', { detail: message }));
  return error;
}

/**
 * `method path` with an optional JSON `body`; resolves to the JSON answer. `candidate` is a
 * token to try instead of the stored one (the login form checks a token before keeping it).
 */
export async function api(path, { method = 'GET', body, signal, candidate } = {}) {
  const init = { method, headers: headers({}, candidate), signal, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Opens the event stream at `path`; resolves to the Response once headers arrived. */
export async function openStream(path, signal) {
  const response = await fetch(path, {
    headers: headers({ Accept: 'text/event-stream' }),
    signal,
    cache: 'no-store',
    credentials: 'omit',
  });
  if (!response.ok) throw await failure(response);
  return response;
}

/** `/api/v1/` + the URL-encoded `parts`, joined by `/`. */
export function path(...parts) {
  return '/api/v1/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}
