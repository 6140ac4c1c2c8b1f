// What each role sees in the dashboard, signed in as people with passwords: the auditor sees the
// audit log (and the coordinator's reads in it, by username) and nothing else; a municipality
// user never sees the audit log; a municipality user of several municipalities picks the one it
// acts for; an operator sees no fleet data; sign-in is throttled with a plain message.
// Run: see README.md (tests/tests/browser.rs does it against a fresh `vft demo`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  requireEnv, apiJson, signIn, submitSignIn, account, accountVars, readTable, assertSameTable, waitForTable,
  useBrowser,
} from './lib.mjs';

const ENV = requireEnv(['VFT_URL', 'VFT_COORDINATOR_TOKEN', 'VFT_MUNICIPALITY', 'VFT_OTHER_MUNICIPALITY', 'VFT_SEVERAL_MUNICIPALITIES',
  ...accountVars('COORDINATOR', 'MUNICIPALITY', 'SEVERAL', 'OPERATOR', 'AUDITOR')]);
const BASE = ENV.VFT_URL;
const YEAR = '2025';
const TIMEOUT = 180_000;
const COORDINATOR = account(ENV, 'COORDINATOR');
const AAL = account(ENV, 'MUNICIPALITY');
const SEVERAL = account(ENV, 'SEVERAL');
const OPERATOR = account(ENV, 'OPERATOR');
const AUDITOR = account(ENV, 'AUDITOR');
const DEVICE_READ = 'GET /api/v1/devices/{vendor}/{device}';

const newPage = useBrowser();

/** The routes of the navigation links the page shows. */
async function visibleNav(page) {
  return page.locator('#mainnav a[data-route]').evaluateAll((links) =>
    links.filter((a) => a.offsetParent !== null).map((a) => a.dataset.route));
}

/** Every /api/ request and its answer's status, as the page made them. */
function recordApi(page) {
  const seen = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) seen.push({ method: r.request().method(), path: u.pathname, query: u.searchParams, status: r.status() });
  });
  return seen;
}

/** The audit table's rows as the page shows them. */
async function auditRows(page) {
  return page.locator('#audit-table tbody tr').evaluateAll((rows) => rows.map((tr) => ({
    seq: Number(tr.dataset.seq),
    actor: tr.dataset.actor,
    action: tr.dataset.action,
    route: tr.dataset.route,
    actorText: tr.querySelector('td.actor').textContent.trim(),
    subjects: [...tr.querySelectorAll('.subjects li')].map((li) => li.textContent),
  })));
}

/** The same rows from the API, asked with the page's own cookie: the window the page shows. */
async function auditFromApi(context, query, firstSeq, limit) {
  const q = new URLSearchParams({ ...query, before: String(firstSeq + 1), limit: String(limit) });
  const res = await context.request.get(`${BASE}/api/v1/audit?${q}`);
  assert.equal(res.status(), 200, `GET /api/v1/audit?${q}`);
  return (await res.json()).records;
}

function assertSameRecords(shown, records) {
  assert.deepEqual(shown.map((r) => r.seq), records.map((r) => r.seq), 'the same records, newest first');
  records.forEach((r, i) => {
    assert.equal(shown[i].actor, r.actor, `actor of ${r.seq}`);
    assert.equal(shown[i].action, r.action, `action of ${r.seq}`);
    assert.equal(shown[i].route, r.route, `route of ${r.seq}`);
    assert.deepEqual(shown[i].subjects, r.subjects, `subjects of ${r.seq}`);
  });
}

