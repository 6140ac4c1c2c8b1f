// Varsler (notifications): what the rules found (`/api/v1/incidents`), newest first, with how
// each notice was delivered, and the rules themselves (`/api/v1/notification-rules`): list,
// delete, and a form for a new one. A coordinator manages the region's rules and every
// municipality's; a municipality user its own municipality's. Every change is audited by the
// server.

import { h, replace } from '../dom.js';
import { t, fmtDateTime } from '../i18n.js';
import { api, url, ApiError } from '../api.js';
import { loading, errorBox, scroller, empty } from '../ui.js';
import { confirmAction, actionError, actionDone } from '../actions.js';
import { areaSelect, areaName } from './common.js';

const PAGE = 50;

export function render(root, ctx) {
  const incidents = h('section', { class: 'card', id: 'incidents-card', 'aria-labelledby': 'incidents-h' });
  const rules = h('section', { class: 'card', id: 'rules-card', 'aria-labelledby': 'rules-h' });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('varsler.title')), h('p', { class: 'lead' }, t('varsler.intro'))),
    incidents,
    rules);
  const page = { ctx, incidentsEl: incidents, rulesEl: rules, openOnly: ctx.params.get('open') === '1' };
  page.reloadRules = (done) => loadRules(page, done);
  loadIncidents(page);
  page.reloadRules();
}

async function loadIncidents(page) {
  const { ctx, incidentsEl: el } = page;
  const heading = h('h2', { id: 'incidents-h' }, t('varsler.incidents'));
  const openOnly = h('input', { type: 'checkbox', id: 'incidents-open', checked: page.openOnly });
  openOnly.addEventListener('change', () => {
    page.openOnly = openOnly.checked;
    loadIncidents(page);
  });
  const filter = h('div', { class: 'filters no-print' },
    h('div', { class: 'field field-check' }, openOnly, h('label', { for: 'incidents-open' }, t('varsler.openOnly'))));
  replace(el, heading, filter, loading());
  const rows = h('tbody');
  const more = h('div', { class: 'actions' });
  let first;
  const query = (before) => url('/api/v1/incidents', { open: page.openOnly ? 'true' : undefined, limit: PAGE, before });
  try {
    first = await api(query(), { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, filter, errorBox(err, () => loadIncidents(page)));
    return;
  }
  if (!first.items.length) {
    replace(el, heading, filter, empty(t(page.openOnly ? 'varsler.noneOpen' : 'varsler.none')));
    return;
  }
  const add = (list) => {
    for (const i of list.items) rows.append(incidentRow(ctx, i));
    replace(more);
    if (list.next_before) {
      const button = h('button', { type: 'button', class: 'btn', id: 'incidents-more' }, t('varsler.older'));
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          add(await api(query(list.next_before), { signal: ctx.signal }));
        } catch (err) {
          if (err.name === 'AbortError') return;
          replace(more, actionError(err));
        }
      });
      more.append(button);
    }
  };
  const table = h('table', { class: 'data', id: 'incidents-table' },
    h('caption', { class: 'sr-only' }, t('varsler.incidentsCaption')),
    h('thead', null, h('tr', null,
      ['state', 'kind', 'what', 'area', 'opened', 'resolved', 'notices'].map((c) => h('th', { scope: 'col' }, t(`varsler.col.${c}`))))),
    rows);
  add(first);
  replace(el, heading, filter, scroller(table, t('varsler.incidents')), more);
}

function incidentRow(ctx, i) {
  const open = !i.resolved_at;
  return h('tr', { dataset: { incident: String(i.id), subject: i.subject, state: open ? 'open' : 'resolved' } },
    h('td', null, h('span', { class: `badge ${open ? 'state-disabled' : 'state-active'}` }, t(open ? 'varsler.open' : 'varsler.resolved'))),
    h('td', null, i.kind_label),
    h('th', { scope: 'row' }, i.summary),
    h('td', null, areaName(ctx, i.municipality)),
    h('td', null, fmtDateTime(i.opened_at)),
    h('td', null, i.resolved_at ? fmtDateTime(i.resolved_at) : '–'),
    h('td', { class: 'notices' }, i.notices.map((n) => noticeBadge(n))));
}

