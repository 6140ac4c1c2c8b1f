// The vft dashboard in headless Chromium, against a running vft loaded with the demo region,
// signed in as people (accounts with passwords); the tests compare the pages with the API read
// with machine tokens. Run: see README.md (tests/tests/browser.rs does it against a fresh
// `vft demo`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  requireEnv, apiGet, apiJson, signIn, submitSignIn, account, accountVars, readTable, assertSameTable, waitForTable,
  useBrowser,
} from './lib.mjs';

const ENV = requireEnv(['VFT_URL', 'VFT_COORDINATOR_TOKEN', 'VFT_MUNICIPALITY_TOKEN', 'VFT_MUNICIPALITY', 'VFT_OTHER_MUNICIPALITY',
  ...accountVars('COORDINATOR', 'MUNICIPALITY')]);
/** The demo's coordinator and a municipality user of VFT_MUNICIPALITY. */
const COORDINATOR = account(ENV, 'COORDINATOR');
const AAL = account(ENV, 'MUNICIPALITY');
const BASE = ENV.VFT_URL;
const ORIGIN = new URL(BASE).origin;
const YEAR = '2025';
const TIMEOUT = 180_000;

const newPage = useBrowser();

test('sign-in: a wrong password gets a plain error, the right one opens the dashboard', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await page.goto(`${BASE}/`);
    await page.locator('label[for="username"]').filter({ hasText: 'Brukernavn' }).waitFor();
    await page.locator('label[for="password"]').filter({ hasText: 'Passord' }).waitFor();
    assert.equal(await page.locator('#password').getAttribute('type'), 'password', 'the password is not shown');
    await submitSignIn(page, { username: COORDINATOR.username, password: 'not-the-password' });
    const message = page.locator('#signin-message');
    await message.filter({ hasText: 'Feil brukernavn eller passord' }).waitFor();
    const text = await message.textContent();
    assert.doesNotMatch(text, /[{}]|unauthori[sz]ed|Error:|at \w+ \(/, 'plain language, no JSON or stack trace');
    assert.equal(await page.locator('#mainnav').isVisible(), false, 'not signed in');
    assert.equal(await page.locator('#password').inputValue(), '', 'the wrong password is cleared');
    assert.equal(await page.locator('#username').inputValue(), COORDINATOR.username, 'the username stays');
    assert.equal((await context.cookies(BASE)).some((c) => c.name === 'vft_session'), false, 'no session cookie');

    await page.locator('#password').fill(COORDINATOR.password);
    await page.locator('#signin-form button[type=submit]').click();
    await page.locator('#mainnav').waitFor({ state: 'visible' });
    await page.locator('#who').filter({ hasText: 'Koordinator' }).waitFor();
    // Who is signed in: the person's name (or username), and the role.
    const session = await (await context.request.get(`${BASE}/api/v1/session`)).json();
    assert.equal(session.actor, `user:${COORDINATOR.username}`, 'the session is the person, not a token');
    assert.equal(await page.locator('#who-name').textContent(), session.name || COORDINATOR.username);
    await page.locator('#vft-table').waitFor();
  } finally {
    await context.close();
  }
});

test('the session cookie is HttpOnly and SameSite=Strict', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR);
    const cookies = await context.cookies(BASE);
    const session = cookies.find((c) => c.name === 'vft_session');
    assert.ok(session, `a vft_session cookie (got ${cookies.map((c) => c.name).join(', ') || 'none'})`);
    assert.equal(session.httpOnly, true, 'HttpOnly');
    assert.equal(session.sameSite, 'Strict', 'SameSite=Strict');
    assert.ok(session.expires > Date.now() / 1000, 'expires');
    assert.equal(await page.evaluate(() => document.cookie.includes('vft_session')), false, 'invisible to script');
    // The password is not kept in the page's storage either.
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(COORDINATOR.password), 'password not in web storage');
  } finally {
    await context.close();
  }
});

