// Leverandørbytte: migration progress per municipality over the months, the reconciliation
// classes with their lists, and the import history. A coordinator uploads a vendor's export
// here (`POST /api/v1/imports/{vendor}?as_of=`), with the upload's progress and the rows left
// out by line; other roles see no upload form (and the server refuses them one).

import { h, replace } from '../dom.js';
import { t, fmtInt, fmtPercent, monthName, fmtDate, fmtDateTime, kindLabel, label } from '../i18n.js';
import { api, url, upload, ApiError } from '../api.js';
import { actionError, osloToday } from '../actions.js';
import { makeChart, chartBox, PALETTE } from '../charts.js';
import { loading, errorBox, accessDenied, select, input, scroller, yearOptions, yearParam, empty } from '../ui.js';
import { areaSelect, askedMunicipality, isForeign, withParams, areaName } from './common.js';

const CLASSES = ['migrated', 'pending', 'double', 'new', 'listed_silent', 'reporting_unlisted'];
const MAX_SUBJECTS = 100;

function defaultAt(year) {
  const now = new Date();
  const today = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Oslo' }).format(now); // YYYY-MM-DD
  return Number(year) < Number(today.slice(0, 4)) ? `${year}-12-31` : today;
}

export function render(root, ctx) {
  const year = yearParam(ctx.params);
  const municipality = askedMunicipality(ctx);
  const from = ctx.params.get('from') || 'hepro';
  const to = ctx.params.get('to') || 'atea';
  const at = ctx.params.get('at') || defaultAt(year);
  const go = (o) => ctx.navigate('leverandorbytte', withParams(ctx.params, o));

  const form = h('form', { class: 'filters no-print', 'aria-label': t('filter.legend') },
    select({ id: 'f-year', labelText: t('filter.year'), value: year, options: yearOptions(year) }),
    areaSelect(ctx, { value: municipality }),
    input({ id: 'f-from', labelText: t('lb.from'), value: from, attrs: { size: 10, autocomplete: 'off' } }),
    input({ id: 'f-to', labelText: t('lb.to'), value: to, attrs: { size: 10, autocomplete: 'off' } }),
    input({ id: 'f-at', labelText: t('lb.at'), value: at, type: 'date' }),
    h('div', { class: 'field field-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('filter.apply'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const newYear = v('f-year');
    // A new year without a hand-picked date reconciles at that year's end (or today).
    const atValue = v('f-at');
    go({
      year: newYear,
      municipality: v('f-municipality'),
      from: v('f-from').toLowerCase(),
      to: v('f-to').toLowerCase(),
      at: newYear !== year && atValue === at && !ctx.params.get('at') ? null : atValue,
    });
  });

  const progress = h('section', { class: 'card', 'aria-labelledby': 'lb-progress-h' });
  const recon = h('section', { class: 'card', 'aria-labelledby': 'lb-recon-h' });
  const imports = h('section', { class: 'card', 'aria-labelledby': 'lb-imports-h' });
  const uploadBox = ctx.session.role === 'coordinator' ? uploadCard(ctx, imports) : null;
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('lb.title')), h('p', { class: 'lead' }, t('lb.intro'))),
    form, progress, recon, uploadBox?.card, imports);

  const q = { year, municipality, from, to, at };
  loadProgress(progress, ctx, q);
  if (isForeign(ctx, municipality)) {
    // Another municipality in the address: the server's 403 (shown above) is all there is.
    recon.remove();
    imports.remove();
    uploadBox?.card.remove();
    return;
  }
  loadRecon(recon, ctx, q);
  loadImports(imports, ctx).then((data) => uploadBox?.addVendors((data?.imports ?? []).map((i) => i.vendor)));
}

/** Vendors with an import format in the example configuration; the history adds the rest. */
const KNOWN_VENDORS = ['atea', 'hepro'];

