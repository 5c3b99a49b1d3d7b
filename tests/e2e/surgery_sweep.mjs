// Reports (asserts nothing) how long the page takes for Figures 3–5 of the full-size synthetic
// checkpoint (the benchmarks' model: 22 layers, d_model 512, vocab 49152, BF16) with eval and
// held-out batches of one 1024-token sequence each — the full surgery sweep (SVD, γ and 5
// random seeds × 10 fractions: 63 passes with the output head, and the baseline) on the page's
// workers, then the same with the page told it has one core (one worker, the sweep unshared).
// The clock starts at *Compute Figures 3–5*, after the files are dropped and Figure 1 is done. Run after `bash scripts/build.sh` and
//   cargo run --release -p rankscope-core --example write_synthetic -- /tmp/full.safetensors
//   cd tests/e2e && node ./surgery_sweep.mjs /tmp/full.safetensors [workers=2,1] [dist=../../dist]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory, settled } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const checkpoint = path.resolve(process.argv[2] ?? '/tmp/full.safetensors');
const workerCounts = (process.argv[3] ?? '2,1').split(',').map(Number);
const dist = path.resolve(here, process.argv[4] ?? '../../dist');
const VOCAB = 49152;
const TOKENS = 1024;

// The benchmarks' token batches (bench_surgery's ids), as safetensors files of I64 [1, 1024].
function tokenFile(salt) {
  const ids = new BigInt64Array(TOKENS);
  for (let i = 0; i < TOKENS; i++) ids[i] = BigInt((i * 7919 + salt * 104729) % VOCAB);
  let header = JSON.stringify({ input_ids: { dtype: 'I64', shape: [1, TOKENS], data_offsets: [0, TOKENS * 8] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, Buffer.from(header), Buffer.from(ids.buffer)]);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rankscope-sweep-'));
fs.writeFileSync(path.join(dir, 'eval_tokens.safetensors'), tokenFile(1));
fs.writeFileSync(path.join(dir, 'heldout_tokens.safetensors'), tokenFile(2));
fs.mkdirSync(path.join(dir, 'runs/full'), { recursive: true });
fs.symlinkSync(checkpoint, path.join(dir, 'runs/full/ckpt_tokens_1000.safetensors'));
const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors', 'runs/full/ckpt_tokens_1000.safetensors'];

const { server, url } = await startServer({ dist, fixtures: dir });
const browser = await launch();

async function once(workers) {
  const { page, errors } = await openPage(browser, url, { cores: workers });
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await settled(page, 900_000); // Figure 1's activation spectra first
  await page.fill('#study-seeds', '5');
  await page.dispatchEvent('#study-seeds', 'change');
  await page.fill('#study-step', '10');
  await page.dispatchEvent('#study-step', 'change');
  const start = Date.now();
  await page.click('#compute-study');
  await page.waitForSelector('#study-progress', { timeout: 60_000 });
  const title = await page.$eval('#study-progress', (p) => p.textContent.slice(0, 200));
  await page.waitForFunction(() => !document.querySelector('#study-progress'), null, { timeout: 3_600_000, polling: 1000 });
  const seconds = (Date.now() - start) / 1000;
  const failed = await page.$$eval('#study p.error', (e) => e.map((x) => x.textContent));
  const series = await page.$eval('#figure-surgery', (f) => f.dataset.seriesNames ?? '');
  await page.context().close();
  return { workers, seconds, title, failed, series, errors };
}

const results = [];
for (const w of workerCounts) {
  const r = await once(w);
  results.push(r);
  console.log(`${w} worker(s): Figures 3–5 in ${r.seconds.toFixed(1)} s (${r.series}) ${r.failed.length ? 'errors: ' + r.failed.join('; ') : ''}`);
  console.log(`  progress: ${r.title}`);
  if (r.errors.length) console.log(`  page errors: ${r.errors.join(' | ')}`);
}
if (results.length > 1) {
  console.log(`speed-up ${results[0].workers} vs ${results[1].workers} worker(s): ${(results[1].seconds / results[0].seconds).toFixed(2)}×`);
}
await browser.close();
server.close();
fs.rmSync(dir, { recursive: true, force: true });
