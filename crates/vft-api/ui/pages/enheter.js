// Enheter: the device inventory with the API's filters and paging, devices that need attention
// first, and one device's history in a dialog. In the dialog a coordinator sets the device's
// own offline timeout, or returns it to its type's (`PUT …/timeout`).

import { h, replace, srOnly } from '../dom.js';
import { t, tn, fmtInt, fmtDateTime, fmtAgo, kindLabel, label, locale } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { actionError, actionDone } from '../actions.js';
import { loading, errorBox, accessDenied, select, input, scroller, empty } from '../ui.js';
import { areaSelect, askedMunicipality, isForeign, kindOptions, withParams, areaName } from './common.js';

const LOW_BATTERY = 20;
const PAGE_SIZE = 50;
const ATTENTION_LIMIT = 100;
/** Rows of each attention list shown before "show all". */
const ATTENTION_SHOWN = 8;
/** Filters of the list, as URL parameters (passed to the API as they are). */
const FILTERS = ['municipality', 'kind', 'vendor', 'connectivity', 'battery_below', 'in_service', 'q', 'installed_after', 'installed_before', 'sort', 'order'];

let dialogState = null;

/** Only the open device changed: open or close the dialog without reloading the list. */
export function update(params, prev) {
  const strip = (p) => { const c = new URLSearchParams(p); c.delete('device'); return c.toString(); };
  if (strip(params) !== strip(prev)) return false;
  const device = params.get('device');
  if (device) openDevice(device);
  else if (dialogState?.dialog.open) dialogState.dialog.close();
  return true;
}

export function teardown() {
  if (dialogState?.dialog.open) dialogState.dialog.close();
  dialogState?.dialog.remove();
  dialogState = null;
}

function apiFilters(ctx) {
  const f = {};
  for (const k of FILTERS) {
    const v = ctx.params.get(k);
    if (v) f[k] = v;
  }
  const m = askedMunicipality(ctx);
  if (m) f.municipality = m;
  // In service by default; "all" shows devices out of service too.
  const s = ctx.params.get('in_service');
  if (!s) f.in_service = 'true';
  else if (s === 'all') delete f.in_service;
  return f;
}

function vendorSelect(ctx, value) {
  const field = select({
    id: 'f-vendor', labelText: t('filter.vendor'), value,
    options: [{ value: '', label: t('filter.allVendors') }, ...(value ? [{ value, label: value }] : [])],
  });
  const sel = field.querySelector('select');
  api('/api/v1/vendors', { signal: ctx.signal }).then((list) => {
    const all = [...new Set([...list.vendors, ...(value ? [value] : [])])].sort();
    replace(sel, h('option', { value: '' }, t('filter.allVendors')),
      all.map((v) => h('option', { value: v, selected: v === value }, v)));
  }).catch(() => { /* the filter still works with what the address says */ });
  return field;
}

export function render(root, ctx) {
  const f = apiFilters(ctx);
  const go = (overrides) => ctx.navigate('enheter', withParams(ctx.params, { cursor: null, device: null, ...overrides }));

  const form = h('form', { class: 'filters no-print', 'aria-label': t('filter.legend') },
    areaSelect(ctx, { value: f.municipality ?? '' }),
    select({ id: 'f-kind', labelText: t('filter.kind'), value: f.kind ?? '', options: kindOptions(t('filter.allKinds')) }),
    // The vendors that have devices (filled in when /api/v1/vendors answers); one in the
    // address that has none stays selectable, so the page shows what was asked for.
    vendorSelect(ctx, f.vendor ?? ''),
    select({
      id: 'f-connectivity', labelText: t('filter.connectivity'), value: f.connectivity ?? '',
      options: [{ value: '', label: t('filter.allConnectivity') }, ...['online', 'offline', 'never_seen'].map((c) => ({ value: c, label: t(`conn.${c}`) }))],
    }),
    input({ id: 'f-battery', labelText: t('filter.batteryBelow'), value: f.battery_below ?? '', type: 'number', attrs: { min: 0, max: 101, inputmode: 'numeric' } }),
    select({
      id: 'f-in-service', labelText: t('filter.inService'), value: ctx.params.get('in_service') ?? '',
      options: [{ value: '', label: t('filter.inServiceTrue') }, { value: 'false', label: t('filter.inServiceFalse') }, { value: 'all', label: t('filter.inServiceAll') }],
    }),
    input({ id: 'f-q', labelText: t('filter.search'), value: f.q ?? '', type: 'search', attrs: { autocomplete: 'off' } }),
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, t('filter.apply')),
      h('a', { class: 'btn btn-quiet', href: ctx.hashFor('enheter', {}) }, t('filter.reset'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const val = (id) => form.querySelector(`#${id}`).value.trim();
    go({
      municipality: val('f-municipality'),
      kind: val('f-kind'),
      vendor: val('f-vendor').toLowerCase(),
      connectivity: val('f-connectivity'),
      battery_below: val('f-battery'),
      in_service: val('f-in-service'),
      q: val('f-q'),
    });
  });

  const attention = h('div');
  const list = h('div');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('enheter.title')), h('p', { class: 'lead' }, t('enheter.intro'))),
    form,
    attention,
    list);

  const foreign = isForeign(ctx, f.municipality);
  loadList(list, attention, ctx, f, foreign);
  const device = ctx.params.get('device');
  if (device) openDevice(device, { ctx });
  dialogCtx = ctx;
}

