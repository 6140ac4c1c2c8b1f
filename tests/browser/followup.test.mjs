// What the coordinator follows up with, against the API read with a machine token: the reasons
// behind a month's removals (line for line, and in a device's history), the vendors' service
// level page (every cell, for the region, a municipality and a year not yet over), the downloads
// (the server's file names, an Excel variant of every CSV link with its byte-order mark and
// semicolons), "Avviste meldinger" under its new name and the old link, and the smaller wording
// fixes (one device, the battery reading's age, Responssenter's requirements beside the results).
// Run: see README.md (tests/tests/browser.rs does it against a fresh `vft demo`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { requireEnv, apiJson, signIn, account, accountVars, waitForTable, useBrowser } from './lib.mjs';

const ENV = requireEnv(['VFT_URL', 'VFT_COORDINATOR_TOKEN', 'VFT_MUNICIPALITY_TOKEN', 'VFT_MUNICIPALITY', 'VFT_OTHER_MUNICIPALITY',
  ...accountVars('COORDINATOR', 'MUNICIPALITY')]);
const BASE = ENV.VFT_URL;
const TOKEN = ENV.VFT_COORDINATOR_TOKEN;
const COORDINATOR = account(ENV, 'COORDINATOR');
/** A municipality user of VFT_MUNICIPALITY. */
const AAL = account(ENV, 'MUNICIPALITY');
const YEAR = '2025';
const TIMEOUT = 180_000;

/** The reasons' words: the labels the issue asks for (the figures all come from the API). */
const REASON_NB = {
  returned: 'levert tilbake',
  moved_to_institution: 'flyttet til institusjon',
  deceased: 'død',
  no_longer_needed: 'ikke lenger behov',
  replaced: 'erstattet',
  broken: 'defekt',
  lost: 'tapt',
  other: 'annet',
  not_given: 'ikke oppgitt',
};
const REASON_EN = {
  returned: 'returned',
  moved_to_institution: 'moved to an institution',
  deceased: 'deceased',
  no_longer_needed: 'no longer needed',
  replaced: 'replaced',
  broken: 'broken',
  lost: 'lost',
  other: 'other',
  not_given: 'not given',
};
/** The response centre's standard (the page's figures are checked against it). */
const STANDARD = { within_60s: 0.975, within_180s: 0.99 };

const newPage = useBrowser();

const api = (path) => apiJson(BASE, path, TOKEN);

/** "1 055", "16,8 %", "−44", "+8", "±0" as the page shows them → numbers (and the decimals shown). */
function shownNumber(text) {
  const s = text.replace(/[\s\u00a0\u202f%]/g, '').replace('−', '-').replace('±', '').replace(',', '.');
  assert.match(s, /^[-+]?\d+(\.\d+)?$/, `a number: ${JSON.stringify(text)}`);
  return { value: Number(s), decimals: s.includes('.') ? s.split('.')[1].length : 0 };
}

/** "2026-11": the month it is now in Europe/Oslo. */
function osloMonth() {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Oslo', year: 'numeric', month: '2-digit' }).formatToParts(new Date());
  return `${parts.find((p) => p.type === 'year').value}-${parts.find((p) => p.type === 'month').value}`;
}

/** The file name a response's Content-Disposition gives. */
function dispositionName(headers) {
  const cd = headers['content-disposition'] ?? '';
  const m = /filename="([^"]+)"/.exec(cd);
  assert.ok(m, `a file name in Content-Disposition: ${JSON.stringify(cd)}`);
  return m[1];
}

/**
 * Clicks the download link `selector`: the link carries `download` without a value, the
 * browser saves the file under the server's name (asked again with the page's cookie), and the
 * bytes are returned with that name.
 */
async function downloadFrom(page, selector) {
  const link = page.locator(selector);
  await link.waitFor();
  assert.equal(await link.getAttribute('download'), '', `${selector}: download without a value (the server names the file)`);
  const href = await link.getAttribute('href');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const bytes = await readFile(await download.path());
  const again = await page.context().request.get(`${BASE}${href}`);
  assert.equal(again.status(), 200, `GET ${href}`);
  const serverName = dispositionName(again.headers());
  assert.equal(download.suggestedFilename(), serverName, `${selector}: the browser keeps the server's file name`);
  return { href, bytes, name: serverName, again: Buffer.from(await again.body()) };
}

