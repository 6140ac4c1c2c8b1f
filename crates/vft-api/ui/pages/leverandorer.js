// Leverandører: each vendor's service level per month of a year, as
// /api/v1/rollups/vendor-service serves it month by month (the months that have begun; the
// current one is counted up to now): availability, hours without contact, faults, alarms and
// the response centre's answers to them against the standard; one month as CSV or for Excel.

import { h, replace, srOnly } from '../dom.js';
import { t, fmtInt, fmtPercent, fmtShareAgainst, fmtMonth, monthName } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { makeChart, chartBox, PALETTE } from '../charts.js';
import { loading, errorBox, accessDenied, select, scroller, yearOptions, yearParam, empty } from '../ui.js';
import { areaSelect, askedMunicipality, isForeign, withParams, areaName } from './common.js';

/**
 * The response centre's standard. The vendor-service answer does not carry it (the
 * response-centre one does, with the same values): the same figures as there.
 */
const STANDARD = { within_60s: 0.975, within_180s: 0.99 };

/** The rows of the table, one group per figure. */
const METRICS = [
  { id: 'devices', key: 'devices', label: () => t('lev.metric.devices'), help: 'lev.help.devices', format: (v) => fmtInt(v) },
  { id: 'availability', key: 'availability', label: () => t('lev.metric.availability'), help: 'lev.help.availability', format: (v) => fmtPercent(v, 1) },
  { id: 'hours_without_contact', key: 'hours_without_contact', label: () => t('lev.metric.hoursWithoutContact'), help: 'lev.help.hoursWithoutContact', format: (v) => fmtInt(Math.round(v)) },
  { id: 'faults', key: 'faults', label: () => t('lev.metric.faults'), help: 'lev.help.faults', format: (v) => fmtInt(v) },
  { id: 'alarms', key: 'alarms', label: () => t('lev.metric.alarms'), help: 'lev.help.alarms', format: (v) => fmtInt(v) },
  {
    id: 'share_within_60s', key: 'share_within_60s', label: () => t('lev.metric.within60', { pct: fmtPercent(STANDARD.within_60s) }),
    format: (v) => fmtShareAgainst(v, STANDARD.within_60s), requirement: STANDARD.within_60s,
  },
  {
    id: 'share_within_180s', key: 'share_within_180s', label: () => t('lev.metric.within180', { pct: fmtPercent(STANDARD.within_180s) }),
    format: (v) => fmtShareAgainst(v, STANDARD.within_180s), requirement: STANDARD.within_180s,
  },
];

/** "2026-11": the month it is now in Europe/Oslo. */
function currentMonth() {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Oslo', year: 'numeric', month: '2-digit' }).formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type)?.value;
  return `${get('year')}-${get('month')}`;
}

export function render(root, ctx) {
  const year = yearParam(ctx.params);
  const municipality = askedMunicipality(ctx);
  const go = (o) => ctx.navigate('leverandorer', withParams(ctx.params, o));
  const body = h('div', { class: 'page-body' }, loading());
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('lev.title')), h('p', { class: 'lead' }, t('lev.intro'))),
    h('form', { class: 'filters no-print', 'aria-label': t('filter.legend'), onsubmit: (e) => e.preventDefault() },
      select({ id: 'f-year', labelText: t('filter.year'), value: year, options: yearOptions(year), onchange: (e) => go({ year: e.target.value }) }),
      areaSelect(ctx, { value: municipality, onchange: (e) => go({ municipality: e.target.value }) })),
    body);
  load(body, ctx, { year, municipality });
}

async function load(body, ctx, query) {
  replace(body, loading());
  const all = Array.from({ length: 12 }, (_, i) => `${query.year}-${String(i + 1).padStart(2, '0')}`);
  // A well-formed year: the months that have begun. A hand-edited bad one goes to the server,
  // whose 400 is shown in plain language.
  const now = currentMonth();
  const begun = /^\d{4}$/.test(query.year) ? all.filter((m) => m <= now) : [all[0]];
  if (!begun.length) {
    replace(body, h('section', { class: 'card' }, empty(t('lev.notBegun', { year: query.year }))));
    return;
  }
  let answers;
  try {
    answers = await Promise.all(begun.map((month) => api(url('/api/v1/rollups/vendor-service', { month, municipality: query.municipality }), { signal: ctx.signal })));
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    if (err instanceof ApiError && err.status === 403 && isForeign(ctx, query.municipality)) replace(body, accessDenied(ctx.session, query.municipality, ctx.municipalityName));
    else replace(body, errorBox(err, () => load(body, ctx, query)));
    return;
  }
  show(body, ctx, query, all, new Map(answers.map((a, i) => [begun[i], a])), now);
}

