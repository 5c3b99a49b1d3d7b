// End-to-end: A1 and A2 with their seed replicates (three seeds each) form two conditions; the
// A1 vs A2 comparison cards reproduce SciPy's statistics (replicates/stats.json: Welch, exact
// permutation, Holm), Figure 1 shows each condition's mean with a band; regrouping the replicates
// by hand leaves one seed a side, and the card then says which test it used and why (the paired
// signed-rank test across units, checked against SciPy's exact Wilcoxon).
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
const stats = JSON.parse(fs.readFileSync(path.join(fixtures, 'replicates/stats.json'), 'utf8'));
const outDir = path.join(here, 'out');
fs.mkdirSync(outDir, { recursive: true });

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** |a − b| ≤ rel·|b| (the page's forward pass reproduces the fixtures' values to ~1e-5). */
function close(a, b, rel, what) {
  assert.ok(Number.isFinite(a) && Math.abs(a - b) <= rel * Math.abs(b), `${what}: ${a} vs SciPy ${b}`);
}

/** The numbers of one effect row of a card (`final` or `trajectory`). */
const row = (page, card, effect) => page.$eval(`${card} tr.effect[data-effect="${effect}"]`, (tr) => ({
  ...Object.fromEntries(Object.entries(tr.dataset).map(([k, v]) => [k, v === '' ? null : Number(v)])),
  verdict: tr.dataset.verdict,
  text: tr.textContent,
}));

