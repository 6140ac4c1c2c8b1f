// Varsler in the dashboard (issue 12 item 2): the coordinator makes a rule for Ål through the
// page, its incidents appear in the history with their notices' delivery (the demo has no SMTP
// server, so e-mails wait), and the change is in the audit log; Ål's user sees Ål's rule and
// not the region's, and deletes it after confirming. Checked against the API with tokens.
// Run: see README.md (tests/tests/browser.rs does it against a fresh `vft demo`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireEnv, apiJson, signIn, account, accountVars, useBrowser } from './lib.mjs';

const ENV = requireEnv(['VFT_URL', 'VFT_COORDINATOR_TOKEN', 'VFT_MUNICIPALITY_TOKEN', 'VFT_MUNICIPALITY',
  ...accountVars('COORDINATOR', 'MUNICIPALITY')]);
const BASE = ENV.VFT_URL;
const TOKEN = ENV.VFT_COORDINATOR_TOKEN;
const OWN = ENV.VFT_MUNICIPALITY;
const TIMEOUT = 180_000;
const newPage = useBrowser();

async function eventually(what, check, ms = 60_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function post(path, token, body) {
  const res = await fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `${path}: ${text}`);
  return JSON.parse(text);
}

test('the coordinator makes a rule on Varsler; its incidents and their delivery show; Ål sees and deletes only its own rule', { timeout: TIMEOUT }, async () => {
  // A region rule made through the API: Ål's user must not see it.
  const region = await post('/api/v1/notification-rules', TOKEN, { kind: 'gateway_silent', emails: ['koordinator@region.test.no'] });

  const { context, page } = await newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page, BASE, account(ENV, 'COORDINATOR'), '#/varsler');
  await page.locator('#new-rule-form').waitFor();
  // Every Ål device whose battery is below 100 %: the demo's live fleet has many.
  await page.locator('#nr-kind').selectOption('battery_low');
  await page.locator('#nr-municipality').selectOption(OWN);
  await page.locator('#nr-threshold').fill('100');
  await page.locator('#nr-emails').fill('helse@aal.test.no, vakt@aal.test.no');
  await page.locator('#nr-submit').click();
  await page.locator('#rules-done').waitFor();
  const rules = await apiJson(BASE, '/api/v1/notification-rules', TOKEN);
  const made = rules.items.find((r) => r.kind === 'battery_low' && r.municipality === OWN);
  assert.ok(made, JSON.stringify(rules));
  assert.equal(made.threshold, 100, 'percent');
  assert.deepEqual(made.emails, ['helse@aal.test.no', 'vakt@aal.test.no']);
  assert.equal(made.created_by, `user:${account(ENV, 'COORDINATOR').username}`);
  assert.ok(await page.locator(`#rules-table tr[data-rule="${made.id}"]`).isVisible());

  // The change is in the audit log, by the person.
  const audit = await apiJson(BASE, `/api/v1/audit?action=change&actor=${encodeURIComponent(made.created_by)}&limit=50`, TOKEN);
  assert.ok(audit.records.some((r) => r.route === 'POST /api/v1/notification-rules' && r.subjects.includes(`rule=${made.id}`)), JSON.stringify(audit.records.slice(0, 3)));

  // The demo's Ål devices with a battery below 100 % become incidents; without SMTP, e-mails wait.
  const incidents = await eventually('incidents of the new rule', async () => {
    const list = await apiJson(BASE, '/api/v1/incidents?limit=500', TOKEN);
    const mine = list.items.filter((i) => i.rule_id === made.id);
    return mine.length ? mine : null;
  });
  assert.ok(incidents.every((i) => i.municipality === OWN && i.subject.startsWith('device:')));
  await page.locator('#incidents-open').check();
  const row = page.locator(`#incidents-table tr[data-incident="${incidents[0].id}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-state'), 'open');
  assert.ok((await row.locator('.notice[data-channel="email"]').count()) >= 1);
  await context.close();

  // Ål's user: Ål's rule, not the region's; deletes it after confirming.
  const aal = await newPage();
  await signIn(aal.page, BASE, account(ENV, 'MUNICIPALITY'), '#/varsler');
  await aal.page.locator(`#rules-table tr[data-rule="${made.id}"]`).waitFor();
  assert.equal(await aal.page.locator(`#rules-table tr[data-rule="${region.id}"]`).count(), 0, 'the region rule is not Ål\'s');
  const shown = await aal.page.locator('#incidents-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.subject));
  assert.ok(shown.length > 0);
  await aal.page.locator(`#rules-table tr[data-rule="${made.id}"] .delete-rule`).click();
  await aal.page.locator('#confirm-ok').click();
  await aal.page.locator('#rules-done').waitFor();
  const after = await apiJson(BASE, '/api/v1/notification-rules', TOKEN);
  assert.ok(!after.items.some((r) => r.id === made.id), 'deleted');
  assert.ok(after.items.some((r) => r.id === region.id), 'the region rule stays');
  await aal.context.close();
  assert.deepEqual(errors, []);
});