function show(body, ctx, query, months, byMonth, now) {
  const area = areaName(ctx, query.municipality);
  const vendors = [...new Set([...byMonth.values()].flatMap((a) => (a.rows ?? []).map((r) => r.vendor)))].sort();
  if (!vendors.length) {
    replace(body, h('section', { class: 'card' }, empty(t('lev.empty', { year: query.year }))));
    return;
  }
  const rowOf = (vendor, month) => byMonth.get(month)?.rows?.find((r) => r.vendor === vendor) ?? null;

  const cell = (metric, vendor, month) => {
    const attrs = { 'data-month': month };
    if (!byMonth.has(month)) {
      return h('td', { ...attrs, class: 'num future', title: t('oversikt.future') }, srOnly(t('oversikt.future')));
    }
    const row = rowOf(vendor, month);
    if (!row) {
      return h('td', { ...attrs, class: 'num muted', title: t('lev.noDevices') }, h('span', { 'aria-hidden': 'true' }, '–'), srOnly(t('lev.noDevices')));
    }
    const v = row[metric.key];
    if (v === null || v === undefined) {
      return h('td', { ...attrs, class: 'num muted', title: t('lev.noValue') }, h('span', { 'aria-hidden': 'true' }, '–'), srOnly(t('lev.noValue')));
    }
    if (metric.requirement === undefined) return h('td', { ...attrs, class: 'num' }, h('span', { class: 'v' }, metric.format(v)));
    const ok = v >= metric.requirement;
    return h('td', { ...attrs, class: `num ${ok ? 'ok' : 'bad'}` },
      h('span', { class: 'v' }, metric.format(v)), ' ', h('span', { 'aria-hidden': 'true' }, ok ? '✓' : '✗'),
      srOnly(ok ? t('rs.meets') : t('rs.fails')));
  };

  const caption = t('lev.caption', { year: query.year, area });
  const table = h('table', { class: 'data vs-table', id: 'vs-table' },
    h('caption', null, caption),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, t('lev.vendor')),
      months.map((m) => h('th', { scope: 'col', class: 'num', 'data-month': m }, monthName(m))))),
    METRICS.map((metric) => h('tbody', { 'data-metric': metric.id },
      h('tr', { class: 'group' },
        h('th', { scope: 'rowgroup', colspan: String(months.length + 1) }, metric.label(),
          metric.help ? h('span', { class: 'group-help' }, ` – ${t(metric.help)}`) : null)),
      vendors.map((vendor) => h('tr', { 'data-vendor': vendor },
        h('th', { scope: 'row' }, vendor),
        months.map((m) => cell(metric, vendor, m)))))));

  const legend = h('ul', { class: 'legend' },
    byMonth.size < months.length ? h('li', null, t('lev.legend.future')) : null,
    h('li', null, t('lev.legend.none')),
    byMonth.has(now) ? h('li', null, t('lev.legend.current')) : null);

  // One month as a file: the latest month that has begun, or the one picked.
  const begun = months.filter((m) => byMonth.has(m));
  const fileHref = (month, format) => url('/api/v1/rollups/vendor-service', { month, municipality: query.municipality, format });
  const csv = h('a', { class: 'btn', id: 'vs-csv', download: true }, t('lev.csv'));
  const excel = h('a', { class: 'btn', id: 'vs-excel', download: true, title: t('download.excelHint') }, t('download.excel'));
  const pick = (month) => {
    csv.setAttribute('href', fileHref(month, 'csv'));
    excel.setAttribute('href', fileHref(month, 'excel'));
  };
  const latest = begun[begun.length - 1];
  pick(latest);
  const downloads = h('div', { class: 'downloads no-print', role: 'group', 'aria-label': t('lev.download') },
    select({
      id: 'vs-month', labelText: t('lev.downloadMonth'), value: latest,
      options: [...begun].reverse().map((m) => ({ value: m, label: fmtMonth(m, true) })),
      onchange: (e) => pick(e.target.value),
    }),
    h('div', { class: 'field field-actions' }, csv, excel));

  const labels = months.map((m) => monthName(m));
  const c1 = chartBox(t('lev.chart.availability'), { height: 240 });
  const c2 = chartBox(t('lev.chart.within60'), { height: 240 });
  const charts = h('div', { class: 'chart-grid' },
    h('figure', { class: 'chart-card' }, h('figcaption', null, t('lev.chart.availability')), c1.box),
    h('figure', { class: 'chart-card' }, h('figcaption', null, t('lev.chart.within60')), c2.box));

  replace(body,
    h('section', { class: 'card table-card', 'aria-label': caption },
      scroller(table, caption),
      legend),
    h('section', { class: 'card', 'aria-labelledby': 'vs-download-h' },
      h('h2', { id: 'vs-download-h' }, t('lev.download')),
      downloads),
    h('section', { class: 'card', 'aria-label': t('lev.chart.availability') }, charts));

  const series = (key) => vendors.map((vendor, i) => ({
    label: vendor,
    data: months.map((m) => rowOf(vendor, m)?.[key] ?? null),
    color: PALETTE[i % PALETTE.length],
  }));
  makeChart(c1.canvas, { type: 'line', labels, percent: true, yMin: 0, yMax: 1, datasets: series('availability') });
  const shares = [...byMonth.values()].flatMap((a) => (a.rows ?? []).map((r) => r.share_within_60s)).filter((x) => x !== null && x !== undefined);
  const low = Math.min(STANDARD.within_60s, ...shares);
  makeChart(c2.canvas, {
    type: 'line', labels, percent: true, yMin: Math.max(0, Math.floor((low - 0.01) * 50) / 50), yMax: 1,
    datasets: [...series('share_within_60s'),
      { label: t('rs.std60', { pct: fmtPercent(STANDARD.within_60s) }), data: months.map(() => STANDARD.within_60s), color: '#4D4D4D', dashed: true }],
  });
}
