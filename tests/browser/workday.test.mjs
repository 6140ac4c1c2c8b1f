// The coordinator's working day in the dashboard, by role (issue 12 item 1): uploading a
// vendor's export, publishing a month, a device's own timeout, handling and replaying rejected
// messages, accounts and machine tokens. Each action is done through the page by a person
// allowed to, then checked against the API (read with a coordinator token) and against the
// audit log (`GET /api/v1/audit?action=change`: a `change` record of that person on that
// route). A municipality user sees none of the forms, and the API refuses it each action.
// This file runs last (files run in name order): its actions change the demo's state.
// Run: see README.md (tests/tests/browser.rs does it against a fresh `vft demo`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  requireEnv, launch, apiGet, apiJson, signIn, account, accountVars,
} from './lib.mjs';

const ENV = requireEnv(['VFT_URL', 'VFT_COORDINATOR_TOKEN', 'VFT_MUNICIPALITY_TOKEN', 'VFT_MUNICIPALITY',
  ...accountVars('COORDINATOR', 'MUNICIPALITY', 'OPERATOR')]);
const BASE = ENV.VFT_URL;
const ORIGIN = new URL(BASE).origin;
const TOKEN = ENV.VFT_COORDINATOR_TOKEN;
const OWN = ENV.VFT_MUNICIPALITY;
const COORDINATOR = account(ENV, 'COORDINATOR');
const AAL = account(ENV, 'MUNICIPALITY');
const OPERATOR = account(ENV, 'OPERATOR');
const YEAR = '2025';
const TIMEOUT = 240_000;
/** A tag that makes this run's names unique (accounts, tokens, device ids in the upload). */
const TAG = Date.now().toString(36).toUpperCase();

let browser;
let dir;

before(async () => {
  browser = await launch();
  dir = await mkdtemp(join(tmpdir(), 'vft-workday-'));
});

after(async () => {
  await browser?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, problems };
}