/** An Excel download: UTF-8 byte-order mark, semicolons, CRLF, and the API's bytes for the same address. */
function assertExcel(file, what, { sameBytes = true } = {}) {
  assert.match(file.href, /format=excel/, `${what}: asks for the Excel variant`);
  assert.ok(file.bytes.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), `${what}: starts with the UTF-8 byte-order mark`);
  const text = file.bytes.toString('utf8').slice(1);
  const header = text.split('\r\n')[0];
  assert.ok(header.includes(';') && !header.includes(','), `${what}: semicolons between the columns: ${header}`);
  assert.ok(text.includes('\r\n'), `${what}: CRLF line ends`);
  if (sameBytes) assert.ok(file.bytes.equals(file.again), `${what}: the download is the API's file`);
}

test('Oversikt: a month\'s removals are explained by their reasons, line for line as the API says, and a device\'s history says why', { timeout: TIMEOUT }, async () => {
  // From the demo: the region's row and month whose removals have the most reasons.
  const table = await api(`/api/v1/rollups/devices?year=${YEAR}`);
  let pick = null;
  for (const [i, month] of table.months.entries()) {
    if (table.total[i] === null) continue;
    const changes = await api(`/api/v1/rollups/devices/changes?month=${month}`);
    for (const row of changes.rows) {
      const removals = row.lines.filter((l) => l.cause === 'decommissioned');
      // The API's own promise: a removal is split by reason, and the lines add up to the row.
      assert.ok(removals.every((l) => l.reason in REASON_NB), `${month} ${row.kind}: every removal has a known reason`);
      assert.equal(row.lines.reduce((s, l) => s + l.delta, 0), row.delta, `${month} ${row.kind}: the lines add up to the change`);
      const reasons = new Set(removals.map((l) => l.reason));
      if (reasons.size >= 2 && (!pick || removals.length > pick.removals)) pick = { month, row, removals: removals.length };
    }
  }
  assert.ok(pick, 'the demo has a month whose removals have two reasons or more');
  const { month, row } = pick;

  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}`);
    await waitForTable(page, YEAR);
    await page.locator(`#vft-table tr[data-kind="${row.kind}"] td[data-month="${month}"] button`).click();
    const block = page.locator(`#change-panel .change-kind[data-kind="${row.kind}"]`);
    await block.waitFor();
    const readLines = () => block.locator('table.change-lines tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      cause: tr.dataset.cause,
      reason: tr.dataset.reason ?? null,
      reasonText: tr.querySelector('td.change-reason')?.textContent ?? null,
      delta: tr.querySelector('td.change-delta').textContent,
      devices: tr.querySelector('details summary').textContent,
    })));
    const shown = await readLines();
    assert.equal(shown.length, row.lines.length, 'one line per line of the API');
    row.lines.forEach((l, i) => {
      const s = shown[i];
      assert.equal(s.cause, l.cause, `line ${i}: cause`);
      assert.equal(s.reason, l.reason ?? null, `line ${i}: reason`);
      assert.equal(s.reasonText, l.reason ? REASON_NB[l.reason] : '', `line ${i}: the reason in words`);
      assert.equal(shownNumber(s.delta).value, l.delta, `line ${i}: change`);
      assert.equal(shownNumber(/\(([^)]+)\)/.exec(s.devices)[1]).value, l.device_count, `line ${i}: devices`);
    });
    // The removals' cause is said once, with their sum.
    const removed = row.lines.filter((l) => l.cause === 'decommissioned');
    const sumText = await block.locator('tr[data-cause="decommissioned"] th.change-cause .sub').textContent();
    assert.equal(shownNumber(sumText.replace(/^[^−+±\d]+/, '')).value, removed.reduce((s, l) => s + l.delta, 0), 'the removals in all');

    // In English too.
    await page.locator('.lang-btn[data-lang="en"]').click();
    await page.locator(`#vft-table tr[data-kind="${row.kind}"] td[data-month="${month}"] button`).click();
    await block.locator('thead th').filter({ hasText: 'Reason' }).waitFor();
    const english = await readLines();
    row.lines.forEach((l, i) => assert.equal(english[i].reasonText, l.reason ? REASON_EN[l.reason] : '', `line ${i}: the reason in English`));
    await page.locator('.lang-btn[data-lang="nb"]').click();

    // A removed device's history shows why, as its history in the API says.
    await page.locator(`#vft-table tr[data-kind="${row.kind}"] td[data-month="${month}"] button`).click();
    await block.locator('thead th').filter({ hasText: 'Grunn' }).waitFor();
    const line = removed.find((l) => l.reason !== 'not_given') ?? removed[0];
    const lineRow = block.locator(`tbody tr[data-cause="decommissioned"][data-reason="${line.reason}"]`);
    await lineRow.locator('details summary').click();
    const { vendor, device } = line.devices[0];
    await lineRow.locator('.device-list a').filter({ hasText: `${vendor}/${device}` }).click();
    await page.locator('#device-history tbody tr').first().waitFor();
    const history = (await api(`/api/v1/devices/${encodeURIComponent(vendor)}/${encodeURIComponent(device)}`)).history;
    const removals = history.filter((e) => e.type === 'decommissioned' && e.device === device);
    assert.ok(removals.length > 0, `${vendor}/${device} has a removal in its history`);
    assert.ok(removals.some((e) => (e.reason ?? 'not_given') === line.reason), `the history has the line's reason ${line.reason}`);
    for (const e of removals) {
      const cell = page.locator(`#device-history tbody tr[data-id="${e.id}"] .event-reason`);
      assert.equal(await cell.getAttribute('data-reason'), e.reason ?? 'not_given', `event ${e.id}: reason`);
      assert.equal(await cell.textContent(), `grunn: ${REASON_NB[e.reason ?? 'not_given']}`, `event ${e.id}: the reason in words`);
    }
  } finally {
    await context.close();
  }
});

