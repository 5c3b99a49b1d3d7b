// End-to-end: how a figure is looked at. Log x / log y toggles redraw the
// figure and reach its exports; dragging on the canvas zooms (double-click
// resets); with the canvas focused the arrow keys move the readout from
// point to point; twelve runs in Figure 1 get twelve colours, markers and
// dashes (screenshots, light and dark, go to $SCREENS_DIR, default
// tests/e2e/out); the ESD panel shows a weight matrix's spectral density and
// says why a 16-value head has no power-law fit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');
const screens = process.env.SCREENS_DIR || path.join(here, 'out');
fs.mkdirSync(screens, { recursive: true });

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** The twelve runs' results.json files: six runs, four replicates and the user's own two. */
const RESULTS = [
  ...['A1', 'A2', 'B1', 'B2', 'C1', 'C2'].map((r) => `runs/${r}/results.json`),
  ...['A1_seed43', 'A1_seed44', 'A2_seed43', 'A2_seed44'].map((r) => `replicates/runs/${r}/results.json`),
  'logs/user-study/QK_results.json', 'logs/user-study/NoQK_results.json',
];

async function dropResults(page) {
  await dropFiles(page, RESULTS.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, RESULTS.length);
  await page.waitForSelector('#figure-trajectory canvas', { timeout: 60_000 });
  // The plan's runs (A1, A2, B1, B2) open by default: tick the others in Figure 1's picker.
  await page.click('#figure-trajectory-runs summary');
  for (const box of await page.$$('#figure-trajectory-runs .run-toggle input:not(:checked)')) await box.check();
}

/** A hash of the canvas's pixels: changes when the drawing does. */
const pixels = (page, id) => page.$eval(`#${id} canvas`, (c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0;
  return h;
});
const caption = (page, id) => page.$eval(`#${id} figcaption`, (c) => c.textContent);

test('Figure 1 of twelve runs: log toggles, drag-zoom, double-click reset, keyboard readout', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  await dropResults(page);
  const n = await page.$eval('#figure-trajectory', (f) => Number(f.dataset.series));
  assert.ok(n >= 12, `Figure 1 draws ${n} series`);
  await page.$eval('#figure-trajectory', (f) => f.scrollIntoView());
  await page.screenshot({ path: path.join(screens, 'figure1-12runs-light.png'), clip: await page.$eval('#figure-trajectory canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height }; }), fullPage: true });

  // Log toggles: both exist on Figure 1 and redraw it.
  const before = await pixels(page, 'figure-trajectory');
  assert.equal(await page.isChecked('#figure-trajectory-log-x'), false);
  await page.click('#figure-trajectory-log-x');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory-log-x').checked);
  const logged = await pixels(page, 'figure-trajectory');
  assert.notEqual(logged, before, 'log x redraws the figure');
  // The figure's CSV export is the same data; its SVG export has the log axis (ticks 1-2-5 per decade).
  await page.click('#figure-trajectory-log-x');
  await page.waitForFunction(() => !document.querySelector('#figure-trajectory-log-x').checked);
  assert.equal(await pixels(page, 'figure-trajectory'), before, 'log x off draws the figure as before');
  await page.click('#figure-trajectory-log-y');
  assert.notEqual(await pixels(page, 'figure-trajectory'), before, 'log y redraws the figure');
  await page.click('#figure-trajectory-log-y');

  // Drag to zoom: a flat drag across the middle third zooms x only.
  const box = await page.$eval('#figure-trajectory canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  await page.mouse.move(box.x + box.w * 0.35, box.y + box.h * 0.45);
  await page.mouse.down();
  await page.mouse.move(box.x + box.w * 0.5, box.y + box.h * 0.46, { steps: 5 });
  assert.ok(await page.$('#figure-trajectory .zoom-box'), 'the selection is shown while dragging');
  await page.mouse.move(box.x + box.w * 0.6, box.y + box.h * 0.46, { steps: 5 });
  await page.mouse.up();
  await page.waitForSelector('#figure-trajectory-reset-zoom');
  assert.match(await caption(page, 'figure-trajectory'), /Zoomed in/);
  assert.notEqual(await pixels(page, 'figure-trajectory'), before, 'the zoom redraws the figure');
  await page.screenshot({ path: path.join(screens, 'figure1-zoomed.png'), clip: await page.$eval('#figure-trajectory canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height }; }), fullPage: true });
  // Double-click resets.
  await page.mouse.dblclick(box.x + box.w * 0.4, box.y + box.h * 0.5);
  await page.waitForFunction(() => !document.querySelector('#figure-trajectory-reset-zoom'));
  assert.doesNotMatch(await caption(page, 'figure-trajectory'), /Zoomed in/);
  assert.equal(await pixels(page, 'figure-trajectory'), before, 'reset draws the whole figure again');

  // Keyboard readout: focus the canvas, Home goes to the first x, arrows step.
  await page.focus('#figure-trajectory canvas');
  await page.keyboard.press('Home');
  const first = await page.$eval('#figure-trajectory-readout', (p) => p.textContent);
  assert.match(first, /: [0-9.]+ at training tokens /);
  assert.ok(await page.$('#figure-trajectory .cursor-line'), 'a cursor marks the point read');
  await page.keyboard.press('ArrowRight');
  const second = await page.$eval('#figure-trajectory-readout', (p) => p.textContent);
  assert.notEqual(second, first, 'ArrowRight moves to the next x');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.$eval('#figure-trajectory-readout', (p) => p.textContent), first);
  assert.equal(await page.$eval('#figure-trajectory-readout', (p) => p.getAttribute('aria-live')), 'polite');
  console.log(`readout by keyboard: ${first.slice(0, 160)}…`);

  // The dark theme: the same figure, screenshot for a person to look at.
  await page.selectOption('#theme', 'dark');
  await page.screenshot({ path: path.join(screens, 'figure1-12runs-dark.png'), clip: await page.$eval('#figure-trajectory canvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y + window.scrollY, width: r.width, height: r.height }; }), fullPage: true });
  await page.selectOption('#theme', 'system');
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('the ESD panel draws a head\'s spectral density and says why it has no power-law fit', { timeout: 240_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  const p = 'runs/A1/ckpt_tokens_327680.safetensors';
  await dropFiles(page, [{ url: `${url}__fixtures/${p}`, path: p }]);
  await waitForInventory(page, 1);
  await page.waitForSelector('#figure-esd canvas', { timeout: 120_000 });
  const text = await caption(page, 'figure-esd');
  assert.match(text, /Eigenvalues λ = σ² of A1, checkpoint 1 of 1, layer 0, W_k head 0 \(16 values\)/);
  assert.match(text, /16 eigenvalues are too few \(the fit needs at least 50\)/);
  // Log-log, so the log toggles start checked.
  assert.equal(await page.isChecked('#figure-esd-log-x'), true);
  await page.selectOption('#esd-matrix', 'q');
  await page.selectOption('#esd-layer', '1');
  await page.waitForFunction(() => /layer 1, W_q head 0/.test(document.querySelector('#figure-esd figcaption').textContent));
  await page.$eval('#figure-esd', (f) => f.scrollIntoView());
  await page.screenshot({ path: path.join(screens, 'esd-panel.png') });
  assert.deepEqual(errors, []);
  await page.context().close();
});
