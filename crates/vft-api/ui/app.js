// The vft dashboard: session, header, hash routing. Pages live in pages/*.js.

import { h, replace } from './dom.js';
import { t, lang, setLang } from './i18n.js';
import { api, ApiError, onUnauthorized } from './api.js';
import { destroyCharts } from './charts.js';
import { errorBox, loading, setDataYear } from './ui.js';
import * as oversikt from './pages/oversikt.js';
import * as enheter from './pages/enheter.js';
import * as responssenter from './pages/responssenter.js';
import * as leverandorbytte from './pages/leverandorbytte.js';
import * as avvik from './pages/avvik.js';

const PAGES = { oversikt, enheter, responssenter, leverandorbytte, avvik };
const DEFAULT_ROUTE = 'oversikt';
/** Parameters that follow the user from page to page (where the page has them). */
const SHARED = { year: ['oversikt', 'responssenter', 'leverandorbytte'], municipality: ['oversikt', 'enheter', 'responssenter', 'leverandorbytte'] };

const main = document.getElementById('main');
const state = {
  session: null,
  municipalities: [],
  cooperations: [],
  current: null, // { route, params, page, abort }
  lastHash: null,
  shared: {},
  expiryTimer: null,
};

function parseHash(hash = location.hash) {
  const m = /^#\/([a-z]*)(?:\?(.*))?$/.exec(hash);
  if (!m) return { route: DEFAULT_ROUTE, params: new URLSearchParams(), known: hash === '' || hash === '#' };
  const route = m[1] || DEFAULT_ROUTE;
  return { route: PAGES[route] ? route : null, params: new URLSearchParams(m[2] ?? ''), known: true };
}

export function hashFor(route, params) {
  const q = new URLSearchParams();
  for (const [k, v] of params instanceof URLSearchParams ? params.entries() : Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return `#/${route}${s ? `?${s}` : ''}`;
}

function municipalityName(code) {
  return state.municipalities.find((m) => m.code === code)?.name ?? null;
}

function pageContext(route, params, signal) {
  return {
    route,
    params,
    signal,
    session: state.session,
    municipalities: state.municipalities,
    cooperations: state.cooperations,
    municipalityName,
    /** Navigates within the app (a history entry; the router renders). */
    navigate(toRoute, toParams) {
      const hash = hashFor(toRoute, toParams);
      if (hash === location.hash) return;
      location.hash = hash;
    },
    hashFor,
  };
}

// ---- header and navigation ------------------------------------------------------------------

function renderChrome() {
  document.documentElement.lang = lang() === 'nb' ? 'nb' : 'en';
  document.title = `vft – ${t('app.tagline').toLowerCase()}`;
  document.getElementById('skip-link').textContent = t('skip');
  document.getElementById('tagline').textContent = t('app.tagline');
  document.getElementById('lang-label').textContent = t('lang.label');
  for (const b of document.querySelectorAll('.lang-btn')) {
    b.setAttribute('aria-pressed', String(b.dataset.lang === lang()));
  }
  const nav = document.getElementById('mainnav');
  nav.setAttribute('aria-label', t('nav.label'));
  for (const a of nav.querySelectorAll('a[data-route]')) a.textContent = t(`nav.${a.dataset.route}`);
  const who = document.getElementById('who');
  const signout = document.getElementById('signout');
  signout.textContent = t('signout');
  if (state.session) {
    const s = state.session;
    const name = s.role === 'coordinator'
      ? t('who.coordinator')
      : t('who.municipality', { name: s.municipality_name || municipalityName(s.municipality) || s.municipality });
    replace(who, h('span', { class: 'who-label' }, `${t('who.signedInAs')}: `), h('strong', null, name));
    who.hidden = false;
    signout.hidden = false;
    nav.hidden = false;
  } else {
    who.hidden = true;
    signout.hidden = true;
    nav.hidden = true;
  }
  updateNav();
}

function updateNav() {
  const route = state.current?.route;
  for (const a of document.querySelectorAll('#mainnav a[data-route]')) {
    const r = a.dataset.route;
    const params = {};
    for (const [key, routes] of Object.entries(SHARED)) {
      if (routes.includes(r) && state.shared[key]) params[key] = state.shared[key];
    }
    a.setAttribute('href', hashFor(r, params));
    if (r === route) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---- sign-in ---------------------------------------------------------------------------------

function showSignIn(notice) {
  teardownPage();
  state.session = null;
  clearTimeout(state.expiryTimer);
  renderChrome();
  const tokenInput = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'signin-help',
  });
  const message = h('p', { id: 'signin-message', class: 'form-message', role: 'alert' });
  if (notice) message.textContent = notice;
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('signin.submit'));
  const form = h('form', { class: 'signin card', id: 'signin-form', novalidate: true },
    h('h1', { tabindex: '-1' }, t('signin.title')),
    h('p', null, t('signin.intro')),
    h('div', { class: 'field' }, h('label', { for: 'token' }, t('signin.token')), tokenInput),
    h('p', { id: 'signin-help', class: 'hint' }, t('signin.help')),
    message,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) {
      message.textContent = t('signin.empty');
      tokenInput.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t('signin.busy');
    message.textContent = '';
    try {
      const session = await api('/api/session', { method: 'POST', body: { token }, quiet401: true });
      tokenInput.value = '';
      await startSession(session);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = t('signin.submit');
      if (err instanceof ApiError && (err.status === 401 || err.status === 400)) message.textContent = t('signin.wrong');
      else if (err instanceof ApiError && err.status === 429) message.textContent = t('signin.throttled');
      else if (err instanceof ApiError && (err.status === 404 || err.status === 405)) message.textContent = t('error.sessionMissing');
      else replace(message, errorBox(err));
      tokenInput.focus();
    }
  });
  replace(main, form);
  tokenInput.focus();
}

