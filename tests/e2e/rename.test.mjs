// End-to-end (issue 13): renaming a run after its activation spectra and
// Figures 3–5 are computed renames it everywhere at once — Figure 1 (on its
// default source, K on the eval batch), Figure 2, Figure 3, the run pickers,
// the legends, the exports and the study report — with nothing recomputed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory, settled } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

const download = async (page, selector) => {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  return fs.readFileSync(await d.path(), 'utf8');
};

test('a rename after activation spectra and Figures 3–5 shows at once everywhere, with no recompute', { timeout: 600_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const run of ['A1', 'A2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await settled(page);
  await page.waitForFunction(() => /K = W_k·X on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''));
  // Figures 3–5, small: one seed, fractions 0 and 50%.
  await page.fill('#study-seeds', '1');
  await page.dispatchEvent('#study-seeds', 'change');
  await page.fill('#study-step', '50');
  await page.dispatchEvent('#study-step', 'change');
  await page.click('#compute-study');
  await page.waitForSelector('#figure-layers[data-series="2"] canvas', { timeout: 300_000 });
  await page.waitForFunction(() => !document.querySelector('#study-progress'), null, { timeout: 300_000 });
  const runner = await page.$eval('#spectra-runner', (p) => p.textContent);

  // Any analysis starting from here on would show its progress panel.
  await page.evaluate(() => {
    window.__recomputed = false;
    new MutationObserver(() => {
      if (document.querySelector('#spectra-progress, #study-progress')) window.__recomputed = true;
    }).observe(document.body, { subtree: true, childList: true });
  });
  await page.fill('#runs li.run[data-run="A1"] input.run-name', 'A1-qknorm');
  await page.press('#runs li.run[data-run="A1"] input.run-name', 'Enter');
  // At once: no waiting for workers.
  await page.waitForFunction(() => document.querySelector('#figure-trajectory')?.dataset.seriesNames === 'A1-qknorm, A2', null, { timeout: 3_000 });
  assert.match(await page.$eval('#figure-trajectory figcaption', (c) => c.textContent), /K = W_k·X on the eval batch/, 'Figure 1 keeps its source');
  assert.equal(await page.$eval('#figure-waterfall', (f) => f.dataset.seriesNames), 'A1-qknorm, A2');
  assert.equal(await page.$eval('#figure-layers', (f) => f.dataset.seriesNames), 'A1-qknorm, A2');
  assert.deepEqual(await page.$$eval('#study-run option', (o) => o.map((x) => x.textContent)), ['A1-qknorm', 'A2']);
  assert.match(await page.$eval('#figure-surgery', (f) => f.dataset.seriesNames), /SVD/);
  assert.deepEqual(await page.$$eval('#figure-trajectory-runs .run-toggle', (l) => l.map((x) => x.textContent.trim())), ['A1-qknorm', 'A2']);
  // The exports carry the new name and not the old one.
  const csv = await download(page, '#figure-trajectory .export-csv');
  assert.match(csv, /^A1-qknorm,/m);
  assert.doesNotMatch(csv, /^A1,/m);
  assert.match(await download(page, '#figure-trajectory .export-svg'), /A1-qknorm/);
  assert.match(await download(page, '#figure-layers .export-csv'), /^A1-qknorm,/m);

  // A hidden run stays hidden under its new name.
  await page.click('#figure-trajectory-runs summary');
  await page.click('#figure-trajectory-runs .run-toggle[data-run="A2"] input');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory')?.dataset.seriesNames === 'A1-qknorm');
  await page.fill('#runs li.run[data-run="A2"] input.run-name', 'A2-plain');
  await page.press('#runs li.run[data-run="A2"] input.run-name', 'Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('#figure-trajectory-runs .run-toggle')].some((l) => l.textContent.trim() === 'A2-plain'), null, { timeout: 3_000 });
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1-qknorm');
  assert.equal(await page.$eval('#figure-trajectory-runs .run-toggle[data-run="A2-plain"] input', (i) => i.checked), false);
  assert.equal(await page.$eval('#figure-waterfall', (f) => f.dataset.seriesNames), 'A1-qknorm, A2-plain', "Figure 2's runs are its own");

  // The study report (issue 14) holds all five figures and the surgery verdict, under the new
  // names, and says which run Figure 1 leaves out; writing it recomputes nothing.
  const reports = [];
  page.on('download', (d) => reports.push(d));
  await page.click('#download-report');
  await page.waitForFunction(() => document.querySelector('#report-saved, #report-error'), null, { timeout: 60_000 });
  assert.equal(await page.$('#report-error'), null);
  for (let i = 0; i < 100 && reports.length < 2; i++) await page.waitForTimeout(100);
  const html = fs.readFileSync(await reports.find((d) => d.suggestedFilename() === 'report.html').path(), 'utf8');
  const md = fs.readFileSync(await reports.find((d) => d.suggestedFilename() === 'report.md').path(), 'utf8');
  assert.equal((html.match(/<figure id="figure-\d">\n<h3>[^<]*<\/h3>\n<svg/g) ?? []).length, 5, 'Figures 1–5 drawn inline');
  assert.equal((md.match(/data:image\/svg\+xml;base64,/g) ?? []).length, 5);
  assert.match(html, /<table id="surgery-table">/);
  assert.match(html, /<tr id="surgery-verdict">/);
  assert.doesNotMatch(html, /Surgery verdict: not computed/);
  assert.match(html, /A1-qknorm/);
  assert.match(html, /Figure 1 draws A1-qknorm of the 2 runs; not drawn there: A2-plain\./);

  await page.waitForTimeout(1000);
  assert.equal(await page.evaluate(() => window.__recomputed), false, 'nothing was recomputed');
  assert.equal(await page.$eval('#spectra-runner', (p) => p.textContent), runner);
  assert.deepEqual(errors, []);
});
