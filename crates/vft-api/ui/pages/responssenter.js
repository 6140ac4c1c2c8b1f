// Responssenter: alarms per month, response times, shares within 60 s / 180 s against the
// standard, outcomes and unanswered alarms (/api/v1/rollups/response-centre).

import { h, replace, srOnly } from '../dom.js';
import { t, fmtInt, fmtPercent, fmtShareAgainst, fmtSeconds, monthName, fmtMonth, fmtDateTime, label } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { makeChart, chartBox } from '../charts.js';
import { loading, errorBox, accessDenied, select, scroller, yearOptions, yearParam, empty } from '../ui.js';
import { areaSelect, askedMunicipality, isForeign, kindOptions, withParams, areaName } from './common.js';

const OUTCOMES = ['false_alarm', 'resolved_remotely', 'help_dispatched', 'emergency_services', 'no_contact'];

export function render(root, ctx) {
  const year = yearParam(ctx.params);
  const municipality = askedMunicipality(ctx);
  const kind = ctx.params.get('kind') ?? '';
  const go = (o) => ctx.navigate('responssenter', withParams(ctx.params, o));
  const body = h('div', { class: 'page-body' }, loading());
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('rs.title')), h('p', { class: 'lead' }, t('rs.intro'))),
    h('form', { class: 'filters no-print', 'aria-label': t('filter.legend'), onsubmit: (e) => e.preventDefault() },
      select({ id: 'f-year', labelText: t('filter.year'), value: year, options: yearOptions(year), onchange: (e) => go({ year: e.target.value }) }),
      areaSelect(ctx, { value: municipality, onchange: (e) => go({ municipality: e.target.value }) }),
      select({ id: 'f-kind', labelText: t('filter.kind'), value: kind, options: kindOptions(t('filter.allKinds')), onchange: (e) => go({ kind: e.target.value }) })),
    body);
  load(body, ctx, { year, municipality, kind });
}

