// End-to-end: progress you can trust and status said once. While the
// example study is analysed the page shows a real progress bar (from the
// workers' fractions), the stage that runs, the time left and Cancel beside
// it; afterwards one line per engine with its count of checkpoints.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, settled } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');
const screens = process.env.SCREENS_DIR || path.join(here, 'out');

fs.mkdirSync(screens, { recursive: true });

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

test('the example study shows a progress bar, the running stage, the time left; status lines come once per engine', { timeout: 900_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  // Sample the panel as it changes, inside the page, so no state is missed.
  await page.evaluate(() => {
    window.__samples = [];
    const take = () => {
      const panel = document.querySelector('#spectra-progress');
      if (!panel) return;
      const bar = panel.querySelector('progress#spectra-progress-bar');
      window.__samples.push({
        value: bar ? Number(bar.value) : null,
        status: panel.querySelector('[role=status]')?.textContent ?? '',
        summary: panel.querySelector('.progress-summary')?.textContent ?? '',
        title: panel.querySelector('.progress-title')?.textContent ?? '',
        jobs: [...panel.querySelectorAll('.active-jobs li')].map((li) => li.textContent),
        cancel: !!panel.querySelector('button.cancel'),
        t: performance.now(),
      });
    };
    new MutationObserver(take).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.click('#open-example');
  await settled(page, 600_000);
  const samples = await page.evaluate(() => window.__samples);
  assert.ok(samples.length > 10, `${samples.length} progress states seen`);
  const values = samples.map((s) => s.value).filter((v) => v !== null);
  assert.ok(values.some((v) => v > 0.05 && v < 0.95), `the bar moves between 0 and 1: ${values.slice(0, 20)}`);
  for (let i = 1; i < values.length; i++) assert.ok(values[i] >= values[i - 1] - 1e-9, `the bar never goes back (${values[i - 1]} → ${values[i]})`);
  assert.ok(samples.every((s) => s.cancel), 'Cancel sits beside the bar');
  assert.match(samples[0].title, /forward passes on the eval batch/);
  assert.ok(samples.some((s) => /^\d+ of 36 checkpoints done$/.test(s.status)), samples.map((s) => s.status).slice(-3).join(' | '));
  // The stage that runs is named, with each running checkpoint's own stage and share.
  // The CPU pass streams the model (one block's weights at a time): its stage says so.
  assert.ok(samples.some((s) => /now: .*forward pass(, weights read block by block| on the eval batch)/.test(s.summary)), 'the forward pass is named while it runs');
  assert.ok(samples.some((s) => s.jobs.some((j) => /^[A-C][12] · \d+ tokens: (forward pass, weights read block by block|forward pass on the eval batch|weight spectra|loading weights|activation spectra|held-out loss): .* · \d+% · /.test(j))), samples.find((s) => s.jobs.length)?.jobs.join(' | '));
  // The page estimates the time left once 1.5 s have passed (status.rs, MIN_ELAPSED_MS): a
  // batch that a fast machine finishes sooner never needs one, so it is asked for only when the
  // bar ran long enough for one to show.
  const barTimes = samples.filter((s) => s.value !== null).map((s) => s.t);
  const barMs = barTimes.length ? barTimes[barTimes.length - 1] - barTimes[0] : 0;
  if (barMs > 4000) {
    assert.ok(samples.some((s) => /(about \d+ (s|min) left|a few seconds left)/.test(s.summary)), `an estimate of the time left (the bar ran ${Math.round(barMs)} ms)`);
  } else {
    console.log(`progress: the bar ran ${Math.round(barMs)} ms, too short for an estimate of the time left`);
  }

  // Afterwards: where it ran, once; one line per engine, with counts, and no advice for native drivers.
  const runner = await page.$eval('#spectra-runner', (p) => p.textContent);
  assert.match(runner, /^Computed with: CPU \(WebAssembly\), \d+ Web Workers?: 36 checkpoints$/);
  const engines = await page.$$eval('#forward-engine li.engine .engine-text', (l) => l.map((x) => x.textContent));
  assert.equal(engines.length, 1, engines.join(' | '));
  assert.match(engines[0], /^CPU \(WebAssembly\): 36 checkpoints; (WebGPU not offered by this browser|this browser offers WebGPU but gave no GPU adapter)$/);
  const whole = await page.$eval('#forward-engine', (e) => e.textContent);
  assert.doesNotMatch(whole, /Vulkan driver|mesa|natively/i);
  assert.match(whole, /how to enable it/);
  await page.click('#forward-engine summary');
  assert.match(await page.$eval('#forward-engine details.how-to p', (p) => p.textContent), /chrome:\/\/flags/);
  assert.deepEqual(await page.$$eval('section.figures p.error', (e) => e.map((x) => x.textContent)), []);
  console.log(`progress: ${samples.length} states; bar ${values.length} values from ${values[0]} to ${values[values.length - 1]}; ${runner}; ${engines[0]}`);
  assert.deepEqual(errors, []);
});

test('Cancel beside the bar stops the analysis and says so', { timeout: 600_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  await page.click('#open-example');
  await page.waitForSelector('#spectra-progress .active-jobs li', { timeout: 300_000 });
  await page.locator('section.figures').first().screenshot({ path: path.join(screens, 'progress.png') });
  // Keyboard focus on Cancel survives the panel's updates. The example's weight spectra now take
  // a few seconds in all (each checkpoint read once), so wait for one update of the panel, not a
  // fixed time that could outlast the analysis.
  const bar = () => page.$eval('#spectra-progress', (p) => p.textContent).catch(() => null);
  const before = await bar();
  await page.focus('#spectra-progress button.cancel');
  await page.waitForFunction((t) => document.querySelector('#spectra-progress')?.textContent !== t, before, { timeout: 30_000 });
  assert.ok(await bar(), 'the analysis is still running');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'spectra-progress-cancel');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'));
  assert.match(await page.$eval('#notice', (n) => n.textContent), /cancelled: the analysis stopped/);
  assert.deepEqual(errors, []);
});