/** The vendor page's cells: {metric: {vendor: {month: {text, value, cls}}}}. */
async function readVendorTable(page) {
  return page.locator('#vs-table').evaluate((table) => {
    const out = {};
    for (const tbody of table.querySelectorAll('tbody[data-metric]')) {
      const metric = {};
      for (const tr of tbody.querySelectorAll('tr[data-vendor]')) {
        const cells = {};
        for (const td of tr.querySelectorAll('td[data-month]')) {
          const v = td.querySelector('.v');
          const visible = [...td.childNodes].filter((n) => !(n.classList?.contains('sr-only'))).map((n) => n.textContent).join('').trim();
          cells[td.dataset.month] = { value: v ? v.textContent : null, visible, future: td.classList.contains('future'), ok: td.classList.contains('ok'), bad: td.classList.contains('bad') };
        }
        metric[tr.dataset.vendor] = cells;
      }
      out[tbody.dataset.metric] = metric;
    }
    return out;
  });
}

/** Every cell of the page against the API's answers for the months that have begun. */
function assertSameService(shown, answers, months) {
  const METRICS = ['devices', 'availability', 'hours_without_contact', 'faults', 'alarms', 'share_within_60s', 'share_within_180s'];
  assert.deepEqual(Object.keys(shown), METRICS, 'the figures, in order');
  const vendors = [...new Set(Object.values(answers).flatMap((a) => a.rows.map((r) => r.vendor)))].sort();
  let compared = 0;
  for (const metric of METRICS) {
    assert.deepEqual(Object.keys(shown[metric]), vendors, `${metric}: one row per vendor`);
    for (const vendor of vendors) {
      assert.deepEqual(Object.keys(shown[metric][vendor]), months, `${metric} ${vendor}: one cell per month`);
      for (const month of months) {
        const cell = shown[metric][vendor][month];
        const where = `${metric}, ${vendor}, ${month}`;
        if (!answers[month]) {
          assert.ok(cell.future && cell.visible === '', `${where}: blank (the month has not begun)`);
          continue;
        }
        const row = answers[month].rows.find((r) => r.vendor === vendor);
        const want = row ? row[metric] : null;
        if (want === null || want === undefined) {
          assert.equal(cell.visible, '–', `${where}: no figure`);
          continue;
        }
        assert.ok(cell.value !== null, `${where}: a figure (${cell.visible})`);
        const got = shownNumber(cell.value);
        if (metric === 'availability' || metric.startsWith('share_')) {
          const tolerance = 0.5 * 10 ** -(got.decimals + 2) + 1e-12;
          assert.ok(Math.abs(got.value / 100 - want) <= tolerance, `${where}: ${cell.value} for ${want}`);
        } else if (metric === 'hours_without_contact') {
          assert.equal(got.value, Math.round(want), `${where}: ${cell.value} for ${want}`);
        } else {
          assert.equal(got.value, want, `${where}`);
        }
        if (metric.startsWith('share_')) {
          const requirement = metric === 'share_within_60s' ? STANDARD.within_60s : STANDARD.within_180s;
          assert.equal(cell.ok, want >= requirement, `${where}: marked as meeting the requirement`);
          assert.equal(cell.bad, want < requirement, `${where}: marked as below the requirement`);
        }
        compared++;
      }
    }
  }
  return compared;
}

