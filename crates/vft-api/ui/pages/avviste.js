// Avviste meldinger (rejected messages): dead letters (messages ingest refused) and rows left
// out of imports, newest first, with the reason in plain language. The coordinator sees both;
// an operator the dead letters only (import errors are the municipalities' data); a
// municipality user neither. Route #/avviste-meldinger; the old #/avvik still leads here (it was
// renamed because to health staff an "avvik" is a deviation in the quality system).

import { h, replace } from '../dom.js';
import { t, fmtInt, fmtDateTime, fmtDate, has } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { loading, errorBox, scroller, empty } from '../ui.js';

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

async function loadDead(el, ctx) {
  const heading = h('h2', { id: 'avviste-dead-h' }, t('avviste.dead'));
  replace(el, heading, loading());
  const tbody = h('tbody');
  const more = h('div', { class: 'actions' });
  let first;
  try {
    first = await api(url('/api/v1/dead-letters', { limit: PAGE }), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadDead(el, ctx)));
    return;
  }
  if (!first.items.length) {
    replace(el, heading, empty(t('avviste.deadEmpty')));
    return;
  }
  const add = (page) => {
    tbody.append(...page.items.map((d) => h('tr', null,
      h('td', { class: 'nowrap' }, fmtDateTime(d.received_at)),
      h('td', null, source(d.topic)),
      h('td', null, h('p', { class: 'reason' }, reasonText(d.reason_code)), h('p', { class: 'reason-tech' }, d.reason)),
      h('td', null, h('details', null,
        h('summary', null, t('avviste.showPayload', { n: fmtInt(d.payload_bytes) })),
        h('pre', { class: 'payload' }, d.payload))))));
    replace(more);
    if (page.next_before) {
      const btn = h('button', { type: 'button', class: 'btn' }, t('avviste.older'));
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        try {
          add(await api(url('/api/v1/dead-letters', { limit: PAGE, before: page.next_before }), { signal: ctx.signal }));
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
  replace(el, heading, scroller(h('table', { class: 'data', id: 'dead-letters' },
    h('thead', null, h('tr', null, ['time', 'source', 'reason', 'content'].map((c) => h('th', { scope: 'col' }, t(`avviste.col.${c}`))))),
    tbody), t('avviste.dead')), more);
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