/** Polls `check` (returning a value or null) until it gives a value, or fails after `ms`. */
async function eventually(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The newest audit record's sequence number: records after it are this test's. */
async function auditHead() {
  const page = await apiJson(BASE, '/api/v1/audit?limit=1', TOKEN);
  return page.records[0]?.seq ?? 0;
}

/**
 * The `change` record of `username` on `route` with `subjects`, newer than `since`, as the
 * coordinator's token reads the audit log.
 */
async function auditChange({ since, username, route, subjects = [], status }) {
  const q = new URLSearchParams({ action: 'change', actor: `user:${username}`, limit: '500' });
  return eventually(`a change record of ${username} on ${route} ${subjects.join(' ')}`, async () => {
    const page = await apiJson(BASE, `/api/v1/audit?${q}`, TOKEN);
    const hit = page.records.find((r) => r.seq > since && r.route === route
      && subjects.every((s) => r.subjects.includes(s)) && (status === undefined || r.status === status));
    if (hit) {
      assert.equal(hit.action, 'change');
      assert.equal(hit.actor, `user:${username}`);
    }
    return hit ?? null;
  });
}

/** A change sent with the page's own session cookie and Origin, as the page itself would. */
function withCookie(context, method, path, data) {
  const options = { headers: { Origin: ORIGIN }, failOnStatusCode: false };
  if (data !== undefined) options.data = data;
  return context.request.fetch(`${BASE}${path}`, { ...options, method });
}

/** The API's refusal of a role: 403 `forbidden`, about the role (not the Origin check). */
async function assertRefused(res, what) {
  assert.equal(res.status(), 403, `${what}: ${res.status()} ${await res.text()}`);
  const body = await res.json();
  assert.equal(body.error, 'forbidden', what);
  assert.doesNotMatch(body.message, /dashboard's own page/, `${what}: refused for the role, not the Origin`);
}

async function visibleNav(page) {
  return page.locator('#mainnav a[data-route]').evaluateAll((links) =>
    links.filter((a) => a.offsetParent !== null).map((a) => a.dataset.route));
}

function osloToday() {
  return new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Oslo' }).format(new Date());
}

/** Clicks `#confirm-ok` (or Cancel) in the confirmation dialog the last click opened. */
async function answerConfirm(page, ok = true) {
  const dialog = page.locator('#confirm-dialog');
  await dialog.waitFor({ state: 'visible' });
  await page.locator(ok ? '#confirm-ok' : '#confirm-cancel').click();
  await dialog.waitFor({ state: 'detached' });
}

/**
 * An Atea export (the example format: comma-separated, ISO dates) of `good` rows, with three
 * rows that cannot be read: an unknown product category, a municipality outside the region, a
 * date that is no date. Returns the file and the lines (1 = the header) left out.
 */
async function ateaExport(good) {
  const lines = ['serial,category,municipality_no,client_ref,state,installed_on,site'];
  const bad = new Map();
  for (let i = 0; i < good; i++) {
    lines.push(`BRW${TAG}-${i},alarm,${i % 2 ? '3330' : '3328'},r-brw-${i},active,2025-06-01,Test ${i}`);
    if (i === 10) { lines.push(`BRW${TAG}-X1,teleporter,3328,r-brw-x1,active,2025-06-01,Test`); bad.set(lines.length, 'category'); }
    if (i === 20) { lines.push(`BRW${TAG}-X2,alarm,9999,r-brw-x2,active,2025-06-01,Test`); bad.set(lines.length, 'municipality_no'); }
    if (i === 30) { lines.push(`BRW${TAG}-X3,alarm,3328,r-brw-x3,active,not-a-date,Test`); bad.set(lines.length, 'installed_on'); }
  }
  const path = join(dir, `atea-${TAG}.csv`);
  await writeFile(path, `${lines.join('\n')}\n`, 'utf8');
  return { path, badLines: [...bad.keys()].sort((a, b) => a - b), bad };
}

// ---- 1. uploading a vendor's export ----------------------------------------------------------------

test('the coordinator uploads a vendor export on Leverandørbytte: progress, the report by line, the history, the audit log', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const file = await ateaExport(200);
  const asOf = osloToday();
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/leverandorbytte?year=${YEAR}`);
    await page.locator('#upload-form').waitFor();
    await page.locator('#lb-imports tbody tr').first().waitFor();
    // The vendors: the configured examples and every vendor of the history.
    const history = await apiJson(BASE, '/api/v1/imports', TOKEN);
    const vendors = await page.locator('#up-vendor option').evaluateAll((os) => os.map((o) => o.value));
    for (const v of new Set(['atea', 'hepro', ...history.imports.map((i) => i.vendor)])) {
      assert.ok(vendors.includes(v), `vendor ${v} offered (${vendors})`);
    }

    // The upload: its request is the file itself, as text/csv, from the page's origin.
    await page.locator('#up-vendor').selectOption('atea');
    await page.locator('#up-as-of').fill(asOf);
    await page.locator('#up-file').setInputFiles(file.path);
    await page.evaluate(() => {
      window.uploadStates = [];
      const el = document.querySelector('#up-progress');
      new MutationObserver(() => {
        const s = el.dataset.state;
        if (s && window.uploadStates.at(-1) !== s) window.uploadStates.push(s);
      }).observe(el, { attributes: true, attributeFilter: ['data-state'] });
    });
    const [request, response] = await Promise.all([
      page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/api/v1/imports/atea')),
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/api/v1/imports/atea')),
      page.locator('#up-submit').click(),
    ]);
    assert.equal(new URL(request.url()).searchParams.get('as_of'), asOf);
    const headers = await request.allHeaders();
    assert.equal(headers['content-type'], 'text/csv');
    assert.equal(headers.origin, ORIGIN, 'the upload carries the page\'s Origin');
    assert.equal(response.status(), 200);
    const report = page.locator('#up-report');
    await report.waitFor();
    const states = await page.evaluate(() => window.uploadStates);
    assert.deepEqual(states.filter((s) => s !== 'done'), ['sending', 'reading'], `progress while uploading: ${states}`);
    assert.equal(states.at(-1), 'done');

    // The report as the page shows it: rows read, rows left out by line with why.
    const shown = {
      importId: Number(await report.getAttribute('data-import-id')),
      rows: Number(await report.getAttribute('data-rows')),
      errors: Number(await report.getAttribute('data-errors')),
      rowsText: (await page.locator('#up-rows').textContent()).replace(/\s/g, ''),
      lines: await page.locator('#up-errors tbody tr').evaluateAll((trs) => trs.map((tr) => ({
        line: Number(tr.dataset.line),
        column: tr.children[1].textContent,
        reason: tr.children[2].textContent,
      }))),
    };
    assert.equal(shown.rows, 200, 'the good rows are read');
    assert.equal(shown.rowsText, '200');
    assert.deepEqual(shown.lines.map((l) => l.line), file.badLines, 'the rows left out, by line');
    assert.equal(shown.errors, file.badLines.length);
    for (const l of shown.lines) assert.ok(l.reason.length > 0, `a reason for line ${l.line}`);
    // Every row left out as the API keeps it (line, column, why).
    const kept = (await apiJson(BASE, '/api/v1/imports/errors?limit=1000', TOKEN)).items.filter((e) => e.import_id === shown.importId);
    assert.deepEqual(shown.lines, kept.map((e) => ({ line: e.line, column: e.column ?? '–', reason: e.why })),
      'the rows left out as /api/v1/imports/errors has them');
    assert.equal(shown.lines.find((l) => l.line === file.badLines[1]).column, 'municipality_no', 'the cell to blame');

    // The API's history has the import with the same counts; the page's history shows it.
    const imported = (await apiJson(BASE, '/api/v1/imports?vendor=atea', TOKEN)).imports.find((i) => i.id === shown.importId);
    assert.ok(imported, `import ${shown.importId} in /api/v1/imports`);
    assert.equal(imported.rows, shown.rows, 'rows as the page showed');
    assert.equal(imported.errors, shown.errors, 'rows left out as the page showed');
    assert.equal(imported.vendor, 'atea');
    const row = page.locator(`#lb-imports tbody tr[data-import-id="${shown.importId}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute('class'), 'fresh');
    assert.equal(Number(await row.getAttribute('data-rows')), imported.rows);
    assert.equal(Number(await row.getAttribute('data-errors')), imported.errors);

    const record = await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/imports/{vendor}', subjects: ['vendor=atea'], status: 200 });
    assert.ok(record.seq > since);

    // The same file again changes nothing, and the page says so.
    const ateaImports = (await apiJson(BASE, '/api/v1/imports?vendor=atea', TOKEN)).imports.length;
    await page.locator('#up-file').setInputFiles(file.path);
    await page.locator('#up-submit').click();
    await page.locator('#up-report[data-new="false"] #up-same').waitFor();
    assert.equal((await apiJson(BASE, '/api/v1/imports?vendor=atea', TOKEN)).imports.length, ateaImports, 'no new import');

    // A refusal is shown in the API's own words: an export dated before anything plausible.
    await page.locator('#up-as-of').fill('1999-01-01');
    await page.locator('#up-file').setInputFiles(file.path);
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/api/v1/imports/atea')),
      page.locator('#up-submit').click(),
    ]);
    assert.equal(refused.status(), 400);
    // What the API says to the same request (the page's XHR answer is not kept by the browser).
    const same = await fetch(`${BASE}/api/v1/imports/atea?as_of=1999-01-01`, {
      method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'text/csv' }, body: await readFile(file.path),
    });
    assert.equal(same.status, 400);
    const why = (await same.json()).message;
    assert.ok(why, 'the API says why');
    await page.locator('#up-error').waitFor();
    assert.equal(await page.locator('#up-error .action-error-message').textContent(), why);
    assert.equal(await page.locator('#up-report').count(), 0, 'no report for a refused upload');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- 2. publishing a month -----------------------------------------------------------------------