/** The API's answers for the months of `year` that have begun, asked with `token`. */
async function serviceAnswers(year, municipality, token = TOKEN) {
  const now = osloMonth();
  const months = Array.from({ length: 12 }, (_, i) => `${year}-${String(i + 1).padStart(2, '0')}`);
  const answers = {};
  for (const m of months.filter((x) => x <= now)) {
    answers[m] = await apiJson(BASE, `/api/v1/rollups/vendor-service?month=${m}${municipality ? `&municipality=${municipality}` : ''}`, token);
  }
  return { months, answers };
}

test('Leverandører: every cell equals the API month by month, for the region, a municipality and a year not yet over', { timeout: TIMEOUT }, async () => {
  const who = await api('/api/v1/session');
  const dataYear = new Intl.DateTimeFormat('en', { timeZone: 'Europe/Oslo', year: 'numeric' }).format(new Date(who.latest_activity));
  const { context, page } = await newPage();
  try {
    // Without a year in the address: the year of the newest data.
    await signIn(page, BASE, COORDINATOR, '#/leverandorer');
    await page.locator('#vs-table caption').filter({ hasText: dataYear }).waitFor();
    assert.equal(await page.locator('#f-year').inputValue(), dataYear);
    assert.equal(await page.locator('#mainnav a[aria-current="page"]').textContent(), 'Leverandører');

    const region = await serviceAnswers(dataYear);
    const withRows = Object.values(region.answers).filter((a) => a.rows.length > 0).length;
    assert.ok(withRows >= 2, `the demo has vendor figures in at least two months of ${dataYear} (${withRows})`);
    const compared = assertSameService(await readVendorTable(page), region.answers, region.months);
    assert.ok(compared > 0, 'figures were compared');

    // One municipality, picked on the page.
    await page.locator('#f-municipality').selectOption(ENV.VFT_MUNICIPALITY);
    await page.locator('#vs-table caption').filter({ hasText: `(${ENV.VFT_MUNICIPALITY})` }).waitFor();
    const one = await serviceAnswers(dataYear, ENV.VFT_MUNICIPALITY);
    assertSameService(await readVendorTable(page), one.answers, one.months);

    // The year it is now: the months that have not begun are blank, the others the API's.
    const thisYear = osloMonth().slice(0, 4);
    if (thisYear !== dataYear) {
      await page.locator('#f-year').selectOption(thisYear);
      await page.locator('#vs-table caption').filter({ hasText: thisYear }).waitFor();
      const now = await serviceAnswers(thisYear, ENV.VFT_MUNICIPALITY);
      assertSameService(await readVendorTable(page), now.answers, now.months);
    }
  } finally {
    await context.close();
  }
});

