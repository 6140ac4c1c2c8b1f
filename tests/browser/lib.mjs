// Shared helpers of the browser tests and the screenshot script. Everything comes from the
// environment; nothing here starts a server.

import { chromium } from 'playwright-core';

/** Reads the named variables; throws one clear error naming every missing one. */
export function requireEnv(names) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    throw new Error(
      `missing environment variable(s): ${missing.join(', ')}. ` +
      'These tests drive a running vft (they start no server): set VFT_URL (e.g. http://127.0.0.1:18080), ' +
      'VFT_COORDINATOR_TOKEN, VFT_MUNICIPALITY_TOKEN, VFT_MUNICIPALITY (e.g. 3328) and VFT_OTHER_MUNICIPALITY (e.g. 3330). ' +
      'tests/tests/browser.rs and scripts/screenshots set them from a loaded `vft demo`.',
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

/** Signs in through the form and waits until the app shows the navigation. */
export async function signIn(page, base, token, hash = '') {
  await page.goto(`${base}/${hash}`);
  await page.locator('#token').fill(token);
  await page.locator('#signin-form button[type=submit]').click();
  await page.locator('#mainnav').waitFor({ state: 'visible' });
}