/**
 * The upload of a vendor's export: vendor, the export's date, the file. While it goes: a
 * progress bar with bytes sent, then "reading" until the server answers with its report (rows
 * kept, rows left out by line with why); then the import history is read again.
 */
function uploadCard(ctx, importsEl) {
  const vendorSelect = h('select', { id: 'up-vendor', name: 'up-vendor', required: true },
    KNOWN_VENDORS.map((v) => h('option', { value: v }, v)));
  const today = osloToday();
  const asOf = h('input', { id: 'up-as-of', name: 'up-as-of', type: 'date', value: today, max: today, required: true });
  const file = h('input', { id: 'up-file', name: 'up-file', type: 'file', accept: '.csv,.txt,text/csv,text/plain', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'up-submit' }, t('upload.submit'));
  const progress = h('div', { class: 'upload-progress', id: 'up-progress', hidden: true, 'aria-live': 'polite' });
  const out = h('div', { id: 'up-result' });
  const form = h('form', { class: 'upload-form', id: 'upload-form', novalidate: true },
    h('div', { class: 'filters upload-fields' },
      h('div', { class: 'field' }, h('label', { for: 'up-vendor' }, t('upload.vendor')), vendorSelect),
      h('div', { class: 'field' }, h('label', { for: 'up-as-of' }, t('upload.asOf')), asOf),
      h('div', { class: 'field field-file' }, h('label', { for: 'up-file' }, t('upload.file')), file),
      h('div', { class: 'field field-actions' }, submit)),
    h('p', { class: 'hint' }, t('upload.hint')));
  const card = h('section', { class: 'card no-print', 'aria-labelledby': 'up-h', id: 'upload-card' },
    h('h2', { id: 'up-h' }, t('upload.title')),
    h('p', { class: 'hint' }, t('upload.intro')),
    form, progress, out);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const vendor = vendorSelect.value;
    const chosen = file.files?.[0];
    if (!chosen) {
      replace(out, h('p', { class: 'form-message', role: 'alert', id: 'up-missing' }, t('upload.noFile')));
      file.focus();
      return;
    }
    if (!/^\d{4}-\d{2}-\d{2}$/.test(asOf.value)) {
      replace(out, h('p', { class: 'form-message', role: 'alert', id: 'up-missing' }, t('upload.noDate')));
      asOf.focus();
      return;
    }
    submit.disabled = true;
    replace(out);
    const bar = h('progress', { id: 'up-bar', max: String(chosen.size || 1), value: '0' });
    const said = h('p', { class: 'upload-said', id: 'up-said' }, t('upload.sending', { sent: fmtInt(0), total: fmtInt(chosen.size) }));
    replace(progress, h('p', { class: 'upload-file' }, t('upload.fileLine', { name: chosen.name, vendor, asOf: asOf.value })), bar, said);
    progress.hidden = false;
    progress.dataset.state = 'sending';
    try {
      const report = await upload(`/api/v1/imports/${encodeURIComponent(vendor)}?as_of=${encodeURIComponent(asOf.value)}`, chosen, {
        contentType: 'text/csv',
        onProgress: (loaded, total) => {
          bar.max = total || 1;
          bar.value = loaded;
          said.textContent = t('upload.sending', { sent: fmtInt(loaded), total: fmtInt(total) });
        },
        onSent: () => {
          bar.removeAttribute('value'); // indeterminate: the server is reading the rows
          progress.dataset.state = 'reading';
          replace(said, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' ', t('upload.reading', { total: fmtInt(chosen.size) }));
        },
      });
      progress.hidden = true;
      progress.dataset.state = 'done';
      replace(out, importReport(report));
      file.value = '';
      await loadImports(importsEl, ctx, report.new ? report.import_id : null);
    } catch (err) {
      progress.hidden = true;
      progress.dataset.state = 'failed';
      if (err && err.name === 'AbortError') return;
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'up-error' }));
    } finally {
      submit.disabled = false;
    }
  });

  return {
    card,
    addVendors(vendors) {
      const have = new Set([...vendorSelect.options].map((o) => o.value));
      const all = [...have, ...vendors.filter((v) => v && !have.has(v))].sort();
      const chosen = vendorSelect.value;
      replace(vendorSelect, all.map((v) => h('option', { value: v, selected: v === chosen }, v)));
    },
  };
}

