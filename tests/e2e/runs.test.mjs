// End-to-end (issue 17 item 6, issue 19): the figures open on the study's own
// comparisons (Figure 1 on A1, A2, B1, B2; Figure 2 on A1 vs A2), each figure's
// run picker works from the keyboard and changes its legend, the runs panel says
// each run's QK-norm, optimizer and data as its files state them, tables sort
// numbers as numbers, and a run's label follows a config.json dropped after
// its checkpoint. Weight spectra of one checkpoint per run only: well under a minute.
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

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

const RUNS = ['A1', 'A2', 'B1', 'B2', 'C1', 'C2'];
const legend = (page, id) => page.$eval(`#${id}`, (f) => f.dataset.legend);

test('defaults, a keyboard-picked run, run facts and numeric sorting', { timeout: 120_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  const files = RUNS.flatMap((r) => [`runs/${r}/ckpt_tokens_327680.safetensors`, `runs/${r}/metrics.jsonl`]);
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && document.querySelector('#figure-trajectory')?.dataset.legend, null, { timeout: 60_000 });

  // The plan's comparisons, not every run on one axis.
  assert.equal(await legend(page, 'figure-trajectory'), 'A1, A2, B1, B2');
  assert.equal(await legend(page, 'figure-waterfall'), 'A1, A2');
  assert.equal(await page.$eval('#figure-trajectory-runs summary', (s) => s.textContent), 'Runs: 4 of 6 shown');

  // Keyboard only: focus the picker, open it, Tab to C1's box, tick it with Space.
  await page.focus('#figure-trajectory-runs summary');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval('#figure-trajectory-runs', (d) => d.open), true);
  for (let i = 0; i < 5; i++) await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.closest('label')?.dataset.run), 'C1');
  assert.equal(await page.evaluate(() => document.activeElement.checked), false);
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory').dataset.legend === 'A1, A2, B1, B2, C1');
  assert.equal(await page.$eval('#figure-trajectory-runs summary', (s) => s.textContent), 'Runs: 5 of 6 shown');
  // The pick is Figure 1's alone.
  assert.equal(await legend(page, 'figure-waterfall'), 'A1, A2');
  // Unticking a plan run takes it out of the legend; "default runs" brings the plan back.
  await page.click('#figure-trajectory-runs .run-toggle[data-run="A2"] input');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory').dataset.legend === 'A1, B1, B2, C1');
  await page.click('#figure-trajectory-runs .run-picker-reset');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory').dataset.legend === 'A1, A2, B1, B2');

  // The runs panel: QK-norm from the tensors, optimizer from the checkpoint's config, data from
  // the log header (each fact names its file on hover).
  const facts = await page.$$eval('#runs li.run', (items) => Object.fromEntries(items.map((li) => [li.dataset.run,
    Object.fromEntries([...li.querySelectorAll('.fact')].map((f) => [f.dataset.fact, f.textContent]))])));
  assert.deepEqual(facts.A1, { 'qk-norm': 'QK-norm', optimizer: 'optimizer: Muon + AdamW', lr: 'lr: muon_lr 0.024, adamw_lr 0.006', data: 'data: standard' });
  assert.equal(facts.A2['qk-norm'], 'no QK-norm');
  assert.equal(facts.B1.optimizer, 'optimizer: AdamW');
  assert.equal(facts.B1.lr, 'lr: adamw_lr 0.006');
  assert.equal(facts.C1.data, 'data: simple');
  assert.equal(facts.C2.data, 'data: complex');
  assert.match(await page.$eval('#runs li.run[data-run="C1"] .fact[data-fact="data"]', (f) => f.title), /^from runs\/C1\/metrics\.jsonl \(log header\)$/);
  assert.equal(await page.$$eval('#runs .fact-disagreements li', (l) => l.length), 0);

  // The inventory sorts by size as numbers (bytes), not as the text "72.5 kB" < "793.0 kB".
  const bytes = Object.fromEntries(files.map((p) => [p, fs.statSync(path.join(fixtures, p)).size]));
  const sizeHeader = '#inventory thead th:nth-child(6)';
  assert.equal(await page.$eval(sizeHeader, (th) => th.getAttribute('aria-sort')), 'none');
  await page.focus(`${sizeHeader} button`);
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval(sizeHeader, (th) => th.getAttribute('aria-sort')), 'ascending');
  const order = await page.$$eval('#inventory tr.file', (rows) => rows.map((r) => r.dataset.path));
  const sizes = order.map((p) => bytes[p]);
  assert.deepEqual(sizes, [...sizes].sort((a, b) => a - b), `ascending by bytes: ${order.join(', ')}`);
  assert.equal(order[0], 'runs/B2/metrics.jsonl');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval(sizeHeader, (th) => th.getAttribute('aria-sort')), 'descending');
  assert.equal(await page.$eval('#inventory tr.file', (r) => r.dataset.path), 'runs/A1/ckpt_tokens_327680.safetensors');

  // A figure's data table too: Figure 2's σ index i, descending, is 16, 15, … (not 9, 8, …, 16).
  await page.click('#figure-waterfall-data summary');
  await page.waitForSelector('#figure-waterfall-data table tbody tr');
  const xHeader = '#figure-waterfall-data thead th:nth-child(2)';
  await page.click(`${xHeader} button`);
  await page.click(`${xHeader} button`);
  assert.equal(await page.$eval(xHeader, (th) => th.getAttribute('aria-sort')), 'descending');
  const xs = await page.$$eval('#figure-waterfall-data tbody tr td:nth-child(2)', (t) => t.map((c) => c.textContent));
  assert.equal(xs[0], '16');
  const values = xs.map(Number);
  assert.ok(values.every((v, i) => i === 0 || values[i - 1] >= v), `numeric order: ${xs.slice(0, 20).join(' ')}`);
  // Numbers read with four significant digits, not seventeen.
  const ys = await page.$$eval('#figure-waterfall-data tbody tr td:nth-child(3)', (t) => t.map((c) => c.textContent));
  assert.ok(ys.every((y) => /^-?\d+(\.\d+)?(e-?\d+)?$/.test(y) && y.replace(/^-?0\.0*|\.|e.*$/g, '').length <= 4), ys.slice(0, 8).join(' '));
  assert.deepEqual(errors, []);
});

test("a config.json dropped after its checkpoint updates the run's label", { timeout: 60_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  const drop = (p) => dropFiles(page, [{ url: `${url}__fixtures/${p}`, path: p }]);
  await drop('stories260K/model.safetensors');
  await waitForInventory(page, 1);
  const arch = () => page.$eval('#runs li.run[data-run="stories260K"] .arch', (s) => s.textContent);
  assert.match(await arch(), /^unknown: (llama layout: )?n_heads cannot be told/);
  await drop('stories260K/config.json');
  await waitForInventory(page, 2);
  await page.waitForFunction(() => /^llama · 5 layers/.test(document.querySelector('#runs li.run[data-run="stories260K"] .arch')?.textContent ?? ''), null, { timeout: 10_000 });
  assert.match(await arch(), /vocab 512 · context 512$/);
  assert.equal(await page.$eval('#runs li.run[data-run="stories260K"] .fact[data-fact="qk-norm"]', (f) => f.textContent), 'no QK-norm');
  assert.deepEqual(errors, []);
});
