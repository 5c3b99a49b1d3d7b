// End-to-end: 20 generated checkpoints in a row (one run, with the eval and
// held-out batches, so each gets a forward pass and activation spectra) do not
// make the tab's memory grow by more than 2× one checkpoint: nothing is held
// per checkpoint beyond its results. Memory is the proportional set size (PSS)
// of this browser's renderer processes, where the page and its Web Workers
// (with their WebAssembly memories) live, read from /proc.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

const generated = fs.mkdtempSync(path.join(os.tmpdir(), 'rankscope-memory-'));
let server, url, browser;
before(async () => {
  // One origin serves the page, the batches and the generated checkpoints.
  for (const f of ['eval_tokens.safetensors', 'heldout_tokens.safetensors']) fs.copyFileSync(path.join(fixtures, f), path.join(generated, f));
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures: generated }));
  browser = await launch(['--js-flags=--expose-gc']);
});
after(async () => {
  await browser?.close(); server?.close();
  fs.rmSync(generated, { recursive: true, force: true });
});

/** Writes `count` generated checkpoints of run G1 under `dir`; returns their relative paths. */
function writeCheckpoints(dir, count) {
  const d = 256, layers = 6, heads = 4, dk = 64, ff = 1024, vocab = 256;
  const config = JSON.stringify({ d_model: d, n_layers: layers, n_heads: heads, n_kv_heads: heads, d_ff: ff,
    vocab_size: vocab, use_qk_norm: true, max_seq_len: 128 });
  const shapes = [['token_embedding.weight', [vocab, d]], ['norm.weight', [d]]];
  for (let l = 0; l < layers; l++) {
    const b = `transformer_blocks.${l}`;
    shapes.push([`${b}.attention.qkvo_proj`, [4 * heads * dk, d]], [`${b}.attention.q_norm.weight`, [dk]],
      [`${b}.attention.k_norm.weight`, [dk]], [`${b}.feed_forward.up_proj.weight`, [ff, d]],
      [`${b}.feed_forward.down_proj.weight`, [d, ff]], [`${b}.norm1.weight`, [d]], [`${b}.norm2.weight`, [d]]);
  }
  fs.mkdirSync(path.join(dir, 'runs/G1'), { recursive: true });
  const paths = [];
  for (let i = 0; i < count; i++) {
    let seed = (0x9e3779b9 ^ (i + 1)) >>> 0;
    const next = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed / 4294967296 - 0.5; };
    const header = { __metadata__: { run: 'G1', step: String(100 * i), tokens: String(102400 * i), config } };
    let offset = 0;
    for (const [name, shape] of shapes) {
      const bytes = 4 * shape.reduce((a, b) => a * b, 1);
      header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    let json = JSON.stringify(header);
    while (json.length % 8) json += ' ';
    const data = new Float32Array(offset / 4);
    let at = 0;
    for (const [name, shape] of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const norm = name.endsWith('norm.weight');
      const scale = 1.7 / Math.sqrt(shape[shape.length - 1]);
      for (let k = 0; k < n; k++) data[at + k] = norm ? 1 + 0.1 * next() : scale * next();
      at += n;
    }
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const rel = `runs/G1/ckpt_tokens_${102400 * i}.safetensors`;
    fs.writeFileSync(path.join(dir, rel), Buffer.concat([len, Buffer.from(json), Buffer.from(data.buffer)]));
    paths.push(rel);
  }
  return paths;
}

/** The Chromium renderer processes descended from this test (the page and its workers live there). */
function ourRenderers() {
  const parent = new Map();
  const renderers = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) renderers.push(pid);
    } catch { /* the process ended */ }
  }
  const ours = (pid) => {
    for (let p = pid, hops = 0; p && p !== '0' && hops < 64; p = parent.get(p), hops++) {
      if (p === String(process.pid)) return true;
    }
    return false;
  };
  return renderers.filter(ours);
}

/** PSS in bytes of this test's renderer processes. */
function rendererPss() {
  let total = 0;
  for (const pid of ourRenderers()) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch { /* the process ended */ }
  }
  return total;
}