/** What the server said of an upload: rows kept, rows left out by line with why, repeats. */
function importReport(r) {
  const errors = r.errors ?? [];
  const duplicates = r.duplicates ?? [];
  return h('div', {
    class: `upload-report${errors.length ? ' has-errors' : ''}`, id: 'up-report', role: 'status',
    dataset: { importId: String(r.import_id), rows: String(r.rows), errors: String(errors.length), duplicates: String(duplicates.length), new: String(r.new) },
  },
  h('h3', null, t('upload.reportTitle', { vendor: r.vendor, asOf: fmtDate(r.as_of) })),
  r.new ? null : h('p', { class: 'note', id: 'up-same' }, t('upload.same')),
  h('ul', { class: 'kpis' },
    h('li', null, h('span', { class: 'kpi-value', id: 'up-rows' }, fmtInt(r.rows)), h('span', { class: 'kpi-label' }, t('upload.rows'))),
    h('li', { class: errors.length ? 'warn' : null }, h('span', { class: 'kpi-value', id: 'up-errors-n' }, fmtInt(errors.length)), h('span', { class: 'kpi-label' }, t('upload.errors'))),
    duplicates.length ? h('li', null, h('span', { class: 'kpi-value', id: 'up-dups' }, fmtInt(duplicates.length)), h('span', { class: 'kpi-label' }, t('upload.duplicates'))) : null),
  errors.length
    ? scroller(h('table', { class: 'data compact', id: 'up-errors' },
      h('caption', null, t('upload.errorsCaption')),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', class: 'num' }, t('avviste.col.line')),
        h('th', { scope: 'col' }, t('avviste.col.column')),
        h('th', { scope: 'col' }, t('avviste.col.reason')))),
      h('tbody', null, errors.map((e) => h('tr', { dataset: { line: String(e.line) } },
        h('td', { class: 'num' }, fmtInt(e.line)),
        h('td', null, e.column ?? '–'),
        h('td', null, e.reason))))), t('upload.errorsCaption'))
    : h('p', { class: 'ok', id: 'up-clean' }, t('upload.clean')),
  duplicates.length ? h('p', { class: 'hint' }, t('upload.duplicateLines', { lines: duplicates.join(', ') })) : null);
}

function failed(el, ctx, q, err, retry, heading) {
  if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
  if (err instanceof ApiError && err.status === 403 && isForeign(ctx, q.municipality)) replace(el, heading, accessDenied(ctx.session, q.municipality, ctx.municipalityName));
  else replace(el, heading, errorBox(err, retry));
}