test('Oversikt: every cell of the 2025 table equals the API, for the region and one municipality', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    const region = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}`, ENV.VFT_COORDINATOR_TOKEN);
    const shownRegion = await readTable(page);
    assertSameTable(shownRegion, region);
    assert.ok(region.total.some((n) => n > 0), 'the demo has devices in 2025');

    // Pick one municipality in the area picker.
    await page.locator('#f-municipality').selectOption(ENV.VFT_MUNICIPALITY);
    await waitForTable(page, `(${ENV.VFT_MUNICIPALITY})`);
    assert.match(page.url(), new RegExp(`municipality=${ENV.VFT_MUNICIPALITY}`));
    const one = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}&municipality=${ENV.VFT_MUNICIPALITY}`, ENV.VFT_COORDINATOR_TOKEN);
    const shownOne = await readTable(page);
    assertSameTable(shownOne, one);
    assert.notDeepEqual(one.total, region.total, 'one municipality is not the region');

    // A cell opens the change since the month before, with its attribution.
    const row = one.rows.find((r) => r.counts[5] !== null);
    await page.locator(`#vft-table tr[data-kind="${row.kind}"] td[data-month="${one.months[5]}"] button`).click();
    const panel = page.locator('#change-panel');
    await panel.locator(`.change-kind[data-kind="${row.kind}"]`).waitFor();
    const changes = await apiJson(BASE, `/api/v1/rollups/devices/changes?month=${one.months[5]}&municipality=${ENV.VFT_MUNICIPALITY}`, ENV.VFT_COORDINATOR_TOKEN);
    const expected = changes.rows.find((r) => r.kind === row.kind);
    const summary = (await panel.locator('.change-summary').textContent()).replace(/[\s\u00a0\u202f]/g, '');
    assert.ok(summary.startsWith(`${expected.before}→${expected.after}`), `change summary ${summary} for ${expected.before} → ${expected.after}`);
    assert.equal(await panel.locator('table.change-lines tbody tr').count(), expected.lines.length, 'one line per cause');
  } finally {
    await context.close();
  }
});

test('without a year in the address, Oversikt opens on the year of the newest data', { timeout: TIMEOUT }, async () => {
  const who = await apiJson(BASE, '/api/v1/session', ENV.VFT_COORDINATOR_TOKEN);
  assert.ok(who.latest_activity, 'the demo has data');
  const year = new Intl.DateTimeFormat('en', { timeZone: 'Europe/Oslo', year: 'numeric' }).format(new Date(who.latest_activity));
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, '#/oversikt');
    await waitForTable(page, year);
    assert.equal(await page.locator('#f-year').inputValue(), year);
  } finally {
    await context.close();
  }
});

test('Oversikt: published months are marked and corrections flagged, as the API says', { timeout: TIMEOUT }, async () => {
  const table = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}`, ENV.VFT_COORDINATOR_TOKEN);
  // tests/tests/browser.rs publishes a month and then sends a late event inside it.
  assert.ok(table.published.some(Boolean), 'the API has a published month');
  assert.ok(table.corrections.length > 0, 'the API has a correction');
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    for (const [i, month] of table.months.entries()) {
      const badges = await page.locator(`#vft-table thead th[data-month="${month}"] .badge-published`).count();
      assert.equal(badges, table.published[i] ? 1 : 0, `published mark of ${month}`);
    }
    const flagged = await page.locator('#vft-table tbody td.corrected').evaluateAll((cells) =>
      cells.map((td) => `${td.closest('tr').dataset.kind} ${td.dataset.month}`).sort());
    const expected = table.corrections.map((c) => `${c.kind} ${c.month}`).sort();
    assert.deepEqual(flagged, expected, 'flagged cells are the corrections');
    assert.equal(await page.locator('.corrections li').count(), table.corrections.length, 'one line per correction');
  } finally {
    await context.close();
  }
});

test('language: English on the switch, remembered, and back to Norwegian', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    await page.locator('.lang-btn[data-lang="en"]').click();
    await page.locator('#mainnav a[data-route="oversikt"]').filter({ hasText: 'Overview' }).waitFor();
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    await page.locator('h1').filter({ hasText: 'Overview' }).waitFor();
    await page.locator('#vft-table thead th').filter({ hasText: 'Technology type' }).waitFor();
    await page.locator('#vft-table tr[data-kind="safety_alarm"] th').filter({ hasText: 'Safety alarm' }).waitFor();
    await page.locator('#download-csv').filter({ hasText: 'Download CSV' }).waitFor();

    await page.reload();
    await page.locator('#mainnav a[data-route="enheter"]').filter({ hasText: 'Devices' }).waitFor();
    assert.equal(await page.locator('html').getAttribute('lang'), 'en', 'the choice survives a reload');

    await page.locator('.lang-btn[data-lang="nb"]').click();
    await page.locator('#mainnav a[data-route="oversikt"]').filter({ hasText: 'Oversikt' }).waitFor();
    assert.equal(await page.locator('html').getAttribute('lang'), 'nb');
    await page.locator('#vft-table tr[data-kind="safety_alarm"] th').filter({ hasText: 'Trygghetsalarm' }).waitFor();
  } finally {
    await context.close();
  }
});

