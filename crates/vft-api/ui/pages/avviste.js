// Avviste meldinger (rejected messages): dead letters (messages ingest refused) and rows left
// out of imports, newest first, with the reason in plain language. The coordinator sees both;
// an operator the dead letters only (import errors are the municipalities' data); a
// municipality user neither. Route #/avviste-meldinger; the old #/avvik still leads here (it was
// renamed because to health staff an "avvik" is a deviation in the quality system).
//
// Handling: the coordinator and operator mark a message handled (`POST
// /api/v1/dead-letters/{id}/handled`); the coordinator has one taken in again once the
// configuration is fixed (`…/replay`: 422 `not_replayable` when it still cannot be read). Handled
// messages are greyed with who and when; a filter shows open, handled or all (`?handled=`). A
// server without handling shows the messages without these buttons.

import { h, replace } from '../dom.js';
import { t, fmtInt, fmtDateTime, fmtDate, has } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { confirmAction, actionError, actionDone, actorName } from '../actions.js';
import { loading, errorBox, scroller, empty, select } from '../ui.js';

const PAGE = 50;

export function render(root, ctx) {
  const head = h('div', { class: 'page-head' }, h('h1', null, t('avviste.title')), h('p', { class: 'lead' }, t('avviste.intro')));
  const dead = h('section', { class: 'card', 'aria-labelledby': 'avviste-dead-h' });
  if (ctx.session.role === 'operator') {
    replace(root, head, h('p', { class: 'note', 'data-testid': 'avviste-operator' }, t('avviste.operator')), dead);
    loadDead(dead, ctx);
    return;
  }
  if (ctx.session.role !== 'coordinator') {
    replace(root, head, h('section', { class: 'card' }, h('p', { class: 'state state-info', 'data-testid': 'avviste-coordinator-only' }, t('avviste.municipality'))));
    return;
  }
  const imports = h('section', { class: 'card', 'aria-labelledby': 'avviste-imp-h' });
  replace(root, head, dead, imports);
  loadDead(dead, ctx);
  loadImportErrors(imports, ctx);
}

/** The import errors' reasons are the importer's own words; the common ones get a plain lead. */
const IMPORT_REASONS = [
  [/product code|technology type|\bkind\b/i, 'importReason.kind'],
  [/date|time/i, 'importReason.date'],
  [/national identity number/i, 'importReason.nin'],
  [/municipality/i, 'importReason.municipality'],
  [/cells, the header has/i, 'importReason.cells'],
  [/status|state/i, 'importReason.status'],
  [/device|serial/i, 'importReason.device'],
  [/recipient/i, 'importReason.recipient'],
];

function importReason(why) {
  const hit = IMPORT_REASONS.find(([re]) => re.test(why ?? ''));
  return t(hit ? hit[1] : 'importReason.other');
}

/** "vft/v1/hepro/gw-1/events" → "hepro, gateway gw-1" above the topic itself. */
function source(topic) {
  const m = /^(?:.*\/)?([^/]+)\/([^/]+)\/(events|status)$/.exec(topic ?? '');
  return [
    m ? h('p', { class: 'reason' }, t('avviste.sourceOf', { vendor: m[1], gateway: m[2] })) : null,
    h('p', { class: 'reason-tech' }, topic),
  ];
}

function reasonText(code) {
  return has(`reason.${code}`) ? t(`reason.${code}`) : t('reason.unknown');
}

/** The filter of the address (`?vis=open|handled|all`), open by default. */
const FILTERS = { open: 'false', handled: 'true', all: null };

function filterOf(ctx) {
  const v = ctx.params.get('vis');
  return v && v in FILTERS ? v : 'open';
}

/** Whether an answer of the server says "no such route" (a server without handling). */
function missingRoute(err) {
  return err instanceof ApiError && (err.status === 405 || (err.status === 404 && /no such route/i.test(err.serverMessage)));
}