test('Leverandører for a municipality user: its own municipality as the API gives it, another one refused', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  const other = ENV.VFT_OTHER_MUNICIPALITY;
  const otherAnswers = [];
  page.on('response', (r) => {
    if (r.url().includes('/vendor-service') && r.url().includes(`municipality=${other}`)) otherAnswers.push(r.status());
  });
  try {
    await signIn(page, BASE, AAL, `#/leverandorer?year=${YEAR}`);
    await page.locator('#vs-table caption').filter({ hasText: `(${ENV.VFT_MUNICIPALITY})` }).waitFor();
    const options = await page.locator('#f-municipality option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(options, [ENV.VFT_MUNICIPALITY], 'only its own municipality');
    // What the API gives the municipality's own token (its alarms from its own events).
    const own = await serviceAnswers(YEAR, ENV.VFT_MUNICIPALITY, ENV.VFT_MUNICIPALITY_TOKEN);
    assertSameService(await readVendorTable(page), own.answers, own.months);

    await page.evaluate(([y, m]) => { location.hash = `#/leverandorer?year=${y}&municipality=${m}`; }, [YEAR, other]);
    await page.locator('[data-testid="access-denied"]').waitFor();
    assert.equal(await page.locator('#vs-table, #vs-csv, canvas').count(), 0, 'no figures, files or charts');
    assert.ok(otherAnswers.length > 0 && otherAnswers.every((st) => st === 403), `the server answered ${otherAnswers} for ${other}`);
  } finally {
    await context.close();
  }
});

test('downloads: the server names every file, and each CSV link has an Excel variant with a byte-order mark and semicolons', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    // Oversikt: the table as CSV and for Excel, byte for byte the API's.
    await signIn(page, BASE, COORDINATOR, `#/oversikt?year=${YEAR}&municipality=${ENV.VFT_MUNICIPALITY}`);
    await waitForTable(page, `(${ENV.VFT_MUNICIPALITY})`);
    const csv = await downloadFrom(page, '#download-csv');
    assert.ok(csv.bytes.equals(csv.again), 'the CSV download is the API\'s file');
    assert.match(csv.name, new RegExp(`^vft-tabell-${YEAR}-${ENV.VFT_MUNICIPALITY}-\\d{4}-\\d{2}-\\d{2}\\.csv$`), 'names the table, year, municipality and date');
    assert.notEqual(csv.bytes[0], 0xef, 'the plain CSV has no byte-order mark');
    const excel = await downloadFrom(page, '#download-excel');
    assertExcel(excel, 'Oversikt');
    // The same figures: the Excel file is the CSV with semicolons.
    const rows = (b, sep) => b.toString('utf8').replace(/^\ufeff/, '').trim().split(/\r?\n/).map((l) => l.split(sep));
    assert.deepEqual(rows(excel.bytes, ';'), rows(csv.bytes, ','), 'the Excel file has the CSV\'s cells');

    // Leverandører: one month, the latest by default, another when picked.
    await page.locator('#mainnav a[data-route="leverandorer"]').click();
    await page.locator('#vs-table').waitFor();
    const months = await page.locator('#vs-month option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(months.length >= 2, 'months to pick from');
    const latest = await downloadFrom(page, '#vs-excel');
    assertExcel(latest, 'Leverandører');
    assert.match(latest.href, new RegExp(`month=${months[0]}`), 'the latest month by default');
    await page.locator('#vs-month').selectOption(months[1]);
    const picked = await downloadFrom(page, '#vs-csv');
    assert.match(picked.href, new RegExp(`month=${months[1]}`), 'the month picked');
    assert.ok(picked.name.includes(months[1]), `the file is named by its month: ${picked.name}`);
    assert.ok(picked.bytes.equals(picked.again), 'the CSV download is the API\'s file');

    // Enheter, Leverandørbytte and Revisjonslogg: the CSV and Excel links name no file themselves.
    await page.locator('#mainnav a[data-route="enheter"]').click();
    await page.locator('#device-table').waitFor();
    await downloadFrom(page, '#enheter-csv');
    assertExcel(await downloadFrom(page, '#enheter-excel'), 'Enheter');

    await page.locator('#mainnav a[data-route="leverandorbytte"]').click();
    await downloadFrom(page, '#lb-csv');
    assertExcel(await downloadFrom(page, '#lb-excel'), 'Leverandørbytte');

    await page.locator('#mainnav a[data-route="revisjonslogg"]').click();
    await page.locator('#audit-table').waitFor();
    await downloadFrom(page, '#audit-csv');
    // Every request adds to the audit log, so its file is not the same twice.
    assertExcel(await downloadFrom(page, '#audit-excel'), 'Revisjonslogg', { sameBytes: false });
  } finally {
    await context.close();
  }
});