test('Enheter: a device opens its history, Esc closes it', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, '#/enheter');
    const first = page.locator('#device-table tbody tr button[data-device]').first();
    await first.waitFor();
    const key = await first.getAttribute('data-device');
    await first.click();
    const dialog = page.locator('#device-dialog');
    await dialog.waitFor({ state: 'visible' });
    await page.locator('#device-history tbody tr').first().waitFor();
    assert.match(await dialog.locator('h2').textContent(), new RegExp(key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.match(page.url(), /device=/, 'the open device is in the address');
    const [vendor, device] = key.split('/');
    const api = await apiJson(BASE, `/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`, ENV.VFT_COORDINATOR_TOKEN);
    assert.equal(await page.locator('#device-history tbody tr').count(), api.history.length, 'every history event shown');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.waitForFunction(() => !location.hash.includes('device='));

    // A device in the address opens directly.
    await page.goto(`${BASE}/#/enheter?device=${encodeURIComponent(key)}`);
    await page.locator('#device-history tbody tr').first().waitFor();
  } finally {
    await context.close();
  }
});

test('"Last ned CSV" downloads exactly the API\'s CSV', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-csv').click()]);
    const got = await readFile(await download.path());
    const res = await apiGet(BASE, `/api/v1/rollups/devices?year=${YEAR}&format=csv`, ENV.VFT_COORDINATOR_TOKEN);
    assert.equal(res.status, 200);
    const want = Buffer.from(await res.arrayBuffer());
    assert.ok(want.length > 0);
    assert.ok(got.equals(want), `downloaded CSV differs from the API's:\n${got}\n---\n${want}`);

    // The chart as a PNG for a report.
    const [png] = await Promise.all([page.waitForEvent('download'), page.locator('#download-png').click()]);
    assert.match(png.suggestedFilename(), /\.png$/);
    const bytes = await readFile(await png.path());
    assert.ok(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG file');
    assert.ok(bytes.length > 10_000, `a PNG with the charts in it (${bytes.length} bytes)`);
  } finally {
    await context.close();
  }
});

test('an ended session goes back to sign-in with a plain message; sign-out ends the session', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    // The browser loses the cookie (as when the session expires): the next request is a 401.
    await context.clearCookies();
    await page.locator('#mainnav a[data-route="enheter"]').click();
    await page.locator('#signin-message').filter({ hasText: 'Økten er utløpt' }).waitFor();
    assert.equal(await page.locator('#mainnav').isVisible(), false);
    // Signing in again lands on the page that was asked for.
    await submitSignIn(page, COORDINATOR);
    await page.locator('h1').filter({ hasText: 'Enheter' }).waitFor();

    const cookie = (await context.cookies(BASE)).find((c) => c.name === 'vft_session');
    assert.ok(cookie, 'signed in again');
    const withOldCookie = () => fetch(`${BASE}/api/v1/session`, { headers: { Cookie: `vft_session=${cookie.value}` } });
    assert.equal((await withOldCookie()).status, 200);
    await page.locator('#signout').click();
    await page.locator('#signin-message').filter({ hasText: 'logget ut' }).waitFor();
    assert.equal((await withOldCookie()).status, 401, 'the old cookie is worth nothing after sign-out');
  } finally {
    await context.close();
  }
});