async function loadDead(el, ctx) {
  const heading = h('h2', { id: 'avviste-dead-h' }, t('avviste.dead'));
  const filter = filterOf(ctx);
  const query = { limit: PAGE, handled: FILTERS[filter] };
  replace(el, heading, loading());
  const tbody = h('tbody');
  const more = h('div', { class: 'actions' });
  let first;
  try {
    first = await api(url('/api/v1/dead-letters', query), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadDead(el, ctx)));
    return;
  }
  // Handling is there when the items say so (an empty page cannot tell: assume it is).
  const state = {
    ctx,
    handling: first.items.length === 0 || 'handled_at' in first.items[0],
    canHandle: ['coordinator', 'operator'].includes(ctx.session.role),
    canReplay: ctx.session.role === 'coordinator',
    notice: h('div', { id: 'dl-notice' }),
  };
  state.disable = () => {
    state.handling = false;
    for (const b of el.querySelectorAll('.dl-actions')) b.remove();
    replace(state.notice, h('p', { class: 'note', id: 'dl-unsupported' }, t('avviste.noHandling')));
  };
  const filterBar = state.handling
    ? h('form', { class: 'filters no-print', id: 'dl-filters', onsubmit: (e) => e.preventDefault() },
      select({
        id: 'dl-filter', labelText: t('avviste.filter'), value: filter,
        options: Object.keys(FILTERS).map((f) => ({ value: f, label: t(`avviste.filter.${f}`) })),
        onchange: (e) => ctx.navigate('avviste-meldinger', { vis: e.target.value === 'open' ? null : e.target.value }),
      }))
    : null;
  if (!first.items.length) {
    replace(el, heading, filterBar, empty(t(filter === 'open' || !state.handling ? 'avviste.deadEmpty' : `avviste.deadEmpty.${filter}`)));
    return;
  }
  const add = (page) => {
    tbody.append(...page.items.map((d) => deadRow(d, state)));
    replace(more);
    if (page.next_before) {
      const btn = h('button', { type: 'button', class: 'btn' }, t('avviste.older'));
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        try {
          add(await api(url('/api/v1/dead-letters', { ...query, before: page.next_before }), { signal: ctx.signal }));
        } catch (err) {
          if (err.name === 'AbortError') return;
          btn.disabled = false;
          replace(more, btn, errorBox(err));
        }
      });
      more.append(btn);
    }
  };
  add(first);
  const cols = ['time', 'source', 'reason', 'content', ...(state.handling ? ['handling'] : [])];
  replace(el, heading, filterBar, state.notice, scroller(h('table', { class: 'data', id: 'dead-letters' },
    h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, t(`avviste.col.${c}`))))),
    tbody), t('avviste.dead')), more);
}

/** One dead letter; with handling, its state and (by role) the buttons. */
function deadRow(d, state) {
  const tr = h('tr', { dataset: { id: String(d.id) } });
  const fill = (item, message) => {
    const handled = Boolean(item.handled_at);
    tr.className = handled ? 'handled' : '';
    tr.dataset.handled = String(handled);
    tr.dataset.replayed = String(Boolean(item.replayed));
    replace(tr,
      h('td', { class: 'nowrap' }, fmtDateTime(item.received_at)),
      h('td', null, source(item.topic)),
      h('td', null, h('p', { class: 'reason' }, reasonText(item.reason_code)), h('p', { class: 'reason-tech' }, item.reason)),
      h('td', null, h('details', null,
        h('summary', null, t('avviste.showPayload', { n: fmtInt(item.payload_bytes) })),
        h('pre', { class: 'payload' }, item.payload))),
      state.handling ? h('td', { class: 'dl-handling' }, handlingCell(item, state, fill, message)) : null);
  };
  fill(d);
  return tr;
}