test('the auditor sees only the audit log, with the coordinator\'s device read under the coordinator\'s username', { timeout: TIMEOUT }, async () => {
  // More than two pages of records whatever ran before: reads of the inventory by a script.
  for (let i = 0; i < 110; i++) {
    const res = await fetch(`${BASE}/api/v1/devices?limit=1`, { headers: { Authorization: `Bearer ${ENV.VFT_COORDINATOR_TOKEN}` } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }
  // The coordinator opens a device's history in Enheter.
  let key;
  {
    const { context, page } = await newPage();
    try {
      await signIn(page, BASE, COORDINATOR, '#/enheter');
      const first = page.locator('#device-table tbody tr button[data-device]').first();
      await first.waitFor();
      key = await first.getAttribute('data-device');
      await first.click();
      await page.locator('#device-history tbody tr').first().waitFor();
      await page.keyboard.press('Escape');
      await page.locator('#signout').click();
      await page.locator('#signin-form').waitFor();
    } finally {
      await context.close();
    }
  }
  const [vendor, device] = key.split('/');

  const { context, page } = await newPage();
  const requests = recordApi(page);
  try {
    // Signed in at the front page, the auditor lands on the audit log: the only page it has.
    await signIn(page, BASE, AUDITOR);
    await page.locator('h1').filter({ hasText: 'Revisjonslogg' }).waitFor();
    await page.locator('#audit-table tbody tr').first().waitFor();
    assert.deepEqual(await visibleNav(page), ['revisjonslogg'], 'the auditor\'s menu');
    await page.locator('#who-name').filter({ hasText: 'Rita Revisor' }).waitFor();
    await page.locator('#who-role').filter({ hasText: 'Revisor' }).waitFor();

    // Filter on the coordinator's reads: the device read is there, under the username.
    await page.locator('#a-actor').fill(COORDINATOR.username);
    await page.locator('#a-action').selectOption('read');
    await page.locator('#audit-filters button[type=submit]').click();
    await page.waitForFunction((actor) => {
      const rows = [...document.querySelectorAll('#audit-table tbody tr')];
      return location.hash.includes('action=read') && rows.length > 0
        && rows.every((tr) => tr.dataset.actor === actor && tr.dataset.action === 'read');
    }, `user:${COORDINATOR.username}`);
    const deviceRow = page.locator(`#audit-table tbody tr[data-route="${DEVICE_READ}"]`)
      .filter({ hasText: `device=${device}` });
    await deviceRow.first().waitFor();
    const shown = await auditRows(page);
    assert.ok(shown.length > 0);
    for (const r of shown) {
      assert.equal(r.actor, `user:${COORDINATOR.username}`, `only the coordinator: ${JSON.stringify(r)}`);
      assert.equal(r.action, 'read');
      assert.equal(r.actorText, COORDINATOR.username, 'the actor is shown by username');
    }
    const read = shown.find((r) => r.route === DEVICE_READ && r.subjects.includes(`device=${device}`));
    assert.ok(read, `the read of ${key} is listed`);
    assert.ok(read.subjects.includes(`vendor=${vendor}`), `subjects ${read.subjects}`);
    await deviceRow.first().locator('td').filter({ hasText: 'Enhet med historikk' }).waitFor();
    const query = { actor: `user:${COORDINATOR.username}`, action: 'read' };
    assertSameRecords(shown, await auditFromApi(context, query, shown[0].seq, shown.length));

    // The CSV link downloads the selection exactly as the API serves it.
    const csvHref = await page.locator('#audit-csv').getAttribute('href');
    assert.match(csvHref, /format=csv/);
    assert.match(csvHref, /action=read/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#audit-csv').click()]);
    const got = await readFile(await download.path());
    const again = await context.request.get(`${BASE}${csvHref}`);
    assert.equal(again.status(), 200);
    assert.ok(got.equals(Buffer.from(await again.body())), 'downloaded CSV equals the API\'s');
    const csvText = got.toString('utf8');
    assert.ok(csvText.startsWith('seq,at,actor,role,action,route'), csvText.slice(0, 80));
    assert.ok(csvText.includes(`user:${COORDINATOR.username}`) && csvText.includes(`device=${device}`), 'the read is in the CSV');

    // Every record, page by page: "Vis eldre" appends the next (older) page as the API has it.
    await page.locator('#mainnav a[data-route="revisjonslogg"]').click();
    await page.waitForFunction(() => location.hash === '#/revisjonslogg');
    await page.waitForFunction(() => document.querySelector('#a-actor')?.value === '' && document.querySelectorAll('#audit-table tbody tr').length > 0);
    const firstPage = await auditRows(page);
    assertSameRecords(firstPage, await auditFromApi(context, {}, firstPage[0].seq, firstPage.length));
    assert.equal(firstPage.length, 50, 'a full first page (the tests have made far more records)');
    await page.locator('#audit-older').click();
    await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length > 50);
    const both = await auditRows(page);
    const older = both.slice(firstPage.length);
    assertSameRecords(older, await auditFromApi(context, {}, older[0].seq, older.length));
    assert.ok(older[0].seq < firstPage.at(-1).seq, 'older records follow');
    assert.equal(new Set(both.map((r) => r.seq)).size, both.length, 'no record twice');

    // Fleet pages are not the auditor's: said plainly, and not even asked for.
    await page.evaluate(() => { location.hash = '#/oversikt'; });
    await page.locator('[data-testid="role-denied"]').waitFor();
    assert.equal(await page.locator('#vft-table').count(), 0);
    const fleet = requests.filter((r) => !r.path.startsWith('/api/v1/audit') && !['/api/v1/session', '/api/session', '/api/auth/oidc'].includes(r.path));
    assert.deepEqual(fleet.map((r) => `${r.method} ${r.path}`), [], 'the auditor\'s page asked only for the audit log');
    assert.deepEqual(requests.filter((r) => r.status === 403).map((r) => r.path), [], 'nothing was refused');
    // And the API agrees.
    assert.equal((await context.request.get(`${BASE}/api/v1/rollups/devices?year=${YEAR}`)).status(), 403);
    assert.equal((await context.request.get(`${BASE}/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`)).status(), 403);
  } finally {
    await context.close();
  }
});

test('a municipality user has no audit log page, and the API refuses it the log', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  const requests = recordApi(page);
  try {
    await signIn(page, BASE, AAL, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, `(${ENV.VFT_MUNICIPALITY})`);
    const nav = await visibleNav(page);
    assert.deepEqual(nav, ['oversikt', 'enheter', 'responssenter', 'leverandorer', 'leverandorbytte', 'varsler', 'avviste-meldinger'], 'a municipality user\'s menu');
    await page.evaluate(() => { location.hash = '#/revisjonslogg'; });
    await page.locator('[data-testid="role-denied"]').waitFor();
    assert.match(await page.locator('[data-testid="role-denied"]').textContent(), /Ikke tilgjengelig for din rolle/);
    assert.equal(await page.locator('#audit-table, #audit-filters').count(), 0, 'no audit log is shown');
    assert.deepEqual(requests.filter((r) => r.path.startsWith('/api/v1/audit')), [], 'the page did not ask for the log');
    const direct = await context.request.get(`${BASE}/api/v1/audit`);
    assert.equal(direct.status(), 403);
    assert.equal((await direct.json()).records, undefined);
    const csv = await context.request.get(`${BASE}/api/v1/audit?format=csv`);
    assert.equal(csv.status(), 403);
  } finally {
    await context.close();
  }
});

test('a municipality user of several municipalities picks the one it acts for, and every request names it', { timeout: TIMEOUT }, async () => {
  const foreign = ENV.VFT_MUNICIPALITY; // not one of its own
  const { context, page } = await newPage();
  const requests = recordApi(page);
  try {
    await signIn(page, BASE, SEVERAL, `#/oversikt?year=${YEAR}`);
    // Its municipalities in the session's order (the server's; the first is the default).
    const session = await (await context.request.get(`${BASE}/api/v1/session`)).json();
    assert.deepEqual([...session.municipalities].sort(), ENV.VFT_SEVERAL_MUNICIPALITIES.split(',').sort());
    const [first, second] = session.municipalities;
    assert.equal(session.municipality, first);
    await waitForTable(page, `(${first})`);
    const picker = page.locator('#acting-municipality');
    await picker.waitFor({ state: 'visible' });
    assert.deepEqual(await picker.locator('option').evaluateAll((os) => os.map((o) => o.value)), [first, second]);
    assert.equal(await picker.inputValue(), first, 'acts for the first by default');
    assert.deepEqual(await page.locator('#f-municipality option').evaluateAll((os) => os.map((o) => o.value)), [first, second],
      'the area picker offers its own municipalities');
    assertSameTable(await readTable(page), await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}&municipality=${first}`, ENV.VFT_COORDINATOR_TOKEN));

    // The header picker: the page follows, with the second municipality's figures.
    await picker.selectOption(second);
    await waitForTable(page, `(${second})`);
    assert.match(page.url(), new RegExp(`municipality=${second}`));
    assertSameTable(await readTable(page), await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}&municipality=${second}`, ENV.VFT_COORDINATOR_TOKEN));

    // Devices: the list and a device's history are the second municipality's.
    const since = requests.length;
    await page.locator('#mainnav a[data-route="enheter"]').click();
    const firstDevice = page.locator('#device-table tbody tr button[data-device]').first();
    await firstDevice.waitFor();
    const key = await firstDevice.getAttribute('data-device');
    await firstDevice.click();
    await page.locator('#device-history tbody tr').first().waitFor();
    const [vendor, device] = key.split('/');
    const coordinatorView = await apiJson(BASE, `/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`, ENV.VFT_COORDINATOR_TOKEN);
    assert.equal(coordinatorView.device.municipality, second, `${key} is in ${second}`);
    const fleetRequests = requests.slice(since).filter((r) => r.path.startsWith('/api/v1/') && r.path !== '/api/v1/session');
    assert.ok(fleetRequests.some((r) => r.path.startsWith('/api/v1/devices/')), 'the device was asked for');
    for (const r of fleetRequests) {
      assert.equal(r.query.get('municipality'), second, `${r.method} ${r.path} names the municipality`);
      assert.equal(r.status, 200, `${r.method} ${r.path}`);
    }
    await page.keyboard.press('Escape');

    // The choice survives a reload, on a page whose address names no municipality.
    await page.evaluate((y) => { location.hash = `#/responssenter?year=${y}`; }, YEAR);
    await page.reload();
    await page.locator('#acting-municipality').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#acting-municipality').inputValue(), second);
    await page.locator('#rs-table, .page-responssenter .state-empty').first().waitFor();
    const centre = requests.filter((r) => r.path === '/api/v1/rollups/response-centre');
    assert.ok(centre.length > 0 && centre.every((r) => r.query.get('municipality') === second && r.status === 200),
      `the response centre figures are the second municipality's: ${centre.map((r) => r.query)}`);

    // A municipality that is not its own: the access message, no figures.
    await page.evaluate(([y, m]) => { location.hash = `#/oversikt?year=${y}&municipality=${m}`; }, [YEAR, foreign]);
    await page.locator('[data-testid="access-denied"]').waitFor();
    assert.equal(await page.locator('#vft-table').count(), 0);
    assert.equal((await context.request.get(`${BASE}/api/v1/rollups/devices?year=${YEAR}&municipality=${foreign}`)).status(), 403);
  } finally {
    await context.close();
  }
});