let dialogCtx = null;

async function loadList(list, attention, ctx, f, foreign) {
  replace(list, loading());
  const cursor = ctx.params.get('cursor');
  // The attention section (first page only, when the user has not filtered on connectivity or
  // battery themselves): offline and low-battery devices in service.
  const showAttention = !cursor && !f.connectivity && !f.battery_below && f.in_service === 'true';
  const base = { ...f };
  const requests = [api(url('/api/v1/devices', { ...base, limit: PAGE_SIZE, cursor }), { signal: ctx.signal })];
  if (showAttention) {
    requests.push(api(url('/api/v1/devices', { ...base, connectivity: 'offline', limit: ATTENTION_LIMIT }), { signal: ctx.signal }));
    requests.push(api(url('/api/v1/devices', { ...base, battery_below: LOW_BATTERY, limit: ATTENTION_LIMIT }), { signal: ctx.signal }));
  }
  let page; let offline; let low;
  try {
    [page, offline, low] = await Promise.all(requests);
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(attention);
    if (err instanceof ApiError && err.status === 403 && foreign) replace(list, accessDenied(ctx.session, f.municipality, ctx.municipalityName));
    else replace(list, errorBox(err, () => loadList(list, attention, ctx, f, foreign)));
    return;
  }

  if (showAttention) {
    const part = (result, title, none, filter, more) => {
      const n = result.items.length;
      const count = result.total != null ? fmtInt(result.total) : `${fmtInt(n)}${result.next_cursor ? '+' : ''}`;
      return [
        h('h3', null, t(title, { n: count })),
        n ? deviceTable(ctx, result.items.slice(0, ATTENTION_SHOWN), t(title, { n: count })) : empty(none),
        n > ATTENTION_SHOWN || result.next_cursor
          ? h('p', null, h('a', { href: ctx.hashFor('enheter', withParams(ctx.params, { cursor: null, device: null, ...filter })) },
            t(more, { n: count })))
          : null,
      ];
    };
    replace(attention, h('section', { class: 'card attention', 'aria-labelledby': 'att-h' },
      h('h2', { id: 'att-h' }, t('enheter.attention')),
      h('p', { class: 'hint' }, t('enheter.attentionIntro', { pct: LOW_BATTERY })),
      part(offline, 'enheter.offline', t('enheter.noneOffline'), { connectivity: 'offline' }, 'enheter.showAllOffline'),
      part(low, 'enheter.lowBattery', t('enheter.noneLowBattery', { pct: LOW_BATTERY }), { battery_below: LOW_BATTERY }, 'enheter.showAllLow')));
  } else {
    replace(attention);
  }

  const pager = h('nav', { class: 'pager no-print', 'aria-label': t('enheter.all') },
    cursor ? h('a', { class: 'btn', href: ctx.hashFor('enheter', withParams(ctx.params, { cursor: null, device: null })) }, t('enheter.first')) : null,
    page.next_cursor ? h('a', { class: 'btn', id: 'next-page', href: ctx.hashFor('enheter', withParams(ctx.params, { cursor: page.next_cursor, device: null })) }, t('enheter.next')) : null);
  replace(list, h('section', { class: 'card', 'aria-labelledby': 'all-h' },
    h('div', { class: 'card-head' },
      h('h2', { id: 'all-h' }, `${t('enheter.all')}: ${areaName(ctx, f.municipality)}`),
      h('div', { class: 'actions no-print' },
        h('a', { class: 'btn', id: 'enheter-csv', href: url('/api/v1/devices', { ...f, format: 'csv' }), download: true }, t('enheter.csv')),
        h('a', { class: 'btn', id: 'enheter-excel', href: url('/api/v1/devices', { ...f, format: 'excel' }), download: true, title: t('download.excelHint') }, t('download.excel')))),
    page.items.length
      ? [h('p', { class: 'hint', role: 'status', id: 'page-info', dataset: { total: page.total ?? '' } }, page.total != null && page.next_cursor
        ? tn('enheter.pageInfoOf', page.total, { shown: fmtInt(page.items.length), total: fmtInt(page.total) })
        : tn(page.next_cursor ? 'enheter.pageInfoMore' : 'enheter.pageInfo', page.items.length)),
        deviceTable(ctx, page.items, t('enheter.all'), 'device-table'), pager]
      : empty(t('enheter.empty'))));
}