async function loadProgress(el, ctx, q) {
  const heading = h('h2', { id: 'lb-progress-h' }, `${t('lb.progress')}, ${q.year}`);
  replace(el, heading, loading());
  let data;
  try {
    data = await api(url('/api/v1/reconciliation/progress', { from: q.from, to: q.to, year: q.year, municipality: q.municipality }), { signal: ctx.signal });
  } catch (err) {
    failed(el, ctx, q, err, () => loadProgress(el, ctx, q), heading);
    return;
  }
  const months = data.months ?? [];
  const byMunicipality = new Map();
  for (const p of data.progress ?? []) {
    if (!byMunicipality.has(p.municipality)) byMunicipality.set(p.municipality, new Map());
    byMunicipality.get(p.municipality).set(p.month, p);
  }
  if (!byMunicipality.size || !months.length) {
    replace(el, heading, empty(t('lb.progressEmpty', { year: q.year })));
    return;
  }
  const name = (code) => ctx.municipalityName(code) ?? code;
  const { box, canvas } = chartBox(t('lb.progress'), { height: 280 });
  const table = h('table', { class: 'data', id: 'lb-progress' },
    h('caption', null, `${t('lb.progress')} (${q.from} → ${q.to}), ${areaName(ctx, q.municipality)}`),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('lb.municipality')),
      months.map((m) => h('th', { scope: 'col', class: 'num' }, monthName(m))))),
    h('tbody', null, [...byMunicipality].map(([code, perMonth]) => h('tr', { 'data-municipality': code },
      h('th', { scope: 'row' }, name(code)),
      months.map((m) => {
        const p = perMonth.get(m);
        if (!p) return h('td', { class: 'num' }, '–');
        const detail = t('lb.cellTitle', { migrated: fmtInt(p.migrated), pending: fmtInt(p.pending), double: fmtInt(p.double), new: fmtInt(p.new) });
        return h('td', { class: 'num', title: detail },
          h('span', { class: 'share' }, fmtPercent(p.share_migrated, 0)),
          h('span', { class: 'sub' }, `${fmtInt(p.migrated)}/${fmtInt(p.migrated + p.pending + p.double)}`));
      })))));
  replace(el, heading, h('p', { class: 'hint' }, t('lb.progressIntro')),
    h('figure', { class: 'chart-card wide' }, box),
    scroller(table, t('lb.progress')));
  makeChart(canvas, {
    type: 'line', labels: months.map((m) => monthName(m)), percent: true, yMin: 0, yMax: 1,
    datasets: [...byMunicipality].map(([code, perMonth], i) => ({
      label: name(code),
      data: months.map((m) => perMonth.get(m)?.share_migrated ?? null),
      color: PALETTE[i % PALETTE.length],
    })),
  });
}

async function loadRecon(el, ctx, q) {
  const heading = h('h2', { id: 'lb-recon-h' }, t('lb.reconciliation', { at: fmtDate(`${q.at}T12:00:00Z`) }));
  replace(el, heading, loading());
  let data;
  const params = { from: q.from, to: q.to, at: q.at, municipality: q.municipality };
  try {
    data = await api(url('/api/v1/reconciliation', params), { signal: ctx.signal });
  } catch (err) {
    failed(el, ctx, q, err, () => loadRecon(el, ctx, q), heading);
    return;
  }
  const rows = data.rows ?? [];
  // The server names the files; `download` without a value keeps its name.
  const csv = h('a', { class: 'btn no-print', id: 'lb-csv', href: url('/api/v1/reconciliation', { ...params, format: 'csv' }), download: true }, t('lb.csv'));
  const excel = h('a', {
    class: 'btn no-print', id: 'lb-excel', href: url('/api/v1/reconciliation', { ...params, format: 'excel' }), download: true, title: t('download.excelHint'),
  }, t('download.excel'));
  if (!rows.length) {
    replace(el, heading, empty(t('lb.reconEmpty')));
    return;
  }
  const classes = [...new Set([...CLASSES, ...Object.keys(data.totals ?? {})])];
  const blocks = classes.map((c) => {
    const classRows = rows.filter((r) => r.class === c);
    const n = data.totals?.[c] ?? classRows.reduce((s, r) => s + r.count, 0);
    const det = h('details', { class: `recon-class class-${c}`, 'data-class': c },
      h('summary', null,
        h('span', { class: 'class-name' }, label('class', c)),
        h('span', { class: 'class-count' }, fmtInt(n)),
        h('span', { class: 'class-help' }, t(`classHelp.${c}`, { grace: data.grace_days, silent: data.silent_after_days }))));
    let filled = false;
    det.addEventListener('toggle', () => {
      if (!det.open || filled) return;
      filled = true;
      det.append(classRows.length ? subjectTable(ctx, classRows, csv.href) : empty('–'));
    });
    return det;
  });
  replace(el, heading, h('p', { class: 'hint' }, t('lb.reconciliationIntro')), h('div', { class: 'recon-classes' }, blocks), h('div', { class: 'actions' }, csv, excel));
}

