// Shared helpers of the browser tests and the screenshot script. Everything comes from the
// environment; nothing here starts a server.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const MONTHS_NB = ['jan', 'feb', 'mar', 'apr', 'mai', 'jun', 'jul', 'aug', 'sep', 'okt', 'nov', 'des'];

/** Reads the named variables; throws one clear error naming every missing one. */
export function requireEnv(names) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    throw new Error(
      `missing environment variable(s): ${missing.join(', ')}. ` +
      'These tests drive a running vft (they start no server): see tests/browser/README.md for the variables ' +
      '(VFT_URL, the accounts VFT_<WHO>_USER/VFT_<WHO>_PASSWORD, the tokens VFT_COORDINATOR_TOKEN and ' +
      'VFT_MUNICIPALITY_TOKEN, the municipalities). tests/tests/browser.rs and scripts/screenshots set them from a loaded `vft demo`.',
    );
  }
  const out = {};
  for (const n of names) out[n] = process.env[n];
  if (out.VFT_URL) out.VFT_URL = out.VFT_URL.replace(/\/+$/, '');
  return out;
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/** GET an API path with a bearer token (Node's fetch, outside the browser). */
export async function apiGet(base, path, token, { accept } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (accept) headers.Accept = accept;
  const res = await fetch(`${base}${path}`, { headers });
  return res;
}

export async function apiJson(base, path, token) {
  const res = await apiGet(base, path, token);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The account `VFT_<WHO>_USER` / `VFT_<WHO>_PASSWORD` of `env` (from requireEnv). */
export function account(env, who) {
  return { username: env[`VFT_${who}_USER`], password: env[`VFT_${who}_PASSWORD`] };
}

/** The names requireEnv needs for the accounts `whos`. */
export function accountVars(...whos) {
  return whos.flatMap((w) => [`VFT_${w}_USER`, `VFT_${w}_PASSWORD`]);
}

/** Fills the sign-in form and sends it. */
export async function submitSignIn(page, { username, password }) {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#signin-form button[type=submit]').click();
}

/** Signs in through the form as `who` ({username, password}) and waits for the navigation. */
export async function signIn(page, base, who, hash = '') {
  await page.goto(`${base}/${hash}`);
  await submitSignIn(page, who);
  await page.locator('#mainnav').waitFor({ state: 'visible' });
}

/** "1 033" (any space), "–" → numbers; the table's cells as the page shows them. */
export async function readTable(page) {
  return page.evaluate(() => {
    const table = document.querySelector('#vft-table');
    const num = (s) => {
      const t = s.replace(/[\s\u00a0\u202f]/g, '');
      return /^\d+$/.test(t) ? Number(t) : `not a number: ${JSON.stringify(s)}`;
    };
    const cell = (td) => {
      if (td.classList.contains('future')) return td.textContent.includes('–') ? null : 'future cell without –';
      const count = td.querySelector('button.cell-btn .count');
      return count ? num(count.textContent) : 'cell without button';
    };
    const heads = [...table.querySelectorAll('thead th[data-month]')];
    return {
      caption: table.querySelector('caption').textContent,
      months: heads.map((th) => th.dataset.month),
      monthLabels: heads.map((th) => th.querySelector('.month-label').textContent),
      rows: [...table.querySelectorAll('tbody tr')].map((tr) => ({
        kind: tr.dataset.kind,
        label: tr.querySelector('th').textContent,
        counts: [...tr.querySelectorAll('td')].map(cell),
      })),
      total: [...table.querySelectorAll('tfoot tr td')].map(cell),
    };
  });
}

/** Every cell of the page's table equals the API's JSON for the same query. */
export function assertSameTable(shown, api) {
  assert.deepEqual(shown.months, api.months, 'month columns');
  assert.deepEqual(shown.monthLabels, api.months.map((m) => MONTHS_NB[Number(m.slice(5)) - 1]), 'month labels');
  assert.equal(shown.rows.length, api.rows.length, 'row count');
  api.rows.forEach((row, i) => {
    assert.equal(shown.rows[i].kind, row.kind, `row ${i} kind`);
    assert.equal(shown.rows[i].label, row.label, `row ${i} label`);
    assert.deepEqual(shown.rows[i].counts, row.counts, `row ${row.kind} counts`);
  });
  assert.deepEqual(shown.total, api.total, 'total row');
}

export async function waitForTable(page, captionPart) {
  await page.waitForFunction(
    (part) => document.querySelector('#vft-table caption')?.textContent.includes(part),
    captionPart,
  );
}

/**
 * One Chromium for a test file: launched before its tests, closed after them. Returns
 * `newPage()`, which opens a fresh context (its own cookies) and page.
 */
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });
  return async function newPage() {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    return { context, page };
  };
}
