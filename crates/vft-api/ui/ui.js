// Shared pieces of the pages: loading and error states, filter controls, tables.

import { h, replace } from './dom.js';
import { t, fmtInt } from './i18n.js';
import { ApiError, describe } from './api.js';

/** A polite "loading" line; `role=status` so screen readers hear it. */
export function loading(text = t('loading')) {
  return h('p', { class: 'state state-loading', role: 'status' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function empty(text) {
  return h('p', { class: 'state state-empty' }, text);
}

/**
 * An error in plain language. 403 on a municipality the caller may not see is its own message
 * (see accessDenied). The server's one-line message goes under "technical detail", never a
 * stack trace or raw JSON.
 */
export function errorBox(err, retry) {
  const detail = err instanceof ApiError && err.serverMessage
    ? h('details', { class: 'error-detail' },
      h('summary', null, t('error.details')),
      h('p', null, `${err.status} ${err.code}: ${err.serverMessage}`))
    : null;
  return h('div', { class: 'state state-error', role: 'alert' },
    h('p', { class: 'state-title' }, t('error.title')),
    h('p', null, describe(err)),
    detail,
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, t('retry')) : null);
}

/** The message a municipality user gets for another municipality's data. No data is shown. */
export function accessDenied(session, asked, municipalityName) {
  const codes = session.municipalities?.length ? session.municipalities : [session.municipality];
  const own = codes
    .map((c) => municipalityName(c) || (c === session.municipality ? session.municipality_name : null) || c)
    .join(', ');
  const askedName = municipalityName(asked);
  const askedText = askedName ? `${asked} ${askedName}` : asked;
  const acting = municipalityName(session.municipality) || session.municipality_name || session.municipality;
  return h('div', { class: 'state state-access', role: 'alert', 'data-testid': 'access-denied' },
    h('p', { class: 'state-title' }, t('access.title')),
    h('p', null, t('access.body', { own, asked: askedText })),
    h('p', null, h('a', { href: `#/oversikt?municipality=${encodeURIComponent(session.municipality)}` },
      t('access.link', { own: acting }))));
}

/** The message for a page the signed-in role does not see (nothing was asked of the server). */
export function roleDenied(pageTitle, roleText, home) {
  return h('div', { class: 'state state-access', role: 'alert', 'data-testid': 'role-denied' },
    h('p', { class: 'state-title' }, t('role.title')),
    h('p', null, t('role.body', { page: pageTitle, role: roleText })),
    home ? h('p', null, h('a', { href: home.href }, t('role.link', { page: home.title }))) : null);
}

/** A labelled <select>. options: [{value, label}] */
export function select({ id, labelText, value, options, onchange, name }) {
  const sel = h('select', { id, name: name ?? id, onchange },
    options.map((o) => h('option', { value: o.value, selected: String(o.value) === String(value ?? '') }, o.label)));
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), sel);
}

export function input({ id, labelText, value, type = 'text', attrs = {} }) {
  return h('div', { class: 'field' },
    h('label', { for: id }, labelText),
    h('input', { id, name: id, type, value: value ?? '', ...attrs }));
}

/** A horizontally scrolling, focusable wrapper, so wide tables work on a tablet. */
export function scroller(table, labelText) {
  return h('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': labelText }, table);
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = `s-${Math.random().toString(36).slice(2, 9)}`;
  return h('section', { class: 'card', 'aria-labelledby': id },
    h('h2', { id }, title), ...children);
}

/** Replaces `el`'s content with a loading state, runs `load`, and renders its result. */
export async function withStates(el, load, render, { retry } = {}) {
  replace(el, loading());
  try {
    const data = await load();
    replace(el, render(data));
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    if (err instanceof ApiError && err.status === 401) return; // the app shows sign-in
    replace(el, errorBox(err, retry));
  }
}

export function num(n) {
  return fmtInt(n);
}

export function yearOptions(selected) {
  const now = new Date().getFullYear();
  const years = new Set();
  for (let y = now; y >= now - 6; y--) years.add(y);
  const s = Number(selected);
  if (Number.isInteger(s) && s >= 1970 && s <= 9999) years.add(s);
  return [...years].sort((a, b) => b - a).map((y) => ({ value: String(y), label: String(y) }));
}

let dataYear = null;

/**
 * The year the pages open on when the URL names none: the Oslo year of the newest data the
 * user may see (the session says), so a region whose data ends last December does not open
 * on an empty year; this year when there is no data yet.
 */
export function setDataYear(latestActivity) {
  const at = latestActivity ? new Date(latestActivity) : null;
  dataYear = at && !Number.isNaN(at.getTime())
    ? new Intl.DateTimeFormat('en', { timeZone: 'Europe/Oslo', year: 'numeric' }).format(at)
    : null;
}

/** The year of the URL, or the year with the newest data, or this year. */
export function yearParam(params) {
  // A hand-edited bad year goes to the server as is: its 400 is shown in plain language.
  return params.get('year') || dataYear || String(new Date().getFullYear());
}
