// Oversikt: the monthly table exactly as /api/v1/rollups/devices serves it, charts per
// technology type, the change behind any cell, and exports (CSV, PNG, print). A coordinator
// publishes an ended month here (`POST /api/v1/months/{month}/publish`, after a confirmation);
// who published each month comes from `GET /api/v1/months`.

import { h, replace, srOnly } from '../dom.js';
import { t, fmtInt, fmtDelta, fmtMonth, fmtDateTime, monthName, kindLabel, label } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { confirmAction, actionError, actionDone, actorName, osloMonth } from '../actions.js';
import { makeChart, chartBox, downloadPng, destroyCharts } from '../charts.js';
import { loading, errorBox, accessDenied, select, scroller, yearOptions, yearParam, empty } from '../ui.js';
import { areaSelect, askedMunicipality, isForeign, areaName, withParams } from './common.js';

export function render(root, ctx) {
  const year = yearParam(ctx.params);
  const municipality = askedMunicipality(ctx);
  const cooperation = ctx.params.get('cooperation') ?? '';
  const vendor = ctx.params.get('vendor') ?? '';
  const query = { year, municipality, cooperation, vendor };
  const go = (overrides) => ctx.navigate('oversikt', withParams(ctx.params, overrides));

  const coopOptions = [{ value: '', label: t('filter.noCooperation') },
    ...ctx.cooperations.map((c) => ({ value: c.id, label: c.name }))];
  if (cooperation && !ctx.cooperations.some((c) => c.id === cooperation)) coopOptions.push({ value: cooperation, label: cooperation });

  const filters = h('form', { class: 'filters no-print', 'aria-label': t('filter.legend'), onsubmit: (e) => e.preventDefault() },
    select({ id: 'f-year', labelText: t('filter.year'), value: year, options: yearOptions(year), onchange: (e) => go({ year: e.target.value }) }),
    areaSelect(ctx, { value: municipality, onchange: (e) => go({ municipality: e.target.value }) }),
    select({ id: 'f-cooperation', labelText: t('filter.cooperation'), value: cooperation, options: coopOptions, onchange: (e) => go({ cooperation: e.target.value }) }));

  const body = h('div', { class: 'page-body' }, loading());
  replace(root,
    h('div', { class: 'page-head' },
      h('h1', null, t('oversikt.title')),
      h('p', { class: 'lead' }, t('oversikt.intro'))),
    filters,
    body);

  load(body, ctx, query);
}

async function load(body, ctx, query, done) {
  replace(body, loading());
  let table;
  let months = null;
  try {
    // Who published which month: the coordinator's publishing card shows it.
    const coordinator = ctx.session.role === 'coordinator';
    [table, months] = await Promise.all([
      api(url('/api/v1/rollups/devices', query), { signal: ctx.signal }),
      coordinator ? api(url('/api/v1/months', { year: query.year }), { signal: ctx.signal }) : null,
    ]);
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    if (err instanceof ApiError && err.status === 403 && isForeign(ctx, query.municipality)) {
      replace(body, accessDenied(ctx.session, query.municipality, ctx.municipalityName));
    } else {
      replace(body, errorBox(err, () => load(body, ctx, query)));
    }
    return;
  }
  showTable(body, ctx, query, table, months, done);
  if (done?.published) focusPublished(body);
}

