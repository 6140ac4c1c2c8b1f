// Talking to the vft server. The session cookie (HttpOnly) authenticates every request; the
// page never sees or stores the token.

import { t } from './i18n.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.serverMessage = message || '';
  }
}

let unauthorizedHandler = null;
let actingMunicipality = null;

/**
 * The municipality a municipality user of several municipalities acts for: added as
 * `municipality=` to every /api/v1 request that names none (the server answers for the first
 * of the user's municipalities otherwise). `null` for everyone else.
 */
export function setActingMunicipality(code) {
  actingMunicipality = code || null;
}

/** `path` with the acting municipality added, unless it names one already. */
export function scoped(path) {
  if (!actingMunicipality || !path.startsWith('/api/v1/')) return path;
  const [base, query = ''] = path.split('?');
  const q = new URLSearchParams(query);
  if (q.has('municipality')) return path;
  q.set('municipality', actingMunicipality);
  return `${base}?${q.toString()}`;
}

/** Called (once per failing request) when the server answers 401 on an API route. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

/**
 * fetch + JSON. Resolves to the parsed body (null for 204); rejects with ApiError for HTTP
 * errors and network failures, or with the AbortError when `signal` aborts.
 */
export async function api(path, { method = 'GET', body, signal, quiet401 = false } = {}) {
  let res;
  try {
    res = await fetch(scoped(path), {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: body === undefined
        ? { Accept: 'application/json' }
        : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', '');
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error ?? `http_${res.status}`, data?.message ?? '');
    const wait = Number.parseInt(res.headers.get('Retry-After') ?? '', 10);
    if (Number.isFinite(wait) && wait >= 0) err.retryAfter = wait;
    if (res.status === 401 && !quiet401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  if (data === null) throw new ApiError(res.status, 'bad_response', 'the answer was not JSON');
  return data;
}

/**
 * Sends a file as a request's body (`POST` by default) with XMLHttpRequest, so the upload's
 * progress can be shown: `onProgress(loaded, total)` while the bytes go out, then
 * `onSent()` when all are sent and the server is reading them. Resolves to the JSON answer;
 * rejects with ApiError as `api` does (the server's `message` kept). The browser sends the
 * page's `Origin` itself, as the session's writes need.
 */
export function upload(path, file, { method = 'POST', contentType = 'text/csv', onProgress, onSent, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, scoped(path));
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Content-Type', contentType);
    xhr.responseType = 'text';
    if (onProgress) {
      xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    }
    if (onSent) xhr.upload.addEventListener('load', () => onSent());
    const abort = () => xhr.abort();
    signal?.addEventListener('abort', abort, { once: true });
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', '')));
    xhr.addEventListener('load', () => {
      signal?.removeEventListener('abort', abort);
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = null; }
      if (xhr.status < 200 || xhr.status >= 300) {
        const err = new ApiError(xhr.status, data?.error ?? `http_${xhr.status}`, data?.message ?? '');
        const wait = Number.parseInt(xhr.getResponseHeader('Retry-After') ?? '', 10);
        if (Number.isFinite(wait) && wait >= 0) err.retryAfter = wait;
        if (xhr.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
        reject(err);
        return;
      }
      if (data === null) {
        reject(new ApiError(xhr.status, 'bad_response', 'the answer was not JSON'));
        return;
      }
      resolve(data);
    });
    xhr.send(file);
  });
}

/** Builds `path?k=v&…`, leaving out empty values (and adding the acting municipality, see `scoped`). */
export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return scoped(s ? `${path}?${s}` : path);
}

/** A plain-language sentence for an error. */
export function describe(err) {
  if (!(err instanceof ApiError)) return t('error.500');
  if (err.status === 0) return t('error.network');
  if ([400, 403, 404, 409].includes(err.status)) return t(`error.${err.status}`);
  if (err.status >= 500) return t('error.500');
  return t('error.other', { status: err.status });
}
