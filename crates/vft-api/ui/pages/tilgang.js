// Tilgang (access): the coordinator's and operator's page for people's accounts and machine
// tokens, through the API (`/api/v1/users`, `/api/v1/tokens`), every change recorded in the
// audit log by the server. Accounts: list, create, and in a dialog change name, role and
// municipalities, set a new password, disable, enable, unlock. Tokens: list, create (the secret
// is shown once, with a copy button), revoke. Destructive changes are confirmed first; the
// server's refusals (e.g. changing one's own role or state) are shown in its own words.

import { h, replace } from '../dom.js';
import { t, fmtDateTime, fmtInt } from '../i18n.js';
import { api, ApiError } from '../api.js';
import { loading, errorBox, scroller, empty } from '../ui.js';
import { confirmAction, actionError, actionDone, copyButton } from '../actions.js';

const ROLES = ['coordinator', 'municipality', 'operator', 'auditor'];
const DEFAULT_TOKEN_DAYS = 90;
const MAX_TOKEN_DAYS = 730;

let userDialog = null;

export function teardown() {
  if (userDialog?.dialog.open) userDialog.dialog.close();
  userDialog?.dialog.remove();
  userDialog = null;
}

export function render(root, ctx) {
  const users = h('section', { class: 'card', id: 'users-card', 'aria-labelledby': 'users-h' });
  const tokens = h('section', { class: 'card', id: 'tokens-card', 'aria-labelledby': 'tokens-h' });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, t('tilgang.title')), h('p', { class: 'lead' }, t('tilgang.intro'))),
    users,
    tokens);
  const me = ctx.session.actor?.startsWith('user:') ? ctx.session.actor.slice(5) : null;
  const page = { ctx, me, usersEl: users, tokensEl: tokens };
  page.reloadUsers = (done) => loadUsers(page, done);
  page.reloadTokens = (done) => loadTokens(page, done);
  page.reloadUsers();
  page.reloadTokens();
}

// ---- shared form pieces -----------------------------------------------------------------------

function roleName(role) {
  return t(`roleName.${role}`);
}

function roleSelect(id, value) {
  return h('select', { id, name: id },
    ROLES.map((r) => h('option', { value: r, selected: r === value }, roleName(r))));
}

/**
 * The municipalities of a municipality user: checkboxes of the region's municipalities when
 * the page knows them (a coordinator's), else a field of codes (an operator reads no fleet
 * data, not even the list of municipalities; the server checks the codes).
 */
function municipalityPicker(ctx, id, selected = []) {
  const known = ctx.municipalities ?? [];
  if (known.length) {
    const boxes = known.map((m) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: id, value: m.code, checked: selected.includes(m.code) }),
      ` ${m.name} (${m.code})`));
    const el = h('fieldset', { class: 'field municipality-picker', id },
      h('legend', null, t('tilgang.municipalities')), h('div', { class: 'checks' }, boxes));
    return { el, value: () => boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value) };
  }
  const input = h('input', {
    id: `${id}-codes`, name: id, type: 'text', value: selected.join(', '), placeholder: '3328, 3330',
    autocomplete: 'off', inputmode: 'numeric', 'aria-describedby': `${id}-help`,
  });
  const el = h('div', { class: 'field municipality-picker', id },
    h('label', { for: `${id}-codes` }, t('tilgang.municipalities')), input,
    h('span', { class: 'hint', id: `${id}-help` }, t('tilgang.municipalityCodes')));
  return { el, value: () => input.value.split(/[\s,;]+/).map((c) => c.trim()).filter(Boolean) };
}

/** Shows the municipality picker only for the municipality role. */
function followRole(select, picker) {
  const show = () => { picker.el.hidden = select.value !== 'municipality'; };
  select.addEventListener('change', show);
  show();
}

function municipalitiesText(ctx, codes) {
  if (!codes?.length) return '';
  return codes.map((c) => {
    const name = ctx.municipalityName?.(c);
    return name ? `${name} (${c})` : c;
  }).join(', ');
}

