// End-to-end: A1 and A2 with their seed replicates (three seeds each) form two conditions; the
// A1 vs A2 comparison cards reproduce SciPy's statistics (replicates/stats.json: Welch, exact
// permutation, Holm), Figure 1 shows each condition's mean with a band; regrouping the replicates
// by hand leaves one seed a side, and the card then says which test it used and why (the paired
// signed-rank test across units, checked against SciPy's exact Wilcoxon). On the same analysis (no
// second 36-checkpoint run), the study report: downloaded from the keyboard, its HTML offline and
// self-contained, every computed figure inline, a table per comparison with SciPy's numbers, the
// figures not computed listed, and the Markdown twin with the same tables.
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

  await checkReport(page, { welch: ref, traj: stats.trajectory_mean_k_pr_welch, holm: stats.holm.p_holm });

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

/**
 * The study report of the page as it is: the button's two downloads (from the keyboard), then the
 * HTML opened on its own with every request refused (and counted), its figures, tables and list of
 * what is missing, and the Markdown twin's tables.
 */
async function checkReport(page, ref) {
  const button = page.getByRole('button', { name: 'Download study report' });
  const downloads = [];
  const onDownload = (d) => downloads.push(d);
  page.on('download', onDownload);
  await button.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#report-saved, #report-error'), null, { timeout: 60_000 });
  assert.equal(await page.$('#report-error'), null, 'the report renders without error');
  for (let i = 0; i < 100 && downloads.length < 2; i++) await page.waitForTimeout(100);
  page.off('download', onDownload);
  const byName = Object.fromEntries(await Promise.all(downloads.map(async (d) =>
    [d.suggestedFilename(), fs.readFileSync(await d.path(), 'utf8')])));
  assert.deepEqual(Object.keys(byName).sort(), ['report.html', 'report.md']);
  const htmlPath = path.join(outDir, 'report.html');
  fs.writeFileSync(htmlPath, byName['report.html']);
  fs.writeFileSync(path.join(outDir, 'report.md'), byName['report.md']);
  const md = byName['report.md'];

  // What the page shows: which figures are drawn, how many comparison cards.
  const drawn = await page.evaluate(() => ['trajectory', 'waterfall', 'layers', 'surgery', 'scatter']
    .map((f) => !!document.querySelector(`#figure-${f} canvas`)));
  const cards = await page.$$eval('#comparison-cards article.card:not(.failed)', (a) => a.map((c) => `${c.dataset.x} vs ${c.dataset.y}`));

  // Offline: a page of its own where every http(s) request is refused; none may even be tried.
  const offline = await page.context().newPage();
  const requests = [];
  offline.on('request', (r) => requests.push(r.url()));
  await offline.route(/^https?:/, (r) => r.abort());
  await offline.goto(`file://${htmlPath}`, { waitUntil: 'load' });
  const fileUrl = `file://${htmlPath}`;
  assert.deepEqual(requests.filter((u) => u !== fileUrl), [], 'the report requests nothing');

  const report = await offline.evaluate(() => {
    const figures = [...document.querySelectorAll('figure')].map((f) => ({
      title: f.querySelector('h3').textContent, svg: !!f.querySelector('svg'), caption: f.querySelector('figcaption')?.textContent ?? null,
    }));
    const missingHeading = document.querySelector('h2#missing');
    const missing = missingHeading ? [...missingHeading.nextElementSibling.querySelectorAll('li')].map((li) => li.textContent) : [];
    const tables = [...document.querySelectorAll('table[id^="cmp-"][id$="-table"]')].map((t) => ({
      id: t.id,
      title: document.getElementById(t.id.replace(/-table$/, ''))?.textContent,
      rows: [...t.tBodies[0].rows].map((r) => ({ id: r.id, cells: [...r.cells].map((c) => ({ text: c.textContent, value: c.dataset.value === undefined ? null : Number(c.dataset.value) })) })),
    }));
    return { figures, missing, tables, text: document.body.textContent };
  });
  await offline.close();

  // Every figure slot, drawn inline when the page computed it; Figures 3–5 listed as not computed.
  assert.deepEqual(drawn, [true, true, false, false, false], 'the page draws Figures 1 and 2 only');
  assert.deepEqual(report.figures.map((f) => f.svg), drawn, JSON.stringify(report.figures.map((f) => f.title)));
  assert.match(report.figures[0].caption, /mean ± 1 standard deviation across seeds/);
  for (const n of [3, 4, 5]) {
    assert.ok(report.missing.some((m) => m.startsWith(`Figure ${n}:`) && /not computed: /.test(m)), `Figure ${n} in "Not in this report": ${report.missing}`);
  }
  assert.ok(report.missing.some((m) => /^Surgery verdict: not computed: press “Compute Figures 3–5”/.test(m)));
  assert.equal((byName['report.html'].match(/<svg/g) ?? []).length, 2, 'one inline SVG per computed figure');

  // A table per comparison card, with SciPy's numbers for A1 vs A2 (K PR).
  assert.equal(report.tables.length, cards.length, `tables ${report.tables.map((t) => t.title)} vs cards ${cards}`);
  const kpr = report.tables.find((t) => /^A1 vs A2: K PR/.test(t.title));
  assert.ok(kpr, report.tables.map((t) => t.title).join('; '));
  const cell = (t, which, col) => t.rows.find((r) => r.id.endsWith(`-${which}`)).cells[col].value;
  // Columns: effect, x mean, y mean, difference, interval, test, n, p, Holm p, verdict.
  close(cell(kpr, 'final', 1), ref.welch.mean_x, 1e-4, 'report: final mean A1');
  close(cell(kpr, 'final', 2), ref.welch.mean_y, 1e-4, 'report: final mean A2');
  close(cell(kpr, 'final', 3), ref.welch.difference, 1e-3, 'report: final difference');
  close(cell(kpr, 'final', 7), ref.welch.p_two_sided, 1e-3, 'report: final Welch p');
  close(cell(kpr, 'final', 8), ref.holm[0], 1e-3, 'report: final Holm p');
  close(cell(kpr, 'trajectory', 7), ref.traj.p_two_sided, 1e-3, 'report: trajectory Welch p');
  close(cell(kpr, 'trajectory', 8), ref.holm[1], 1e-3, 'report: trajectory Holm p');
  assert.match(kpr.rows[0].cells[5].text, /Welch/);
  assert.match(report.text, /eval_tokens\.safetensors/);

  // The Markdown twin: the same tables, row by row, and the same list of what is missing.
  for (const t of report.tables) {
    assert.ok(md.includes(`<a id="${t.id}"></a>`), `Markdown has table ${t.id}`);
    for (const r of t.rows) {
      // Markdown escapes (a leading '-', '|', …) removed before comparing the cells' text.
      const line = md.split('\n').find((l) => l.includes(`<a id="${r.id}"></a>`))?.replace(/\\(.)/g, '$1');
      assert.ok(line, `Markdown has row ${r.id}`);
      for (const c of r.cells.filter((c) => c.value !== null)) assert.ok(line.includes(c.text), `${r.id}: ${c.text} in ${line}`);
    }
  }
  for (const n of [3, 4, 5]) assert.match(md, new RegExp(`Figure ${n}:[^\\n]*not computed: `));
  assert.equal((md.match(/data:image\/svg\+xml;base64,/g) ?? []).length, 2, 'the Markdown carries the two figures inline');
}
