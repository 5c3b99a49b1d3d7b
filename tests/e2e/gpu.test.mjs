// End-to-end: forward passes on WebGPU (SwiftShader here, a real GPU on a
// user's machine) give the CPU's numbers, the page says which ran them, and
// the user can turn the GPU off. Without WebGPU (the other tests' browser,
// started with --disable-gpu) the page says why it used the CPU.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, launchWebGpu, openPage, dropFiles, waitForInventory } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url;
before(async () => { ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures })); });
after(() => server?.close());

/** Drops B1's checkpoints with the eval and held-out batches and waits for the activation figures. */
async function dropB1(page) {
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/B1`)).json()) {
    if (p.endsWith('.safetensors')) files.push(p);
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await settled(page);
}

const settled = (page) => page.waitForFunction(() => !document.querySelector('#spectra-progress')
  && /K = W_k·X on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? '')
  && document.querySelector('#forward-engine'), null, { timeout: 300_000 });

/** Figure 1's data as the CSV the user downloads, as rows of numbers. */
async function figureNumbers(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#figure-trajectory .export-csv')]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  return csv.trim().split('\n').slice(1).map((line) => line.split(',').map(Number).filter((x) => !Number.isNaN(x)));
}

test('WebGPU forward passes match the CPU, say so, and can be turned off', { timeout: 600_000 }, async () => {
  const browser = await launchWebGpu();
  try {
    const { page, errors } = await openPage(browser, url);
    await dropB1(page);
    const engines = await page.$$eval('#forward-engine .engine-text', (l) => l.map((x) => x.textContent));
    const engine = engines.join(' | ');
    assert.match(engine, /^GPU .*\(WebGPU\): 6 checkpoints$/, engine);
    assert.deepEqual(await page.$$eval('section.figures p.error', (e) => e.map((x) => x.textContent)), []);
    const gpu = await figureNumbers(page);

    await page.uncheck('#use-gpu');
    await page.waitForFunction(() => /CPU \(WebAssembly\)/.test(document.querySelector('#forward-engine .engine-text')?.textContent ?? ''), null, { timeout: 300_000 });
    await settled(page);
    assert.deepEqual(await page.$$eval('#forward-engine .engine-text', (l) => l.map((x) => x.textContent)), ['CPU (WebAssembly): 6 checkpoints; WebGPU turned off below']);
    const cpu = await figureNumbers(page);
    assert.equal(gpu.length, cpu.length);
    let worst = 0;
    gpu.forEach((row, i) => row.forEach((v, j) => {
      const c = cpu[i][j];
      worst = Math.max(worst, Math.abs(v - c) / Math.max(Math.abs(c), 1e-12));
    }));
    console.log(`${engine}; Figure 1 (K PR, B1's 6 checkpoints): GPU vs CPU worst relative difference ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `GPU and CPU differ by ${worst} relative`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU the forward passes run on the CPU and the page says why', { timeout: 300_000 }, async () => {
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, url);
    await dropB1(page);
    // One line for the six checkpoints, in a browser user's terms (no advice about native drivers).
    const engines = await page.$$eval('#forward-engine .engine-text', (l) => l.map((x) => x.textContent));
    assert.equal(engines.length, 1, engines.join(' | '));
    assert.match(engines[0], /^CPU \(WebAssembly\): 6 checkpoints; (WebGPU not offered by this browser|this browser offers WebGPU but gave no GPU adapter)$/);
    assert.doesNotMatch(await page.$eval('#forward-engine', (p) => p.textContent), /Vulkan driver|mesa|natively/i);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