/** One table of every subject of a class (municipality, type, service, devices), capped. */
function subjectTable(ctx, classRows, csvHref) {
  const all = classRows.flatMap((r) => (r.subjects ?? []).map((s) => ({ r, s })));
  const shown = all.slice(0, MAX_SUBJECTS);
  const subjectText = (s) => {
    const k = s.key ?? s;
    if (typeof k === 'string') return k;
    if (k.recipient) return k.recipient;
    if (k.device) return Array.isArray(k.device) ? k.device.join('/') : String(k.device);
    return '–';
  };
  const devices = (s) => (s.devices ?? []).map((d) => (Array.isArray(d) ? `${d[0]}/${d[1]}` : `${d.vendor}/${d.device}`));
  return h('div', { class: 'recon-row' },
    scroller(h('table', { class: 'data compact' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, t('lb.municipality')),
        h('th', { scope: 'col' }, t('filter.kind')),
        h('th', { scope: 'col' }, t('lb.subject')),
        h('th', { scope: 'col' }, t('lb.devicesCol')))),
      h('tbody', null, shown.map(({ r, s }) => h('tr', null,
        h('td', null, ctx.municipalityName(r.municipality) ?? r.municipality),
        h('td', null, kindLabel(r.kind)),
        h('td', null, subjectText(s)),
        h('td', null, devices(s).map((d, i) => [i ? ', ' : '', h('a', { href: ctx.hashFor('enheter', { device: d }) }, d)])))))), t('lb.subjects')),
    all.length > shown.length
      ? h('p', { class: 'hint' }, t('lb.moreSubjects', { shown: fmtInt(shown.length), n: fmtInt(all.length) }), ' ',
        h('a', { href: csvHref, download: true }, t('lb.csv')))
      : null);
}

/** The import history, newest first; `fresh` (an import id) is marked as just uploaded. */
async function loadImports(el, ctx, fresh) {
  const heading = h('h2', { id: 'lb-imports-h' }, t('lb.imports'));
  replace(el, heading, loading());
  let data;
  try {
    data = await api('/api/v1/imports', { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return null;
    replace(el, heading, errorBox(err, () => loadImports(el, ctx)));
    return null;
  }
  const list = [...(data.imports ?? [])].sort((a, b) => String(b.imported_at).localeCompare(String(a.imported_at)) || b.id - a.id);
  if (!list.length) {
    replace(el, heading, empty(t('lb.importsEmpty')));
    return data;
  }
  replace(el, heading, scroller(h('table', { class: 'data', id: 'lb-imports' },
    h('thead', null, h('tr', null, ['vendor', 'asOf', 'importedAt', 'rows', 'errors']
      .map((c) => h('th', { scope: 'col', class: c === 'rows' || c === 'errors' ? 'num' : null }, t(`lb.col.${c}`))))),
    h('tbody', null, list.map((i) => h('tr', {
      class: i.id === fresh ? 'fresh' : null,
      dataset: { importId: String(i.id), vendor: i.vendor, rows: String(i.rows), errors: String(i.errors) },
    },
      h('td', null, i.vendor, i.id === fresh ? h('span', { class: 'badge badge-new' }, t('upload.justNow')) : null),
      h('td', null, fmtDate(i.as_of)),
      h('td', null, fmtDateTime(i.imported_at)),
      h('td', { class: 'num' }, fmtInt(i.rows)),
      h('td', { class: `num${i.errors ? ' warn-text' : ''}` }, i.errors ? (ctx.session.role === 'coordinator' ? h('a', { href: '#/avviste-meldinger' }, fmtInt(i.errors)) : fmtInt(i.errors)) : '0'))))), t('lb.imports')));
  return data;
}