test('"Avviste meldinger" (once "Avvik"): under its new name, from the old link, and in English', { timeout: TIMEOUT }, async () => {
  const { context, page } = await newPage();
  try {
    // A bookmark of the old page, before signing in, leads to the page under its new name.
    await signIn(page, BASE, COORDINATOR, '#/avvik');
    await page.waitForFunction(() => location.hash === '#/avviste-meldinger');
    await page.locator('h1').filter({ hasText: 'Avviste meldinger' }).waitFor();
    await page.locator('#dead-letters tbody tr').first().waitFor();
    const nav = await page.locator('#mainnav a[data-route]').evaluateAll((as) => as.map((a) => a.textContent));
    assert.ok(nav.includes('Avviste meldinger'), `the menu: ${nav}`);
    assert.ok(!nav.some((x) => /avvik/i.test(x)), `no "Avvik" in the menu: ${nav}`);
    assert.equal(await page.locator('#mainnav a[aria-current="page"]').getAttribute('data-route'), 'avviste-meldinger');

    // The old link inside a session.
    await page.locator('#mainnav a[data-route="oversikt"]').click();
    await page.locator('#vft-table').waitFor();
    await page.evaluate(() => { location.hash = '#/avvik'; });
    await page.waitForFunction(() => location.hash === '#/avviste-meldinger');
    await page.locator('#dead-letters tbody tr').first().waitFor();
    const api = await apiJson(BASE, '/api/v1/dead-letters?handled=false&limit=50', TOKEN);
    assert.equal(await page.locator('#dead-letters tbody tr').count(), api.items.length, 'every open dead letter of the first page');
    assert.equal(await page.getByText(/\bAvvik\b/).count(), 0, 'the word "Avvik" is nowhere on the page');

    await page.locator('.lang-btn[data-lang="en"]').click();
    await page.locator('h1').filter({ hasText: 'Rejected messages' }).waitFor();
    await page.locator('#mainnav a[data-route="avviste-meldinger"]').filter({ hasText: 'Rejected messages' }).waitFor();
    assert.equal(await page.getByText(/Deviation/).count(), 0, 'no "Deviations"');
    await page.locator('.lang-btn[data-lang="nb"]').click();
  } finally {
    await context.close();
  }
});

test('Enheter: one device is "1 enhet", and a battery level says how old its reading is', { timeout: TIMEOUT }, async () => {
  // A device the search finds alone, with a battery reading.
  const list = await api('/api/v1/devices?in_service=true&limit=200');
  let found = null;
  for (const d of list.items.filter((x) => x.battery !== null && x.battery_at)) {
    const alone = await api(`/api/v1/devices?in_service=true&q=${encodeURIComponent(d.device)}`);
    if (alone.items.length === 1) {
      found = alone.items[0];
      break;
    }
  }
  assert.ok(found, 'a device with a battery reading that a search finds alone');
  const key = `${found.vendor}/${found.device}`;
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/enheter?q=${encodeURIComponent(found.device)}`);
    await page.locator('#device-table').waitFor();
    assert.equal(await page.locator('#page-info').textContent(), 'Viser 1 enhet');
    const battery = page.locator(`#device-table tr[data-device="${key}"] td.num`);
    assert.equal(shownNumber((await battery.textContent()).split('(')[0]).value, found.battery, 'the level');
    assert.equal(await battery.locator('time').getAttribute('datetime'), found.battery_at, 'the reading\'s time');
    // Every past wording of Intl.RelativeTimeFormat (numeric: 'auto') at the units fmtAgo
    // uses: "i forgårs" is two days ago (a reading that age failed CI on 2026-11-29).
    assert.match(await battery.locator('time').textContent(), /siden|i går|i forgårs|i dag|nå|dette minuttet|forrige|i fjor/, 'how long ago, in words');

    await page.locator('.lang-btn[data-lang="en"]').click();
    await page.locator('#page-info').filter({ hasText: 'Showing 1 device' }).waitFor();
    assert.equal(await page.locator('#page-info').textContent(), 'Showing 1 device');
    assert.match(await page.locator(`#device-table tr[data-device="${key}"] td.num time`).textContent(), /ago|yesterday|today|now|this minute|last/);
    await page.locator('.lang-btn[data-lang="nb"]').click();
  } finally {
    await context.close();
  }
});