function showTable(body, ctx, query, table, months, done) {
  const area = areaName(ctx, query.municipality);
  const coopName = query.cooperation
    ? (ctx.cooperations.find((c) => c.id === query.cooperation)?.name ?? query.cooperation) : null;
  const caption = coopName
    ? t('oversikt.captionCoop', { year: table.year, area, coop: coopName })
    : t('oversikt.caption', { year: table.year, area });
  const published = table.published ?? [];
  const corrections = table.corrections ?? [];
  const corrected = (month, kind) => corrections.find((c) => c.month === month && c.kind === kind);

  const changePanel = h('section', { class: 'card change-panel', id: 'change-panel', hidden: true, 'aria-live': 'polite' });
  let activeButton = null;
  const openChange = (button, month, kind) => {
    if (activeButton) activeButton.setAttribute('aria-pressed', 'false');
    activeButton = button;
    button.setAttribute('aria-pressed', 'true');
    showChange(changePanel, ctx, query, table, month, kind, () => {
      button.setAttribute('aria-pressed', 'false');
      activeButton = null;
      changePanel.hidden = true;
      button.focus();
    });
  };

  const publishedBy = new Map((months?.items ?? []).map((p) => [p.month, p]));
  const publishedTitle = (m) => {
    const p = publishedBy.get(m);
    return p ? t('publish.byLong', { when: fmtDateTime(p.published_at), who: actorName(p.published_by) }) : t('oversikt.publishedLong');
  };
  const head = h('tr', null,
    h('th', { scope: 'col', class: 'col-kind' }, t('oversikt.kindCol')),
    table.months.map((m, i) => h('th', { scope: 'col', class: 'num', 'data-month': m },
      h('span', { class: 'month-label' }, monthName(m)),
      published[i] ? h('span', { class: 'badge badge-published', title: publishedTitle(m) },
        h('span', { 'aria-hidden': 'true' }, t('oversikt.published')), srOnly(t('oversikt.publishedLong'))) : null)));

  const cell = (count, m, kind, labelText) => {
    if (count === null || count === undefined) {
      return h('td', { class: 'num future', 'data-month': m, title: t('oversikt.future') },
        h('span', { 'aria-hidden': 'true' }, '–'), srOnly(t('oversikt.future')));
    }
    const corr = kind ? corrected(m, kind) : null;
    const button = h('button', {
      type: 'button', class: 'cell-btn', 'aria-pressed': 'false',
      'aria-label': kind
        ? t('oversikt.cellLabel', { kind: labelText, month: fmtMonth(m, true), count: fmtInt(count) })
        : t('oversikt.totalCellLabel', { month: fmtMonth(m, true), count: fmtInt(count) }),
    }, h('span', { class: 'count' }, fmtInt(count)),
    corr ? h('span', { class: 'corr-mark', 'aria-hidden': 'true', title: t('oversikt.corrected') }, '*') : null);
    button.addEventListener('click', () => openChange(button, m, kind));
    return h('td', { class: `num${corr ? ' corrected' : ''}`, 'data-month': m }, button);
  };

  const rows = table.rows.map((r) => {
    const labelText = kindLabel(r.kind, r.label);
    return h('tr', { 'data-kind': r.kind },
      h('th', { scope: 'row', class: 'row-label' }, labelText),
      r.counts.map((c, i) => cell(c, table.months[i], r.kind, labelText)));
  });
  const total = h('tr', { 'data-total': '' },
    h('th', { scope: 'row', class: 'row-label' }, t('oversikt.total')),
    table.total.map((c, i) => cell(c, table.months[i], null, null)));

  const tableEl = h('table', { class: 'data vft-table', id: 'vft-table' },
    h('caption', null, caption),
    h('thead', null, head),
    h('tbody', null, rows),
    h('tfoot', null, total));

  const allZero = table.total.every((c) => c === null || c === 0);
  const legend = h('ul', { class: 'legend' },
    published.some(Boolean) ? h('li', null, t('oversikt.legend.published')) : null,
    table.total.some((c) => c === null) ? h('li', null, t('oversikt.legend.future')) : null,
    corrections.length ? h('li', null, t('oversikt.legend.corrected')) : null);

  const correctionList = corrections.length
    ? h('div', { class: 'corrections' },
      h('h3', null, t('oversikt.corrections')),
      h('ul', null, corrections.map((c) => h('li', null, t('oversikt.correctionLine', {
        kind: kindLabel(c.kind, table.rows.find((r) => r.kind === c.kind)?.label),
        month: fmtMonth(c.month, true),
        published: fmtInt(c.published),
        current: fmtInt(c.current),
        diff: fmtDelta(c.difference),
      })))))
    : null;

  // The month's report (PDF and workbook, GET /api/v1/reports/monthly.*): the latest ended
  // month of the year shown, else its current month. It covers the municipality (or region),
  // not a vendor or cooperation filter.
  const begun = table.months.filter((m, i) => table.total[i] !== null);
  const ended = begun.filter((m) => m < osloMonth());
  const reportMonth = ended.length ? ended[ended.length - 1] : begun[begun.length - 1];
  const reportQuery = { month: reportMonth, municipality: query.municipality };

  // The server names the files (scope and date, Content-Disposition); `download` without a
  // value keeps that name and keeps the page where it is.
  const exportsBar = h('div', { class: 'actions no-print' },
    h('a', { class: 'btn', href: url('/api/v1/rollups/devices', { ...query, format: 'csv' }), download: true, id: 'download-csv' }, t('oversikt.csv')),
    h('a', {
      class: 'btn', href: url('/api/v1/rollups/devices', { ...query, format: 'excel' }), download: true, id: 'download-excel', title: t('download.excelHint'),
    }, t('download.excel')),
    reportMonth ? h('a', {
      class: 'btn', href: url('/api/v1/reports/monthly.pdf', reportQuery), download: true, id: 'download-report-pdf', title: t('oversikt.reportHint'),
    }, t('oversikt.reportPdf', { month: fmtMonth(reportMonth, true) })) : null,
    reportMonth ? h('a', {
      class: 'btn', href: url('/api/v1/reports/monthly.xlsx', reportQuery), download: true, id: 'download-report-xlsx', title: t('oversikt.reportHint'),
    }, t('oversikt.reportXlsx', { month: fmtMonth(reportMonth, true) })) : null,
    h('button', { type: 'button', class: 'btn', id: 'download-png', onclick: () => exportPng() }, t('oversikt.png')),
    h('button', { type: 'button', class: 'btn', onclick: () => window.print() }, t('oversikt.print')));

  // Small multiples: one chart per technology type.
  const labels = table.months.map((m) => monthName(m));
  const chartItems = [];
  const grid = h('div', { class: 'chart-grid' });
  for (const r of table.rows) {
    const title = kindLabel(r.kind, r.label);
    const desc = `${title}: ${r.counts.map((c, i) => `${monthName(table.months[i])} ${c === null ? '–' : fmtInt(c)}`).join(', ')}`;
    const { box, canvas } = chartBox(desc, { height: 200 });
    grid.append(h('figure', { class: 'chart-card' }, h('figcaption', null, title), box));
    chartItems.push({ r, title, canvas });
  }
  const chartsSection = h('section', { class: 'card charts', 'aria-labelledby': 'charts-h' },
    h('h2', { id: 'charts-h' }, t('oversikt.charts')),
    h('p', { class: 'hint' }, t('oversikt.chartsIntro')),
    grid);

  const recipients = table.recipients
    ? h('details', { class: 'card recipients' },
      h('summary', null, t('oversikt.recipients')),
      scroller(h('table', { class: 'data' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('oversikt.kindCol')),
          table.months.map((m) => h('th', { scope: 'col', class: 'num' }, monthName(m))))),
        h('tbody', null, table.recipients.rows.map((r) => h('tr', null,
          h('th', { scope: 'row' }, kindLabel(r.kind, table.rows.find((x) => x.kind === r.kind)?.label)),
          r.counts.map((c) => h('td', { class: 'num' }, c === null ? '–' : fmtInt(c)))))),
        h('tfoot', null, h('tr', null, h('th', { scope: 'row' }, t('oversikt.total')),
          table.recipients.total.map((c) => h('td', { class: 'num' }, c === null ? '–' : fmtInt(c)))))), t('oversikt.recipients')))
    : null;

  replace(body,
    exportsBar,
    h('section', { class: 'card table-card', 'aria-label': caption },
      h('p', { class: 'scroll-hint hint no-print', 'aria-hidden': 'true' }, t('oversikt.scrollHint')),
      scroller(tableEl, caption),
      allZero ? empty(t('oversikt.empty', { year: table.year })) : null,
      legend.childElementCount ? legend : null,
      correctionList),
    changePanel,
    months ? publishCard(ctx, table, publishedBy, done, (m) => { destroyCharts(); load(body, ctx, query, { published: m }); }) : null,
    chartsSection,
    recipients);

  const made = chartItems.map(({ r, title, canvas }, i) => ({
    title,
    chart: makeChart(canvas, {
      type: 'line',
      labels,
      legend: false,
      integer: true,
      datasets: [{ label: title, data: r.counts, color: ['#0B5CAD', '#C75B00', '#00806A', '#B8316F', '#6A4C93', '#8A6D00'][i % 6] }],
    }),
  }));

  function exportPng() {
    downloadPng(made, { title: caption, filename: `vft-${table.year}${query.municipality ? `-${query.municipality}` : ''}.png` });
  }
}

