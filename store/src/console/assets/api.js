// Calls to this store only (relative URLs under /ui/). The session cookie goes along by
// itself (HttpOnly: this script never sees it); writes carry the CSRF token.

let csrf = '';
let skewMs = 0;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['X-Tollgate-CSRF'] = csrf;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `could not reach the store (${e.message}); is it running, and is the network up?`);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const message = (data && data.error && data.error.message) || `${r.status} ${r.statusText}`.trim();
    const code = (data && data.error && data.error.code) || '';
    if (r.status === 401 && path !== 'login') {
      window.dispatchEvent(new CustomEvent('tollgate:logged-out', { detail: message }));
    }
    throw new ApiError(r.status, code, message);
  }
  return data;
}

export async function login(token) {
  return call('POST', 'login', { token });
}

export async function logout() {
  try { await call('POST', 'logout', {}); } finally { csrf = ''; }
}

// The session (CSRF token, expiry) and the store's clock (for countdowns).
export async function session() {
  const s = await call('GET', 'api/session');
  csrf = s.csrf;
  skewMs = s.now_ms - Date.now();
  return s;
}

export function storeNow() {
  return Date.now() + skewMs;
}

export function overview() {
  return call('GET', 'api/overview');
}

// A raw key's hash (so the raw key never goes into a URL).
export async function hashOf(raw) {
  return (await call('POST', 'api/hash', { key: raw })).key;
}

// The admin API: admin('GET', '/v1/overrides').
export function admin(method, path, body) {
  return call(method, 'api' + path, body);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}
