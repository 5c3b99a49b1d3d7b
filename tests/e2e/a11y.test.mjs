// End-to-end: keyboard and screen readers. An axe-core audit of the empty
// page, the example study, a shared figure and error states (zero serious or
// critical violations), and a keyboard-only walkthrough: open the example
// study and export a figure without the mouse.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, waitForInventory, openExample, settled, audit } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

/** Audits the page, logs the counts (they go in the notes) and fails on anything serious or critical. */
async function assertAccessible(page, what) {
  const r = await audit(page);
  console.log(`axe, ${what}: ${JSON.stringify(r.counts)} violations by impact; ${r.passes} rules pass${r.rules.length ? `; ${r.rules.join(', ')}` : ''}`);
  assert.deepEqual(r.severe, [], `${what}: serious or critical accessibility violations`);
}

/** Presses Tab until `selector` has the focus (at most `max` times); returns how many presses it took. */
async function tabTo(page, selector, max = 200) {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return i;
  }
  throw new Error(`${selector} never got the focus by Tab`);
}

test('axe finds nothing serious on the empty page, the example study, a shared figure and error states', { timeout: 900_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  await assertAccessible(page, 'empty page');

  await openExample(page);
  await assertAccessible(page, 'example study');
  // The figures' text alternative: a data table on demand.
  await page.click('#figure-trajectory-data summary');
  await page.waitForSelector('#figure-trajectory-data table tbody tr');
  await assertAccessible(page, 'example study with a figure data table open');

  // A shared figure, in a fresh context.
  await page.click('#figure-trajectory .copy-link');
  const link = await page.waitForSelector('#figure-trajectory .share-link').then((i) => i.inputValue());
  const ctx = await browser.newContext();
  const viewer = await ctx.newPage();
  await viewer.goto(link);
  await viewer.waitForSelector('#figure-shared canvas', { timeout: 60_000 });
  await assertAccessible(viewer, 'shared figure');

  // Error states: a broken link, and broken files in the inventory.
  await viewer.goto('about:blank');
  await viewer.goto(`${url}#figure=v1.not-a-figure`);
  await viewer.waitForSelector('#shared-error[role=alert]');
  await assertAccessible(viewer, 'broken figure link');
  const broken = await openPage(browser, url);
  const bad = JSON.parse(fs.readFileSync(path.join(repo, 'tests/e2e/broken.json'), 'utf8'));
  await broken.page.evaluate(async (bad) => {
    const dt = new DataTransfer();
    for (const b of bad) dt.items.add(new File([Uint8Array.from(atob(b.base64), (c) => c.charCodeAt(0))], b.name));
    document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bad);
  await waitForInventory(broken.page, bad.length);
  await assertAccessible(broken.page, 'broken files');
  await ctx.close();
  assert.deepEqual(errors, []);
});

test('keyboard only: choose files, open the example study, export a figure', { timeout: 600_000 }, async () => {
  const { page, errors } = await openPage(browser, url);
  // Listening from the start intercepts the dialogs before any key is pressed.
  const choosers = [];
  page.on('filechooser', (c) => choosers.push(c));
  const nextChooser = async (n) => {
    for (let i = 0; i < 100 && choosers.length < n; i++) await page.waitForTimeout(100);
    assert.equal(choosers.length, n, 'a file dialog opened');
    return choosers[n - 1];
  };
  // The file and folder dialogs open from buttons the Tab key reaches.
  const toFiles = await tabTo(page, '#choose-files');
  await page.keyboard.press('Enter');
  const chooser = await nextChooser(1);
  assert.ok(chooser.isMultiple(), 'several files at once');
  assert.equal(await chooser.element().getAttribute('id'), 'pick-files');
  await tabTo(page, '#choose-folder', 3);
  await page.keyboard.press('Enter');
  const folder = await nextChooser(2);
  assert.equal(await folder.element().getAttribute('id'), 'pick-folder');
  // Focus is visible: a focused button has an outline.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused button shows where the focus is');

  await tabTo(page, '#open-example', 3);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#inventory tr.file', { timeout: 300_000 });
  await settled(page, 600_000);
  await page.waitForFunction(() => /K = W_k·X on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''));
  // From the top of the page, Tab to Figure 1's SVG export and press Enter.
  await page.evaluate(() => document.activeElement?.blur());
  const presses = await tabTo(page, '#figure-trajectory .export-svg', 400);
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  assert.equal(download.suggestedFilename(), 'figure-trajectory.svg');
  const svg = fs.readFileSync(await download.path(), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /A1/);
  // And its data table opens from the keyboard too.
  await tabTo(page, '#figure-trajectory-data summary', 20);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#figure-trajectory-data table tbody tr');
  console.log(`keyboard: Choose files… after ${toFiles} Tab press(es); Figure 1's SVG export after ${presses} from the top`);
  assert.deepEqual(errors, []);
});