test('an operator sees no fleet data: a note on where its tools are, and the rejected messages', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  const requests = recordApi(page);
  try {
    await signIn(page, BASE, OPERATOR);
    await page.locator('[data-testid="operator-note"]').waitFor();
    assert.deepEqual(await visibleNav(page), ['drift', 'avviste-meldinger', 'tilgang'], 'the operator\'s menu');
    await page.locator('#who-role').filter({ hasText: 'Drift' }).waitFor();
    await page.locator('code').filter({ hasText: 'vft user create' }).waitFor();

    await page.locator('#mainnav a[data-route="avviste-meldinger"]').click();
    await page.locator('[data-testid="avviste-operator"]').waitFor();
    await page.locator('#dead-letters tbody tr').first().waitFor();
    // The open ones first (the page's default filter).
    const api = await apiJson(BASE, '/api/v1/dead-letters?handled=false&limit=50', ENV.VFT_COORDINATOR_TOKEN);
    assert.equal(await page.locator('#dead-letters tbody tr').count(), api.items.length, 'every open dead letter of the first page');
    assert.equal(await page.locator('#import-errors, #avviste-imp-h').count(), 0, 'no import errors (fleet data)');

    await page.evaluate(() => { location.hash = '#/oversikt'; });
    await page.locator('[data-testid="role-denied"]').waitFor();
    assert.equal(await page.locator('#vft-table').count(), 0);
    const fleet = requests.filter((r) => /^\/api\/v1\/(rollups|devices|municipalities|cooperations|imports|reconciliation|audit)/.test(r.path));
    assert.deepEqual(fleet.map((r) => r.path), [], 'the operator\'s pages asked for no fleet data');
    assert.deepEqual(requests.filter((r) => r.status === 403).map((r) => r.path), [], 'nothing was refused');
    assert.equal((await context.request.get(`${BASE}/api/v1/devices`)).status(), 403, 'and the API refuses it fleet data');
  } finally {
    await context.close();
  }
});