function roleCell(ctx, role, municipalities) {
  return [roleName(role), municipalities?.length ? h('span', { class: 'sub' }, municipalitiesText(ctx, municipalities)) : null];
}

// ---- accounts ---------------------------------------------------------------------------------

function signInText(u) {
  const ways = [];
  if (u.password) ways.push(t('tilgang.signIn.password'));
  ways.push(u.oidc_bound ? t('tilgang.signIn.oidcBound') : (u.password ? null : t('tilgang.signIn.oidc')));
  return ways.filter(Boolean).join(' · ');
}

function isLocked(u) {
  return Boolean(u.locked_until) && Date.parse(u.locked_until) > Date.now();
}

function stateCell(u) {
  const parts = [];
  if (u.disabled) parts.push(h('span', { class: 'badge state-disabled' }, t('tilgang.state.disabled')));
  if (isLocked(u)) parts.push(h('span', { class: 'badge state-locked' }, t('tilgang.state.locked', { until: fmtDateTime(u.locked_until) })));
  if (!parts.length) parts.push(h('span', { class: 'badge state-active' }, t('tilgang.state.active')));
  return parts;
}

async function loadUsers(page, done) {
  const { ctx, usersEl: el } = page;
  const heading = h('h2', { id: 'users-h' }, t('tilgang.users'));
  replace(el, heading, loading());
  let data;
  try {
    data = await api('/api/v1/users', { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadUsers(page)));
    return;
  }
  const users = [...(data.users ?? [])].sort((a, b) => a.username.localeCompare(b.username));
  page.users = users;
  const table = users.length
    ? scroller(h('table', { class: 'data', id: 'users-table' },
      h('thead', null, h('tr', null,
        ['user', 'role', 'signIn', 'state', 'lastSignIn', 'action'].map((c) => h('th', { scope: 'col' }, c === 'action' ? h('span', { class: 'sr-only' }, t('tilgang.col.action')) : t(`tilgang.col.${c}`))))),
      h('tbody', null, users.map((u) => h('tr', {
        class: u.disabled ? 'inactive' : null,
        dataset: { username: u.username, role: u.role, disabled: String(u.disabled), locked: String(isLocked(u)) },
      },
      h('th', { scope: 'row' }, u.username, u.username === page.me ? h('span', { class: 'muted' }, ` (${t('tilgang.you')})`) : null,
        u.name ? h('span', { class: 'sub' }, u.name) : null),
      h('td', null, roleCell(ctx, u.role, u.municipalities)),
      h('td', null, signInText(u)),
      h('td', { class: 'state' }, stateCell(u)),
      h('td', null, u.last_sign_in_at ? fmtDateTime(u.last_sign_in_at) : h('span', { class: 'muted' }, t('tilgang.never'))),
      h('td', null, h('button', {
        type: 'button', class: 'btn btn-small edit-user', dataset: { username: u.username },
        'aria-label': t('tilgang.editLabel', { user: u.username }),
        onclick: () => openUser(page, u.username),
      }, t('tilgang.edit'))))))), t('tilgang.users'))
    : empty(t('tilgang.usersEmpty'));
  replace(el, heading, done ? actionDone(done, { id: 'users-done' }) : null, table, newUserForm(page));
}

