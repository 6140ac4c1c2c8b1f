// The vft dashboard: sign-in, session, header, hash routing, and what each role sees. Pages
// live in pages/*.js.

import { h, replace } from './dom.js';
import { t, lang, setLang } from './i18n.js';
import { api, ApiError, onUnauthorized, setActingMunicipality } from './api.js';
import { destroyCharts } from './charts.js';
import { errorBox, loading, setDataYear, roleDenied } from './ui.js';
import * as oversikt from './pages/oversikt.js';
import * as enheter from './pages/enheter.js';
import * as responssenter from './pages/responssenter.js';
import * as leverandorbytte from './pages/leverandorbytte.js';
import * as leverandorer from './pages/leverandorer.js';
import * as avviste from './pages/avviste.js';
import * as revisjonslogg from './pages/revisjonslogg.js';
import * as drift from './pages/drift.js';
import * as tilgang from './pages/tilgang.js';
import * as varsler from './pages/varsler.js';

const PAGES = {
  oversikt, enheter, responssenter, leverandorer, leverandorbytte, 'avviste-meldinger': avviste, revisjonslogg, drift, tilgang, varsler,
};
/** Old route names that still work (links and bookmarks): the page is shown under its new name. */
const RENAMED = { avvik: 'avviste-meldinger' };
/**
 * The pages each role sees, in the menu's order; the first is where it lands. The server
 * decides what each role may read; this only keeps the menu to what would work.
 */
const ROLE_PAGES = {
  coordinator: ['oversikt', 'enheter', 'responssenter', 'leverandorer', 'leverandorbytte', 'varsler', 'avviste-meldinger', 'revisjonslogg', 'tilgang'],
  municipality: ['oversikt', 'enheter', 'responssenter', 'leverandorer', 'leverandorbytte', 'varsler', 'avviste-meldinger'],
  operator: ['drift', 'avviste-meldinger', 'tilgang'],
  auditor: ['revisjonslogg'],
};
/** Roles that read fleet data (the municipality and cooperation lists among it). */
const FLEET_ROLES = ['coordinator', 'municipality'];
const ACTING_KEY = 'vft.municipality';
/** Why a sign-in with the organisation's account came back unfinished (`?sign_in_error=`). */
const OIDC_ERRORS = ['cancelled', 'failed', 'no_account', 'disabled', 'provider_unavailable'];
/** Parameters that follow the user from page to page (where the page has them). */
const SHARED = {
  year: ['oversikt', 'responssenter', 'leverandorer', 'leverandorbytte'],
  municipality: ['oversikt', 'enheter', 'responssenter', 'leverandorer', 'leverandorbytte'],
};

const main = document.getElementById('main');
const state = {
  session: null,
  municipalities: [],
  cooperations: [],
  current: null, // { route, params, page, abort }
  lastHash: null,
  shared: {},
  expiryTimer: null,
  /** The municipality a municipality user acts for (one of its own). */
  acting: null,
  signInTimer: null,
};

function allowedPages() {
  return ROLE_PAGES[state.session?.role] ?? [];
}

function defaultRoute() {
  return allowedPages()[0] ?? 'oversikt';
}

/** A municipality user's own municipalities; empty for every other role. */
function ownMunicipalities() {
  const s = state.session;
  if (s?.role !== 'municipality') return [];
  return (s.municipalities?.length ? s.municipalities : [s.municipality]).filter(Boolean);
}

/** Acts for `code` (one of the user's own): requests name it when the user has several. */
function setActing(code) {
  const own = ownMunicipalities();
  state.acting = own.includes(code) ? code : (own[0] ?? null);
  setActingMunicipality(own.length > 1 ? state.acting : null);
  try {
    if (own.length > 1 && state.acting) sessionStorage.setItem(ACTING_KEY, state.acting);
  } catch { /* storage blocked: the choice lasts this page */ }
}

/** "Demo-koordinator", else the username of `user:…`, else the actor as it is. */
function personName(session) {
  if (session.name) return session.name;
  const actor = session.actor ?? '';
  return actor.startsWith('user:') ? actor.slice(5) : actor;
}

/** What the role lets the signed-in person see, in words. */
function roleText(session) {
  switch (session.role) {
    case 'coordinator': return t('who.coordinator');
    case 'operator': return t('who.operator');
    case 'auditor': return t('who.auditor');
    default: {
      const own = ownMunicipalities();
      if (own.length > 1) return t('who.municipalities', { names: own.map((c) => municipalityName(c) ?? c).join(', ') });
      return t('who.municipality', { name: session.municipality_name || municipalityName(session.municipality) || session.municipality });
    }
  }
}

/** The session as the pages see it: a municipality user's `municipality` is the one it acts for. */
function pageSession() {
  const s = state.session;
  if (s.role !== 'municipality' || !state.acting || state.acting === s.municipality) {
    return { ...s, municipalities: ownMunicipalities() };
  }
  return {
    ...s,
    municipality: state.acting,
    municipality_name: municipalityName(state.acting) ?? state.acting,
    municipalities: ownMunicipalities(),
  };
}