function handlingCell(item, state, fill, message) {
  const result = h('div', { class: 'dl-result' }, message ?? null);
  if (item.handled_at) {
    return [
      h('p', { class: 'dl-handled-by' }, t(item.replayed ? 'avviste.replayedBy' : 'avviste.handledBy', { when: fmtDateTime(item.handled_at), who: actorName(item.handled_by), n: fmtInt(item.replayed_events ?? null) })),
      result,
    ];
  }
  const buttons = [];
  if (state.canHandle) {
    const handle = h('button', { type: 'button', class: 'btn btn-small dl-handle', dataset: { id: String(item.id) } }, t('avviste.markHandled'));
    handle.addEventListener('click', async () => {
      handle.disabled = true;
      replace(result);
      try {
        const done = await api(`/api/v1/dead-letters/${encodeURIComponent(item.id)}/handled`, { method: 'POST', body: {} });
        fill({ ...item, ...done }, actionDone(t('avviste.handledDone')));
      } catch (err) {
        if (handle.isConnected) handle.disabled = false;
        if (err instanceof ApiError && err.status === 401) return;
        if (missingRoute(err)) state.disable();
        else replace(result, actionError(err));
      }
    });
    buttons.push(handle);
  }
  if (state.canReplay) {
    const replay = h('button', { type: 'button', class: 'btn btn-small dl-replay', dataset: { id: String(item.id) } }, t('avviste.replay'));
    replay.addEventListener('click', async () => {
      const ok = await confirmAction({
        title: t('avviste.replayConfirmTitle'),
        body: [t('avviste.replayConfirmBody')],
        confirm: t('avviste.replay'),
      });
      if (!ok) {
        replay.focus();
        return;
      }
      replay.disabled = true;
      replace(result);
      let answer;
      try {
        answer = await api(`/api/v1/dead-letters/${encodeURIComponent(item.id)}/replay`, { method: 'POST', body: {} });
      } catch (err) {
        if (replay.isConnected) replay.disabled = false;
        if (err instanceof ApiError && err.status === 401) return;
        if (missingRoute(err)) state.disable();
        else replace(result, actionError(err));
        return;
      }
      const said = actionDone(t('avviste.replayed', { n: fmtInt(answer.events ?? 0) }));
      // The message as the server now has it (handled, by whom, when): in the answer, or read.
      let now = answer.dead_letter ?? null;
      if (!now) {
        try {
          const page = await api(url('/api/v1/dead-letters', { before: item.id + 1, limit: 1 }), { signal: state.ctx.signal });
          now = page.items.find((x) => x.id === item.id) ?? null;
        } catch { /* the answer above is what we know */ }
      }
      fill(now ?? { ...item, replayed: true }, said);
    });
    buttons.push(replay);
  }
  return [buttons.length ? h('div', { class: 'dl-actions' }, buttons) : h('span', { class: 'muted' }, t('avviste.open')), result];
}

async function loadImportErrors(el, ctx) {
  const heading = h('h2', { id: 'avviste-imp-h' }, t('avviste.imports'));
  replace(el, heading, loading());
  let data;
  try {
    data = await api(url('/api/v1/imports/errors', { limit: 200 }), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadImportErrors(el, ctx)));
    return;
  }
  const items = data.items ?? [];
  if (!items.length) {
    replace(el, heading, empty(t('avviste.importsEmpty')));
    return;
  }
  replace(el, heading, scroller(h('table', { class: 'data', id: 'import-errors' },
    h('thead', null, h('tr', null, ['import', 'line', 'column', 'reason'].map((c) => h('th', { scope: 'col', class: c === 'line' ? 'num' : null }, t(`avviste.col.${c}`))))),
    h('tbody', null, items.map((e) => h('tr', null,
      h('td', null, t('avviste.importOf', { vendor: e.vendor, asOf: fmtDate(e.as_of) }), h('br'), h('span', { class: 'muted' }, fmtDateTime(e.imported_at))),
      h('td', { class: 'num' }, fmtInt(e.line)),
      h('td', null, e.column ?? '–'),
      h('td', null, h('p', { class: 'reason' }, importReason(e.why)), h('p', { class: 'reason-tech' }, e.why)))))), t('avviste.imports')));
}
