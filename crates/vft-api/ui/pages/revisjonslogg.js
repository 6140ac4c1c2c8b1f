// Revisjonslogg: the audit log as /api/v1/audit serves it (who read and changed what), newest
// first, with filters on who, event and dates, older pages on demand, and the selection as CSV.
// For the auditor and coordinator roles.

import { h, replace } from '../dom.js';
import { t, tn, fmtInt, fmtDateTime, has } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { loading, errorBox, scroller, empty, select, input } from '../ui.js';
import { withParams } from './common.js';

const PAGE = 50;
/** The most records one CSV download holds (the API's own limit). */
const CSV_LIMIT = 100000;
const ACTIONS = ['read', 'change', 'sign_in', 'sign_in_failed', 'sign_out', 'denied'];
const FILTERS = ['actor', 'action', 'from', 'to'];
/** Subjects of a record shown before the rest are folded away. */
const SUBJECTS_SHOWN = 3;

/** A route of the audit log in plain words (the route itself is shown beneath). */
const WHAT = {
  'POST /api/session': 'signIn',
  'DELETE /api/session': 'signOut',
  'GET /api/v1/devices': 'devices',
  'GET /api/v1/devices/{vendor}/{device}': 'device',
  'PUT /api/v1/devices/{vendor}/{device}/timeout': 'timeout',
  'GET /api/v1/dead-letters': 'deadLetters',
  'GET /api/v1/imports/errors': 'importErrors',
  'POST /api/v1/imports/{vendor}': 'import',
  'GET /api/v1/reconciliation': 'reconciliation',
  'GET /api/v1/reconciliation/progress': 'progress',
  'POST /api/v1/months/{month}/publish': 'publish',
  'GET /api/v1/users': 'users',
  'POST /api/v1/users': 'users',
  'PATCH /api/v1/users/{username}': 'user',
  'GET /api/v1/tokens': 'tokens',
  'POST /api/v1/tokens': 'tokens',
  'DELETE /api/v1/tokens/{id}': 'token',
  'GET /api/v1/mqtt-credentials': 'mqtt',
  'POST /api/v1/mqtt-credentials': 'mqtt',
  'DELETE /api/v1/mqtt-credentials': 'mqtt',
  'GET /api/v1/audit': 'audit',
};

export function render(root, ctx) {
  const f = {};
  for (const k of FILTERS) {
    const v = ctx.params.get(k);
    if (v) f[k] = v;
  }
  const form = h('form', { class: 'filters no-print', id: 'audit-filters', 'aria-label': t('filter.legend') },
    input({ id: 'a-actor', labelText: t('audit.filter.actor'), value: f.actor ?? '', type: 'search', attrs: { autocomplete: 'off', spellcheck: 'false', placeholder: 'kari@kommune.no' } }),
    select({
      id: 'a-action', labelText: t('audit.filter.action'), value: f.action ?? '',
      options: [{ value: '', label: t('audit.filter.allActions') }, ...ACTIONS.map((a) => ({ value: a, label: t(`action.${a}`) }))],
    }),
    input({ id: 'a-from', labelText: t('audit.filter.from'), value: f.from ?? '', type: 'date' }),
    input({ id: 'a-to', labelText: t('audit.filter.to'), value: f.to ?? '', type: 'date' }),
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('filter.apply')),
      h('a', { class: 'btn btn-quiet', href: ctx.hashFor('revisjonslogg', {}) }, t('filter.reset'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const val = (id) => form.querySelector(`#${id}`).value.trim();
    ctx.navigate('revisjonslogg', withParams(ctx.params, {
      actor: val('a-actor'), action: val('a-action'), from: val('a-from'), to: val('a-to'),
    }));
  });
  const list = h('section', { class: 'card', 'aria-labelledby': 'audit-h' });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('audit.title')), h('p', { class: 'lead' }, t('audit.intro'))),
    form,
    list);
  load(list, ctx, apiQuery(f));
}

/**
 * The API's query for the page's filters: a bare username is the account's actor
 * (`user:…`); dates are whole days in the browser's time zone, `to` included.
 */
function apiQuery(f) {
  const q = {};
  if (f.actor) q.actor = f.actor.includes(':') ? f.actor : `user:${f.actor.toLowerCase()}`;
  if (f.action) q.action = f.action;
  if (f.from) q.from = dayStart(f.from, 0);
  if (f.to) q.to = dayStart(f.to, 1);
  return q;
}

/** Midnight (local time) at the start of `date` + `days`, as RFC 3339; a bad date as it is. */
function dayStart(date, days) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return date; // the server's 400 says what is wrong
  const d = new Date(`${date}T00:00:00`);
  if (Number.isNaN(d.getTime())) return date;
  d.setDate(d.getDate() + days);
  return d.toISOString();
}