test('a municipality user sees its own municipality only, from the page and by the URL', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  const own = ENV.VFT_MUNICIPALITY;
  const other = ENV.VFT_OTHER_MUNICIPALITY;
  const otherAnswers = [];
  page.on('response', (r) => {
    if (r.url().includes(`municipality=${other}`)) otherAnswers.push(r.status());
  });
  try {
    await signIn(page, BASE, AAL, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, `(${own})`);
    const options = await page.locator('#f-municipality option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(options, [own], 'the picker offers only its own municipality');
    const mine = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}&municipality=${own}`, ENV.VFT_MUNICIPALITY_TOKEN);
    assertSameTable(await readTable(page), mine);

    // Editing the address to another municipality: a plain message, no figures.
    await page.evaluate(([y, m]) => { location.hash = `#/oversikt?year=${y}&municipality=${m}`; }, [YEAR, other]);
    const denied = page.locator('[data-testid="access-denied"]');
    await denied.waitFor();
    assert.match(await denied.textContent(), /Ingen tilgang/);
    assert.equal(await page.locator('#vft-table').count(), 0, 'no table is shown');
    assert.equal(await page.locator('.cell-btn, canvas').count(), 0, 'no figures or charts are shown');
    assert.ok(otherAnswers.length > 0 && otherAnswers.every((s) => s === 403), `server answered ${otherAnswers} for ${other}`);

    // The same on the device list.
    await page.evaluate((m) => { location.hash = `#/enheter?municipality=${m}`; }, other);
    await page.locator('[data-testid="access-denied"]').waitFor();
    assert.equal(await page.locator('#device-table').count(), 0);

    // And straight at the API with the page's own cookie.
    const direct = await context.request.get(`${BASE}/api/v1/rollups/devices?year=${YEAR}&municipality=${other}`);
    assert.equal(direct.status(), 403);
    const body = await direct.json();
    assert.equal(body.error, 'forbidden');
    assert.equal(body.rows, undefined);
    const devices = await context.request.get(`${BASE}/api/v1/devices?municipality=${other}`);
    assert.equal(devices.status(), 403);
    const ownDirect = await context.request.get(`${BASE}/api/v1/rollups/devices?year=${YEAR}&municipality=${own}`);
    assert.equal(ownDirect.status(), 200, 'the cookie does authenticate');

    // The rejected messages are the coordinator's: said plainly.
    await page.evaluate(() => { location.hash = '#/avviste-meldinger'; });
    await page.locator('[data-testid="avviste-coordinator-only"]').waitFor();
  } finally {
    await context.close();
  }
});

test('with the network limited to the vft server, all nine pages work and nothing else is asked for', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  const urls = [];
  const problems = [];
  context.on('request', (r) => urls.push(r.url()));
  // The network is limited to the vft server: anything else is refused, so the pages below
  // must work without it (and the list of what was tried is checked too).
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === ORIGIN) return route.continue();
    problems.push(`blocked request to ${url}`);
    return route.abort('blockedbyclient');
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    await page.locator('#vft-table canvas, .chart-grid canvas').first().waitFor();
    const pages = [
      ['enheter', '#device-table'],
      ['responssenter', '#rs-table'],
      ['leverandorer', '#vs-table'],
      ['leverandorbytte', '#lb-imports-h'],
      ['varsler', '#new-rule-form'],
      ['avviste-meldinger', '#avviste-dead-h'],
      ['revisjonslogg', '#audit-table'],
      ['tilgang', '#users-table'],
    ];
    for (const [route, marker] of pages) {
      await page.locator(`#mainnav a[data-route="${route}"]`).click();
      await page.locator(marker).first().waitFor();
      await page.waitForFunction(() => document.querySelectorAll('.page .state-loading').length === 0);
      assert.equal(await page.locator('.page .state-error').count(), 0, `${route} shows an error`);
    }
    assert.ok(urls.length > 10, `requests were recorded (${urls.length})`);
    const foreign = urls.filter((u) => {
      if (u.startsWith('data:') || u.startsWith('blob:')) return false;
      return new URL(u).origin !== ORIGIN;
    });
    assert.deepEqual(foreign, [], 'every request goes to the vft server');
    assert.deepEqual(problems, [], 'no script errors or blocked loads');
  } finally {
    await context.close();
  }
});

test('keyboard: Tab from the top reaches the navigation and Enter follows a link', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    await page.reload();
    await waitForTable(page, YEAR);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'skip-link', 'the skip link comes first');
    let reached = false;
    for (let i = 0; i < 15 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.dataset?.route === 'enheter');
    }
    assert.ok(reached, 'Tab reaches the Enheter link');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'the focus is visible');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => location.hash.startsWith('#/enheter'));
    await page.locator('h1').filter({ hasText: 'Enheter' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H1', 'focus moves to the new page');
  } finally {
    await context.close();
  }
});