/**
 * The coordinator's publishing of the year's months: each ended month, published (when, by
 * whom) or with a "Publiser" button; months not ended cannot be published. Publishing asks
 * first, then reads the table again so it shows the month as published.
 */
function publishCard(ctx, table, publishedBy, done, reload) {
  const current = osloMonth();
  const out = h('div', { id: 'publish-result' });
  if (done?.published) out.append(actionDone(t('publish.done', { month: fmtMonth(done.published, true) }), { id: 'publish-done' }));
  const rows = table.months.map((m) => {
    const p = publishedBy.get(m);
    const ended = m < current;
    let status;
    let action = null;
    if (p) {
      status = h('span', { class: 'published-by' },
        h('span', { class: 'badge badge-published' }, t('publish.published')), ' ',
        t('publish.by', { when: fmtDateTime(p.published_at), who: actorName(p.published_by) }));
    } else if (!ended) {
      status = h('span', { class: 'muted' }, t('publish.notEnded'));
    } else {
      status = h('span', null, t('publish.notPublished'));
      const button = h('button', { type: 'button', class: 'btn btn-small publish-btn', dataset: { month: m } }, t('publish.button'));
      button.addEventListener('click', async () => {
        const monthText = fmtMonth(m, true);
        const ok = await confirmAction({
          title: t('publish.confirmTitle', { month: monthText }),
          body: [t('publish.confirmBody', { month: monthText }), t('publish.confirmWho')],
          confirm: t('publish.button'),
        });
        if (!ok) {
          button.focus();
          return;
        }
        button.disabled = true;
        button.textContent = t('publish.busy');
        replace(out);
        try {
          await api(`/api/v1/months/${encodeURIComponent(m)}/publish`, { method: 'POST', body: {} });
        } catch (err) {
          button.disabled = false;
          button.textContent = t('publish.button');
          if (err instanceof ApiError && err.status === 401) return;
          replace(out, actionError(err, { id: 'publish-error' }));
          return;
        }
        reload(m);
      });
      action = button;
    }
    return h('tr', { dataset: { month: m, published: String(Boolean(p)) } },
      h('th', { scope: 'row' }, fmtMonth(m, true)),
      h('td', null, status),
      h('td', null, action));
  });
  return h('section', { class: 'card no-print', id: 'publish-card', 'aria-labelledby': 'publish-h' },
    h('h2', { id: 'publish-h' }, t('publish.title', { year: table.year })),
    h('p', { class: 'hint' }, t('publish.intro')),
    out,
    scroller(h('table', { class: 'data compact', id: 'publish-months' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, t('publish.col.month')),
        h('th', { scope: 'col' }, t('publish.col.status')),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('publish.col.action'))))),
      h('tbody', null, rows)), t('publish.title', { year: table.year })));
}