function newUserForm(page) {
  const { ctx } = page;
  const username = h('input', { id: 'nu-username', name: 'nu-username', type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true });
  const name = h('input', { id: 'nu-name', name: 'nu-name', type: 'text', autocomplete: 'off' });
  const role = roleSelect('nu-role', 'municipality');
  const picker = municipalityPicker(ctx, 'nu-municipalities');
  followRole(role, picker);
  const withPassword = h('input', { type: 'radio', name: 'nu-signin', id: 'nu-signin-password', value: 'password', checked: true });
  const oidcOnly = h('input', { type: 'radio', name: 'nu-signin', id: 'nu-signin-oidc', value: 'oidc' });
  const password = h('input', { id: 'nu-password', name: 'nu-password', type: 'password', autocomplete: 'new-password', minlength: '12', 'aria-describedby': 'nu-password-help' });
  const passwordField = h('div', { class: 'field' }, h('label', { for: 'nu-password' }, t('tilgang.password')), password,
    h('span', { class: 'hint', id: 'nu-password-help' }, t('tilgang.passwordHelp')));
  const followSignIn = () => { passwordField.hidden = !withPassword.checked; };
  withPassword.addEventListener('change', followSignIn);
  oidcOnly.addEventListener('change', followSignIn);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'nu-submit' }, t('tilgang.create'));
  const out = h('div', { id: 'nu-result' });
  const form = h('form', { class: 'access-form', id: 'new-user-form', novalidate: true },
    h('h3', null, t('tilgang.newUser')),
    h('div', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'nu-username' }, t('tilgang.username')), username),
      h('div', { class: 'field' }, h('label', { for: 'nu-name' }, t('tilgang.name')), name),
      h('div', { class: 'field' }, h('label', { for: 'nu-role' }, t('tilgang.role')), role),
      picker.el),
    h('fieldset', { class: 'field signin-way' }, h('legend', null, t('tilgang.signInWay')),
      h('label', { class: 'check', for: 'nu-signin-password' }, withPassword, ` ${t('tilgang.signIn.withPassword')}`),
      h('label', { class: 'check', for: 'nu-signin-oidc' }, oidcOnly, ` ${t('tilgang.signIn.oidcOnly')}`)),
    h('div', { class: 'filters' }, passwordField, h('div', { class: 'field field-actions' }, submit)),
    out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const body = {
      username: username.value.trim(),
      role: role.value,
      municipalities: role.value === 'municipality' ? picker.value() : [],
    };
    if (name.value.trim()) body.name = name.value.trim();
    if (withPassword.checked) body.password = password.value;
    if (!body.username) {
      replace(out, h('p', { class: 'form-message', role: 'alert' }, t('tilgang.usernameMissing')));
      username.focus();
      return;
    }
    submit.disabled = true;
    replace(out);
    try {
      const created = await api('/api/v1/users', { method: 'POST', body });
      password.value = '';
      await page.reloadUsers(t('tilgang.userCreated', { user: created.username }));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'nu-error' }));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// ---- one account, in a dialog --------------------------------------------------------------------

function ensureUserDialog(page) {
  if (userDialog?.dialog.isConnected) return userDialog;
  const title = h('h2', { id: 'user-dialog-title' });
  const close = h('button', { type: 'button', class: 'btn btn-quiet close-btn', 'aria-label': t('device.close') }, '×');
  const content = h('div', { class: 'dialog-body' });
  const dialog = h('dialog', { class: 'device-dialog user-dialog', id: 'user-dialog', 'aria-labelledby': 'user-dialog-title' },
    h('div', { class: 'dialog-head' }, title, close), content);
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => userDialog?.returnFocus?.focus?.());
  document.body.append(dialog);
  userDialog = { dialog, title, content, page };
  return userDialog;
}

function openUser(page, username) {
  const u = page.users?.find((x) => x.username === username);
  if (!u) return;
  const st = ensureUserDialog(page);
  st.username = username;
  st.returnFocus = document.activeElement;
  fillUserDialog(page, u);
  if (!st.dialog.open) st.dialog.showModal();
}

/** PATCHes the account; shows the outcome in the dialog and reads the list again. */
async function patchUser(page, u, patch, { button, doneText }) {
  const st = userDialog;
  const out = st.content.querySelector('#user-result');
  if (button) button.disabled = true;
  replace(out);
  try {
    const view = await api(`/api/v1/users/${encodeURIComponent(u.username)}`, { method: 'PATCH', body: patch });
    fillUserDialog(page, view, doneText);
    page.reloadUsers();
    return view;
  } catch (err) {
    if (button?.isConnected) button.disabled = false;
    if (err instanceof ApiError && err.status === 401) return null;
    replace(out, actionError(err, { id: 'user-error' }));
    return null;
  }
}

