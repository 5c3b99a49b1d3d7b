// End-to-end: where the user waits on the page. Reports (does not assert)
// the time from opening the page to a ready drop zone; checks that the
// example study downloads several files at a time under a labelled progress
// bar of bytes, that Figure 1 fills in as checkpoints finish, and that the
// analysis workers live for the session (a second analysis starts none).
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
const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'public/example/manifest.json'), 'utf8'));

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

test('page load, the example download, figures as checkpoints finish, workers for the session', { timeout: 600_000 }, async () => {
  // A fresh context: nothing cached, as on a first visit.
  const { page, errors } = await openPage(browser, url);
  const ready = await page.evaluate(() => {
    const mark = performance.getEntriesByName('rankscope-dropzone-ready')[0];
    const wasm = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm'))
      .map((e) => `${e.name.split('/').pop()} ${(e.encodedBodySize / 1e6).toFixed(2)} MB`);
    return { ms: mark?.startTime, wasm };
  });
  assert.ok(ready.ms > 0, 'the drop zone marks when it is ready');
  console.log(`page load: drop zone ready ${ready.ms.toFixed(0)} ms after navigation start (local server, no compression; ${ready.wasm.join(', ')})`);

  // Workers the page starts, and the example files being fetched at once.
  let workers = 0;
  page.on('worker', () => { workers += 1; });
  let inFlight = 0, maxInFlight = 0;
  const isExample = (r) => /\/example\/(?!manifest)/.test(r.url());
  page.on('request', (r) => { if (isExample(r)) maxInFlight = Math.max(maxInFlight, ++inFlight); });
  const ended = (r) => { if (isExample(r)) inFlight -= 1; };
  page.on('requestfinished', ended);
  page.on('requestfailed', ended);
  await page.evaluate(() => {
    window.__download = [];
    window.__series = [];
    new MutationObserver(() => {
      const bar = document.querySelector('#example-progress-bar');
      if (bar) {
        const label = document.getElementById(bar.getAttribute('aria-labelledby'));
        window.__download.push({ value: Number(bar.value), text: bar.getAttribute('aria-valuetext'),
          label: label?.textContent ?? '',
          files: document.querySelector('#example-progress [role=status]')?.textContent ?? '' });
      }
      if (document.querySelector('#spectra-progress')) {
        window.__series.push(Number(document.querySelector('#figure-trajectory')?.dataset.series ?? 0));
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const t0 = Date.now();
  await page.click('#open-example');
  await page.waitForSelector('#spectra-progress', { timeout: 120_000 });
  const downloadMs = Date.now() - t0;
  await settled(page, 480_000);
  const analysisMs = Date.now() - t0;

  const download = await page.evaluate(() => window.__download);
  const total = manifest.reduce((a, f) => a + f.bytes, 0);
  assert.ok(download.length > 5, `${download.length} download states seen`);
  assert.match(download[0].label, /^Downloading the example study/, 'the bar is labelled');
  const totalText = `${(total / 1e6).toFixed(1)} MB`;
  assert.ok(download.every((d) => d.text.endsWith(` of ${totalText}`)), `bytes of the whole study (${totalText}): ${download.slice(-2).map((d) => d.text)}`);
  const values = download.map((d) => d.value);
  assert.ok(values.some((v) => v > 0.05 && v < 0.95), `the bar moves: ${values.slice(0, 10)}`);
  for (let i = 1; i < values.length; i++) assert.ok(values[i] >= values[i - 1], 'the bar never goes back');
  assert.ok(download.some((d) => d.files === `${manifest.length - 1} of ${manifest.length} files` || d.files === `${manifest.length} of ${manifest.length} files`), download.at(-1).files);
  assert.ok(maxInFlight > 1, `example files fetched ${maxInFlight} at a time`);

  // Figure 1 grows run by run while the analysis runs, not all at once at the end.
  const series = await page.evaluate(() => window.__series);
  // The example holds the plan's runs, so Figure 1 opens on A1, A2, B1 and B2 (C1, C2 in its picker).
  assert.ok(series.some((n) => n > 0 && n < 4), `Figure 1 while the analysis ran: ${[...new Set(series)]}`);
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.series), '4');
  const firstWorkers = workers;
  assert.ok(firstWorkers >= 1, 'the analysis ran on workers');

  // A second analysis after Clear reuses the workers: none is started.
  await page.click('#clear');
  const files = (await (await fetch(`${url}__fixtures/__list?dir=runs/A1`)).json()).filter((p) => p.endsWith('.safetensors'));
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && /6 checkpoints$/.test(document.querySelector('#spectra-runner')?.textContent ?? ''), null, { timeout: 120_000 });
  assert.equal(workers, firstWorkers, 'no worker started for the second analysis');
  console.log(`example: ${download.length} download states, ${maxInFlight} files at a time, download + reading ${downloadMs} ms, analysis done ${analysisMs} ms after the click; Figure 1 series seen while it ran: ${[...new Set(series)].join(',')}; ${firstWorkers} worker(s) for both analyses`);
  assert.deepEqual(errors, []);
});