/** Web Worker threads alive in this test's renderers (Chromium names them "DedicatedWorker…"). */
function workerThreads() {
  let n = 0;
  for (const pid of ourRenderers()) {
    try {
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        try { if (/^DedicatedWorker/.test(fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'))) n++; } catch { /* ended */ }
      }
    } catch { /* the process ended */ }
  }
  return n;
}

/**
 * The renderers' memory once it has settled: garbage collected in the page,
 * and finished workers torn down (that takes seconds after they end).
 */
async function settledMemory(page) {
  // Terminated workers' threads (and their WebAssembly memories) go away
  // seconds after the batch ends; wait for that first.
  for (let i = 0; i < 120 && workerThreads() > 0; i++) await new Promise((r) => setTimeout(r, 250));
  let last = Infinity;
  for (let i = 0; i < 30; i++) {
    await page.evaluate(() => globalThis.gc?.());
    await new Promise((r) => setTimeout(r, 1000));
    const now = rendererPss();
    if (Math.abs(now - last) < 1 << 20) return now;
    last = now;
  }
  return last;
}

test('20 generated checkpoints in a row: the tab grows by less than 2× one checkpoint', { timeout: 600_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  // Each worker reports its WebAssembly memory after every job.
  const workerMemory = [];
  page.on('console', (m) => {
    const hit = /worker WebAssembly memory after a job: (\d+) bytes/.exec(m.text());
    if (hit) workerMemory.push(Number(hit[1]));
  });
  // Reference-family checkpoints (merged qkvo, QK-norm), F32, d_model 256,
  // 6 layers, 4 heads of 64, d_ff 1024, vocab 256: 4.8M parameters, 18 MiB.
  // Each has its own weights (seeded), so each is a real, different model.
  // Written here, then picked from disk.
  const files = writeCheckpoints(generated, Number(process.env.CHECKPOINTS || 20));
  const checkpoint = fs.statSync(path.join(generated, files[0])).size;
  // Picked with the file dialog: disk-backed Files, as a user's are (a drop
  // built from fetched bytes would pass every byte through the tab first).
  const drop = (paths) => page.setInputFiles('#pick-files', paths.map((p) => path.join(generated, p)));
  const idle = () => page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && /K = W_k·X on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 300_000 });

  // The batches and the first 2 checkpoints: the tab with its figures drawn
  // is the baseline (a figure costs its canvas once, not per checkpoint).
  await drop(['eval_tokens.safetensors', 'heldout_tokens.safetensors', ...files.slice(0, 2)]);
  await waitForInventory(page, 4);
  await idle();
  const baseline = await settledMemory(page);

  // The other 18, in a row on the worker pool.
  await drop(files.slice(2));
  await waitForInventory(page, files.length + 2);
  const samples = [];
  await page.waitForSelector('#spectra-progress', { timeout: 60_000 }).catch(() => {});
  for (;;) {
    const busy = await page.evaluate(() => !!document.querySelector('#spectra-progress'));
    if (!busy) break;
    samples.push(rendererPss());
    await new Promise((r) => setTimeout(r, 250));
  }
  await idle();
  const end = await settledMemory(page);
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'G1');
  assert.match(await page.$eval('#spectra-runner', (p) => p.textContent), /2 unchanged checkpoints' results reused$/);
  assert.deepEqual(await page.$$eval('section.figures p.error', (e) => e.map((x) => x.textContent)), []);
  assert.ok(samples.length >= 4, `sampled ${samples.length} times while the 18 ran`);
  const peak = Math.max(...samples);
  console.log(`checkpoint ${mib(checkpoint)} MiB; tab after 2 checkpoints ${mib(baseline)} MiB; while 18 more ran `
    + `peak ${mib(peak)} MiB (+${mib(peak - baseline)}, the pool's workers with a model each); after all 20 `
    + `${mib(end)} MiB (+${mib(end - baseline)})`);
  // The workers' WebAssembly memory is flat from job to job (a leak of the
  // model's f32 copy or the forward pass's buffers would raise it every job).
  assert.ok(workerMemory.length >= files.length, `${workerMemory.length} worker reports`);
  const wasmGrowth = Math.max(...workerMemory) - Math.min(...workerMemory);
  console.log(`worker WebAssembly memory ${mib(Math.min(...workerMemory))}–${mib(Math.max(...workerMemory))} MiB over ${workerMemory.length} jobs`);
  assert.ok(wasmGrowth < checkpoint, `a worker's WebAssembly memory grew by ${mib(wasmGrowth)} MiB over the jobs`);
  // Nothing is kept per checkpoint: 18 more would add 18× what one kept.
  assert.ok(end - baseline < 2 * checkpoint, `the tab kept ${mib(end - baseline)} MiB after 18 more checkpoints of ${mib(checkpoint)} MiB`);
  assert.deepEqual(errors, []);
});