/** After a publish, the card's heading takes the focus (its message is read out). */
function focusPublished(body) {
  const heading = body.querySelector('#publish-h');
  if (!heading) return;
  heading.setAttribute('tabindex', '-1');
  heading.focus({ preventScroll: false });
}

async function showChange(panel, ctx, query, table, month, kind, close) {
  panel.hidden = false;
  replace(panel, h('h2', { tabindex: '-1' }, t('change.loading')), loading(t('change.loading')));
  panel.scrollIntoView({ block: 'nearest' });
  let data;
  try {
    data = await api(url('/api/v1/rollups/devices/changes', {
      month, municipality: query.municipality, cooperation: query.cooperation, vendor: query.vendor,
    }), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(panel, closeButton(close), errorBox(err));
    return;
  }
  const rows = kind ? data.rows.filter((r) => r.kind === kind) : data.rows;
  const heading = h('h2', { tabindex: '-1', id: 'change-h' },
    t('change.title', { from: fmtMonth(data.previous_month, true), to: fmtMonth(data.month, true) }));
  const monthIdx = table.months.indexOf(month);
  const isPublished = (table.published ?? [])[monthIdx];

  const blocks = rows.map((r) => {
    const name = kindLabel(r.kind, r.label);
    const withReasons = r.lines.some((l) => l.reason);
    const shown = table.rows.find((x) => x.kind === r.kind)?.counts[monthIdx];
    const note = isPublished && shown !== undefined && shown !== r.after
      ? h('p', { class: 'note' }, t('change.publishedNote', { published: fmtInt(shown), current: fmtInt(r.after) }))
      : null;
    return h('div', { class: 'change-kind', 'data-kind': r.kind },
      h('h3', null, `${name}: `, h('span', { class: 'change-summary' },
        t('change.summary', { before: fmtInt(r.before), after: fmtInt(r.after), delta: fmtDelta(r.delta) }))),
      note,
      r.lines.length === 0 ? h('p', { class: 'hint' }, t('change.none')) : h('table', { class: 'data change-lines' },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, t('change.cause')),
          withReasons ? h('th', { scope: 'col' }, t('change.reason')) : null,
          h('th', { scope: 'col', class: 'num' }, t('change.delta')),
          h('th', { scope: 'col' }, t('change.devices')))),
        h('tbody', null, changeLines(ctx, query, r.lines, withReasons))));
  });
  replace(panel, closeButton(close), heading, blocks);
  heading.focus({ preventScroll: true });
  panel.scrollIntoView({ block: 'nearest' });
}