function connBadge(c) {
  return h('span', { class: `badge conn conn-${c}` }, label('conn', c));
}

/** "45 % (for 3 dager siden)": the level and how old the reading is (the time on hover). */
function batteryText(b, at) {
  if (b === null || b === undefined) return '–';
  return h('span', { class: b < LOW_BATTERY ? 'battery low' : 'battery' }, `${b} %`,
    at ? h('span', { class: 'battery-age' }, ' (',
      h('time', { datetime: at, title: t('device.batteryAt', { at: fmtDateTime(at) }) }, fmtAgo(at)), ')') : null);
}

function deviceTable(ctx, items, caption, id) {
  return scroller(h('table', { class: 'data devices', id },
    h('thead', null, h('tr', null,
      ['device', 'kind', 'municipality', 'vendor', 'connectivity', 'battery', 'lastContact', 'installed', 'status']
        .map((c) => h('th', { scope: 'col', class: c === 'battery' ? 'num' : null }, t(`enheter.col.${c}`))))),
    h('tbody', null, items.map((d) => {
      const key = `${d.vendor}/${d.device}`;
      return h('tr', { 'data-device': key },
        h('th', { scope: 'row' }, h('button', {
          type: 'button', class: 'link-btn', 'data-device': key,
          'aria-label': t('enheter.openDevice', { device: key }),
          onclick: () => {
            dialogCtx = ctx;
            ctx.navigate('enheter', withParams(ctx.params, { device: key }));
            openDevice(key, { ctx });
          },
        }, d.device)),
        h('td', null, kindLabel(d.kind)),
        h('td', null, ctx.municipalityName(d.municipality) ?? d.municipality),
        h('td', null, d.vendor),
        h('td', null, connBadge(d.connectivity)),
        h('td', { class: 'num' }, batteryText(d.battery, d.battery_at)),
        h('td', null, fmtDateTime(d.last_contact)),
        h('td', null, fmtDateTime(d.first_installed)),
        h('td', null, d.in_service ? t('status.inService') : t('status.outOfService'),
          d.fault_open ? [' · ', h('span', { class: 'fault' }, t('status.fault'))] : null));
    }))), caption);
}

// ---- the device dialog -------------------------------------------------------------------------

function ensureDialog() {
  if (dialogState?.dialog.isConnected) return dialogState;
  const titleEl = h('h2', { id: 'device-dialog-title' });
  const closeBtn = h('button', { type: 'button', class: 'btn btn-quiet close-btn', 'aria-label': t('device.close') }, '×');
  const content = h('div', { class: 'dialog-body' });
  const dialog = h('dialog', { class: 'device-dialog', id: 'device-dialog', 'aria-labelledby': 'device-dialog-title' },
    h('div', { class: 'dialog-head' }, titleEl, closeBtn), content);
  closeBtn.addEventListener('click', () => dialog.close());
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); }); // backdrop
  dialog.addEventListener('close', () => {
    const st = dialogState;
    st?.abort?.abort();
    // Leave the device out of the address again (replacing the entry: no history.back(),
    // which Chromium does not always deliver from a dialog's close event).
    if (/[?&]device=/.test(location.hash)) {
      const [path, q] = location.hash.split('?');
      const p = new URLSearchParams(q ?? '');
      p.delete('device');
      const s = p.toString();
      location.replace(`${path}${s ? `?${s}` : ''}`);
    }
    st?.returnFocus?.focus?.();
  });
  document.body.append(dialog);
  dialogState = { dialog, titleEl, content, closeBtn };
  return dialogState;
}