function fillUserDialog(page, u, doneText) {
  const { ctx } = page;
  const st = userDialog;
  st.title.textContent = t('tilgang.userTitle', { user: u.username });
  const isMe = u.username === page.me;
  const out = h('div', { id: 'user-result', 'aria-live': 'polite' }, doneText ? actionDone(doneText, { id: 'user-done' }) : null);

  // Name.
  const name = h('input', { id: 'uu-name', name: 'uu-name', type: 'text', value: u.name ?? '', autocomplete: 'off' });
  const saveName = h('button', { type: 'submit', class: 'btn', id: 'uu-name-save' }, t('tilgang.saveName'));
  const nameForm = h('form', { class: 'filters', id: 'uu-name-form' },
    h('div', { class: 'field' }, h('label', { for: 'uu-name' }, t('tilgang.name')), name),
    h('div', { class: 'field field-actions' }, saveName));
  nameForm.addEventListener('submit', (e) => {
    e.preventDefault();
    patchUser(page, u, { name: name.value.trim() }, { button: saveName, doneText: t('tilgang.nameSaved') });
  });

  // Role and municipalities: the account's sessions end, so it asks first.
  const role = roleSelect('uu-role', u.role);
  const picker = municipalityPicker(ctx, 'uu-municipalities', u.municipalities ?? []);
  followRole(role, picker);
  const saveRole = h('button', { type: 'submit', class: 'btn', id: 'uu-role-save' }, t('tilgang.saveRole'));
  const roleForm = h('form', { class: 'filters', id: 'uu-role-form' },
    h('div', { class: 'field' }, h('label', { for: 'uu-role' }, t('tilgang.role')), role), picker.el,
    h('div', { class: 'field field-actions' }, saveRole));
  roleForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const next = role.value;
    const municipalities = next === 'municipality' ? picker.value() : [];
    const ok = await confirmAction({
      title: t('tilgang.confirmRoleTitle', { user: u.username }),
      body: [t('tilgang.confirmRoleBody', { role: roleName(next), municipalities: municipalitiesText(ctx, municipalities) || '–' }), t('tilgang.endsSessions')],
      confirm: t('tilgang.saveRole'),
    });
    if (!ok) return;
    patchUser(page, u, { role: next, municipalities }, { button: saveRole, doneText: t('tilgang.roleSaved', { role: roleName(next) }) });
  });

  // A new password.
  const password = h('input', { id: 'uu-password', name: 'uu-password', type: 'password', autocomplete: 'new-password', minlength: '12', 'aria-describedby': 'uu-password-help' });
  const savePassword = h('button', { type: 'submit', class: 'btn', id: 'uu-password-save' }, t('tilgang.setPassword'));
  const passwordForm = h('form', { class: 'filters', id: 'uu-password-form' },
    h('div', { class: 'field' }, h('label', { for: 'uu-password' }, t('tilgang.newPassword')), password,
      h('span', { class: 'hint', id: 'uu-password-help' }, t('tilgang.newPasswordHelp'))),
    h('div', { class: 'field field-actions' }, savePassword));
  passwordForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!password.value) {
      replace(st.content.querySelector('#user-result'), h('p', { class: 'form-message', role: 'alert' }, t('tilgang.passwordMissing')));
      password.focus();
      return;
    }
    patchUser(page, u, { password: password.value }, { button: savePassword, doneText: t('tilgang.passwordSaved') });
  });

  // The account's state: disable (asks first), enable, unlock.
  const stateButtons = [];
  if (u.disabled) {
    const enable = h('button', { type: 'button', class: 'btn', id: 'uu-enable' }, t('tilgang.enable'));
    enable.addEventListener('click', () => patchUser(page, u, { disabled: false }, { button: enable, doneText: t('tilgang.enabled') }));
    stateButtons.push(enable);
  } else {
    const disable = h('button', { type: 'button', class: 'btn btn-danger', id: 'uu-disable' }, t('tilgang.disable'));
    disable.addEventListener('click', async () => {
      const ok = await confirmAction({
        title: t('tilgang.confirmDisableTitle', { user: u.username }),
        body: [t('tilgang.confirmDisableBody'), t('tilgang.endsSessions')],
        confirm: t('tilgang.disable'),
        danger: true,
      });
      if (ok) patchUser(page, u, { disabled: true }, { button: disable, doneText: t('tilgang.disabled') });
    });
    stateButtons.push(disable);
  }
  if (isLocked(u)) {
    const unlock = h('button', { type: 'button', class: 'btn', id: 'uu-unlock' }, t('tilgang.unlock'));
    unlock.addEventListener('click', () => patchUser(page, u, { unlock: true }, { button: unlock, doneText: t('tilgang.unlocked') }));
    stateButtons.push(unlock);
  }

  replace(st.content,
    h('dl', { class: 'facts', id: 'user-facts', dataset: { username: u.username, role: u.role, disabled: String(u.disabled) } },
      h('dt', null, t('tilgang.role')), h('dd', { id: 'uu-role-now' }, roleCell(ctx, u.role, u.municipalities)),
      h('dt', null, t('tilgang.col.signIn')), h('dd', null, signInText(u)),
      h('dt', null, t('tilgang.col.state')), h('dd', { id: 'uu-state-now' }, stateCell(u)),
      h('dt', null, t('tilgang.col.lastSignIn')), h('dd', null, u.last_sign_in_at ? fmtDateTime(u.last_sign_in_at) : t('tilgang.never')),
      h('dt', null, t('tilgang.created')), h('dd', null, fmtDateTime(u.created_at))),
    isMe ? h('p', { class: 'note', id: 'uu-self' }, t('tilgang.selfNote')) : null,
    out,
    h('h3', null, t('tilgang.nameTitle')), nameForm,
    h('h3', null, t('tilgang.roleAndMunicipalities')), roleForm,
    h('h3', null, t('tilgang.passwordTitle')), passwordForm,
    h('h3', null, t('tilgang.stateTitle')), h('div', { class: 'actions' }, stateButtons));
}