test('the coordinator publishes an ended month on Oversikt, after confirming; the table marks it with who published it', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const table = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}`, TOKEN);
  const before = await apiJson(BASE, `/api/v1/months?year=${YEAR}`, TOKEN);
  const published = new Set(before.items.map((p) => p.month));
  const current = osloToday().slice(0, 7);
  const open = table.months.filter((m) => m < current && !published.has(m));
  assert.ok(open.length > 0, 'an ended month of the demo is not published');
  const month = open[0];
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await page.locator('#publish-months tbody tr').first().waitFor();
    // A button exactly for each ended, unpublished month; published ones say who published.
    const buttons = await page.locator('#publish-months button.publish-btn').evaluateAll((bs) => bs.map((b) => b.dataset.month));
    assert.deepEqual(buttons, open, 'a "Publiser" button per ended, unpublished month');
    for (const p of before.items) {
      const text = await page.locator(`#publish-months tr[data-month="${p.month}"]`).textContent();
      const who = p.published_by?.startsWith('user:') ? p.published_by.slice(5) : p.published_by;
      assert.ok(text.includes(who), `${p.month} says who published it (${who}): ${text}`);
    }

    // Cancelled: nothing happens.
    const button = page.locator(`#publish-months button.publish-btn[data-month="${month}"]`);
    await button.click();
    assert.match(await page.locator('#confirm-title').textContent(), /Publisere/);
    await answerConfirm(page, false);
    assert.ok(!(await apiJson(BASE, `/api/v1/months?year=${YEAR}`, TOKEN)).items.some((p) => p.month === month), 'not published when cancelled');

    // Confirmed: published, and the table shows it.
    await button.click();
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/months/${month}/publish`)),
      answerConfirm(page, true),
    ]);
    assert.equal(response.status(), 201);
    await page.locator('#publish-done').waitFor();
    await page.locator(`#vft-table thead th[data-month="${month}"] .badge-published`).waitFor();
    const row = page.locator(`#publish-months tr[data-month="${month}"][data-published="true"]`);
    await row.waitFor();
    assert.ok((await row.textContent()).includes(COORDINATOR.username), 'the month says who published it');
    assert.equal(await page.locator(`#publish-months button.publish-btn[data-month="${month}"]`).count(), 0, 'no button for it any more');

    const after = await apiJson(BASE, `/api/v1/months?year=${YEAR}`, TOKEN);
    const p = after.items.find((x) => x.month === month);
    assert.ok(p, `${month} is published`);
    assert.equal(p.published_by, `user:${COORDINATOR.username}`, 'published by the coordinator');
    const title = await page.locator(`#vft-table thead th[data-month="${month}"] .badge-published`).getAttribute('title');
    assert.ok(title.includes(COORDINATOR.username), `the table's mark says who: ${title}`);
    const shownTable = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}`, TOKEN);
    assert.equal(shownTable.published[shownTable.months.indexOf(month)], true);

    await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/months/{month}/publish', subjects: [`month=${month}`], status: 201 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- 3. a device's own timeout -------------------------------------------------------------------

test('the coordinator sets a device\'s own timeout in its detail, and returns it to its type\'s', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, '#/enheter');
    const first = page.locator('#device-table tbody tr button[data-device]').first();
    await first.waitFor();
    const key = await first.getAttribute('data-device');
    const [vendor, device] = key.split('/');
    const path = `/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`;
    const before = (await apiJson(BASE, path, TOKEN)).device;
    await first.click();
    await page.locator('#timeout-form').waitFor();
    assert.equal(Number(await page.locator('#device-timeout').getAttribute('data-secs')), before.timeout_secs);

    // Long enough to cover the silence since its last contact, so its connectivity may change.
    const silentHours = before.last_contact ? (Date.now() - Date.parse(before.last_contact)) / 3_600_000 : 0;
    const hours = Math.ceil(silentHours) + 48;
    await page.locator('#timeout-hours').fill(String(hours));
    const [put] = await Promise.all([
      page.waitForRequest((r) => r.method() === 'PUT' && r.url().endsWith(`${path}/timeout`)),
      page.locator('#timeout-save').click(),
    ]);
    assert.deepEqual(JSON.parse(put.postData()), { timeout_secs: hours * 3600 });
    await page.locator('#timeout-done').waitFor();
    await page.locator(`#device-timeout[data-own="${hours * 3600}"]`).waitFor();
    let api = (await apiJson(BASE, path, TOKEN)).device;
    assert.equal(api.timeout_override_secs, hours * 3600, 'the timeout entered');
    assert.equal(api.timeout_secs, hours * 3600);
    assert.equal(Number(await page.locator('#device-timeout').getAttribute('data-secs')), api.timeout_secs);
    assert.equal(await page.locator('#device-connectivity').getAttribute('data-connectivity'), api.connectivity, 'connectivity as the API says');
    await auditChange({ since, username: COORDINATOR.username, route: 'PUT /api/v1/devices/{vendor}/{device}/timeout', subjects: [`vendor=${vendor}`, `device=${device}`], status: 200 });

    // A timeout the API refuses: its message is shown.
    await page.locator('#timeout-hours').fill('100000');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().endsWith(`${path}/timeout`)),
      page.locator('#timeout-save').click(),
    ]);
    assert.equal(refused.status(), 400);
    await page.locator('#timeout-error').waitFor();
    assert.equal(await page.locator('#timeout-error .action-error-message').textContent(), (await refused.json()).message);
    assert.equal((await apiJson(BASE, path, TOKEN)).device.timeout_override_secs, hours * 3600, 'unchanged after a refusal');

    // Back to the type's default.
    await page.locator('#timeout-default').click();
    await page.locator('#device-timeout[data-own=""]').waitFor();
    api = (await apiJson(BASE, path, TOKEN)).device;
    assert.equal(api.timeout_override_secs, null);
    assert.equal(api.timeout_secs, before.timeout_secs, 'the type\'s timeout again');
    assert.equal(Number(await page.locator('#device-timeout').getAttribute('data-secs')), api.timeout_secs);
    assert.equal(await page.locator('#device-connectivity').getAttribute('data-connectivity'), api.connectivity);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- 4. rejected messages ---------------------------------------------------------------------------

