// End-to-end: the page's view lives in the URL fragment (`#view=v1.…`). On
// the example study: change Figure 1's metric and layer, switch its log y,
// zoom it and hide a run; a reload (and reopening the study, which loads
// asynchronously after the view is restored) shows the same view; back and
// forward walk through two changes; "Link to this view" copies the address
// with a role=status confirmation; a hostile view opens the default view
// with no error; a figure link's key is left as it is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, openExample } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

const FIG = '#figure-trajectory';
const caption = (page) => page.$eval(`${FIG} figcaption`, (c) => c.textContent);
const seriesNames = (page) => page.$eval(FIG, (f) => f.dataset.seriesNames);
const viewValue = (page) => page.evaluate(() => (location.hash.match(/(?:^#|&)view=([^&]*)/) || [])[1] ?? null);
/** Waits until the URL's view has caught up (the page writes it 300 ms after a change). */
const urlSettles = async (page) => {
  let last = await viewValue(page);
  for (;;) {
    await page.waitForTimeout(450);
    const now = await viewValue(page);
    if (now === last) return now;
    last = now;
  }
};

/** The view every check below expects after the changes. */
async function expectChanged(page, hiddenRun) {
  assert.equal(await page.$eval('#metric', (s) => s.value), 'erank');
  assert.equal(await page.$eval('#layer', (s) => s.value), '1');
  assert.equal(await page.isChecked(`${FIG}-log-y`), true);
  await page.waitForSelector(`${FIG}-reset-zoom`);
  const text = await caption(page);
  assert.match(text, /Zoomed in/);
  assert.match(text, /layer 1/);
  const names = await seriesNames(page);
  assert.ok(!names.split(', ').includes(hiddenRun), `${hiddenRun} is hidden: ${names}`);
  assert.equal(await page.isChecked(`#figure-trajectory-runs .run-toggle[data-run="${hiddenRun}"] input`), false);
}

test('a view survives a reload, walks back and forward, and a hostile one opens the default', { timeout: 900_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  const t0 = Date.now();
  await openExample(page);
  const loadMs = Date.now() - t0;
  assert.equal(await viewValue(page), null, 'the default view writes nothing to the URL');
  const historyStart = await page.evaluate(() => history.length);

  // Two choices, each its own history entry.
  await page.selectOption('#metric', 'erank');
  const afterMetric = await urlSettles(page);
  assert.ok(afterMetric, 'the metric change is in the URL');
  await page.selectOption('#layer', '1');
  await page.waitForFunction(() => /layer 1/.test(document.querySelector('#figure-trajectory figcaption').textContent));
  const afterLayer = await urlSettles(page);
  assert.notEqual(afterLayer, afterMetric);
  assert.equal(await page.evaluate(() => history.length), historyStart + 2, 'each choice pushed one entry');

  // Back: the layer change is undone, the metric kept; forward: the layer again.
  await page.goBack();
  await page.waitForFunction(() => document.querySelector('#layer').value === 'mean');
  assert.equal(await page.$eval('#metric', (s) => s.value), 'erank');
  assert.doesNotMatch(await caption(page), /layer 1/);
  assert.equal(await viewValue(page), afterMetric);
  await page.goForward();
  await page.waitForFunction(() => document.querySelector('#layer').value === '1');
  assert.equal(await viewValue(page), afterLayer);

  // Log y, a zoom (a drag across the middle of the canvas) and a hidden run.
  await page.click(`${FIG}-log-y`);
  await page.$eval(FIG, (f) => f.scrollIntoView());
  const box = await page.$eval(`${FIG} canvas`, (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  await page.mouse.move(box.x + box.w * 0.35, box.y + box.h * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.w * 0.6, box.y + box.h * 0.7, { steps: 5 });
  await page.mouse.up();
  await page.waitForSelector(`${FIG}-reset-zoom`);
  // Runs are picked per figure: open Figure 1's picker and untick one it shows.
  await page.click('#figure-trajectory-runs summary');
  const runs = await page.$$eval('#figure-trajectory-runs .run-toggle', (ls) => ls.filter((l) => l.querySelector('input').checked).map((l) => l.dataset.run));
  const hiddenRun = runs.includes('A2') ? 'A2' : runs[1];
  await page.click(`#figure-trajectory-runs .run-toggle[data-run="${hiddenRun}"] input`);
  await page.waitForFunction((r) => !document.querySelector('#figure-trajectory').dataset.seriesNames.split(', ').includes(r), hiddenRun);
  const changed = await urlSettles(page);
  await expectChanged(page, hiddenRun);
  const drawn = { caption: await caption(page), names: await seriesNames(page) };

  // "Link to this view": a keyboard-operable button, a role=status line, the address with the view.
  await page.focus('#view-link');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#view-link-status').textContent.length > 0);
  assert.equal(await page.$eval('#view-link-status', (p) => p.getAttribute('role')), 'status');
  const link = await page.$eval('#view-link-url', (i) => i.value);
  assert.ok(link.includes(`view=${changed}`), `the link holds the view: ${link}`);

  // Reload: the view comes back before the study does, and holds once it has loaded.
  await page.reload();
  await page.waitForSelector('#dropzone');
  assert.equal(await viewValue(page), changed, 'the reload keeps the URL');
  const t1 = Date.now();
  await openExample(page);
  const reloadMs = Date.now() - t1;
  await expectChanged(page, hiddenRun);
  assert.equal(await caption(page), drawn.caption, 'the same caption');
  assert.equal(await seriesNames(page), drawn.names, 'the same legend');
  assert.deepEqual(errors, []);
  await page.context().close();
  console.log(`example study: ${loadMs} ms, again after the reload ${reloadMs} ms; view value ${changed.length} characters`);
});

test('a hostile view opens the default view, with no error, and other keys stay', { timeout: 120_000 }, async () => {
  const huge = 'v1.' + 'A'.repeat(200_000);
  const notJson = 'v1.' + Buffer.from('{"trajectory":').toString('base64url');
  const nanZoom = 'v1.' + Buffer.from(JSON.stringify({
    trajectory: { metric: 'no_such', layer: { layer: 1e300 } },
    figures: { 'figure-trajectory': { x_range: ['NaN', 'inf'], log_y: 'yes' } },
    hidden_runs: 12,
  })).toString('base64url');
  for (const bad of [huge, notJson, nanZoom, '%3Cscript%3Ealert(1)%3C%2Fscript%3E', 'v999.x']) {
    const { page, errors } = await openPage(browser, `${url}#other=kept&view=${bad}`);
    await page.waitForTimeout(500);
    assert.equal(await page.$('.error[role=alert]'), null, 'no error banner');
    assert.equal(await page.$('#shared-error'), null);
    // The unreadable view is dropped from the address; the key it does not own stays.
    const hash = await page.evaluate(() => location.hash);
    assert.equal(hash, '#other=kept', `${bad.slice(0, 40)} → ${hash.slice(0, 80)}`);
    assert.deepEqual(errors, []);
    await page.context().close();
  }
});