// ---- machine tokens ----------------------------------------------------------------------------

async function loadTokens(page, done) {
  const { ctx, tokensEl: el } = page;
  const heading = h('h2', { id: 'tokens-h' }, t('tilgang.tokens'));
  replace(el, heading, loading());
  let data;
  try {
    data = await api('/api/v1/tokens', { signal: ctx.signal });
  } catch (err) {
    if (err.name === 'AbortError' || (err instanceof ApiError && err.status === 401)) return;
    replace(el, heading, errorBox(err, () => loadTokens(page)));
    return;
  }
  const tokens = [...(data.tokens ?? [])].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  const out = h('div', { id: 'tokens-result' }, done ?? null);
  const table = tokens.length
    ? scroller(h('table', { class: 'data', id: 'tokens-table' },
      h('thead', null, h('tr', null,
        ['label', 'role', 'id', 'created', 'expires', 'action'].map((c) => h('th', { scope: 'col' }, c === 'action' ? h('span', { class: 'sr-only' }, t('tilgang.col.action')) : t(`tilgang.tcol.${c}`))))),
      h('tbody', null, tokens.map((tk) => {
        const revoke = h('button', {
          type: 'button', class: 'btn btn-small btn-danger revoke-token', dataset: { tokenId: tk.id },
          'aria-label': t('tilgang.revokeLabel', { label: tk.label ?? tk.id }),
        }, t('tilgang.revoke'));
        revoke.addEventListener('click', async () => {
          const ok = await confirmAction({
            title: t('tilgang.confirmRevokeTitle', { label: tk.label ?? tk.id }),
            body: [t('tilgang.confirmRevokeBody')],
            confirm: t('tilgang.revoke'),
            danger: true,
          });
          if (!ok) {
            revoke.focus();
            return;
          }
          revoke.disabled = true;
          try {
            await api(`/api/v1/tokens/${encodeURIComponent(tk.id)}`, { method: 'DELETE' });
            await page.reloadTokens(actionDone(t('tilgang.revoked', { label: tk.label ?? tk.id }), { id: 'tokens-done' }));
          } catch (err) {
            if (revoke.isConnected) revoke.disabled = false;
            if (err instanceof ApiError && err.status === 401) return;
            replace(out, actionError(err, { id: 'tokens-error' }));
          }
        });
        return h('tr', { class: tk.expired ? 'inactive' : null, dataset: { tokenId: tk.id, label: tk.label ?? '', role: tk.role } },
          h('th', { scope: 'row' }, tk.label ?? '–'),
          h('td', null, roleCell(ctx, tk.role, tk.municipalities)),
          h('td', null, h('code', null, tk.id)),
          h('td', null, fmtDateTime(tk.created_at)),
          h('td', null, tk.expires_at ? fmtDateTime(tk.expires_at) : t('tilgang.noExpiry'),
            tk.expired ? [' ', h('span', { class: 'badge state-disabled' }, t('tilgang.expired'))] : null),
          h('td', null, revoke));
      }))), t('tilgang.tokens'))
    : empty(t('tilgang.tokensEmpty'));
  replace(el, heading, h('p', { class: 'hint' }, t('tilgang.tokensIntro')), out, table, newTokenForm(page));
}

