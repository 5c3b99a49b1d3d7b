// End-to-end: Figures 1 and 2 appear for A1–B2 after dropping their
// checkpoints, respond to the controls, and Figure 1 also draws from the
// user's results.json files alone, and a lone model as its per-layer profile.
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
const outDir = path.join(here, 'out');
fs.mkdirSync(outDir, { recursive: true });

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** Non-white pixels of a figure's canvas (0 when blank or absent). */
const inked = (page, id) => page.$eval(`#${id} canvas`, (c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
  return n;
});

test('Figures 1 and 2 appear for A1–B2 from their checkpoints', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = [];
  for (const run of ['A1', 'A2', 'B1', 'B2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForSelector('#figure-trajectory[data-series="4"] canvas', { timeout: 60_000 });
  // Figure 2 opens on the plan's pair, A1 vs A2 (its run picker has the others).
  await page.waitForSelector('#figure-waterfall[data-series="2"] canvas', { timeout: 60_000 });
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1, A2, B1, B2');
  assert.equal(await page.$eval('#figure-waterfall', (f) => f.dataset.seriesNames), 'A1, A2');
  assert.ok(await inked(page, 'figure-trajectory') > 5000, 'trajectory canvas is drawn');
  assert.ok(await inked(page, 'figure-waterfall') > 5000, 'waterfall canvas is drawn');
  // Hovering reads the exact values of every run at the nearest checkpoint.
  await page.hover('#figure-trajectory canvas', { position: { x: 300, y: 250 } });
  assert.match(await page.$eval('#figure-trajectory-readout', (r) => r.textContent), /A1: [0-9.]+ at training tokens \d+ · A2: /);
  // The spectra were computed off the main thread, on the worker pool.
  assert.match(await page.$eval('#spectra-runner', (p) => p.textContent), /^Computed with: CPU \(WebAssembly\), \d+ Web Workers?: 24 checkpoints$/);
  const caption = await page.$eval('#figure-trajectory figcaption', (c) => c.textContent);
  assert.match(caption, /PR = \(Σσ\)²\/Σσ² of W_k/);
  assert.match(caption, /mean over 4 layers/);
  await page.screenshot({ path: path.join(outDir, 'figures.png'), fullPage: true });

  // The metric and layer controls redraw Figure 1.
  await page.selectOption('#metric', 'r90');
  await page.selectOption('#layer', '2');
  await page.waitForFunction(() => /r90/.test(document.querySelector('#figure-trajectory figcaption').textContent)
    && /layer 2/.test(document.querySelector('#figure-trajectory figcaption').textContent));
  // Hiding a run in Figure 1's picker removes its line there.
  await page.click('#figure-trajectory-runs summary');
  await page.click('#figure-trajectory-runs .run-toggle[data-run="B2"] input');
  await page.waitForSelector('#figure-trajectory[data-series="3"]');
  // Dropping one more run computes only its checkpoints: the 24 before are reused.
  const more = (await (await fetch(`${url}__fixtures/__list?dir=runs/C1`)).json()).filter((p) => p.endsWith('.safetensors'));
  await dropFiles(page, more.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length + more.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && /24 unchanged checkpoints' results reused$/.test(document.querySelector('#spectra-runner')?.textContent ?? ''), null, { timeout: 60_000 });
  // The reader's pick stands: C1 is offered in the picker, not drawn unasked.
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1, A2, B1');
  assert.equal(await page.$eval('#figure-trajectory-runs summary', (s) => s.textContent), 'Runs: 3 of 5 shown');
  assert.deepEqual(errors, []);
});

test('Figure 1 draws from results.json files alone', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['A1', 'A2', 'B1', 'B2', 'C1', 'C2'].map((r) => `runs/${r}/results.json`);
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  // The plan's Figure 1 runs open by default (A1, A2, B1, B2); C1 and C2 wait in the picker.
  await page.waitForSelector('#figure-trajectory[data-series="4"] canvas');
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1, A2, B1, B2');
  assert.match(await page.$eval('#figure-trajectory figcaption', (c) => c.textContent), /Imported results\.json/);
  assert.ok(await inked(page, 'figure-trajectory') > 5000);
  assert.deepEqual(errors, []);
});

test('a lone model (no training point) is drawn in Figure 1 as its per-layer profile, and the caption says why', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['stories260K/model.safetensors', 'stories260K/config.json'];
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && document.querySelector('#figure-trajectory[data-series="1"] canvas'), null, { timeout: 60_000 });
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'stories260K');
  assert.match(await page.$eval('#figure-trajectory figcaption', (c) => c.textContent),
    /No checkpoint has a training tokens value.*Drawn instead: each run's last checkpoint as its per-layer profile/);
  assert.ok(await inked(page, 'figure-trajectory') > 2000, 'the profile is drawn');
  assert.deepEqual(errors, []);
});