async function startSession(session) {
  state.session = session;
  setDataYear(session.latest_activity);
  clearTimeout(state.expiryTimer);
  const left = Date.parse(session.expires_at) - Date.now();
  if (Number.isFinite(left)) {
    state.expiryTimer = setTimeout(() => showSignIn(t('signin.expired')), Math.min(Math.max(left, 0), 2 ** 31 - 1));
  }
  replace(main, loading());
  // The pickers' lists. A server without these endpoints still shows the pages.
  const [m, c] = await Promise.allSettled([api('/api/v1/municipalities'), api('/api/v1/cooperations')]);
  if (!state.session) return; // a 401 above went back to sign-in
  state.municipalities = m.status === 'fulfilled' ? m.value.municipalities ?? [] : [];
  state.cooperations = c.status === 'fulfilled' ? c.value.cooperations ?? [] : [];
  if (session.role !== 'coordinator' && session.municipality && !state.municipalities.some((x) => x.code === session.municipality)) {
    state.municipalities = [{ code: session.municipality, name: session.municipality_name || session.municipality }];
  }
  state.lastHash = null;
  renderChrome();
  route();
}

async function signOut() {
  try { await api('/api/session', { method: 'DELETE', quiet401: true }); } catch { /* signed out anyway */ }
  state.municipalities = [];
  state.cooperations = [];
  showSignIn(t('signin.signedOut'));
}

// ---- routing ---------------------------------------------------------------------------------

function teardownPage() {
  if (state.current) {
    state.current.abort.abort();
    state.current.page.teardown?.();
  }
  destroyCharts();
  state.current = null;
}

function route({ force = false } = {}) {
  if (!state.session) return;
  const hash = location.hash;
  if (!force && hash === state.lastHash) return;
  state.lastHash = hash;
  const { route: name, params, known } = parseHash(hash);
  if (!known) return; // e.g. #main from the skip link without script: not a route
  if (!name) {
    location.replace(hashFor(DEFAULT_ROUTE, {}));
    return;
  }
  for (const key of Object.keys(SHARED)) {
    if (SHARED[key].includes(name) && params.has(key)) state.shared[key] = params.get(key);
    else if (SHARED[key].includes(name) && key === 'municipality') delete state.shared[key];
  }
  const prev = state.current;
  if (!force && prev && prev.route === name && prev.page.update?.(params, prev.params)) {
    prev.params = params;
    updateNav();
    return;
  }
  const routeChanged = !prev || prev.route !== name;
  teardownPage();
  const abort = new AbortController();
  const page = PAGES[name];
  state.current = { route: name, params, page, abort };
  updateNav();
  const container = h('div', { class: `page page-${name}` });
  replace(main, container);
  try {
    page.render(container, pageContext(name, params, abort.signal));
  } catch (err) {
    replace(container, errorBox(err));
  }
  if (routeChanged && prev) {
    // Keyboard and screen-reader users land on the new page's heading.
    const heading = container.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
  }
}

// ---- boot ------------------------------------------------------------------------------------

async function boot() {
  setLang(lang());
  renderChrome();
  document.getElementById('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
    main.scrollIntoView();
  });
  for (const b of document.querySelectorAll('.lang-btn')) {
    b.addEventListener('click', () => {
      if (b.dataset.lang === lang()) return;
      setLang(b.dataset.lang);
      renderChrome();
      if (state.session) route({ force: true });
      else showSignIn();
    });
  }
  document.getElementById('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => route());
  window.addEventListener('popstate', () => route());
  onUnauthorized(() => {
    if (state.session) showSignIn(t('signin.expired'));
  });
  try {
    const session = await api('/api/v1/session', { quiet401: true });
    await startSession(session);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 404)) showSignIn();
    else replace(main, errorBox(err, () => location.reload()));
  }
}

boot();