function openDevice(key, { ctx } = {}) {
  const c = ctx ?? dialogCtx;
  const st = ensureDialog();
  st.closeBtn.setAttribute('aria-label', t('device.close'));
  if (st.dialog.open && st.key === key) return;
  st.abort?.abort();
  st.abort = new AbortController();
  st.key = key;
  if (!st.dialog.open) st.returnFocus = document.activeElement;
  st.titleEl.textContent = t('device.title', { device: key });
  replace(st.content, loading(t('device.loading')));
  if (!st.dialog.open) st.dialog.showModal();
  const [vendor, ...rest] = key.split('/');
  const device = rest.join('/');
  api(`/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`, { signal: st.abort.signal })
    .then((data) => replace(st.content, deviceDetails(c, data)))
    .catch((err) => {
      if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
      if (err instanceof ApiError && err.status === 404) replace(st.content, h('p', { class: 'state state-empty', role: 'alert' }, t('device.notFound', { device: key })));
      else replace(st.content, errorBox(err));
    });
}

/** Hours as the page shows them: "192", "1,5". */
function hoursText(secs) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 2 }).format(secs / 3600);
}

/**
 * The coordinator's form for the device's own offline timeout: hours, or back to its type's.
 * The API answers with the device as it now is (its timeout and connectivity), which the
 * dialog then shows.
 */
function timeoutForm(ctx, data, rerender) {
  const d = data.device;
  const own = d.timeout_override_secs;
  const hours = h('input', {
    id: 'timeout-hours', name: 'timeout-hours', type: 'number', min: '0.01', step: 'any', inputmode: 'decimal',
    value: own ? String(Math.round(own / 36) / 100) : '', 'aria-describedby': 'timeout-help',
  });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'timeout-save' }, t('timeout.save'));
  const reset = h('button', { type: 'button', class: 'btn', id: 'timeout-default', disabled: own === null || own === undefined }, t('timeout.useDefault'));
  const out = h('div', { id: 'timeout-result' });
  const send = async (secs, button) => {
    save.disabled = true;
    reset.disabled = true;
    replace(out);
    try {
      const view = await api(`/api/v1/devices/${encodeURIComponent(d.vendor)}/${encodeURIComponent(d.device)}/timeout`, {
        method: 'PUT', body: { timeout_secs: secs },
      });
      rerender({ ...data, device: view }, secs === null
        ? t('timeout.savedDefault', { n: hoursText(view.timeout_secs) })
        : t('timeout.saved', { n: hoursText(view.timeout_secs) }));
    } catch (err) {
      save.disabled = false;
      reset.disabled = own === null || own === undefined;
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'timeout-error' }));
      button.focus();
    }
  };
  const form = h('form', { class: 'timeout-form', id: 'timeout-form', novalidate: true },
    h('div', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'timeout-hours' }, t('timeout.hours')), hours),
      h('div', { class: 'field field-actions' }, save, reset)),
    h('p', { class: 'hint', id: 'timeout-help' }, t('timeout.help')),
    out);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = Number(String(hours.value).replace(',', '.'));
    if (!hours.value || !Number.isFinite(n) || n <= 0) {
      replace(out, h('p', { class: 'form-message', role: 'alert', id: 'timeout-invalid' }, t('timeout.invalid')));
      hours.focus();
      return;
    }
    send(Math.max(1, Math.round(n * 3600)), save);
  });
  reset.addEventListener('click', () => send(null, reset));
  return h('section', { class: 'timeout-box', 'aria-labelledby': 'timeout-h' },
    h('h3', { id: 'timeout-h' }, t('timeout.title')), form);
}