/**
 * One table row per line of the API, in its order. A removal is split by its reason (the
 * lines are next to each other): their cause is said once, over all of them, with their sum.
 */
function changeLines(ctx, query, lines, withReasons) {
  return lines.map((l, i) => {
    const prev = lines[i - 1];
    const sameCauseAbove = withReasons && l.reason && prev?.reason && prev.cause === l.cause;
    let causeCell = null;
    if (!sameCauseAbove) {
      let span = 1;
      while (withReasons && l.reason && lines[i + span]?.reason && lines[i + span].cause === l.cause) span++;
      const sum = lines.slice(i, i + span).reduce((s, x) => s + x.delta, 0);
      causeCell = h('th', { scope: 'row', rowspan: span > 1 ? String(span) : null, class: 'change-cause' },
        label('cause', l.cause),
        span > 1 ? h('span', { class: 'sub' }, t('change.decommissionedTotal', { delta: fmtDelta(sum) })) : null);
    }
    return h('tr', { 'data-cause': l.cause, 'data-reason': l.reason ?? null },
      causeCell,
      withReasons ? h('td', { class: 'change-reason' }, l.reason ? label('decommissionReason', l.reason) : '') : null,
      h('td', { class: 'num change-delta' }, fmtDelta(l.delta)),
      h('td', null, deviceList(ctx, query, l)));
  });
}

function closeButton(close) {
  return h('button', { type: 'button', class: 'btn btn-quiet close-btn', onclick: close, 'aria-label': t('change.close') }, '×');
}

function deviceList(ctx, query, line) {
  const shown = line.devices ?? [];
  const rest = line.device_count - shown.length;
  return h('details', null,
    h('summary', null, t('change.showDevices', { n: fmtInt(line.device_count) })),
    h('ul', { class: 'device-list' },
      shown.map((d) => h('li', null, h('a', {
        href: ctx.hashFor('enheter', { municipality: query.municipality, device: `${d.vendor}/${d.device}` }),
      }, `${d.vendor}/${d.device}`))),
      rest > 0 ? h('li', null, t('change.moreDevices', { n: fmtInt(rest) })) : null));
}
