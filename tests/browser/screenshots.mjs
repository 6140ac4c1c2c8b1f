// Saves a PNG of each dashboard page into docs/screenshots/ (run by scripts/screenshots, which
// starts a demo). Env: VFT_URL, VFT_COORDINATOR_USER and VFT_COORDINATOR_PASSWORD (the demo's
// coordinator account); optional SCREENSHOT_DIR, SCREENSHOT_YEAR.

import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireEnv, launch, signIn, account, accountVars } from './lib.mjs';

const ENV = requireEnv(['VFT_URL', ...accountVars('COORDINATOR')]);
const here = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(process.env.SCREENSHOT_DIR || resolve(here, '../../docs/screenshots'));
const YEAR = process.env.SCREENSHOT_YEAR || '2025';

const SHOTS = [
  { name: 'oversikt', hash: `#/oversikt?year=${YEAR}`, ready: '#vft-table', after: async (page) => {
    // Show the attribution of one cell, as a coordinator would look at it.
    await page.locator('#vft-table tr[data-kind="safety_alarm"] td[data-month$="-03"] button').click();
    await page.locator('#change-panel .change-kind').waitFor();
  } },
  { name: 'enheter', hash: '#/enheter', ready: '#device-table', fullPage: false },
  { name: 'enheter-enhet', hash: '#/enheter', ready: '#device-table', after: async (page) => {
    await page.locator('#device-table button[data-device]').first().click();
    await page.locator('#device-history').waitFor();
  }, fullPage: false },
  { name: 'responssenter', hash: `#/responssenter?year=${YEAR}`, ready: '#rs-table' },
  { name: 'leverandorer', hash: `#/leverandorer?year=${YEAR}`, ready: '#vs-table' },
  { name: 'leverandorbytte', hash: `#/leverandorbytte?year=${YEAR}`, ready: '#lb-imports-h', after: async (page) => {
    // A small class opened, to show the lists behind the counts.
    await page.locator('details.recon-class[data-class="double"] summary').click();
  } },
  // The file keeps its old name (the README shows it); the page is "Avviste meldinger" now.
  { name: 'avvik', hash: '#/avviste-meldinger', ready: '#avviste-dead-h' },
  { name: 'revisjonslogg', hash: '#/revisjonslogg', ready: '#audit-table' },
];

async function settle(page) {
  await page.waitForFunction(() => document.querySelectorAll('.state-loading').length === 0);
  // Fonts and charts are drawn synchronously (no animation); wait a frame for layout.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

const browser = await launch();
try {
  await mkdir(OUT, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, deviceScaleFactor: 1, locale: 'nb-NO', timezoneId: 'Europe/Oslo' });
  const page = await context.newPage();
  page.setDefaultTimeout(120_000);
  await signIn(page, ENV.VFT_URL, account(ENV, 'COORDINATOR'), SHOTS[0].hash);
  for (const shot of SHOTS) {
    await page.goto(`${ENV.VFT_URL}/${shot.hash}`);
    await page.locator(shot.ready).first().waitFor();
    await settle(page);
    if (shot.after) {
      await shot.after(page);
      await settle(page);
    }
    const path = resolve(OUT, `${shot.name}.png`);
    await page.screenshot({ path, fullPage: shot.fullPage ?? true });
    console.log(`screenshot: ${path}`);
  }
  // The overview in English, on a tablet (768 px wide).
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.locator('.lang-btn[data-lang="en"]').click();
  await page.goto(`${ENV.VFT_URL}/#/oversikt?year=${YEAR}&municipality=3328`);
  await page.locator('#vft-table caption').filter({ hasText: 'Devices in service' }).waitFor();
  await settle(page);
  const tablet = resolve(OUT, 'oversikt-en-tablet.png');
  await page.screenshot({ path: tablet, fullPage: false });
  console.log(`screenshot: ${tablet}`);
  await page.locator('.lang-btn[data-lang="nb"]').click();
  await context.close();
} finally {
  await browser.close();
}
