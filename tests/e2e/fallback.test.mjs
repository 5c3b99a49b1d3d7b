// End-to-end: where no Web Worker starts, the analysis still runs — on the
// main thread, in the worker's own module (worker.js + worker_bg.wasm, loaded
// as a script), since the page's module carries no analysis code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, dropFiles, waitForInventory } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

test('without workers, the main thread computes Figure 1 in the worker module', async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  // The worker's start script is missing: every worker fails to load.
  await context.route('**/worker_loader.js', (r) => r.fulfill({ status: 404, body: 'not here' }));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('#dropzone', { timeout: 60_000 });
  const files = (await (await fetch(`${url}__fixtures/__list?dir=runs/A1`)).json())
    .filter((p) => p.endsWith('.safetensors'));
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForSelector('#figure-trajectory[data-series="1"] canvas', { timeout: 120_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'), null, { timeout: 120_000 });
  const runner = await page.$eval('#spectra-runner', (p) => p.textContent);
  assert.match(runner, new RegExp(`on the main thread \\(workers did not start: .*\\): ${files.length} checkpoints$`));
  const loaded = await page.evaluate(() => performance.getEntriesByType('resource')
    .map((e) => e.name.split('/').pop()).filter((n) => n.startsWith('worker')));
  assert.ok(loaded.includes('worker.js') && loaded.includes('worker_bg.wasm'), `the worker module was loaded: ${loaded}`);
  assert.match(await page.$eval('#figure-trajectory figcaption', (c) => c.textContent), /PR = \(Σσ\)²\/Σσ² of W_k/);
  assert.deepEqual(errors, []);
  await context.close();
});