/** "E-post ✓ (ny)", "Webhook venter (2 forsøk): …". */
function noticeBadge(n) {
  const state = n.delivered_at ? 'delivered' : (n.attempts ? 'failed' : 'waiting');
  const text = `${t(`varsler.channel.${n.channel}`)} · ${t(`varsler.event.${n.event}`)}: ${t(`varsler.notice.${state}`, { n: n.attempts })}`;
  return h('div', {
    class: `notice notice-${state}`,
    dataset: { channel: n.channel, event: n.event, state },
    title: n.delivered_at ? fmtDateTime(n.delivered_at) : (n.last_error ?? ''),
  }, text, n.digest ? ` (${t('varsler.digest')})` : null);
}

async function loadRules(page, done) {
  const { ctx, rulesEl: el } = page;
  const heading = h('h2', { id: 'rules-h' }, t('varsler.rules'));
  replace(el, heading, loading());
  let rules;
  let kinds;
  try {
    [rules, kinds] = await Promise.all([
      api('/api/v1/notification-rules', { signal: ctx.signal }),
      api('/api/v1/notification-rules/kinds', { signal: ctx.signal }),
    ]);
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadRules(page)));
    return;
  }
  const out = h('div', { id: 'rules-result' }, done ?? null);
  const table = rules.items.length
    ? scroller(h('table', { class: 'data', id: 'rules-table' },
      h('thead', null, h('tr', null,
        ['kind', 'area', 'threshold', 'to', 'by', 'action'].map((c) => h('th', { scope: 'col' }, c === 'action' ? h('span', { class: 'sr-only' }, t('varsler.col.action')) : t(`varsler.rcol.${c}`))))),
      h('tbody', null, rules.items.map((r) => ruleRow(page, r, out)))), t('varsler.rules'))
    : empty(t('varsler.noRules'));
  replace(el, heading, out, table, newRuleForm(page, kinds));
}

function threshold(r) {
  if (r.threshold == null) return '–';
  if (r.kind === 'battery_low') return `${r.threshold} %`;
  return r.threshold % 3600 === 0 ? t('varsler.hours', { n: r.threshold / 3600 })
    : r.threshold % 60 === 0 ? t('varsler.minutes', { n: r.threshold / 60 })
      : t('varsler.seconds', { n: r.threshold });
}

function ruleRow(page, r, out) {
  const remove = h('button', {
    type: 'button', class: 'btn btn-small btn-danger delete-rule', dataset: { rule: String(r.id) },
    'aria-label': t('varsler.deleteLabel', { kind: r.kind_label }),
  }, t('varsler.delete'));
  remove.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: t('varsler.confirmDeleteTitle', { kind: r.kind_label }),
      body: [t('varsler.confirmDeleteBody')],
      confirm: t('varsler.delete'),
      danger: true,
    });
    if (!ok) {
      remove.focus();
      return;
    }
    remove.disabled = true;
    try {
      await api(`/api/v1/notification-rules/${r.id}`, { method: 'DELETE' });
      await page.reloadRules(actionDone(t('varsler.deleted'), { id: 'rules-done' }));
    } catch (err) {
      if (remove.isConnected) remove.disabled = false;
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'rules-error' }));
    }
  });
  const to = [...r.emails, r.webhook ? t('varsler.webhookTo', { url: r.webhook }) : null].filter(Boolean).join(', ');
  return h('tr', { dataset: { rule: String(r.id), kind: r.kind } },
    h('th', { scope: 'row' }, r.kind_label, r.digest ? ` (${t('varsler.digest')})` : null),
    h('td', null, areaName(page.ctx, r.municipality)),
    h('td', null, threshold(r)),
    h('td', null, to),
    h('td', null, r.created_by),
    h('td', null, remove));
}