test('A1 vs A2 with three seeds each reproduces SciPy; one seed a side says which test and why', async () => {
  const { page, errors } = await openPage(browser, url);
  // Only what the comparison needs: the two batches and the checkpoints (no logs, no results.json).
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const dir of ['runs/A1', 'runs/A2', 'replicates/runs/A1_seed43', 'replicates/runs/A1_seed44',
    'replicates/runs/A2_seed43', 'replicates/runs/A2_seed44']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=${dir}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);

  // Conditions: A1 and A2, three seeds each; the replicates' seeds come from their names.
  await page.waitForFunction(() => document.querySelector('#conditions-summary')?.textContent === 'A1 (3 seeds), A2 (3 seeds)', null, { timeout: 60_000 });
  const seedRow = await page.$eval('tr.condition-run[data-run="A1_seed43"]', (tr) => ({
    condition: tr.dataset.condition, seed: tr.querySelector('.seed').textContent, from: tr.querySelector('.seed-from').textContent,
  }));
  assert.deepEqual(seedRow, { condition: 'A1', seed: '43', from: 'name' });

  // The cards, once every forward pass is done.
  const kpr = '#card-A1-A2-k_pr_post_norm';
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && document.querySelector('#card-A1-A2-k_pr_post_norm tr.effect[data-effect="final"]'), null, { timeout: 300_000 });
  const fin = await row(page, kpr, 'final');
  const ref = stats.final_mean_k_pr_welch;
  close(fin.meanX, ref.mean_x, 1e-4, 'final mean A1');
  close(fin.meanY, ref.mean_y, 1e-4, 'final mean A2');
  close(fin.difference, ref.difference, 1e-3, 'final difference');
  close(fin.t, ref.t, 1e-3, 'Welch t');
  close(fin.df, ref.df, 1e-3, 'Welch df');
  close(fin.p, ref.p_two_sided, 1e-3, 'Welch p');
  close(fin.permP, stats.final_mean_k_pr_exact_permutation.p_two_sided, 1e-9, 'exact permutation p');
  assert.equal(fin.relabelings, stats.final_mean_k_pr_exact_permutation.relabelings);
  const traj = await row(page, kpr, 'trajectory');
  close(traj.difference, stats.trajectory_mean_k_pr_welch.difference, 1e-3, 'trajectory difference');
  close(traj.t, stats.trajectory_mean_k_pr_welch.t, 1e-3, 'trajectory Welch t');
  close(traj.p, stats.trajectory_mean_k_pr_welch.p_two_sided, 1e-3, 'trajectory Welch p');
  const loss = await row(page, '#card-A1-A2-heldout_loss', 'final');
  close(loss.t, stats.final_val_loss_welch.t, 1e-3, 'held-out loss Welch t');
  close(loss.p, stats.final_val_loss_welch.p_two_sided, 1e-3, 'held-out loss Welch p');
  // Holm over the three Welch tests, in SciPy's family order.
  const [hFinal, hTraj, hLoss] = stats.holm.p_holm;
  close(fin.pHolm, hFinal, 1e-3, 'Holm p (final K PR)');
  close(traj.pHolm, hTraj, 1e-3, 'Holm p (trajectory K PR)');
  close(loss.pHolm, hLoss, 1e-3, 'Holm p (held-out loss)');
  assert.match(await page.$eval('#holm-family', (p) => p.textContent), /Holm's correction over 3 tests/);
  // Final: p = 0.073 > 0.05, so no verdict of direction; the card says why.
  assert.equal(fin.verdict, 'inconclusive');
  assert.match(fin.text, /across seeds \(3 and 3 runs\): Welch's t-test/);
  assert.match(await page.$eval(kpr, (c) => c.textContent), /does QK-norm cause or only report collapse\?/);
  assert.match(await page.$eval(kpr, (c) => c.textContent), /Per layer at the final checkpoint/);

  // Figure 1: each condition's mean with a band; the seeds as thin lines on request; collapse marks.
  await page.waitForFunction(() => document.querySelector('#figure-trajectory')?.dataset.seriesNames === 'A1 (mean of 3 seeds), A2 (mean of 3 seeds)');
  assert.match(await page.$eval('#figure-trajectory figcaption', (c) => c.textContent), /band = mean ± 1 standard deviation across seeds/);
  await page.check('#show-seeds');
  await page.waitForFunction(() => document.querySelector('#figure-trajectory').dataset.series === '8');
  await page.check('#mark-collapse');
  await page.waitForFunction(() => /Collapse timing \(thin vertical line = onset, shaded = steepest drop\): onset = first checkpoint/
    .test(document.querySelector('#figure-trajectory figcaption').textContent));
  await page.screenshot({ path: path.join(outDir, 'compare-seeds.png'), fullPage: true });

  // Regroup the replicates by hand (keyboard: type, then Tab away): A1 and A2 keep one seed each.
  for (const [run, name] of [['A1_seed43', 'A1rep'], ['A1_seed44', 'A1rep'], ['A2_seed43', 'A2rep'], ['A2_seed44', 'A2rep']]) {
    const box = page.getByLabel(`condition of run ${run} (type a name to regroup)`);
    await box.fill(name);
    await box.press('Tab');
  }
  await page.waitForFunction(() => document.querySelector('#conditions-summary').textContent
    === 'A1rep (2 seeds), A2rep (2 seeds), A1 (1 seed), A2 (1 seed)');
  await page.waitForFunction(() => document.querySelector('#card-A1-A2-k_pr_post_norm .units'));
  const one = await row(page, kpr, 'final');
  assert.equal(one.p, null, 'no p-value across seeds with one seed a side');
  assert.equal(one.verdict, 'inconclusive');
  assert.match(one.text, /fewer than 2 seeds on a side \(1 and 1 runs\), so no test across seeds/);
  const units = await page.$eval(`${kpr} .units`, (p) => ({ p: Number(p.dataset.p), text: p.textContent }));
  close(units.p, stats.units_wilcoxon_seed42.p_two_sided_exact, 1e-9, 'Wilcoxon signed-rank p across units');
  assert.match(units.text, /Paired Wilcoxon signed-rank test across \(layer, head\) units, A1 vs A2/);
  assert.match(units.text, /not independent/);
  await page.screenshot({ path: path.join(outDir, 'compare-one-seed.png'), fullPage: true });
  assert.deepEqual(errors, []);
});