/** Rejected messages as the API lists them (`handled`: 'false', 'true' or undefined for all). */
async function deadLetters(handled) {
  const q = new URLSearchParams({ limit: '50' });
  if (handled !== undefined) q.set('handled', handled);
  return (await apiJson(BASE, `/api/v1/dead-letters?${q}`, TOKEN)).items;
}

async function shownIds(page) {
  return page.locator('#dead-letters tbody tr').evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.id)));
}

test('the coordinator marks a rejected message handled, has one taken in again, and is told why another cannot be', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const open = await deadLetters('false');
  // An install from a gateway whose clock ran ahead (tests/tests/browser.rs): valid once its
  // time is no longer more than a day ahead.
  const early = open.find((d) => d.payload.includes('"browser-replay-1"'));
  assert.ok(early, 'the early install is an open rejected message');
  const never = open.find((d) => d.id !== early.id && ['unknown_type', 'invalid_field', 'malformed_json', 'national_identity_number'].includes(d.reason_code));
  assert.ok(never, 'a rejected message that can never be read');
  const target = open.find((d) => d.id !== early.id && d.id !== never.id);
  assert.ok(target, 'another open rejected message');
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, '#/avviste-meldinger');
    await page.locator('#dead-letters tbody tr').first().waitFor();
    assert.equal(await page.locator('#dl-filter').inputValue(), 'open', 'open messages first');
    assert.deepEqual(await shownIds(page), open.map((d) => d.id), 'the open messages, as the API lists them');

    // Marked handled: greyed, with who and when.
    const row = page.locator(`#dead-letters tr[data-id="${target.id}"]`);
    await row.locator('.dl-handle').click();
    await page.locator(`#dead-letters tr[data-id="${target.id}"][data-handled="true"]`).waitFor();
    assert.equal(await row.getAttribute('class'), 'handled');
    assert.ok((await row.locator('.dl-handled-by').textContent()).includes(COORDINATOR.username), 'who handled it');
    assert.equal(await row.locator('.dl-handle, .dl-replay').count(), 0, 'no buttons on a handled message');
    const handled = (await deadLetters('true')).find((d) => d.id === target.id);
    assert.ok(handled, 'handled in the API');
    assert.equal(handled.handled_by, `user:${COORDINATOR.username}`);
    assert.ok(handled.handled_at);
    assert.equal(handled.replayed, false);
    await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/dead-letters/{id}/handled', subjects: [`id=${target.id}`], status: 200 });

    // One that still cannot be read: the API's words, and it stays open.
    const neverRow = page.locator(`#dead-letters tr[data-id="${never.id}"]`);
    await neverRow.locator('.dl-replay').click();
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/dead-letters/${never.id}/replay`)),
      answerConfirm(page, true),
    ]);
    assert.equal(refused.status(), 422);
    const body = await refused.json();
    assert.equal(body.error, 'not_replayable');
    await neverRow.locator('.action-error').waitFor();
    assert.equal(await neverRow.locator('.action-error-message').textContent(), body.message);
    assert.equal(await neverRow.getAttribute('data-handled'), 'false');
    assert.ok((await deadLetters('false')).some((d) => d.id === never.id), 'still open');

    // The early install, once its time has come: taken in, and marked handled.
    const ts = Date.parse(JSON.parse(early.payload).ts);
    const wait = ts - 24 * 3600 * 1000 - Date.now() + 2000;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const earlyRow = page.locator(`#dead-letters tr[data-id="${early.id}"]`);
    await earlyRow.locator('.dl-replay').click();
    assert.match(await page.locator('#confirm-title').textContent(), /på nytt/);
    const [replayed] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api/v1/dead-letters/${early.id}/replay`)),
      answerConfirm(page, true),
    ]);
    assert.equal(replayed.status(), 200, await replayed.text());
    await page.locator(`#dead-letters tr[data-id="${early.id}"][data-replayed="true"]`).waitFor();
    assert.ok((await earlyRow.locator('.dl-handled-by').textContent()).includes(COORDINATOR.username));
    const taken = (await deadLetters('true')).find((d) => d.id === early.id);
    assert.ok(taken, 'replayed and handled in the API');
    assert.equal(taken.replayed, true);
    assert.equal(taken.handled_by, `user:${COORDINATOR.username}`);
    assert.ok((await earlyRow.textContent()).includes(String(taken.replayed_events)), 'how many events');
    const stored = await apiGet(BASE, '/api/v1/devices/hepro/HP-REPLAY-1', TOKEN);
    assert.equal(stored.status, 200, 'the replayed install is stored');
    await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/dead-letters/{id}/replay', subjects: [`id=${early.id}`], status: 200 });

    // The filter: handled ones, then all, as the API lists them.
    await page.locator('#dl-filter').selectOption('handled');
    await page.waitForFunction(() => location.hash.includes('vis=handled'));
    await page.locator(`#dead-letters tr[data-id="${target.id}"]`).waitFor();
    assert.deepEqual(await shownIds(page), (await deadLetters('true')).map((d) => d.id));
    assert.equal(await page.locator('#dead-letters tbody tr[data-handled="false"]').count(), 0);
    await page.locator('#dl-filter').selectOption('all');
    await page.waitForFunction(() => location.hash.includes('vis=all'));
    await page.locator(`#dead-letters tr[data-id="${never.id}"]`).waitFor();
    assert.deepEqual(await shownIds(page), (await deadLetters()).map((d) => d.id));
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('the operator marks a rejected message handled, and may not replay one', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const open = await deadLetters('false');
  assert.ok(open.length > 0, 'an open rejected message');
  const target = open[0];
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, OPERATOR, '#/avviste-meldinger');
    await page.locator('#dead-letters tbody tr').first().waitFor();
    assert.ok(await page.locator('.dl-handle').count() > 0, 'the operator may mark messages handled');
    assert.equal(await page.locator('.dl-replay').count(), 0, 'but not replay them');
    const row = page.locator(`#dead-letters tr[data-id="${target.id}"]`);
    await row.locator('.dl-handle').click();
    await page.locator(`#dead-letters tr[data-id="${target.id}"][data-handled="true"]`).waitFor();
    assert.ok((await row.textContent()).includes(OPERATOR.username));
    const handled = (await deadLetters('true')).find((d) => d.id === target.id);
    assert.equal(handled?.handled_by, `user:${OPERATOR.username}`);
    await auditChange({ since, username: OPERATOR.username, route: 'POST /api/v1/dead-letters/{id}/handled', subjects: [`id=${target.id}`], status: 200 });
    const left = await deadLetters('false');
    if (left.length) await assertRefused(await withCookie(context, 'POST', `/api/v1/dead-letters/${left[0].id}/replay`, {}), 'the operator replaying');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- 5. accounts and machine tokens --------------------------------------------------------------