function deviceDetails(ctx, data, saved) {
  const d = data.device;
  const dl = (pairs) => h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  const chainLink = (dev) => h('button', {
    type: 'button', class: 'link-btn',
    onclick: () => openDevice(`${d.vendor}/${dev}`, { ctx }),
  }, dev);
  const history = data.history ?? [];
  const rows = [...history].reverse(); // newest first is easier to read in a long history
  // Out of service: why, from its latest installation or removal.
  const lastLifecycle = rows.find((e) => e.device === d.device && (e.type === 'installed' || e.type === 'decommissioned'));
  const why = !d.in_service && lastLifecycle?.type === 'decommissioned'
    ? ` (${t('device.outOfServiceWhy', { v: label('decommissionReason', lastLifecycle.reason ?? 'not_given') })})` : '';
  return [
    h('h3', null, t('device.summary')),
    dl([
      [t('enheter.col.kind'), kindLabel(d.kind)],
      [t('enheter.col.municipality'), ctx?.municipalityName(d.municipality) ? `${ctx.municipalityName(d.municipality)} (${d.municipality})` : d.municipality],
      [t('enheter.col.vendor'), d.vendor],
      [t('enheter.col.status'), [d.in_service ? t('status.inService') : t('status.outOfService'), why, d.fault_open ? ` · ${t('status.fault')}` : '']],
      [t('enheter.col.connectivity'), h('span', { id: 'device-connectivity', dataset: { connectivity: d.connectivity } }, connBadge(d.connectivity))],
      [t('enheter.col.lastContact'), fmtDateTime(d.last_contact)],
      [t('enheter.col.battery'), d.battery === null || d.battery === undefined ? '–' : [batteryText(d.battery, d.battery_at), d.battery_at ? `, ${t('device.batteryAt', { at: fmtDateTime(d.battery_at) })}` : '']],
      [t('enheter.col.installed'), fmtDateTime(d.first_installed)],
      [t('device.gateway'), d.gateway ?? '–'],
      d.recipient ? [t('device.recipient'), d.recipient] : null,
      [t('device.timeout'), h('span', { id: 'device-timeout', dataset: { secs: String(d.timeout_secs), own: d.timeout_override_secs === null || d.timeout_override_secs === undefined ? '' : String(d.timeout_override_secs) } },
        t('device.hours', { n: hoursText(d.timeout_secs) }), ' ',
        h('span', { class: 'muted' }, d.timeout_override_secs === null || d.timeout_override_secs === undefined ? t('timeout.isDefault') : t('timeout.isOwn')))],
      data.replaces_chain?.length ? [t('device.replaces'), data.replaces_chain.map((x, i) => [i ? ', ' : '', chainLink(x)])] : null,
      data.replaced_by_chain?.length ? [t('device.replacedBy'), data.replaced_by_chain.map((x, i) => [i ? ', ' : '', chainLink(x)])] : null,
    ]),
    saved ? actionDone(saved, { id: 'timeout-done' }) : null,
    ctx?.session?.role === 'coordinator'
      ? timeoutForm(ctx, data, (next, text) => {
        if (!dialogState) return;
        replace(dialogState.content, deviceDetails(ctx, next, text));
        dialogState.content.querySelector('#timeout-hours')?.focus();
      })
      : null,
    h('h3', null, t('device.history')),
    h('p', { class: 'hint' }, t('device.historyIntro')),
    history.length === 0 ? empty(t('device.historyEmpty')) : scroller(h('table', { class: 'data history', id: 'device-history' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, t('device.col.time')),
        h('th', { scope: 'col' }, t('device.col.event')),
        h('th', { scope: 'col' }, t('device.col.device')),
        h('th', { scope: 'col' }, t('device.col.details')))),
      h('tbody', null, rows.map((e) => h('tr', { 'data-type': e.type, 'data-id': e.id },
        h('td', null, fmtDateTime(e.ts)),
        h('td', null, label('event', e.type)),
        h('td', null, e.device === d.device ? e.device : h('em', null, e.device)),
        h('td', null, eventDetails(e)))))), t('device.history')),
  ];
}

function eventDetails(e) {
  const parts = [];
  if (e.kind && (e.type === 'installed' || e.type === 'decommissioned')) parts.push(kindLabel(e.kind));
  if (e.battery !== undefined && e.battery !== null) parts.push(t('detail.battery', { n: e.battery }));
  if (e.type === 'decommissioned') {
    parts.push(h('span', { class: 'event-reason', 'data-reason': e.reason ?? 'not_given' },
      t('detail.reason', { v: label('decommissionReason', e.reason ?? 'not_given') })));
  }
  if (e.cause) parts.push(t('detail.cause', { v: label('alarmCause', e.cause) }));
  if (e.outcome) parts.push(t('detail.outcome', { v: label('outcome', e.outcome) }));
  if (e.replaces) parts.push(t('detail.replaces', { v: e.replaces }));
  return parts.length ? parts.map((p, i) => [i ? ' · ' : '', p]) : srOnly('–');
}