async function load(body, ctx, query) {
  replace(body, loading());
  let data;
  try {
    data = await api(url('/api/v1/rollups/response-centre', query), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    if (err instanceof ApiError && err.status === 403 && isForeign(ctx, query.municipality)) replace(body, accessDenied(ctx.session, query.municipality, ctx.municipalityName));
    else replace(body, errorBox(err, () => load(body, ctx, query)));
    return;
  }
  show(body, ctx, query, data);
}

function show(body, ctx, query, data) {
  const months = data.months ?? [];
  const std = data.standard ?? { within_60s: 0.975, within_180s: 0.99 };
  const labels = months.map((m) => monthName(m.month));
  const total = months.reduce((s, m) => s + m.triggered, 0);
  const never = months.reduce((s, m) => s + m.never_acknowledged, 0);
  const area = areaName(ctx, query.municipality);

  if (total === 0 && months.every((m) => m.received === 0)) {
    replace(body, h('section', { class: 'card' }, empty(t('rs.empty', { year: data.year }))));
    return;
  }

  // Each standard as a pair: the year's result (every alarm of the year with a triggered time;
  // the months' shares are exact fractions of their alarms) next to the requirement, so the
  // requirement is never read as a result.
  const standardKpi = (secs, shareKey, meetsKey, requirement) => {
    const counted = months.filter((m) => m[shareKey] !== null && m[shareKey] !== undefined && m.triggered > 0);
    const alarms = counted.reduce((s, m) => s + m.triggered, 0);
    const within = counted.reduce((s, m) => s + Math.round(m[shareKey] * m.triggered), 0);
    const result = alarms ? within / alarms : null;
    const met = counted.filter((m) => m[meetsKey]).length;
    const ok = result !== null && result >= requirement;
    return h('li', { class: 'kpi-pair', id: `rs-kpi-${secs}` },
      h('span', { class: 'kpi-title' }, t(`rs.kpi${secs}`)),
      h('span', { class: 'kpi-figures' },
        h('span', { class: 'kpi-result' },
          h('span', { class: `kpi-value ${result === null ? 'muted' : ok ? 'ok' : 'bad'}`, id: `rs-result-${secs}` }, fmtShareAgainst(result, requirement)),
          h('span', { class: 'kpi-label' }, t('rs.result', { year: data.year }),
            result === null ? null : srOnly(`, ${ok ? t('rs.meets') : t('rs.fails')}`))),
        h('span', { class: 'kpi-req' },
          h('span', { class: 'kpi-value', id: `rs-req-${secs}` }, fmtPercent(requirement)),
          h('span', { class: 'kpi-label' }, t('rs.requirement')))),
      counted.length ? h('span', { class: 'kpi-label', id: `rs-met-${secs}` }, t('rs.monthsMet', { met: fmtInt(met), n: fmtInt(counted.length) })) : null);
  };

  const summary = h('section', { class: 'card summary', 'aria-label': `${data.year}, ${area}` },
    h('ul', { class: 'kpis' },
      h('li', null, h('span', { class: 'kpi-value' }, fmtInt(total)), h('span', { class: 'kpi-label' }, `${t('rs.triggered')} ${data.year}`)),
      h('li', { class: never ? 'warn' : null }, h('span', { class: 'kpi-value', id: 'never-acknowledged' }, fmtInt(never)), h('span', { class: 'kpi-label' }, t('rs.never'))),
      standardKpi(60, 'share_within_60s', 'meets_60s', std.within_60s),
      standardKpi(180, 'share_within_180s', 'meets_180s', std.within_180s)),
    h('p', { class: 'hint' }, t('rs.resultHint')),
    h('p', null, never ? t('rs.unack', { year: data.year, n: fmtInt(never) }) : t('rs.unackNone', { year: data.year })));

  const c1 = chartBox(t('rs.chart.alarms'), { height: 240 });
  const c2 = chartBox(t('rs.chart.times'), { height: 240 });
  const c3 = chartBox(t('rs.chart.shares'), { height: 260 });
  const charts = h('div', { class: 'chart-grid chart-grid-3' },
    h('figure', { class: 'chart-card' }, h('figcaption', null, t('rs.chart.alarms')), c1.box),
    h('figure', { class: 'chart-card' }, h('figcaption', null, t('rs.chart.times')), c2.box),
    h('figure', { class: 'chart-card' }, h('figcaption', null, t('rs.chart.shares')), c3.box));

  const meets = (share, ok, requirement) => {
    if (share === null || share === undefined) return h('span', { class: 'muted' }, '–');
    return h('span', { class: ok ? 'ok' : 'bad' },
      fmtShareAgainst(share, requirement), ' ', h('span', { 'aria-hidden': 'true' }, ok ? '✓' : '✗'), srOnly(ok ? t('rs.meets') : t('rs.fails')));
  };
  const unanswered = h('section', { class: 'card', id: 'rs-unanswered', hidden: true, 'aria-live': 'polite' });
  const table = h('table', { class: 'data', id: 'rs-table' },
    h('caption', null, `${t('rs.table')}, ${data.year}, ${area}`),
    h('thead', null, h('tr', null,
      [t('rs.month'), t('rs.triggered'), t('rs.received'), t('rs.acknowledged'), t('rs.closed'), t('rs.never'),
        t('rs.median'), t('rs.p90'), t('rs.max'), t('rs.within60'), t('rs.within180')]
        .map((c, i) => h('th', { scope: 'col', class: i ? 'num' : null }, c)))),
    h('tbody', null, months.map((m) => h('tr', { 'data-month': m.month },
      h('th', { scope: 'row' }, fmtMonth(m.month)),
      h('td', { class: 'num' }, fmtInt(m.triggered)),
      h('td', { class: 'num' }, fmtInt(m.received)),
      h('td', { class: 'num' }, fmtInt(m.acknowledged)),
      h('td', { class: 'num' }, fmtInt(m.closed)),
      h('td', { class: `num${m.never_acknowledged ? ' warn-text' : ''}` }, m.never_acknowledged
        ? h('button', {
          type: 'button', class: 'link-button unanswered-open', dataset: { month: m.month },
          'aria-label': t('rs.unansweredShow', { month: fmtMonth(m.month), n: fmtInt(m.never_acknowledged) }),
          onclick: () => showUnanswered(unanswered, ctx, query, m.month),
        }, fmtInt(m.never_acknowledged))
        : fmtInt(m.never_acknowledged)),
      h('td', { class: 'num' }, fmtSeconds(m.response?.median_ms)),
      h('td', { class: 'num' }, fmtSeconds(m.response?.p90_ms)),
      h('td', { class: 'num' }, fmtSeconds(m.response?.max_ms)),
      h('td', { class: 'num' }, meets(m.share_within_60s, m.meets_60s, std.within_60s)),
      h('td', { class: 'num' }, meets(m.share_within_180s, m.meets_180s, std.within_180s))))));

  const outcomeIds = [...new Set([...OUTCOMES, ...months.flatMap((m) => Object.keys(m.outcomes ?? {}))])];
  const outcomes = h('table', { class: 'data', id: 'rs-outcomes' },
    h('caption', null, `${t('rs.outcomes')}, ${data.year}`),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('rs.month')),
      outcomeIds.map((o) => h('th', { scope: 'col', class: 'num' }, label('outcome', o))))),
    h('tbody', null, months.map((m) => h('tr', null,
      h('th', { scope: 'row' }, fmtMonth(m.month)),
      outcomeIds.map((o) => h('td', { class: 'num' }, fmtInt(m.outcomes?.[o] ?? 0)))))),
    h('tfoot', null, h('tr', null, h('th', { scope: 'row' }, t('oversikt.total')),
      outcomeIds.map((o) => h('td', { class: 'num' }, fmtInt(months.reduce((s, m) => s + (m.outcomes?.[o] ?? 0), 0)))))));

  replace(body,
    summary,
    h('section', { class: 'card', 'aria-label': t('rs.chart.shares') }, charts),
    h('section', { class: 'card' }, scroller(table, t('rs.table'))),
    unanswered,
    h('section', { class: 'card' }, scroller(outcomes, t('rs.outcomes'))));

  makeChart(c1.canvas, {
    type: 'bar', labels, integer: true,
    datasets: [
      { label: t('rs.triggered'), data: months.map((m) => m.triggered), color: '#0B5CAD' },
      { label: t('rs.never'), data: months.map((m) => m.never_acknowledged), color: '#B8316F' },
    ],
  });
  makeChart(c2.canvas, {
    type: 'line', labels,
    datasets: [
      { label: t('rs.median'), data: months.map((m) => (m.response ? m.response.median_ms / 1000 : null)), color: '#0B5CAD' },
      { label: t('rs.p90'), data: months.map((m) => (m.response ? m.response.p90_ms / 1000 : null)), color: '#C75B00' },
    ],
  });
  const shares = months.flatMap((m) => [m.share_within_60s, m.share_within_180s]).filter((x) => x !== null && x !== undefined);
  const low = Math.min(std.within_60s, ...shares);
  makeChart(c3.canvas, {
    type: 'line', labels, percent: true,
    yMin: Math.max(0, Math.floor((low - 0.01) * 50) / 50), yMax: 1,
    datasets: [
      { label: t('rs.within60'), data: months.map((m) => m.share_within_60s ?? null), color: '#0B5CAD' },
      { label: t('rs.within180'), data: months.map((m) => m.share_within_180s ?? null), color: '#00806A' },
      { label: t('rs.std60', { pct: fmtPercent(std.within_60s) }), data: months.map(() => std.within_60s), color: '#0B5CAD', dashed: true },
      { label: t('rs.std180', { pct: fmtPercent(std.within_180s) }), data: months.map(() => std.within_180s), color: '#00806A', dashed: true },
    ],
  });
}

