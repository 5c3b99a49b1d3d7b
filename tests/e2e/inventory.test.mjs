// End-to-end: a researcher drops the fixture runs and logs (and some broken
// files) on the served page and reads the inventory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory, readInventory } from './browser.mjs';

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

const list = async (dir) => (await (await fetch(`${url}__fixtures/__list?dir=${dir}`)).json());

test('dropping the fixture runs and logs fills the inventory', async () => {
  const { page, errors } = await openPage(browser, url);
  const runFiles = await list('runs');
  const logFiles = await list('logs');
  const all = [...runFiles, ...logFiles, 'eval_tokens.safetensors'];
  await dropFiles(page, all.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, all.length);
  const rows = await readInventory(page);
  await page.screenshot({ path: path.join(outDir, 'inventory.png'), fullPage: true });

  const byPath = Object.fromEntries(rows.map((r) => [r.path, r]));
  for (const p of all) assert.ok(byPath[p], `row for ${p}`);
  for (const r of rows) assert.equal(r.status, 'ok', `${r.path}: ${r.messages.join('; ')}`);

  const dtypes = { A1: 'F32', A2: 'F32', B1: 'BF16', B2: 'BF16', C1: 'F16', C2: 'F16' };
  for (const [run, dtype] of Object.entries(dtypes)) {
    const ckpts = rows.filter((r) => r.kind === 'checkpoint' && r.run === run);
    assert.equal(ckpts.length, 6, `${run} checkpoints`);
    assert.deepEqual(ckpts.map((r) => Number(r.tokens)).sort((a, b) => a - b), [0, 20480, 40960, 81920, 163840, 327680]);
    for (const c of ckpts) {
      assert.equal(c.dtype, dtype, `${c.path} dtype`);
      assert.match(c['architecture / content'], /4 layers/);
      const qk = run === 'A2' || run === 'B2' ? /no QK-norm/ : /(?<!no )QK-norm/;
      assert.match(c['architecture / content'], qk, `${c.path} QK-norm`);
    }
    assert.equal(byPath[`runs/${run}/metrics.jsonl`].kind, 'run log');
    assert.equal(byPath[`runs/${run}/metrics.jsonl`].run, run);
  }
  assert.equal(byPath['eval_tokens.safetensors'].kind, 'token batch');
  assert.match(byPath['eval_tokens.safetensors']['architecture / content'], /\[4, 128\]/);
  for (const p of logFiles) assert.equal(byPath[p].kind, 'run log', p);

  // The runs list: six runs, each with six checkpoints and its log.
  const runs = await page.$$eval('#runs li.run', (lis) => lis.map((li) => ({
    name: li.dataset.run, text: li.textContent })));
  for (const run of Object.keys(dtypes)) {
    const r = runs.find((x) => x.name === run);
    assert.ok(r, `run ${run} listed`);
    assert.match(r.text, /6 checkpoint\(s\)/);
  }

  // Renaming a run renames its checkpoints and log.
  await page.fill('#runs li.run[data-run="A1"] input.run-name', 'A1-qknorm-muon');
  await page.press('#runs li.run[data-run="A1"] input.run-name', 'Enter');
  await page.waitForSelector('#runs li.run[data-run="A1-qknorm-muon"]');
  const renamed = (await readInventory(page)).filter((r) => r.run === 'A1-qknorm-muon');
  assert.equal(renamed.length, 8, 'six checkpoints, metrics.jsonl and results.json follow the rename');
  assert.deepEqual(errors, []);
});

test('broken files get a clear message and do not spoil the others', async () => {
  const { page, errors } = await openPage(browser, url);
  const good = ['runs/B1/ckpt_tokens_0.safetensors', 'runs/B1/metrics.jsonl'];
  const bad = JSON.parse(fs.readFileSync(path.join(repo, 'tests/e2e/broken.json'), 'utf8'));
  await page.evaluate(async ({ good, bad, base }) => {
    const dt = new DataTransfer();
    for (const p of good) dt.items.add(new File([await (await fetch(base + p)).blob()], p));
    for (const b of bad) dt.items.add(new File([Uint8Array.from(atob(b.base64), (c) => c.charCodeAt(0))], b.name));
    const zone = document.querySelector('#dropzone');
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { good, bad, base: `${url}__fixtures/` });
  await waitForInventory(page, good.length + bad.length);
  const rows = await readInventory(page);
  await page.screenshot({ path: path.join(outDir, 'broken.png'), fullPage: true });
  for (const p of good) assert.equal(rows.find((r) => r.path === p).status, 'ok', p);
  for (const b of bad) {
    const r = rows.find((x) => x.path === b.name);
    assert.equal(r.status, b.status, `${b.name}: ${r.messages.join('; ')}`);
    assert.ok(r.messages.some((m) => m.includes(b.message)), `${b.name}: "${b.message}" in ${JSON.stringify(r.messages)}`);
  }
  assert.deepEqual(errors, [], 'no page errors or panics');
  assert.equal(await page.$eval('#fatal', (el) => el.className), 'fatal', 'no fatal banner');
});

test('choosing a folder in the dialog keeps relative paths', async () => {
  const { page, errors } = await openPage(browser, url);
  await page.setInputFiles('#pick-folder', path.join(fixtures, 'runs/C2'));
  await waitForInventory(page, 8);
  const rows = await readInventory(page);
  assert.ok(rows.every((r) => r.path.startsWith('C2/')), JSON.stringify(rows.map((r) => r.path)));
  assert.equal(rows.filter((r) => r.kind === 'checkpoint' && r.run === 'C2').length, 6);
  assert.deepEqual(errors, []);
});

test('the built-in example study opens with no files of the user', async () => {
  const { page, errors } = await openPage(browser, url);
  const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'public/example/manifest.json'), 'utf8'));
  await page.click('#open-example');
  await waitForInventory(page, manifest.length);
  const rows = await readInventory(page);
  assert.ok(rows.every((r) => r.status === 'ok'), rows.filter((r) => r.status !== 'ok').map((r) => r.path).join(', '));
  assert.equal(await page.$$eval('#runs li.run', (l) => l.length) >= 6, true);
  await page.screenshot({ path: path.join(outDir, 'example.png'), fullPage: false });
  assert.deepEqual(errors, []);
});
