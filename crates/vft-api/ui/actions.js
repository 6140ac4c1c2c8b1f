// What the pages' actions share: a confirmation dialog for changes that cannot simply be undone,
// the server's own words when it refuses one, a line saying it was done, and a copy button.
// Every change goes through the API, which records it in the audit log.

import { h } from './dom.js';
import { t } from './i18n.js';
import { ApiError, describe } from './api.js';

/**
 * Asks before a change: a modal dialog (on top of any other, e.g. the device dialog) with the
 * question, what it means, and the two buttons. Resolves to true when confirmed. Escape or
 * "Avbryt" resolves to false.
 */
export function confirmAction({ title, body, confirm, danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, id: 'confirm-ok' }, confirm);
    const cancel = h('button', { type: 'button', class: 'btn', id: 'confirm-cancel' }, t('action.cancel'));
    const dialog = h('dialog', { class: 'confirm-dialog', id: 'confirm-dialog', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-body' },
      h('h2', { id: 'confirm-title' }, title),
      h('div', { id: 'confirm-body' }, (Array.isArray(body) ? body : [body]).filter(Boolean).map((p) => h('p', null, p))),
      h('div', { class: 'actions' }, ok, cancel));
    let answer = false;
    ok.addEventListener('click', () => { answer = true; dialog.close(); });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/**
 * Why the server did not do it, in its own words: a plain lead by status, then the API's
 * `message` (never left out), and how long to wait after 429.
 */
export function actionError(err, { id } = {}) {
  const status = err instanceof ApiError ? err.status : 0;
  const lead = err instanceof ApiError && [400, 403, 404, 409, 413, 422, 429].includes(status)
    ? t(`action.error.${status}`, { n: err.retryAfter ?? '' })
    : describe(err);
  const server = err instanceof ApiError && err.serverMessage ? err.serverMessage : null;
  return h('div', { class: 'action-error', role: 'alert', id, 'data-status': String(status) },
    h('p', { class: 'action-error-lead' }, lead),
    server ? h('p', { class: 'action-error-message', lang: 'en' }, server) : null);
}

/** A polite status line after a change ("Lagret."). */
export function actionDone(text, { id } = {}) {
  return h('p', { class: 'action-done', role: 'status', id }, text);
}

/** A button that copies `text` to the clipboard and says so. */
export function copyButton(text, { id } = {}) {
  const said = h('span', { class: 'copy-said', role: 'status' });
  const button = h('button', { type: 'button', class: 'btn', id }, t('action.copy'));
  button.addEventListener('click', async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // No clipboard API (an insecure page): copy from a selected field.
      const field = h('textarea', { class: 'sr-only', readonly: true });
      field.value = text;
      document.body.append(field);
      field.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      field.remove();
    }
    said.textContent = ok ? t('action.copied') : t('action.copyFailed');
  });
  return h('span', { class: 'copy' }, button, said);
}

/** "user:kari@…" → "kari@…"; "token:abc (label)" as it is. */
export function actorName(actor) {
  if (!actor) return '–';
  return actor.startsWith('user:') ? actor.slice(5) : actor;
}

/** Today's date in Europe/Oslo as YYYY-MM-DD. */
export function osloToday() {
  return new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Oslo' }).format(new Date());
}

/** The current month in Europe/Oslo as YYYY-MM: months before it have ended. */
export function osloMonth() {
  return osloToday().slice(0, 7);
}