/** The month's never-acknowledged alarms by name (`/api/v1/rollups/response-centre/unanswered`). */
async function showUnanswered(el, ctx, query, month) {
  el.hidden = false;
  const heading = h('h2', { id: 'rs-unanswered-h' }, t('rs.unansweredTitle', { month: fmtMonth(month) }));
  replace(el, heading, loading());
  let data;
  try {
    data = await api(url('/api/v1/rollups/response-centre/unanswered', { month, municipality: query.municipality }), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => showUnanswered(el, ctx, query, month)));
    return;
  }
  const table = h('table', { class: 'data', id: 'rs-unanswered-table' },
    h('thead', null, h('tr', null,
      ['triggered', 'device', 'area', 'cause', 'closed'].map((c) => h('th', { scope: 'col' }, t(`rs.ucol.${c}`))))),
    h('tbody', null, data.alarms.map((a) => h('tr', { dataset: { alarm: a.alarm, device: a.device } },
      h('td', null, fmtDateTime(a.triggered)),
      h('th', { scope: 'row' }, `${a.vendor}/${a.device}`),
      h('td', null, areaName(ctx, a.municipality)),
      h('td', null, a.cause ? label('alarmCause', a.cause) : '–'),
      h('td', null, a.closed ? `${fmtDateTime(a.closed)}${a.outcome ? ` (${label('outcome', a.outcome)})` : ''}` : t('rs.stillOpen'))))));
  replace(el, heading, data.alarms.length ? scroller(table, heading.textContent) : empty(t('rs.unansweredNone')));
  heading.tabIndex = -1;
  heading.focus();
}
