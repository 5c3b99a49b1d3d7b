// End-to-end: a figure link. Figure 1 is computed from the fixture
// checkpoints, its link copied, then opened in a fresh browser context with
// no files: the shared figure must draw the same pixels. Broken, future and
// hostile links give a message and run nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import zlib from 'node:zlib';
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
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

const pixels = (page, id) => page.$eval(`#${id} canvas`, (c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data));

/** A link made by hand, as an attacker or a newer version would. */
const craft = (obj, version = 1) => `figure=v${version}.${zlib.deflateRawSync(Buffer.from(JSON.stringify(obj))).toString('base64url')}`;

test('a copied Figure 1 link opens in a fresh browser with the same pixels', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = [];
  for (const run of ['A1', 'A2', 'B1', 'B2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForSelector('#figure-trajectory[data-series="4"] canvas', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'));
  await page.click('#figure-trajectory .copy-link');
  const link = await page.waitForSelector('#figure-trajectory .share-link').then((i) => i.inputValue());
  assert.match(link, /#figure=v1\.[A-Za-z0-9_-]+$/);
  assert.ok(link.length < 8192, `link of ${link.length} characters`);
  const original = await pixels(page, 'figure-trajectory');

  const fresh = await browser.newContext();
  const viewer = await fresh.newPage({ viewport: { width: 1400, height: 1000 } });
  const viewerErrors = [];
  viewer.on('pageerror', (e) => viewerErrors.push(String(e)));
  await viewer.goto(link);
  await viewer.waitForSelector('#figure-shared canvas', { timeout: 60_000 });
  const banner = await viewer.$eval('#shared-figure .banner', (b) => b.textContent);
  assert.match(banner, /Shared figure \(read-only\).*from 24 files/);
  const files24 = await viewer.$$eval('#shared-figure .shared-files li', (li) => li.map((l) => l.textContent));
  assert.equal(files24.length, 24);
  assert.ok(files24.some((f) => f.startsWith('runs/A1/ckpt_tokens_0.safetensors')));
  assert.ok(files24.every((f) => /\(\d+\.\d KB\) · sha256\/1MiB:[0-9a-f]{16}$/.test(f)), files24[0]);
  assert.equal(await viewer.$eval('#figure-shared', (f) => f.dataset.seriesNames), 'A1, A2, B1, B2');
  const shared = await pixels(viewer, 'figure-shared');
  assert.equal(shared.length, original.length);
  let differing = 0;
  for (let i = 0; i < shared.length; i += 4) {
    if (shared[i] !== original[i] || shared[i + 1] !== original[i + 1] || shared[i + 2] !== original[i + 2]) differing++;
  }
  assert.equal(differing, 0, `${differing} pixels differ`);
  await viewer.screenshot({ path: path.join(outDir, 'shared-figure.png'), fullPage: true });
  assert.deepEqual(viewerErrors, []);
  assert.deepEqual(errors, []);
  await fresh.close();
});

test('broken, future and hostile links give a message and run nothing', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const open = async (fragment) => {
    await page.goto('about:blank');
    await page.goto(`${url}#${fragment}`);
    await page.waitForSelector('#dropzone', { timeout: 60_000 });
  };
  await open('figure=v1.AAAA*');
  assert.match(await page.$eval('#shared-error', (e) => e.textContent), /cannot be opened: .*not valid base64url/);
  await open('figure=v1.q1YqS8');
  assert.match(await page.$eval('#shared-error', (e) => e.textContent), /cut short|does not decompress/);
  await open(craft({ format: 1 }, 3));
  assert.match(await page.$eval('#shared-error', (e) => e.textContent), /newer rankscope \(link format v3\)/);
  // (Links over 2 MB: Chromium itself refuses such URLs; the decoder's limit is tested natively.)

  // Names from a link are text: markup in them is shown, not run.
  const hostile = '<img src=x onerror="window.__pwned=1">';
  await open(craft({
    format: 1, app_version: '0.1.0',
    spec: { kind: 'Trajectory', title: hostile, caption: hostile, x: { label: 'x', scale: 'Linear', range: null },
      y: { label: 'y', scale: 'Linear', range: null }, sources: [hostile],
      series: [{ name: hostile, points: [[0, 1], [1, 2]], style: 'Line', color: 0, band: null, error_bars: null, faint: false, points_total: null }] },
    files: [{ name: hostile, size: 10 }],
  }));
  await page.waitForSelector('#figure-shared canvas');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.$$eval('#shared-figure img', (i) => i.length), 0);
  assert.ok((await page.$eval('#shared-figure .shared-files li', (l) => l.textContent)).includes(hostile));
  await ctx.close();
});

