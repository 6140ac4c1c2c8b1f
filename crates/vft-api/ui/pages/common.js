// Filters shared by several pages.

import { t } from '../i18n.js';
import { select } from '../ui.js';

/**
 * The municipalities a municipality user may see (in the session's order; the one it acts for
 * is `session.municipality`). Empty for a coordinator.
 */
export function ownMunicipalities(session) {
  if (session.role === 'coordinator') return [];
  const list = session.municipalities?.length ? session.municipalities : [session.municipality];
  return list.filter(Boolean);
}

/**
 * The area picker: "whole region" and each municipality for a coordinator; a municipality user
 * is offered its own municipalities only.
 */
export function areaSelect(ctx, { id = 'f-municipality', value, onchange, allowRegion = true }) {
  const own = ownMunicipalities(ctx.session);
  const options = [];
  let selected = value ?? '';
  if (ctx.session.role !== 'coordinator') {
    for (const code of own) {
      const name = ctx.municipalityName(code) ?? (code === ctx.session.municipality ? ctx.session.municipality_name : null);
      options.push({ value: code, label: `${name ?? ''} (${code})`.trim() });
    }
    if (!own.includes(selected)) selected = ctx.session.municipality ?? '';
  } else {
    if (allowRegion) options.push({ value: '', label: t('filter.region') });
    for (const m of ctx.municipalities) options.push({ value: m.code, label: `${m.name} (${m.code})` });
  }
  return select({ id, labelText: t('filter.area'), value: selected, options, onchange });
}

/**
 * The municipality a page asks the server for: the URL's; for a municipality user without one
 * in the URL, the one it acts for. Never silently replaced: a municipality the user may not
 * see goes to the server, whose 403 the page shows.
 */
export function askedMunicipality(ctx) {
  const asked = ctx.params.get('municipality');
  if (asked) return asked;
  return ctx.session.role === 'coordinator' ? '' : (ctx.session.municipality ?? '');
}

/** Whether the URL asks for a municipality this user may not see (the server decides too). */
export function isForeign(ctx, asked) {
  return ctx.session.role !== 'coordinator' && Boolean(asked) && !ownMunicipalities(ctx.session).includes(asked);
}

/** "Ål (3328)", "hele regionen" or the bare code. */
export function areaName(ctx, code) {
  if (!code) return t('filter.region').toLowerCase();
  const name = ctx.municipalityName(code);
  return name ? `${name} (${code})` : code;
}

export function kindOptions(allLabel) {
  const kinds = ['medication_support', 'digital_supervision', 'tracking', 'safety_alarm', 'smoke_detector', 'door_lock_alarm'];
  return [{ value: '', label: allLabel }, ...kinds.map((k) => ({ value: k, label: t(`kind.${k}`) }))];
}

/** Copies URLSearchParams into a plain object, with overrides (null/'' removes). */
export function withParams(params, overrides) {
  const o = Object.fromEntries(params.entries());
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null || v === undefined || v === '') delete o[k];
    else o[k] = String(v);
  }
  return o;
}