test('Responssenter: 97,5 % and 99,0 % are marked as requirements, with the year\'s results beside them', { timeout: TIMEOUT }, async () => {
  const data = await api(`/api/v1/rollups/response-centre?year=${YEAR}`);
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/responssenter?year=${YEAR}`);
    await page.locator('#rs-table').waitFor();
    for (const [secs, shareKey, meetsKey, requirement] of [[60, 'share_within_60s', 'meets_60s', data.standard.within_60s], [180, 'share_within_180s', 'meets_180s', data.standard.within_180s]]) {
      const kpi = page.locator(`#rs-kpi-${secs}`);
      const req = shownNumber(await page.locator(`#rs-req-${secs}`).textContent());
      assert.ok(Math.abs(req.value / 100 - requirement) < 1e-9, `${secs} s: the requirement ${req.value}`);
      assert.equal(await kpi.locator('.kpi-req .kpi-label').textContent(), 'krav', `${secs} s: said to be the requirement`);
      // The year's result: the alarms answered in time out of the year's alarms.
      const counted = data.months.filter((m) => m[shareKey] !== null && m.triggered > 0);
      const alarms = counted.reduce((s, m) => s + m.triggered, 0);
      const within = counted.reduce((s, m) => s + Math.round(m[shareKey] * m.triggered), 0);
      const result = shownNumber(await page.locator(`#rs-result-${secs}`).textContent());
      assert.ok(Math.abs(result.value / 100 - within / alarms) <= 0.5 * 10 ** -(result.decimals + 2) + 1e-12, `${secs} s: result ${result.value} for ${within}/${alarms}`);
      assert.match(await kpi.locator('.kpi-result .kpi-label').textContent(), new RegExp(`^resultat ${YEAR}`));
      const met = counted.filter((m) => m[meetsKey]).length;
      assert.equal(await page.locator(`#rs-met-${secs}`).textContent(), `kravet nådd i ${met} av ${counted.length} måneder med alarmer`);
    }
  } finally {
    await context.close();
  }
});

test('Responssenter: a month\'s never-answered alarms open as a list, the same alarms the API names', { timeout: TIMEOUT }, async () => {
  const data = await api(`/api/v1/rollups/response-centre?year=${YEAR}`);
  const month = data.months.find((m) => m.never_acknowledged > 0);
  assert.ok(month, 'the demo has a month with unanswered alarms');
  const listed = await api(`/api/v1/rollups/response-centre/unanswered?month=${month.month}`);
  assert.equal(listed.alarms.length, month.never_acknowledged, 'the list has as many as the count');
  const { context, page } = await newPage();
  try {
    await signIn(page, BASE, COORDINATOR, `#/responssenter?year=${YEAR}`);
    await page.locator(`#rs-table button.unanswered-open[data-month="${month.month}"]`).click();
    await page.locator('#rs-unanswered-table').waitFor();
    const shown = await page.locator('#rs-unanswered-table tbody tr').evaluateAll((rows) => rows.map((r) => `${r.dataset.alarm}/${r.dataset.device}`));
    assert.deepEqual(shown, listed.alarms.map((a) => `${a.alarm}/${a.device}`));
  } finally {
    await context.close();
  }
});