function newRuleForm(page, kinds) {
  const { ctx } = page;
  const kind = h('select', { id: 'nr-kind', name: 'nr-kind' },
    kinds.map((k) => h('option', { value: k.kind, dataset: { unit: k.unit ?? '', min: k.min ?? '', max: k.max ?? '', regionOnly: k.region_only ? '1' : '' } }, k.label)));
  const area = areaSelect(ctx, { id: 'nr-municipality' });
  const amount = h('input', { id: 'nr-threshold', name: 'nr-threshold', type: 'number', inputmode: 'numeric', size: 8 });
  const unit = h('select', { id: 'nr-unit', name: 'nr-unit' });
  const thresholdField = h('div', { class: 'field' },
    h('label', { for: 'nr-threshold' }, t('varsler.threshold')), h('span', { class: 'inline' }, amount, unit));
  const follow = () => {
    const o = kind.selectedOptions[0];
    const u = o?.dataset.unit;
    thresholdField.hidden = !u;
    replace(unit, ...(u === 'percent' ? [h('option', { value: '1' }, '%')]
      : [['3600', 'varsler.unit.hours'], ['60', 'varsler.unit.minutes'], ['1', 'varsler.unit.seconds']].map(([v, k]) => h('option', { value: v }, t(k)))));
    if (u === 'percent') amount.value = amount.value || '20';
    else if (u) amount.value = amount.value || (o.value === 'alarm_unanswered' ? '2' : '24');
    if (u === 'seconds' && o.value === 'alarm_unanswered') unit.value = '60';
  };
  kind.addEventListener('change', () => { amount.value = ''; follow(); });
  follow();
  const emails = h('input', { id: 'nr-emails', name: 'nr-emails', type: 'text', size: 40, autocomplete: 'off', placeholder: 'kari@kommune.no, vakt@kommune.no' });
  const webhook = h('input', { id: 'nr-webhook', name: 'nr-webhook', type: 'url', size: 40, autocomplete: 'off', placeholder: 'https://' });
  const digest = h('input', { id: 'nr-digest', name: 'nr-digest', type: 'checkbox' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'nr-submit' }, t('varsler.create'));
  const out = h('div', { id: 'nr-result' });
  const form = h('form', { class: 'access-form', id: 'new-rule-form', novalidate: true },
    h('h3', null, t('varsler.newRule')),
    h('div', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'nr-kind' }, t('varsler.kind')), kind),
      area,
      thresholdField,
      h('div', { class: 'field' }, h('label', { for: 'nr-emails' }, t('varsler.emails')), emails),
      h('div', { class: 'field' }, h('label', { for: 'nr-webhook' }, t('varsler.webhook')), webhook),
      h('div', { class: 'field field-check' }, digest, h('label', { for: 'nr-digest' }, t('varsler.digestLabel'))),
      h('div', { class: 'field field-actions' }, submit)),
    h('p', { class: 'hint' }, t('varsler.formHint')),
    out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const o = kind.selectedOptions[0];
    const municipality = form.querySelector('#nr-municipality')?.value || null;
    const body = {
      kind: kind.value,
      municipality: o?.dataset.regionOnly ? null : municipality,
      threshold: o?.dataset.unit ? Math.round(Number(amount.value) * Number(unit.value)) : null,
      emails: emails.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean),
      webhook: webhook.value.trim() || null,
      digest: digest.checked,
    };
    submit.disabled = true;
    try {
      await api('/api/v1/notification-rules', { method: 'POST', body });
      await page.reloadRules(actionDone(t('varsler.created'), { id: 'rules-done' }));
    } catch (err) {
      submit.disabled = false;
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'nr-error' }));
    }
  });
  return form;
}
