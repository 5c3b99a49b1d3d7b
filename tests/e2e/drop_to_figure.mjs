// Reports (asserts nothing) the page's time from dropping the study's 36 fixture checkpoints
// (A1–C2, six each) with the eval and held-out batches to (1) every file inspected, (2) Figure 1
// first drawn and (3) every analysis finished, over several fresh pages. The files are fetched
// into the page before the clock starts, so the times are the page's own (reading, inspection,
// workers, forward passes), not the test server's. Run after `bash scripts/build.sh`:
//   cd tests/e2e && node ./drop_to_figure.mjs [runs=3] [dist=../../dist]
// The same script measured an older build by pointing `dist` at that build's output.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');
const runs = Number(process.argv[2] ?? 3);
const dist = path.resolve(here, process.argv[3] ?? '../../dist');

const { server, url } = await startServer({ dist, fixtures });
const browser = await launch();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
for (const run of ['A1', 'A2', 'B1', 'B2', 'C1', 'C2']) {
  for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
    if (p.endsWith('.safetensors')) files.push(p);
  }
}

async function once() {
  const { page, errors } = await openPage(browser, url);
  await page.waitForFunction(() => performance.getEntriesByName('rankscope-dropzone-ready').length > 0, null, { timeout: 120_000 });
  // Fetch every file first; the clock starts at the drop event.
  await page.evaluate(async (files) => {
    const dt = new DataTransfer();
    for (const f of files) dt.items.add(new File([await (await fetch(f.url)).blob()], f.path));
    window.__dropData = dt;
  }, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await page.evaluate((count) => {
    const t = {};
    window.__times = t;
    const start = performance.now();
    const tick = () => {
      const now = performance.now() - start;
      const pending = document.querySelectorAll('#inventory tr.pending').length;
      const rows = document.querySelectorAll('#inventory tr.file').length;
      const canvas = document.querySelector('#figure-trajectory canvas');
      if (t.inspected === undefined && pending === 0 && rows === count) t.inspected = now;
      if (t.figure1 === undefined && canvas) t.figure1 = now;
      if (t.inspected !== undefined && canvas && !document.querySelector('#spectra-progress')) {
        t.done = now;
        return;
      }
      requestAnimationFrame(tick);
    };
    const zone = document.querySelector('#dropzone');
    const dt = window.__dropData;
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    requestAnimationFrame(tick);
  }, files.length);
  await page.waitForFunction(() => window.__times.done !== undefined, null, { timeout: 600_000, polling: 250 });
  const t = await page.evaluate(() => window.__times);
  await page.context().close();
  if (errors.length) console.log(`page errors: ${errors.join(' | ')}`);
  return t;
}

const all = [];
for (let i = 0; i < runs; i++) all.push(await once());
for (const key of ['inspected', 'figure1', 'done']) {
  const xs = all.map((t) => t[key]);
  console.log(`${key.padEnd(9)} median ${median(xs).toFixed(0)} ms of ${runs} drops [${xs.map((x) => x.toFixed(0)).join(', ')}]`);
}
console.log(`(${files.length} files from ${fixtures}; page from ${dist})`);
await browser.close();
server.close();
