// End-to-end (issue 16): with fewer runs than workers, the page splits a run's surgery sweep
// into shares that idle workers take (each loads the model and runs every n-th pass), and joins
// them into one Figure 4. One run here (A1) and two workers (the page is told it has two cores):
// two shares.
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

test('one run on two workers: the sweep runs in two shares and joins into one Figure 4', { timeout: 600_000 }, async () => {
  // Two workers, whatever machine runs the test.
  const { page, errors } = await openPage(browser, url, { cores: 2 });
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/A1`)).json()) {
    if (p.endsWith('.safetensors')) files.push(p);
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await settled(page);

  // Every progress text seen while Figures 3–5 run.
  await page.evaluate(() => {
    window.__progress = new Set();
    new MutationObserver(() => {
      const p = document.querySelector('#study-progress');
      if (p) window.__progress.add(p.textContent);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  // Small: one seed, fractions 0 and 50% (SVD, γ and random at 50%: three passes and the baseline).
  await page.fill('#study-seeds', '1');
  await page.dispatchEvent('#study-seeds', 'change');
  await page.fill('#study-step', '50');
  await page.dispatchEvent('#study-step', 'change');
  await page.click('#compute-study');
  await page.waitForSelector('#study-progress', { timeout: 30_000 });
  await page.waitForFunction(() => !document.querySelector('#study-progress'), null, { timeout: 300_000 });
  const seen = (await page.evaluate(() => [...window.__progress])).join('\n');
  assert.match(seen, /shared by 2 jobs/, 'the progress says the sweep is shared');
  assert.match(seen, /sweep share 2 of 2/, 'the second share is named while it runs');

  await page.waitForSelector('#figure-surgery canvas');
  const series = await page.$eval('#figure-surgery', (f) => f.dataset.seriesNames);
  assert.match(series, /SVD/); assert.match(series, /γ/); assert.match(series, /random/);
  assert.deepEqual(await page.$$eval('#study p.error', (e) => e.map((x) => x.textContent)), []);
  // The joined sweep: every loss a number (a missing share would leave NaN or a gap), and at 0%
  // pruned the held-out loss of the unedited model, which the user's code measured.
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#figure-surgery .export-csv')]);
  const csv = fs.readFileSync(await d.path(), 'utf8').trim().split('\n');
  // series, x, y, band_lo, band_hi, error_lo, error_hi (a series name may hold a comma).
  const points = csv.slice(1).map((l) => l.split(',')).map((f) => ({ x: Number(f.at(-6)), y: Number(f.at(-5)) }));
  assert.equal(points.length, 6, csv.join('\n'));
  assert.deepEqual(points.map((p) => p.x), [0, 50, 0, 50, 0, 50]);
  for (const p of points) assert.ok(Number.isFinite(p.y), csv.join('\n'));
  const expected = JSON.parse(fs.readFileSync(path.join(fixtures, 'expected/A1.json'), 'utf8'));
  const valLoss = expected.checkpoints.at(-1).val_loss;
  for (const p of points.filter((p) => p.x === 0)) assert.ok(Math.abs(p.y - valLoss) <= 1e-4, `${p.y} vs ${valLoss}`);
  assert.deepEqual(errors, []);
});
