// End-to-end (issue 19): a folder holding two studies — the 4-layer
// byte-level A1 (vocabulary 256) with the eval and held-out batches at the
// root, and stories260K (5 layers, vocabulary 512) with its own batches in its
// folder — plus a deliberately incompatible batch beside A1. Each run uses its
// own batches, the runs panel and the captions name them (file, digest,
// shape), and the misfit is a visible warning with a picker.
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

/** A JSON token batch of `rows` × `len` ids spread over 0..vocab (deterministic). */
const batch = (rows, len, vocab, salt) => JSON.stringify({
  input_ids: Array.from({ length: rows }, (_, r) => Array.from({ length: len }, (_, i) => (i * 37 + r * 101 + salt) % vocab)),
});
const inline = (p, text) => ({ url: `data:application/json,${encodeURIComponent(text)}`, path: p });
const fixture = (p) => ({ url: `${url}__fixtures/${p}`, path: p });

test('two studies in one folder: each run takes its own batches, captions name them, a misfit warns', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = [
    fixture('eval_tokens.safetensors'),
    fixture('heldout_tokens.safetensors'),
    fixture('runs/A1/ckpt_tokens_327680.safetensors'),
    fixture('stories260K/model.safetensors'),
    fixture('stories260K/config.json'),
    inline('stories260K/eval_tokens.json', batch(2, 64, 512, 0)),
    inline('stories260K/heldout_tokens.json', batch(2, 64, 512, 7)),
    // Nearest to A1 and named eval, but id 300 is beyond A1's vocabulary of 256.
    inline('runs/A1/eval_wrong.json', JSON.stringify({ input_ids: [[1, 2, 300, 4]] })),
  ];
  await dropFiles(page, files);
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => /on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'), null, { timeout: 120_000 });

  const row = (run) => page.evaluate((run) => {
    const li = document.querySelector(`li.run[data-run="${run}"]`);
    const sel = (c) => li.querySelector(`.${c} select`);
    return {
      eval: sel('batch-eval').selectedOptions[0].textContent,
      heldout: sel('batch-heldout').selectedOptions[0].textContent,
      labels: [sel('batch-eval'), sel('batch-heldout')].map((s) => s.getAttribute('aria-label')),
      warnings: [...li.querySelectorAll('.batch-warnings li')].map((w) => w.textContent),
    };
  }, run);
  const a1 = await row('A1');
  const s = await row('stories260K');
  assert.match(a1.eval, /^matched: eval_tokens\.safetensors \(sha256 [0-9a-f]{12}, 4×128\)$/);
  assert.match(a1.heldout, /^matched: heldout_tokens\.safetensors \(sha256 [0-9a-f]{12}, 8×128\)$/);
  assert.match(s.eval, /^matched: stories260K\/eval_tokens\.json \(sha256 [0-9a-f]{12}, 2×64\)$/);
  assert.match(s.heldout, /^matched: stories260K\/heldout_tokens\.json \(sha256 [0-9a-f]{12}, 2×64\)$/);
  assert.deepEqual(a1.labels, ['eval batch of run A1', 'held-out batch of run A1']);
  assert.ok(a1.warnings.some((w) => w.includes('nearer eval batch not used: token batch runs/A1/eval_wrong.json: token id 300 at row 0, column 2 is not below the vocabulary size 256')), a1.warnings.join('\n'));
  assert.deepEqual(s.warnings, []);

  // Captions (and so the SVG/PNG exports, which draw them) name each run's batch.
  const caption = await page.$eval('#figure-trajectory figcaption', (c) => c.textContent);
  const digest = (label) => label.match(/sha256 ([0-9a-f]{12})/)[1];
  assert.ok(caption.includes(`A1: eval batch eval_tokens.safetensors (sha256 ${digest(a1.eval)}, 4×128)`), caption);
  assert.ok(caption.includes(`stories260K: eval batch stories260K/eval_tokens.json (sha256 ${digest(s.eval)}, 2×64)`), caption);
  await page.screenshot({ path: path.join(outDir, 'batches-two-studies.png'), fullPage: true });

  // Choosing the incompatible batch by keyboard is refused aloud, never used.
  const evalPicker = 'li.run[data-run="A1"] .batch-eval select';
  await page.focus(evalPicker);
  await page.selectOption(evalPicker, 'runs/A1/eval_wrong.json');
  await page.waitForFunction(() => [...document.querySelectorAll('li.run[data-run="A1"] .batch-warnings li')]
    .some((w) => w.textContent.startsWith('chosen eval batch not used: token batch runs/A1/eval_wrong.json')), null, { timeout: 30_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'), null, { timeout: 120_000 });
  const after = await page.$eval('#figure-trajectory figcaption', (c) => c.textContent);
  assert.ok(!after.includes('eval_wrong'), after);
  assert.deepEqual(errors, []);
});