test('sign-in: the organisation button follows the server, its errors are said plainly, and throttling says how long to wait', { timeout: TIMEOUT }, async () => {
  const oidc = await fetch(`${BASE}/api/auth/oidc`);
  const offered = oidc.status === 200 && (await oidc.json().catch(() => null))?.enabled === true;
  const { context, page } = await newPage();
  try {
    await page.goto(`${BASE}/`);
    const form = page.locator('#signin-form');
    await page.waitForFunction(() => ['on', 'off'].includes(document.querySelector('#signin-form')?.dataset.oidc));
    assert.equal(await form.getAttribute('data-oidc'), offered ? 'on' : 'off');
    const button = page.locator('#signin-oidc');
    assert.equal(await button.isVisible(), offered, `the organisation button (GET /api/auth/oidc: ${oidc.status})`);
    assert.equal(await button.getAttribute('href'), '/api/auth/oidc/start');
    assert.match(await button.textContent(), /Logg inn med virksomhetens konto/);
    await page.locator('.lang-btn[data-lang="en"]').click();
    await page.locator('label[for="username"]').filter({ hasText: 'Username' }).waitFor();
    await page.locator('label[for="password"]').filter({ hasText: 'Password' }).waitFor();
    assert.match(await page.locator('#signin-oidc').textContent(), /Sign in with your organisation/);
    await page.locator('.lang-btn[data-lang="nb"]').click();
    await page.locator('label[for="username"]').filter({ hasText: 'Brukernavn' }).waitFor();

    // A sign-in with the organisation's account that came back unfinished (the callback's
    // `?sign_in_error=`) is said plainly, and the code leaves the address.
    for (const [code, text] of [['no_account', 'ingen konto i vft'], ['cancelled', 'ble avbrutt'], ['no-such-code', 'ble ikke fullført']]) {
      await page.goto(`${BASE}/?sign_in_error=${code}`);
      await page.locator('#signin-message').filter({ hasText: text }).waitFor();
      assert.equal(new URL(page.url()).search, '', `the code leaves the address (${code})`);
    }

    // Wrong passwords (for no account, so nobody is locked out) until the server holds this
    // client back: then the form says how long, as Retry-After does, and the button waits.
    const message = page.locator('#signin-message');
    let throttled = null;
    for (let i = 0; i < 7 && !throttled; i++) {
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST'),
        submitSignIn(page, { username: 'ingen.slik.bruker', password: `feil-passord-${i}` }),
      ]);
      if (answer.status() === 429) throttled = answer;
      else {
        assert.equal(answer.status(), 401, `wrong password ${i}`);
        await message.filter({ hasText: 'Feil brukernavn eller passord' }).waitFor();
      }
    }
    assert.ok(throttled, 'the sign-in throttle held this client back');
    const wait = Number(throttled.headers()['retry-after']);
    assert.ok(wait >= 1, `Retry-After ${wait}`);
    await message.filter({ hasText: `Vent ${wait} sekunder` }).waitFor();
    const submit = page.locator('#signin-form button[type=submit]');
    assert.equal(await submit.isDisabled(), true, 'the button waits');
    // When the wait is over the button works again, and the right password signs in.
    await page.waitForFunction(() => !document.querySelector('#signin-form button[type=submit]').disabled, null, { timeout: (wait + 10) * 1000 });
    await page.locator('#signin-status').filter({ hasText: 'Du kan prøve igjen nå' }).waitFor();
    await submitSignIn(page, COORDINATOR);
    await page.locator('#mainnav').waitFor({ state: 'visible' });
    await page.locator('#who').filter({ hasText: 'Koordinator' }).waitFor();
  } finally {
    await context.close();
  }
});