function parseHash(hash = location.hash) {
  const m = /^#\/([a-z-]*)(?:\?(.*))?$/.exec(hash);
  if (!m) return { route: defaultRoute(), params: new URLSearchParams(), known: hash === '' || hash === '#' };
  const route = m[1] || defaultRoute();
  const params = new URLSearchParams(m[2] ?? '');
  if (RENAMED[route]) return { route: RENAMED[route], params, known: true, renamed: true };
  return { route: PAGES[route] ? route : null, params, known: true };
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
    session: pageSession(),
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
  renderActingPicker();
  if (state.session) {
    const s = state.session;
    replace(who,
      h('span', { class: 'who-label' }, `${t('who.signedInAs')}: `),
      h('strong', { id: 'who-name' }, personName(s)),
      h('span', { class: 'who-role', id: 'who-role' }, ` · ${roleText(s)}`));
    who.hidden = false;
    signout.hidden = false;
    nav.hidden = false;
    const allowed = allowedPages();
    for (const a of nav.querySelectorAll('a[data-route]')) a.parentElement.hidden = !allowed.includes(a.dataset.route);
  } else {
    who.hidden = true;
    signout.hidden = true;
    nav.hidden = true;
  }
  updateNav();
}

/** A municipality user of several municipalities picks the one it acts for, in the header. */
function renderActingPicker() {
  const box = document.getElementById('acting');
  const own = ownMunicipalities();
  if (own.length < 2) {
    box.hidden = true;
    return;
  }
  const label = document.getElementById('acting-label');
  const picker = document.getElementById('acting-municipality');
  label.textContent = t('acting.label');
  picker.setAttribute('title', t('acting.hint'));
  replace(picker, own.map((code) => h('option', { value: code, selected: code === state.acting },
    `${municipalityName(code) ?? code} (${code})`)));
  picker.value = state.acting ?? own[0];
  box.hidden = false;
}

function actingChanged(e) {
  const code = e.target.value;
  if (!state.session || code === state.acting) return;
  setActing(code);
  renderChrome();
  const current = state.current;
  if (current && SHARED.municipality.includes(current.route)) {
    const params = new URLSearchParams(current.params);
    params.set('municipality', code);
    params.delete('cursor');
    params.delete('device');
    location.hash = hashFor(current.route, params);
  } else {
    route({ force: true });
  }
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
  state.acting = null;
  setActingMunicipality(null);
  clearTimeout(state.expiryTimer);
  clearTimeout(state.signInTimer);
  renderChrome();
  const usernameInput = h('input', {
    id: 'username', name: 'username', type: 'text', autocomplete: 'username', autocapitalize: 'none',
    spellcheck: 'false', required: true,
  });
  const passwordInput = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
    'aria-describedby': 'signin-help',
  });
  const message = h('p', { id: 'signin-message', class: 'form-message', role: 'alert' });
  if (notice) message.textContent = notice;
  const status = h('p', { id: 'signin-status', class: 'hint', role: 'status' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('signin.submit'));
  const oidcBox = h('div', { class: 'signin-oidc', hidden: true },
    h('p', { class: 'signin-or' }, h('span', null, t('signin.or'))),
    h('a', { class: 'btn', id: 'signin-oidc', href: '/api/auth/oidc/start' }, t('signin.oidc')));
  const form = h('form', { class: 'signin card', id: 'signin-form', novalidate: true, dataset: { oidc: 'checking' } },
    h('h1', { tabindex: '-1' }, t('signin.title')),
    h('p', null, t('signin.intro')),
    h('div', { class: 'field' }, h('label', { for: 'username' }, t('signin.username')), usernameInput),
    h('div', { class: 'field' }, h('label', { for: 'password' }, t('signin.password')), passwordInput),
    h('p', { id: 'signin-help', class: 'hint' }, t('signin.help')),
    message,
    status,
    h('div', { class: 'actions' }, submit),
    oidcBox);
  /** Throttled: the button waits as long as the server said (Retry-After), then says so. */
  const wait = (seconds) => {
    submit.disabled = true;
    submit.textContent = t('signin.submit');
    message.textContent = t('signin.throttled', { n: seconds });
    status.textContent = '';
    clearTimeout(state.signInTimer);
    state.signInTimer = setTimeout(() => {
      submit.disabled = false;
      status.textContent = t('signin.throttledOver');
    }, seconds * 1000);
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const username = usernameInput.value.trim();
    const password = passwordInput.value;
    if (!username || !password) {
      message.textContent = t('signin.empty');
      (username ? passwordInput : usernameInput).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t('signin.busy');
    message.textContent = '';
    status.textContent = '';
    try {
      const session = await api('/api/session', { method: 'POST', body: { username, password }, quiet401: true });
      passwordInput.value = '';
      await startSession(session, { fresh: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        wait(Math.max(1, err.retryAfter ?? 5));
        return;
      }
      submit.disabled = false;
      submit.textContent = t('signin.submit');
      if (err instanceof ApiError && err.status === 401) {
        message.textContent = t('signin.wrong');
        passwordInput.value = '';
        passwordInput.focus();
        return;
      }
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) message.textContent = t('error.sessionMissing');
      else replace(message, errorBox(err));
      usernameInput.focus();
    }
  });
  replace(main, form);
  usernameInput.focus();
  showOidcWhenOffered(form, oidcBox);
}