test('a saved session opens in a fresh browser with the same figures and no files', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = ['eval_tokens.safetensors', 'heldout_tokens.safetensors'];
  for (const run of ['A1', 'B2']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && /K = W_k·X/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 120_000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-session')]);
  const saved = path.join(outDir, 'rankscope-session.json');
  await download.saveAs(saved);
  const text = fs.readFileSync(saved, 'utf8');
  assert.match(text.slice(0, 100), /"format":"rankscope-session","version":1/);
  const trajectory = await pixels(page, 'figure-trajectory');
  const waterfall = await pixels(page, 'figure-waterfall');

  const fresh = await browser.newContext();
  const viewer = await fresh.newPage({ viewport: { width: 1400, height: 1000 } });
  await viewer.goto(url);
  await viewer.waitForSelector('#dropzone', { timeout: 60_000 });
  await viewer.evaluate((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'rankscope-session.json', { type: 'application/json' }));
    const zone = document.querySelector('#dropzone');
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, text);
  await viewer.waitForSelector('#figure-trajectory[data-series="2"] canvas', { timeout: 60_000 });
  assert.match(await viewer.$eval('#notices', (n) => n.textContent), /session saved by rankscope .* 2 run\(s\), 12 checkpoint\(s\) and 0 log\(s\), computed from 14 file\(s\)/);
  assert.equal(await viewer.$$eval('#inventory tr.file', (r) => r.length), 0, 'no files were needed');
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  assert.ok(same(await pixels(viewer, 'figure-trajectory'), trajectory), 'Figure 1 pixels match');
  assert.ok(same(await pixels(viewer, 'figure-waterfall'), waterfall), 'Figure 2 pixels match');

  // A future session says so, and every session's notice of one drop survives.
  await viewer.evaluate(([newer, ok]) => {
    const dt = new DataTransfer();
    dt.items.add(new File([newer], 'newer.json'));
    dt.items.add(new File([ok], 'again.json'));
    document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, [text.replace('"version":1', '"version":9'), text]);
  await viewer.waitForFunction(() => document.querySelectorAll('#notices li').length === 2);
  const notes = await viewer.$$eval('#notices li', (l) => l.map((x) => x.textContent));
  assert.match(notes[0], /^newer\.json: .*newer rankscope \(session format v9\)/);
  assert.match(notes[1], /^Opened again\.json: /);
  await fresh.close();
  assert.deepEqual(errors, []);
});

test('exported SVG, PNG 2× and CSV match the canvas', async () => {
  const { page, errors } = await openPage(browser, url);
  const files = [];
  for (const run of ['A1', 'B1']) {
    for (const p of await (await fetch(`${url}__fixtures/__list?dir=runs/${run}`)).json()) {
      if (p.endsWith('.safetensors')) files.push(p);
    }
  }
  await dropFiles(page, files.map((p) => ({ url: `${url}__fixtures/${p}`, path: p })));
  await waitForInventory(page, files.length);
  await page.waitForSelector('#figure-trajectory[data-series="2"] canvas', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress'));
  const grab = async (selector) => {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    const file = path.join(outDir, d.suggestedFilename());
    await d.saveAs(file);
    return file;
  };
  const svgFile = await grab('#figure-trajectory .export-svg');
  const svg = fs.readFileSync(svgFile, 'utf8');
  assert.ok(svg.length < 30_000, `SVG of ${svg.length} bytes`);
  assert.ok(!/<image/.test(svg), 'no embedded rasters');
  assert.match(svg, /<text[^>]*>\s*A1\s*<\/text>/, 'text stays text');

  // The SVG rasterised by Chromium against the canvas: 12×12-pixel blocks'
  // mean colours agree (fonts are antialiased differently; shapes are not).
  const blocksDiffering = await page.evaluate(async (svg) => {
    const canvas = document.querySelector('#figure-trajectory canvas');
    const img = new Image();
    img.src = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    await img.decode();
    const other = document.createElement('canvas');
    other.width = canvas.width; other.height = canvas.height;
    const ctx = other.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, other.width, other.height);
    ctx.drawImage(img, 0, 0);
    const a = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const b = ctx.getImageData(0, 0, other.width, other.height).data;
    const B = 12; let differing = 0; let blocks = 0;
    for (let by = 0; by + B <= canvas.height; by += B) {
      for (let bx = 0; bx + B <= canvas.width; bx += B) {
        const sum = [0, 0, 0, 0, 0, 0];
        for (let y = by; y < by + B; y++) for (let x = bx; x < bx + B; x++) {
          const i = (y * canvas.width + x) * 4;
          for (let c = 0; c < 3; c++) { sum[c] += a[i + c]; sum[3 + c] += b[i + c]; }
        }
        blocks++;
        if ([0, 1, 2].some((c) => Math.abs(sum[c] - sum[3 + c]) / (B * B) > 24)) differing++;
      }
    }
    return differing / blocks;
  }, svg);
  assert.ok(blocksDiffering < 0.03, `${(blocksDiffering * 100).toFixed(1)}% of blocks differ`);

  const png = fs.readFileSync(await grab('#figure-trajectory .export-png2'));
  assert.equal(png.readUInt32BE(16), 1800, 'PNG 2× is 1800 px wide');
  assert.equal(png.readUInt32BE(20), 1120);
  const csv = fs.readFileSync(await grab('#figure-trajectory .export-csv'), 'utf8').trim().split('\n');
  assert.match(csv[0], /^series,x: training tokens,y: /);
  assert.equal(csv.length, 1 + 12, 'one row per plotted point (2 runs × 6 checkpoints)');
  assert.deepEqual(errors, []);
});
