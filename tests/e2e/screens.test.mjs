// End-to-end: screens and themes. Canvases are as sharp as the screen (a 3×
// device pixel ratio gives a backing store 3× the shown size, redrawn when
// the size changes); a dark theme follows the system or the user's choice,
// while exports stay light; the page works from 800 px wide with the files
// table scrolling inside itself. Screenshots go to $SCREENS_DIR (default
// tests/e2e/out).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, dropFiles, waitForInventory, settled, openExample } from './browser.mjs';

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

/** A page in a context of its own (pixel ratio, colour scheme, size), failing on page errors. */
async function pageWith(options) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, ...options });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('#dropzone', { timeout: 60_000 });
  return { ctx, page, errors };
}

async function dropRun(page, run) {
  const files = (await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()).filter((p) => p.endsWith('.safetensors'));
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await settled(page);
}

const canvasSize = (page, id) => page.$eval(`#${id} canvas`, (c) => ({ width: c.width, height: c.height, cssWidth: c.clientWidth, cssHeight: c.clientHeight }));

test('at a 3× device pixel ratio a canvas has 3× its CSS size, and follows a resize', { timeout: 300_000 }, async () => {
  const { ctx, page, errors } = await pageWith({ deviceScaleFactor: 3 });
  await dropRun(page, 'B1');
  const s = await canvasSize(page, 'figure-trajectory');
  assert.ok(Math.abs(s.width - 3 * s.cssWidth) <= 1 && Math.abs(s.height - 3 * s.cssHeight) <= 3, JSON.stringify(s));
  assert.equal(s.cssWidth, 900);
  // Narrower window: the canvas shows smaller, and its backing store follows.
  await page.setViewportSize({ width: 820, height: 1000 });
  await page.waitForFunction(() => { const c = document.querySelector('#figure-trajectory canvas'); return c.clientWidth < 900 && Math.abs(c.width - 3 * c.clientWidth) <= 1; });
  const narrow = await canvasSize(page, 'figure-trajectory');
  // The drawing fills the backing store: ink near its right and bottom edges as well as the left.
  const inkedAt = await page.$eval('#figure-trajectory canvas', (c) => {
    const d = c.getContext('2d').getImageData(Math.floor(c.width * 0.5), 0, Math.ceil(c.width * 0.5), c.height).data;
    let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n;
  });
  assert.ok(inkedAt > 1000, `the right half of the backing store is drawn (${inkedAt} dark pixels)`);
  await page.setViewportSize({ width: 1400, height: 1000 });
  await page.screenshot({ path: path.join(screens, 'hidpi-3x.png'), clip: { x: 0, y: 0, width: 1000, height: 1000 } });
  console.log(`3×: canvas ${s.width}×${s.height} for ${s.cssWidth}×${s.cssHeight} CSS px; at 820 px wide ${narrow.width}×${narrow.height} for ${narrow.cssWidth}×${narrow.cssHeight}`);
  const one = await pageWith({ deviceScaleFactor: 1 });
  await dropRun(one.page, 'B1');
  const s1 = await canvasSize(one.page, 'figure-trajectory');
  assert.deepEqual([s1.width, s1.height], [900, 560]);
  await one.ctx.close();
  await ctx.close();
  assert.deepEqual(errors, []);
});

const luminance = (page) => page.evaluate(() => {
  const [r, g, b] = getComputedStyle(document.documentElement).backgroundColor.match(/\d+/g).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
});

test('the dark theme follows the system, the toggle overrides it and is kept, exports stay light', { timeout: 900_000 }, async () => {
  const { ctx, page, errors } = await pageWith({ colorScheme: 'dark' });
  assert.ok(await luminance(page) < 0.2, 'dark by the system');
  await openExample(page);
  await page.screenshot({ path: path.join(screens, 'dark.png'), fullPage: false });
  await page.locator('section.figures').first().screenshot({ path: path.join(screens, 'dark-figures.png') });
  await page.screenshot({ path: path.join(screens, 'dark-full.png'), fullPage: true });
  // The exported SVG has a white background whatever the theme.
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#figure-trajectory .export-svg')]);
  const svg = fs.readFileSync(await d.path(), 'utf8');
  assert.match(svg, /<rect[^>]*fill="#FFFFFF"/i, 'the SVG export is light');
  await page.selectOption('#theme', 'light');
  assert.ok(await luminance(page) > 0.8, 'light by choice');
  await page.screenshot({ path: path.join(screens, 'light.png'), fullPage: false });
  await page.locator('section.figures').first().screenshot({ path: path.join(screens, 'light-figures.png') });
  await page.screenshot({ path: path.join(screens, 'light-full.png'), fullPage: true });
  await page.reload();
  await page.waitForSelector('#dropzone');
  assert.ok(await luminance(page) > 0.8, 'the choice is kept over a reload');
  assert.equal(await page.$eval('#theme', (s) => s.value), 'light');
  await page.selectOption('#theme', 'dark');
  assert.ok(await luminance(page) < 0.2);
  await page.selectOption('#theme', 'system');
  assert.ok(await luminance(page) < 0.2, 'back to the system (dark)');
  await ctx.close();
  assert.deepEqual(errors, []);
});

test('800 px wide: no horizontal page scroll; the files table scrolls inside itself', { timeout: 900_000 }, async () => {
  const { ctx, page, errors } = await pageWith({ viewport: { width: 800, height: 1000 } });
  await openExample(page);
  const m = await page.evaluate(() => {
    const wrap = document.querySelector('#inventory').closest('.table-scroll');
    return { page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,
      wrap: wrap.clientWidth, table: wrap.scrollWidth, overflow: getComputedStyle(wrap).overflowX };
  });
  assert.ok(m.page <= m.view, `the page is ${m.page} px wide in a ${m.view} px window`);
  assert.ok(m.table > m.wrap && m.overflow === 'auto', `the files table scrolls inside itself: ${JSON.stringify(m)}`);
  // Every figure fits.
  const widths = await page.$$eval('figure.figure canvas', (cs) => cs.map((c) => c.getBoundingClientRect().right));
  assert.ok(widths.every((r) => r <= 800), `canvases end by 800 px: ${widths}`);
  await page.screenshot({ path: path.join(screens, 'width-800.png'), fullPage: false });
  await page.locator('section.figures').first().screenshot({ path: path.join(screens, 'width-800-figures.png') });
  await page.locator('section.inventory').screenshot({ path: path.join(screens, 'width-800-files.png') });
  await page.screenshot({ path: path.join(screens, 'width-800-full.png'), fullPage: true });
  console.log(`800 px: page ${m.page} px in ${m.view} px; files table ${m.table} px inside ${m.wrap} px`);
  await ctx.close();
  assert.deepEqual(errors, []);
});