/**
 * The "sign in with your organisation" button, shown only when the server offers OpenID
 * Connect (`GET /api/auth/oidc` answers 200 with `enabled: true`; 404 when it has none).
 * `data-oidc` on the form says what was decided (`checking`, `on`, `off`).
 */
async function showOidcWhenOffered(form, box) {
  let on = false;
  try {
    const res = await fetch('/api/auth/oidc', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
    if (res.status === 200) {
      const body = await res.json().catch(() => null);
      on = body?.enabled === true;
    }
  } catch { /* unreachable: no button */ }
  if (!form.isConnected) return;
  box.hidden = !on;
  form.dataset.oidc = on ? 'on' : 'off';
}

async function startSession(session, { fresh = false } = {}) {
  clearTimeout(state.signInTimer);
  state.session = session;
  setDataYear(session.latest_activity);
  clearTimeout(state.expiryTimer);
  const left = Date.parse(session.expires_at) - Date.now();
  if (Number.isFinite(left)) {
    state.expiryTimer = setTimeout(() => showSignIn(t('signin.expired')), Math.min(Math.max(left, 0), 2 ** 31 - 1));
  }
  let remembered = null;
  try { remembered = sessionStorage.getItem(ACTING_KEY); } catch { /* none */ }
  setActing(remembered ?? session.municipality);
  replace(main, loading());
  // The pickers' lists, for the roles that read fleet data (asking with another role would
  // only be refused). A server without these endpoints still shows the pages.
  const fleet = FLEET_ROLES.includes(session.role);
  const [m, c] = fleet
    ? await Promise.allSettled([api('/api/v1/municipalities'), api('/api/v1/cooperations')])
    : [{ status: 'rejected' }, { status: 'rejected' }];
  if (state.session !== session) return; // a 401 above went back to sign-in
  state.municipalities = m.status === 'fulfilled' ? m.value.municipalities ?? [] : [];
  state.cooperations = c.status === 'fulfilled' ? c.value.cooperations ?? [] : [];
  if (session.role === 'municipality') {
    for (const code of ownMunicipalities()) {
      if (!state.municipalities.some((x) => x.code === code)) {
        state.municipalities.push({ code, name: code === session.municipality ? (session.municipality_name || code) : code });
      }
    }
  }
  state.lastHash = null;
  renderChrome();
  // Someone who just signed in on another role's page starts on their own first page.
  const { route: asked, known } = parseHash();
  if (fresh && known && asked && !allowedPages().includes(asked)) {
    location.replace(hashFor(defaultRoute(), {}));
  }
  route();
}

async function signOut() {
  try { await api('/api/session', { method: 'DELETE', quiet401: true }); } catch { /* signed out anyway */ }
  state.municipalities = [];
  state.cooperations = [];
  try { sessionStorage.removeItem(ACTING_KEY); } catch { /* none */ }
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
  const { route: name, params, known, renamed } = parseHash(hash);
  if (!known) return; // e.g. #main from the skip link without script: not a route
  if (!name) {
    location.replace(hashFor(defaultRoute(), {}));
    return;
  }
  if (renamed) {
    // An old link (#/avvik): the same page under its new name, without a history entry.
    location.replace(hashFor(name, params));
    return;
  }
  // A municipality user of several municipalities acts for the one the address names.
  const own = ownMunicipalities();
  if (own.length > 1 && params.has('municipality') && own.includes(params.get('municipality'))
    && params.get('municipality') !== state.acting) {
    setActing(params.get('municipality'));
    renderChrome();
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
    if (allowedPages().includes(name)) page.render(container, pageContext(name, params, abort.signal));
    else showRoleDenied(container, name);
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

/** A page this role does not see: said plainly, with the way to its own first page. */
function showRoleDenied(container, name) {
  const home = defaultRoute();
  replace(container,
    h('div', { class: 'page-head' }, h('h1', null, t(`nav.${name}`))),
    roleDenied(t(`nav.${name}`), roleText(state.session), { href: hashFor(home, {}), title: t(`nav.${home}`) }));
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
  document.getElementById('acting-municipality').addEventListener('change', actingChanged);
  window.addEventListener('hashchange', () => route());
  window.addEventListener('popstate', () => route());
  onUnauthorized(() => {
    if (state.session) showSignIn(t('signin.expired'));
  });
  // A sign-in at the organisation's identity provider that did not complete comes back as
  // `/?sign_in_error=CODE`: said on the form, and left out of the address.
  const oidcError = new URLSearchParams(location.search).get('sign_in_error');
  if (oidcError !== null) history.replaceState(null, '', `${location.pathname}${location.hash}`);
  const notice = oidcError === null ? undefined : t(OIDC_ERRORS.includes(oidcError) ? `signin.oidc.${oidcError}` : 'signin.oidc.failed');
  try {
    const session = await api('/api/v1/session', { quiet401: true });
    await startSession(session);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 404)) showSignIn(notice);
    else replace(main, errorBox(err, () => location.reload()));
  }
}

boot();