async function load(el, ctx, query) {
  const heading = h('h2', { id: 'audit-h' }, t('audit.events'));
  replace(el, heading, loading());
  let first;
  try {
    first = await api(url('/api/v1/audit', { ...query, limit: PAGE }), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => load(el, ctx, query)));
    return;
  }
  // The server names the files; `download` without a value keeps its name.
  const csv = [
    h('a', {
      class: 'btn no-print', id: 'audit-csv', href: url('/api/v1/audit', { ...query, format: 'csv', limit: CSV_LIMIT }), download: true,
    }, t('audit.csv')),
    h('a', {
      class: 'btn no-print', id: 'audit-excel', href: url('/api/v1/audit', { ...query, format: 'excel', limit: CSV_LIMIT }), download: true,
      title: t('download.excelHint'),
    }, t('download.excel')),
  ];
  if (!first.records.length) {
    replace(el, heading, empty(t('audit.empty')), h('div', { class: 'actions' }, csv));
    return;
  }
  const tbody = h('tbody');
  const count = h('p', { class: 'hint', id: 'audit-count', role: 'status' });
  const more = h('div', { class: 'actions' });
  let shown = 0;
  const add = (page) => {
    tbody.append(...page.records.map((r) => row(ctx, r)));
    shown += page.records.length;
    count.textContent = tn(page.next_before ? 'audit.countMore' : 'audit.count', shown);
    replace(more, csv);
    if (page.next_before) {
      const btn = h('button', { type: 'button', class: 'btn', id: 'audit-older' }, t('audit.older'));
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        try {
          add(await api(url('/api/v1/audit', { ...query, limit: PAGE, before: page.next_before }), { signal: ctx.signal }));
        } catch (err) {
          if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
          btn.disabled = false;
          replace(more, btn, csv, errorBox(err));
        }
      });
      more.prepend(btn);
    }
  };
  add(first);
  const cols = ['time', 'actor', 'role', 'action', 'what', 'municipality', 'subjects', 'client', 'status'];
  replace(el, heading, count, scroller(h('table', { class: 'data audit-table', id: 'audit-table' },
    h('caption', { class: 'sr-only' }, t('audit.caption')),
    h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col', class: c === 'status' ? 'num' : null }, t(`audit.col.${c}`))))),
    tbody), t('audit.title')), more);
}

function row(ctx, r) {
  const whatKey = WHAT[r.route];
  const cli = /^vft (.+)$/.exec(r.route);
  const what = whatKey ? t(`auditWhat.${whatKey}`) : (cli ? t('auditWhat.cli', { command: cli[1] }) : null);
  return h('tr', { 'data-seq': String(r.seq), 'data-action': r.action, 'data-actor': r.actor, 'data-route': r.route },
    h('td', { class: 'nowrap' }, h('time', { datetime: r.at }, fmtDateTime(r.at))),
    h('td', { class: 'actor' }, actorCell(ctx, r.actor)),
    h('td', null, roleLabel(r.role)),
    h('td', null, h('span', { class: `action action-${r.action}` }, has(`action.${r.action}`) ? t(`action.${r.action}`) : r.action)),
    h('td', null,
      what ? h('p', { class: 'reason' }, what) : null,
      h('p', { class: 'reason-tech' }, r.route)),
    h('td', null, r.municipality ? (ctx.municipalityName(r.municipality) ? `${ctx.municipalityName(r.municipality)} (${r.municipality})` : r.municipality) : '–'),
    h('td', null, subjectList(r.subjects ?? [])),
    h('td', { class: 'nowrap' }, r.client || '–'),
    h('td', { class: `num${r.status >= 400 ? ' bad' : ''}` }, r.status ? String(r.status) : '–'));
}

/** What a record concerns; a long list (a page of devices) is folded after the first few. */
function subjectList(subjects) {
  if (!subjects.length) return '–';
  const items = (list) => list.map((s) => h('li', null, s));
  if (subjects.length <= SUBJECTS_SHOWN + 1) return h('ul', { class: 'subjects' }, items(subjects));
  return [
    h('ul', { class: 'subjects' }, items(subjects.slice(0, SUBJECTS_SHOWN))),
    h('details', null,
      h('summary', null, t('audit.moreSubjects', { n: fmtInt(subjects.length - SUBJECTS_SHOWN) })),
      h('ul', { class: 'subjects' }, items(subjects.slice(SUBJECTS_SHOWN)))),
  ];
}

/** "user:kari" → kari (a link that filters on her); tokens and the command line in words. */
function actorCell(ctx, actor) {
  let text = actor;
  const m = /^(user|token|local):(.*)$/.exec(actor ?? '');
  if (m?.[1] === 'user') text = m[2];
  else if (m?.[1] === 'token') text = t('actor.token', { id: m[2] });
  else if (m?.[1] === 'local') text = t('actor.local', { user: m[2] });
  else if (actor === 'anonymous') text = t('actor.anonymous');
  else if (actor === 'unknown credential') text = t('actor.unknown');
  if (!m) return text;
  return h('a', {
    href: ctx.hashFor('revisjonslogg', withParams(ctx.params, { actor })),
    title: t('audit.filterActor', { actor: text }),
  }, text);
}

/** "municipality 3328,3330" → "Kommune 3328,3330". */
function roleLabel(role) {
  if (!role) return '–';
  const [name, ...rest] = role.split(' ');
  const word = has(`roleName.${name}`) ? t(`roleName.${name}`) : name;
  return [word, ...rest].join(' ');
}
