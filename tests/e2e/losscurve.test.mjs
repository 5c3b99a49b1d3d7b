// End-to-end: the loss-curve diagnostics (issue 6). Dropping the
// modded-nanogpt logs draws the loss curves and the collapse residual against
// the Muon runs, and lists the Adam runs' negative residual; a log without
// grad_norm / grad_var gets a message naming them; the fixtures'
// metrics.jsonl draw C(t); an edited health rule fires; the user study's
// results.json draw rank vs loss with the PR drop.
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
  ({ server, url } = await startServer({
    dist: path.join(repo, 'dist'), fixtures, testdata: path.join(repo, 'crates/core/tests/data'),
  }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** Non-white pixels of a figure's canvas (0 when blank or absent). */
const inked = (page, id) => page.$eval(`#${id} canvas`, (c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) n++;
  return n;
});
const caption = (page, id) => page.$eval(`#${id} figcaption`, (c) => c.textContent);
const drop = async (page, paths) => {
  await dropFiles(page, paths.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, paths.length);
};
const setValue = (page, sel, value) => page.$eval(sel, (el, v) => {
  el.value = v;
  el.dispatchEvent(new Event('change', { bubbles: true }));
}, value);

const NANOGPT = ['muonh_seed1', 'muonh_seed2', 'adamh_seed1', 'adamh_seed2'];

test('modded-nanogpt logs: loss curves, residual vs the Muon runs, flags, C(t) message', async () => {
  const { page, errors } = await openPage(browser, url);
  await drop(page, NANOGPT.map((n) => `logs/modded-nanogpt/${n}.log`));

  // Loss curves: EMA on by default, so a faint raw series and an EMA line per run.
  await page.waitForSelector('#figure-loss[data-series="8"] canvas', { timeout: 60_000 });
  const names = (await page.$eval('#figure-loss', (f) => f.dataset.seriesNames)).split(', ');
  for (const n of NANOGPT) assert.ok(names.includes(n) && names.includes(`${n} (raw)`), names.join());
  assert.match(await caption(page, 'figure-loss'), /val_loss vs step, 4 run\(s\)\. Lines: debiased EMA \(β = 0\.9\)/);
  assert.match(await caption(page, 'figure-loss'), /136 of 136 logged points drawn/);
  assert.ok(await inked(page, 'figure-loss') > 5000, 'loss canvas is drawn');
  // Hover readout: the nearest logged point of every run under the pointer.
  await page.hover('#figure-loss canvas', { position: { x: 300, y: 250 } });
  await page.waitForFunction(() => /muonh_seed1: \d+\.\d{5} at step \d+/.test(document.querySelector('#figure-loss-readout').textContent));
  const hover = await page.$eval('#figure-loss-readout', (p) => p.textContent);
  for (const n of NANOGPT) assert.match(hover, new RegExp(`${n}: \\d`));

  // Residual: the default reference is the first run; add the second Muon seed (mean of two).
  await page.waitForSelector('#figure-residual canvas');
  assert.match(await caption(page, 'figure-residual'), /reference muonh_seed1 /);
  await page.click('#lc-runs tr[data-run="muonh_seed2"] input.lc-ref');
  await page.waitForFunction(() => /mean of 2 \(muonh_seed1, muonh_seed2\)/.test(document.querySelector('#figure-residual figcaption').textContent));
  // Window span + 4 runs + the negative-residual span and its markers.
  await page.waitForSelector('#figure-residual[data-series="7"]');
  const rnames = await page.$eval('#figure-residual', (f) => f.dataset.seriesNames);
  assert.match(rnames, /^alignment window t̂ ∈ \[0\.1, 0\.3\], muonh_seed1, muonh_seed2, adamh_seed1, adamh_seed2, negative residual, negative residual$/);
  assert.match(await caption(page, 'figure-residual'), /S fitted on the window t̂ ∈ \[0\.1, 0\.3\]: S = muonh_seed1 3\.278/);
  const flags = await page.$$eval('#residual-flags li.flag', (ls) => ls.map((l) => `${l.dataset.run}: ${l.dataset.pattern}`));
  assert.deepEqual(flags, ['adamh_seed1: negative residual', 'adamh_seed2: negative residual']);
  assert.match(await page.$eval('#residual-flags li.flag', (l) => l.textContent), /does better than the reference/);
  assert.ok(await inked(page, 'figure-residual') > 5000);

  // C(t): these logs have no gradient statistics; the message names the fields.
  const msg = await page.$eval('#consolidation-message', (p) => p.textContent);
  assert.match(msg, /muonh_seed1: cannot compute the consolidation ratio: the log has no `grad_norm`, `grad_var`, `lr`/);
  assert.equal(await page.$eval('#figure-consolidation', (f) => f.dataset.series), '0');
  // Rank vs loss needs a PR trajectory.
  assert.match(await page.$eval('#rank-message', (p) => p.textContent), /`mean_pr`/);

  await page.screenshot({ path: path.join(outDir, 'losscurve-nanogpt.png'), fullPage: true });
  await page.locator('#figure-residual').screenshot({ path: path.join(outDir, 'losscurve-residual.png') });

  // Controls: a later window, progress x, log y, no smoothing, a hidden run.
  await setValue(page, '#lc-w0', '0.2');
  await page.waitForFunction(() => /window t̂ ∈ \[0\.2, 0\.3\]/.test(document.querySelector('#figure-residual figcaption').textContent));
  await page.selectOption('#lc-x', 'progress');
  await page.click('#lc-log-y');
  await setValue(page, '#lc-beta', '0');
  await page.waitForFunction(() => {
    const c = document.querySelector('#figure-loss figcaption').textContent;
    return /val_loss vs progress t̂/.test(c) && /no smoothing/.test(c) && /Log y/.test(c);
  });
  await page.waitForSelector('#figure-loss[data-series="4"]');
  await page.click('#lc-runs tr[data-run="adamh_seed2"] input.lc-show');
  await page.waitForSelector('#figure-loss[data-series="3"]');
  await page.locator('#figure-loss').screenshot({ path: path.join(outDir, 'losscurve-loss-progress.png') });
  assert.deepEqual(errors, []);
});

test('metrics.jsonl with grad_norm/grad_var: C(t) with regimes; an edited health rule fires', async () => {
  const { page, errors } = await openPage(browser, url);
  await drop(page, ['runs/A1/metrics.jsonl', 'runs/B1/metrics.jsonl']);
  // Four regime shades (labels from the regimes' own bounds), the grokking threshold, one line per
  // run and the alerts that fire on these runs (issue 18).
  await page.waitForSelector('#figure-consolidation[data-series="9"] canvas', { timeout: 60_000 });
  const names = await page.$eval('#figure-consolidation', (f) => f.dataset.seriesNames);
  assert.match(names, /^converging fast \(C > 20\), exploring vs exploiting, optimal \(1\.5 < C < 10\), C ≈ 1, phase transition imminent \(0\.5 ≤ C ≤ 1\.5\), stuck in a bad minimum \(C < 0\.5\), grokking threshold C = 1\.5, A1, B1, sharp drop of C, sharp minimum \(C high, not decreasing\)$/);
  assert.match(await caption(page, 'figure-consolidation'), /the gradient SNR itself is only ≈ 1\.452/);
  assert.match(await caption(page, 'figure-consolidation'), /σ² = micro_batch_size·grad_var = 2·grad_var/);
  assert.equal(await page.$('#consolidation-message'), null);
  assert.ok(await inked(page, 'figure-consolidation') > 5000);

  // ∫lr exists for these logs.
  await page.selectOption('#lc-x', 'cumlr');
  await page.waitForFunction(() => /val_loss vs cumulative lr Σlr/.test(document.querySelector('#figure-loss figcaption').textContent));

  // Built-in rules: nothing they read is logged here.
  assert.equal(await page.$eval('#figure-health', (f) => f.dataset.series), '0');
  assert.match(await page.$eval('#health-events', (u) => u.textContent), /not applicable \(metric not logged\): lora_norm warn/);
  // A user rule on grad_norm (clipped at 1.0 in these runs).
  await page.click('#rules-editor summary');
  await setValue(page, '#rules-json', JSON.stringify([
    { name: 'grad norm above clip', metric: 'grad_norm', comparison: '>', threshold: 1.0, level: 'warn' },
  ]));
  await page.waitForSelector('#figure-health[data-series="1"] canvas');
  const events = await page.$$eval('#health-events li.event', (ls) => ls.map((l) => l.dataset.rule));
  assert.ok(events.length >= 1 && events.every((r) => r === 'grad norm above clip'), events.join());
  // Broken JSON: an error, no crash.
  await setValue(page, '#rules-json', '[{');
  await page.waitForSelector('#rules-error');
  await page.screenshot({ path: path.join(outDir, 'losscurve-consolidation.png'), fullPage: true });
  await page.locator('#figure-consolidation').screenshot({ path: path.join(outDir, 'losscurve-consolidation-figure.png') });
  assert.deepEqual(errors, []);
});

test('user-study results.json: rank vs loss share x and mark the PR drop', async () => {
  const { page, errors } = await openPage(browser, url);
  await drop(page, ['logs/user-study/QK_results.json', 'logs/user-study/NoQK_results.json']);
  await page.selectOption('#lc-x', 'tokens');
  await page.selectOption('#lc-metric', 'loss');
  // The PR-drop shade + one line per run, on both figures.
  await page.waitForSelector('#figure-rank[data-series="3"] canvas', { timeout: 60_000 });
  await page.waitForSelector('#figure-rank-loss[data-series="3"] canvas');
  assert.match(await page.$eval('#figure-rank', (f) => f.dataset.seriesNames), /^sudden PR drop, /);
  assert.match(await caption(page, 'figure-rank'), /Sudden PR drops \(shaded on both\): QK: /);
  assert.ok(await inked(page, 'figure-rank') > 5000);
  await page.locator('#figure-rank').screenshot({ path: path.join(outDir, 'losscurve-rank.png') });
  await page.locator('#figure-rank-loss').screenshot({ path: path.join(outDir, 'losscurve-rank-loss.png') });
  assert.deepEqual(errors, []);
});

test('residual thresholds are the user\'s: raising "negative below" clears the flags, lowering it brings them back', async () => {
  const { page, errors } = await openPage(browser, url);
  await drop(page, NANOGPT.map((n) => `logs/modded-nanogpt/${n}.log`));
  await page.waitForSelector('#figure-residual canvas', { timeout: 60_000 });
  await page.click('#lc-runs tr[data-run="muonh_seed2"] input.lc-ref');
  await page.waitForFunction(() => /mean of 2 \(muonh_seed1, muonh_seed2\)/.test(document.querySelector('#figure-residual figcaption').textContent));
  const flags = () => page.$$eval('#residual-flags li.flag', (ls) => ls.map((l) => `${l.dataset.run}: ${l.dataset.pattern}`));
  const count = (n) => page.waitForFunction((n) => document.querySelectorAll('#residual-flags li.flag').length === n, n);
  await count(2);
  assert.deepEqual(await flags(), ['adamh_seed1: negative residual', 'adamh_seed2: negative residual']);
  // The settings sit in a closed <details>; open it as a user would.
  await page.click('#residual-thresholds summary');
  await setValue(page, '#lc-th-negative', '10');
  await count(0);
  await page.waitForSelector('#figure-residual[data-series="5"]');
  await setValue(page, '#lc-th-negative', '0.001');
  await count(2);
  assert.deepEqual(await flags(), ['adamh_seed1: negative residual', 'adamh_seed2: negative residual']);
  assert.deepEqual(errors, []);
});

test('an RLAN-style log: the health timeline names each rule, when it first fired, how long, and its action', async () => {
  const { page, errors } = await openPage(browser, url);
  await dropFiles(page, [{ url: `${url}__testdata/rlan_collapse.jsonl`, path: 'rlan/rlan_collapse.jsonl' }]);
  await waitForInventory(page, 1);
  await page.waitForSelector('#health-events li.event', { timeout: 60_000 });
  const events = await page.$$eval('#health-events li.event', (ls) => Object.fromEntries(ls.map((l) => [l.dataset.rule, l.textContent])));
  // Hand-computed in crates/core/tests/losscurve_sources.rs: lora_norm 0.5 0.8 1.1 1.3 1.6 1.7 2.2
  // 1.9 1.4 1.0 0.9 0.8 at steps 1–12 → > 1.0 at 3–9, > 1.5 at 5–8, > 2.0 at 7.
  assert.match(events['lora_norm warn'] ?? '', /first at step 3 \(lora_norm = 1\.1\), until step 9 \(7 firing\(s\), 6 steps in all\).* — action: warn/);
  assert.match(events['lora_norm critical'] ?? '', /first at step 5 .*until step 8/);
  assert.match(events['lora_norm kill'] ?? '', /first at step 7 .*until step 7 .*worst 2\.2 — action: .*kill/);
  assert.ok('lora_norm_ema early stop' in events, Object.keys(events).join(', '));
  assert.ok(Number(await page.$eval('#figure-health', (f) => f.dataset.series)) >= 1);
  assert.ok(await inked(page, 'figure-health') > 1000);
  await page.locator('#figure-health').screenshot({ path: path.join(outDir, 'losscurve-health-rlan.png') });
  assert.deepEqual(errors, []);
});