async function users() {
  return (await apiJson(BASE, '/api/v1/users', TOKEN)).users;
}

async function tokens() {
  return (await apiJson(BASE, '/api/v1/tokens', TOKEN)).tokens;
}

test('the coordinator manages accounts on Tilgang: creates one, changes its role, disables, enables, sets a password, unlocks it; its own state is refused', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const username = `ny.${TAG.toLowerCase()}@hol.kommune.no`;
  const password = `nytt-passord-${TAG}`;
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, '#/tilgang');
    await page.locator('#users-table tbody tr').first().waitFor();
    const listed = await users();
    assert.deepEqual((await page.locator('#users-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.username))).sort(),
      listed.map((u) => u.username).sort(), 'every account, as the API lists them');

    // A password that is too short: the API's words.
    await page.locator('#nu-username').fill(username);
    await page.locator('#nu-name').fill('Nora Ny');
    await page.locator('#nu-role').selectOption('municipality');
    await page.locator(`#nu-municipalities input[value="${OWN}"]`).check();
    await page.locator('#nu-password').fill('kort');
    const [short] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/users')),
      page.locator('#nu-submit').click(),
    ]);
    assert.equal(short.status(), 400);
    assert.equal(await page.locator('#nu-error .action-error-message').textContent(), (await short.json()).message);

    // Created.
    await page.locator('#nu-password').fill(password);
    await page.locator('#nu-submit').click();
    await page.locator('#users-done').waitFor();
    await page.locator(`#users-table tr[data-username="${username}"]`).waitFor();
    let u = (await users()).find((x) => x.username === username);
    assert.ok(u, 'the account exists');
    assert.equal(u.role, 'municipality');
    assert.deepEqual(u.municipalities, [OWN]);
    assert.equal(u.name, 'Nora Ny');
    assert.equal(u.password, true);
    await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/users', subjects: [`user=${username}`], status: 201 });

    // Its role: asked first, then changed.
    await page.locator(`button.edit-user[data-username="${username}"]`).click();
    await page.locator('#user-dialog').waitFor({ state: 'visible' });
    await page.locator('#uu-role').selectOption('auditor');
    await page.locator('#uu-role-save').click();
    await answerConfirm(page, true);
    await page.locator('#user-done').waitFor();
    await page.locator('#user-facts[data-role="auditor"]').waitFor();
    u = (await users()).find((x) => x.username === username);
    assert.equal(u.role, 'auditor');
    assert.deepEqual(u.municipalities, []);
    const patch = 'PATCH /api/v1/users/{username}';
    await auditChange({ since, username: COORDINATOR.username, route: patch, subjects: [`username=${username}`, 'role=auditor'], status: 200 });

    // Disabled (asked first), then enabled.
    await page.locator('#uu-disable').click();
    await answerConfirm(page, true);
    await page.locator('#user-facts[data-disabled="true"]').waitFor();
    assert.equal((await users()).find((x) => x.username === username).disabled, true);
    await page.locator(`#users-table tr[data-username="${username}"][data-disabled="true"]`).waitFor();
    await auditChange({ since, username: COORDINATOR.username, route: patch, subjects: [`username=${username}`, 'disabled=true'], status: 200 });
    await page.locator('#uu-enable').click();
    await page.locator('#user-facts[data-disabled="false"]').waitFor();
    assert.equal((await users()).find((x) => x.username === username).disabled, false);
    await auditChange({ since, username: COORDINATOR.username, route: patch, subjects: [`username=${username}`, 'disabled=false'], status: 200 });

    // A new password: the person signs in with it.
    const newPassword = `enda-nyere-passord-${TAG}`;
    await page.locator('#uu-password').fill(newPassword);
    await page.locator('#uu-password-save').click();
    await page.locator('#user-done').filter({ hasText: 'passordet' }).waitFor();
    await auditChange({ since, username: COORDINATOR.username, route: patch, subjects: [`username=${username}`, 'password=changed'], status: 200 });
    {
      const other = await newPage();
      try {
        await signIn(other.page, BASE, { username, password: newPassword });
        await other.page.locator('#who-role').filter({ hasText: 'Revisor' }).waitFor();
      } finally {
        await other.context.close();
      }
    }
    await page.locator('#user-dialog .close-btn').click();

    // Five wrong passwords in a row lock the account; the coordinator unlocks it.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${BASE}/api/session`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password: `feil-passord-${i}-${TAG}` }),
      });
      assert.equal(res.status, 401, `wrong password ${i}`);
    }
    assert.ok((await users()).find((x) => x.username === username).locked_until, 'locked after five wrong passwords');
    await page.reload();
    await page.locator(`#users-table tr[data-username="${username}"][data-locked="true"]`).waitFor();
    await page.locator(`button.edit-user[data-username="${username}"]`).click();
    const beforeUnlock = await auditHead();
    await page.locator('#uu-unlock').click();
    await page.locator('#user-done').filter({ hasText: 'låst opp' }).waitFor();
    assert.equal((await users()).find((x) => x.username === username).locked_until, null, 'unlocked');
    await auditChange({ since: beforeUnlock, username: COORDINATOR.username, route: patch, subjects: [`username=${username}`], status: 200 });
    // The person signs in again (once this client's wait after the wrong passwords is over).
    await eventually('a sign-in after the unlock', async () => {
      const res = await fetch(`${BASE}/api/session`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password: newPassword }),
      });
      if (res.status === 429) await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
      return res.status === 200;
    }, 60_000);
    await page.locator('#user-dialog .close-btn').click();

    // The coordinator's own account: the API refuses changing its state, and the page says so.
    await page.locator(`button.edit-user[data-username="${COORDINATOR.username}"]`).click();
    await page.locator('#uu-self').waitFor();
    await page.locator('#uu-disable').click();
    const [own] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes('/api/v1/users/')),
      answerConfirm(page, true),
    ]);
    assert.equal(own.status(), 403);
    await page.locator('#user-error[data-status="403"]').waitFor();
    assert.equal(await page.locator('#user-error .action-error-message').textContent(), (await own.json()).message);
    assert.equal((await users()).find((x) => x.username === COORDINATOR.username).disabled, false, 'still enabled');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('the coordinator creates a machine token (its secret shown once, copied) and revokes it', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const label = `Browser-test ${TAG}`;
  const { context, page, problems } = await newPage();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ORIGIN });
  try {
    await signIn(page, BASE, COORDINATOR, '#/tilgang');
    await page.locator('#tokens-table tbody tr').first().waitFor();
    assert.deepEqual((await page.locator('#tokens-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.tokenId))).sort(),
      (await tokens()).map((tk) => tk.id).sort(), 'every token, as the API lists them');

    await page.locator('#nt-label').fill(label);
    await page.locator('#nt-role').selectOption('municipality');
    await page.locator(`#nt-municipalities input[value="${OWN}"]`).check();
    await page.locator('#nt-days').fill('30');
    await page.locator('#nt-submit').click();
    const box = page.locator('#token-secret');
    await box.waitFor();
    const secret = await page.locator('#token-secret-value').inputValue();
    assert.match(secret, /^vft_[0-9a-f]{64}$/);
    const id = await box.getAttribute('data-token-id');
    await page.locator('#token-secret-copy').click();
    await page.locator('.copy-said').filter({ hasText: 'Kopiert' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the copy button copies the secret');

    const tk = (await tokens()).find((x) => x.id === id);
    assert.ok(tk, 'the token exists');
    assert.equal(tk.label, label);
    assert.equal(tk.role, 'municipality');
    assert.deepEqual(tk.municipalities, [OWN]);
    const days = (Date.parse(tk.expires_at) - Date.parse(tk.created_at)) / 86_400_000;
    assert.ok(Math.abs(days - 30) < 0.01, `expires in 30 days (${days})`);
    await page.locator(`#tokens-table tr[data-token-id="${id}"]`).waitFor();
    const session = await apiJson(BASE, '/api/v1/session', secret);
    assert.equal(session.role, 'municipality', 'the secret works');
    await auditChange({ since, username: COORDINATOR.username, route: 'POST /api/v1/tokens', subjects: [`label=${label}`], status: 201 });

    // Revoked after confirming: gone from the list, and the secret stops working.
    await page.locator(`#tokens-table tr[data-token-id="${id}"] .revoke-token`).click();
    await answerConfirm(page, true);
    await page.locator('#tokens-done').waitFor();
    assert.equal(await page.locator(`#tokens-table tr[data-token-id="${id}"]`).count(), 0);
    assert.equal(await page.locator('#token-secret').count(), 0, 'the secret is not shown again');
    assert.ok(!(await tokens()).some((x) => x.id === id), 'revoked in the API');
    assert.equal((await apiGet(BASE, '/api/v1/session', secret)).status, 401, 'the secret no longer works');
    await auditChange({ since, username: COORDINATOR.username, route: 'DELETE /api/v1/tokens/{id}', subjects: [`id=${id}`], status: 204 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('the operator manages accounts and tokens from Drift → Tilgang, without reading fleet data', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const username = `drift.ny.${TAG.toLowerCase()}`;
  const label = `Drift-test ${TAG}`;
  const { context, page, problems } = await newPage();
  const requests = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) requests.push({ method: r.request().method(), path: u.pathname, status: r.status() });
  });
  try {
    await signIn(page, BASE, OPERATOR);
    assert.deepEqual(await visibleNav(page), ['drift', 'avviste-meldinger', 'tilgang'], 'the operator\'s menu');
    await page.locator('#drift-access-link').click();
    await page.locator('#users-table tbody tr').first().waitFor();
    // Municipalities as codes: the operator reads no list of them.
    await page.locator('#nu-username').fill(username);
    await page.locator('#nu-role').selectOption('municipality');
    await page.locator('#nu-municipalities-codes').fill(OWN);
    await page.locator('#nu-signin-oidc').check();
    await page.locator('#nu-submit').click();
    await page.locator(`#users-table tr[data-username="${username}"]`).waitFor();
    const u = (await users()).find((x) => x.username === username);
    assert.equal(u?.role, 'municipality');
    assert.deepEqual(u.municipalities, [OWN]);
    assert.equal(u.password, false, 'signs in with the organisation\'s account only');
    await auditChange({ since, username: OPERATOR.username, route: 'POST /api/v1/users', subjects: [`user=${username}`], status: 201 });

    await page.locator('#nt-label').fill(label);
    await page.locator('#nt-role').selectOption('operator');
    await page.locator('#nt-submit').click();
    await page.locator('#token-secret').waitFor();
    const id = await page.locator('#token-secret').getAttribute('data-token-id');
    assert.ok((await tokens()).some((x) => x.id === id && x.label === label && x.role === 'operator'));
    await auditChange({ since, username: OPERATOR.username, route: 'POST /api/v1/tokens', subjects: [`label=${label}`], status: 201 });
    await page.locator(`#tokens-table tr[data-token-id="${id}"] .revoke-token`).click();
    await answerConfirm(page, true);
    await page.locator('#tokens-done').waitFor();
    assert.ok(!(await tokens()).some((x) => x.id === id), 'revoked');
    await auditChange({ since, username: OPERATOR.username, route: 'DELETE /api/v1/tokens/{id}', subjects: [`id=${id}`], status: 204 });

    const fleet = requests.filter((r) => /^\/api\/v1\/(rollups|devices|municipalities|cooperations|imports|reconciliation|audit|months)/.test(r.path));
    assert.deepEqual(fleet.map((r) => r.path), [], 'no fleet data asked for');
    assert.deepEqual(requests.filter((r) => r.status === 403).map((r) => r.path), [], 'nothing refused');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- a municipality user -------------------------------------------------------------------------

test('a municipality user: no upload form, publish button, timeout form or access page, and the API refuses each action', { timeout: TIMEOUT }, async () => {
  const since = await auditHead();
  const { context, page, problems } = await newPage();
  try {
    await signIn(page, BASE, AAL, `#/leverandorbytte?year=${YEAR}`);
    await page.locator('#lb-imports tbody tr, #lb-imports-h ~ .state-empty').first().waitFor();
    assert.equal(await page.locator('#upload-card, #upload-form, #up-file').count(), 0, 'no upload form');
    // The import history is what the API gives this user, no more: the same imports, and no
    // rows left out (their cells name other municipalities' devices).
    const own = await (await context.request.get(`${BASE}/api/v1/imports`)).json();
    const ownByToken = await apiJson(BASE, '/api/v1/imports', ENV.VFT_MUNICIPALITY_TOKEN);
    assert.deepEqual(own.imports.map((i) => i.id), ownByToken.imports.map((i) => i.id));
    const shown = await page.locator('#lb-imports tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      id: Number(tr.dataset.importId), rows: Number(tr.dataset.rows), errors: Number(tr.dataset.errors),
    })));
    assert.deepEqual(shown.map((s) => s.id).sort((a, b) => a - b), own.imports.map((i) => i.id).sort((a, b) => a - b), 'the history shows what the API gives the user');
    for (const s of shown) {
      const i = own.imports.find((x) => x.id === s.id);
      assert.equal(s.rows, i.rows);
      assert.equal(s.errors, i.errors);
    }
    assert.equal(await page.locator('#lb-imports a[href="#/avviste-meldinger"]').count(), 0, 'no way to the rows left out');
    assert.equal((await page.locator('main').textContent()).includes(`BRW${TAG}`), false, 'no uploaded row is shown');
    assert.equal((await context.request.get(`${BASE}/api/v1/imports/errors`)).status(), 403, 'nor given by the API');
    const csv = await context.request.fetch(`${BASE}/api/v1/imports/atea?as_of=${osloToday()}`, {
      method: 'POST', headers: { Origin: ORIGIN, 'Content-Type': 'text/csv' }, data: 'serial,category\n', failOnStatusCode: false,
    });
    await assertRefused(csv, 'an upload');
    const viaToken = await fetch(`${BASE}/api/v1/imports/atea`, {
      method: 'POST', headers: { Authorization: `Bearer ${ENV.VFT_MUNICIPALITY_TOKEN}`, 'Content-Type': 'text/csv' }, body: 'serial\n',
    });
    assert.equal(viaToken.status, 403, 'an upload with the municipality\'s token');

    // Oversikt: the published months are marked, but there is nothing to publish.
    await page.evaluate((y) => { location.hash = `#/oversikt?year=${y}`; }, YEAR);
    await page.locator('#vft-table').waitFor();
    assert.equal(await page.locator('#publish-card, .publish-btn').count(), 0, 'no publish button');
    const published = new Set((await apiJson(BASE, `/api/v1/months?year=${YEAR}`, TOKEN)).items.map((p) => p.month));
    const table = await apiJson(BASE, `/api/v1/rollups/devices?year=${YEAR}`, TOKEN);
    const unpublished = table.months.find((m) => m < osloToday().slice(0, 7) && !published.has(m));
    if (unpublished) {
      await assertRefused(await withCookie(context, 'POST', `/api/v1/months/${unpublished}/publish`, {}), 'publishing a month');
      assert.ok(!(await apiJson(BASE, `/api/v1/months?year=${YEAR}`, TOKEN)).items.some((p) => p.month === unpublished), 'not published');
    }

    // Enheter: a device's detail has no timeout form (the API's answer: the next test).
    await page.evaluate(() => { location.hash = '#/enheter'; });
    const first = page.locator('#device-table tbody tr button[data-device]').first();
    await first.waitFor();
    await first.click();
    await page.locator('#device-history').waitFor();
    assert.equal(await page.locator('#timeout-form, #timeout-hours').count(), 0, 'no timeout form');
    await page.keyboard.press('Escape');

    // No access page, and no accounts or tokens from the API.
    assert.ok(!(await visibleNav(page)).includes('tilgang'), 'no Tilgang in the menu');
    await page.evaluate(() => { location.hash = '#/tilgang'; });
    await page.locator('[data-testid="role-denied"]').waitFor();
    assert.equal(await page.locator('#users-table, #new-user-form, #tokens-table').count(), 0);
    assert.equal((await context.request.get(`${BASE}/api/v1/users`)).status(), 403);
    await assertRefused(await withCookie(context, 'POST', '/api/v1/users', { username: `x.${TAG.toLowerCase()}`, role: 'coordinator' }), 'creating an account');
    await assertRefused(await withCookie(context, 'POST', '/api/v1/tokens', { label: 'x', role: 'coordinator' }), 'creating a token');
    const someToken = (await tokens())[0];
    if (someToken) await assertRefused(await withCookie(context, 'DELETE', `/api/v1/tokens/${someToken.id}`), 'revoking a token');
    const letter = (await deadLetters('false'))[0];
    if (letter) {
      await assertRefused(await withCookie(context, 'POST', `/api/v1/dead-letters/${letter.id}/handled`, {}), 'marking a rejected message handled');
      await assertRefused(await withCookie(context, 'POST', `/api/v1/dead-letters/${letter.id}/replay`, {}), 'replaying a rejected message');
    }

    // None of it changed anything: no change record of this user was allowed through.
    const q = new URLSearchParams({ action: 'change', actor: `user:${AAL.username}`, limit: '100' });
    const changes = (await apiJson(BASE, `/api/v1/audit?${q}`, TOKEN)).records.filter((r) => r.seq > since);
    assert.deepEqual(changes.map((r) => `${r.route} ${r.status}`), [], 'no change by the municipality user');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('the API refuses a municipality user a device\'s timeout, even of its own municipality\'s device', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, AAL, '#/enheter');
    const first = page.locator('#device-table tbody tr button[data-device]').first();
    await first.waitFor();
    const key = await first.getAttribute('data-device');
    const [vendor, device] = key.split('/');
    const path = `/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`;
    const before = (await apiJson(BASE, path, TOKEN)).device;
    assert.equal(before.municipality, OWN, `${key} is the user's own municipality's`);
    // The value it has already, so that nothing changes even if the API let it through.
    const put = await withCookie(context, 'PUT', `${path}/timeout`, { timeout_secs: before.timeout_override_secs });
    await assertRefused(put, `PUT ${path}/timeout by a municipality user`);
    const viaToken = await fetch(`${BASE}${path}/timeout`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ENV.VFT_MUNICIPALITY_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ timeout_secs: before.timeout_override_secs }),
    });
    assert.equal(viaToken.status, 403, `PUT ${path}/timeout with the municipality's token`);
  } finally {
    await context.close();
  }
});