test('with the eval and held-out batches, Figure 1 shows activation PR (K on the eval batch)', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const run of ['A1', 'A2', 'B1', 'B2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => /K = W_k·X on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'), null, { timeout: 120_000 });
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1, A2, B1, B2');
  // Each run's batches, as the runs panel names them (matched by folder, then name, then fit).
  for (const run of ['A1', 'A2', 'B1', 'B2']) {
    const shown = await page.$eval(`li.run[data-run="${run}"] .run-batches`, (d) => [...d.querySelectorAll('select')].map((s) => s.selectedOptions[0].textContent));
    assert.match(shown[0], /^matched: eval_tokens\.safetensors \(sha256 [0-9a-f]{12}, 4×128\)$/);
    assert.match(shown[1], /^matched: heldout_tokens\.safetensors \(sha256 [0-9a-f]{12}, 8×128\)$/);
  }
  const caption = await page.$eval('#figure-trajectory figcaption', (c) => c.textContent);
  assert.match(caption, /after k_norm, before RoPE/);
  assert.deepEqual(await page.$$eval('#figures p.error, section.figures p.error', (e) => e.map((x) => x.textContent)), []);
  await page.screenshot({ path: path.join(outDir, 'figures-activations.png'), fullPage: true });
  // Switching to the weights keeps the same runs, with the weights' caption.
  await page.selectOption('#source', 'weights');
  await page.waitForFunction(() => /of W_k/.test(document.querySelector('#figure-trajectory figcaption').textContent));
  assert.deepEqual(errors, []);
});

test('all five figures render for the fixture study (Figures 3–5 on demand)', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const run of ['A1', 'A2', 'B1', 'B2', 'C1', 'C2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && /K = W_k·X/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 180_000 });
  await page.fill('#study-seeds', '3');
  await page.dispatchEvent('#study-seeds', 'change');
  await page.click('#compute-study');
  await page.waitForSelector('#study-progress', { timeout: 30_000 });
  // Figure 3 opens on the plan's data pair, C1 beside C2; its picker adds the others.
  await page.waitForSelector('#figure-layers[data-series="2"] canvas', { timeout: 300_000 });
  await page.waitForFunction(() => !document.querySelector('#study-progress'), null, { timeout: 300_000 });
  assert.equal(await page.$eval('#figure-layers', (f) => f.dataset.seriesNames), 'C1, C2');
  await page.click('#figure-layers-runs summary');
  await page.click('#figure-layers-runs .run-toggle[data-run="A1"] input');
  await page.waitForFunction(() => document.querySelector('#figure-layers')?.dataset.seriesNames === 'A1, C1, C2');
  // A1 has a key norm: SVD, γ and random curves; its scatter has one colour per layer.
  await page.waitForSelector('#figure-surgery canvas');
  const surgery = await page.$eval('#figure-surgery', (f) => f.dataset.seriesNames);
  assert.match(surgery, /SVD/); assert.match(surgery, /γ/); assert.match(surgery, /random/);
  assert.equal(await page.$eval('#figure-scatter', (f) => f.dataset.series), '4');
  // A2 has no key norm: no γ curve, and the scatter says why it is empty.
  await page.selectOption('#study-run', 'A2');
  await page.waitForFunction(() => !/γ/.test(document.querySelector('#figure-surgery').dataset.seriesNames));
  assert.deepEqual(await page.$$eval('#study p.error', (e) => e.map((x) => x.textContent)), []);
  for (const id of ['figure-trajectory', 'figure-waterfall', 'figure-layers', 'figure-surgery']) {
    assert.ok(await inked(page, id) > 5000, `${id} is drawn`);
  }
  await page.selectOption('#study-run', 'B1');
  await page.waitForFunction(() => document.querySelector('#figure-scatter')?.dataset.series === '4');
  assert.ok(await inked(page, 'figure-scatter') > 5000, 'scatter is drawn');
  await page.screenshot({ path: path.join(outDir, 'figures-3-5.png'), fullPage: true });
  assert.deepEqual(errors, []);
});