function newTokenForm(page) {
  const { ctx } = page;
  const label = h('input', { id: 'nt-label', name: 'nt-label', type: 'text', autocomplete: 'off', required: true, size: 30 });
  const role = roleSelect('nt-role', 'coordinator');
  const picker = municipalityPicker(ctx, 'nt-municipalities');
  followRole(role, picker);
  const days = h('input', { id: 'nt-days', name: 'nt-days', type: 'number', min: '1', max: String(MAX_TOKEN_DAYS), value: String(DEFAULT_TOKEN_DAYS), inputmode: 'numeric' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'nt-submit' }, t('tilgang.createToken'));
  const out = h('div', { id: 'nt-result' });
  const form = h('form', { class: 'access-form', id: 'new-token-form', novalidate: true },
    h('h3', null, t('tilgang.newToken')),
    h('div', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'nt-label' }, t('tilgang.label')), label),
      h('div', { class: 'field' }, h('label', { for: 'nt-role' }, t('tilgang.role')), role),
      picker.el,
      h('div', { class: 'field' }, h('label', { for: 'nt-days' }, t('tilgang.days', { max: fmtInt(MAX_TOKEN_DAYS) })), days),
      h('div', { class: 'field field-actions' }, submit)),
    out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    const body = {
      label: label.value.trim(),
      role: role.value,
      municipalities: role.value === 'municipality' ? picker.value() : [],
    };
    if (days.value !== '') body.expires_in_days = Number(days.value);
    submit.disabled = true;
    replace(out);
    try {
      const created = await api('/api/v1/tokens', { method: 'POST', body });
      await page.reloadTokens(secretBox(created));
      page.tokensEl.querySelector('#token-secret-value')?.focus();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      replace(out, actionError(err, { id: 'nt-error' }));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** The new token's secret, shown this once, with a copy button. */
function secretBox(created) {
  const value = h('input', {
    id: 'token-secret-value', type: 'text', readonly: true, value: created.secret, spellcheck: 'false',
    'aria-describedby': 'token-secret-warning', size: 70,
  });
  value.addEventListener('focus', () => value.select());
  return h('div', { class: 'secret-box', id: 'token-secret', role: 'status', dataset: { tokenId: created.token.id } },
    h('p', { class: 'state-title' }, t('tilgang.secretTitle', { label: created.token.label ?? created.token.id })),
    h('p', { id: 'token-secret-warning' }, t('tilgang.secretOnce')),
    h('div', { class: 'secret-row' }, h('label', { for: 'token-secret-value', class: 'sr-only' }, t('tilgang.secret')), value,
      copyButton(created.secret, { id: 'token-secret-copy' })));
}
