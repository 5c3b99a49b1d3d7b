// End-to-end: files from a URL. A second server (another origin) serves the
// fixtures three ways: with Range and CORS, without Range support, and
// without CORS. A `#src=` link of a small study (three A1 checkpoints, its
// log, the eval and held-out batches, stories260K's model and config.json)
// opens it through Range requests only — no checkpoint is ever fetched whole —
// and Figure 1 equals the one from dropping the same files, and the fixture's
// expected values. Its figure link names the URLs. The other two servers get a
// message that says what is wrong; refused schemes run nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch, openPage, dropFiles, waitForInventory } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

/**
 * The fixtures at `/ranges/…` (Range + CORS), `/norange/…` (CORS, always the
 * whole file with 200) and `/nocors/…` (Range, no CORS headers). Every
 * request is logged.
 */
function startFileServer() {
  const log = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const [, mode, ...rest] = decodeURIComponent(url.pathname).split('/');
    const rel = rest.join('/');
    log.push({ method: req.method, mode, path: rel, range: req.headers.range ?? null });
    const cors = mode !== 'nocors' ? {
      'access-control-allow-origin': '*',
      'access-control-expose-headers': 'Content-Range, Content-Length',
      'access-control-allow-headers': 'Range',
    } : {};
    if (req.method === 'OPTIONS') { res.writeHead(204, cors); res.end(); return; }
    const file = path.join(fixtures, path.normalize(rel));
    if (!['ranges', 'norange', 'nocors'].includes(mode) || !file.startsWith(fixtures) || !fs.existsSync(file)) {
      res.writeHead(404, cors); res.end('not found'); return;
    }
    const size = fs.statSync(file).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && mode !== 'norange') {
      const start = Number(m[1]);
      const end = Math.min(m[2] === '' ? size - 1 : Number(m[2]), size - 1);
      if (start >= size) { res.writeHead(416, { ...cors, 'content-range': `bytes */${size}` }); res.end(); return; }
      res.writeHead(206, { ...cors, 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1, 'accept-ranges': 'bytes' });
      if (req.method === 'HEAD') { res.end(); return; }
      fs.createReadStream(file, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { ...cors, 'content-length': size });
    if (req.method === 'HEAD') { res.end(); return; }
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, log, base: `http://127.0.0.1:${server.address().port}` })));
}

let page0, files0, browser;
before(async () => {
  page0 = await startServer({ dist: path.join(repo, 'dist'), fixtures });
  files0 = await startFileServer();
  browser = await launch();
});
after(async () => { await browser?.close(); page0?.server.close(); files0?.server.close(); });

const STUDY = [
  'runs/A1/ckpt_tokens_0.safetensors',
  'runs/A1/ckpt_tokens_81920.safetensors',
  'runs/A1/ckpt_tokens_327680.safetensors',
  'runs/A1/metrics.jsonl',
  'eval_tokens.safetensors',
  'heldout_tokens.safetensors',
  'stories260K/model.safetensors',
  'stories260K/config.json',
];
const CHECKPOINTS = STUDY.filter((p) => /ckpt_|model\.safetensors/.test(p));

/** `#src=` of `paths` on the file server in `mode`. */
const srcLink = (mode, paths) => `${page0.url}#src=${paths.map((p) => encodeURIComponent(`${files0.base}/${mode}/${p}`)).join(',')}`;

/** Waits for Figure 1 with activation spectra, and no analysis running; checks its runs. */
async function figureReady(page) {
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && document.querySelectorAll('#inventory tr.pending').length === 0
    && document.querySelector('#figure-trajectory canvas')
    && /on the eval batch/.test(document.querySelector('#figure-trajectory figcaption')?.textContent ?? ''), null, { timeout: 120_000 });
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.seriesNames), 'A1, stories260K');
}

/** Figure 1's CSV export. */
async function figureCsv(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#figure-trajectory .export-csv')]);
  return fs.readFileSync(await download.path(), 'utf8').trim();
}

const notices = (page) => page.$$eval('#notices li', (l) => l.map((x) => x.textContent));

test('a #src= link opens a study by Range requests; Figure 1 equals the dropped files and the fixtures; its link names the URLs', { timeout: 120_000 }, async () => {
  const { page, errors } = await openPage(browser, srcLink('ranges', STUDY));
  await waitForInventory(page, STUDY.length);
  await figureReady(page);
  const rows = await page.$$eval('#inventory tr.file', (r) => r.map((tr) => [tr.dataset.path, tr.dataset.status]));
  assert.deepEqual(rows.map((r) => r[0]).sort(), STUDY.map((p) => `ranges/${p}`).sort());
  // The URL paths make the runs, as a dropped folder's paths do: stories260K's config.json is its model's.
  const runs = await page.$$eval('#inventory tr.file', (r) => Object.fromEntries(r.map((tr) => [tr.dataset.path, tr.querySelector('td.run').textContent])));
  assert.equal(runs['ranges/runs/A1/ckpt_tokens_0.safetensors'], 'A1');
  assert.equal(runs['ranges/runs/A1/metrics.jsonl'], 'A1');
  assert.equal(runs['ranges/stories260K/model.safetensors'], 'stories260K');
  assert.deepEqual(await page.$$eval('section.figures p.error', (e) => e.map((x) => x.textContent)), []);
  const viaUrl = await figureCsv(page);

  // Nothing was downloaded whole: every request for a checkpoint asked for a range
  // (the page's and the workers' reads), and the log shows the reads were many and small.
  const ckptRequests = files0.log.filter((r) => r.mode === 'ranges' && CHECKPOINTS.includes(r.path) && r.method === 'GET');
  assert.ok(ckptRequests.length >= CHECKPOINTS.length * 2, `${ckptRequests.length} checkpoint requests`);
  const whole = ckptRequests.filter((r) => !/^bytes=\d+-\d+$/.test(r.range ?? ''));
  assert.deepEqual(whole, [], 'a checkpoint was fetched without a Range header');
  const probes = ckptRequests.filter((r) => r.range === 'bytes=0-0').length;
  console.log(`${files0.log.length} requests for ${STUDY.length} files; ${ckptRequests.length} range requests for the ${CHECKPOINTS.length} checkpoints (${probes} size probes)`);

  // The figure link names the URLs the files came from.
  await page.click('#figure-trajectory .copy-link');
  const link = await page.waitForSelector('#figure-trajectory .share-link').then((i) => i.inputValue());
  const payload = /#figure=v1\.([A-Za-z0-9_-]+)$/.exec(link)[1];
  const shared = JSON.parse(zlib.inflateRawSync(Buffer.from(payload, 'base64url')).toString());
  const a1 = shared.files.find((f) => f.name === 'ranges/runs/A1/ckpt_tokens_327680.safetensors');
  assert.equal(a1?.url, `${files0.base}/ranges/runs/A1/ckpt_tokens_327680.safetensors`, JSON.stringify(shared.files));
  // Every file the figure read names its URL (the checkpoints, the batches and the config; the
  // lines that say which batch each run used are words, with no file of their own).
  const real = shared.files.filter((f) => f.size > 0);
  assert.ok(real.every((f) => f.url?.startsWith(`${files0.base}/ranges/`)), JSON.stringify(shared.files));
  for (const p of ['eval_tokens.safetensors', 'heldout_tokens.safetensors', 'stories260K/config.json']) {
    assert.ok(real.some((f) => f.name === `ranges/${p}`), `${p} in the link: ${JSON.stringify(shared.files)}`);
  }

  // The same files dropped: the same numbers.
  const dropped = await openPage(browser, page0.url);
  await dropFiles(dropped.page, STUDY.map((p) => ({ url: `${page0.url}__fixtures/${p}`, path: `ranges/${p}` })));
  await waitForInventory(dropped.page, STUDY.length);
  await figureReady(dropped.page);
  assert.equal(viaUrl, await figureCsv(dropped.page));

  // A1's K participation ratio (mean over layers) is the fixture's.
  const expected = JSON.parse(fs.readFileSync(path.join(fixtures, 'expected/A1.json'), 'utf8'));
  const a1Rows = viaUrl.split('\n').slice(1).filter((l) => l.startsWith('A1,')).map((l) => l.split(',').slice(1).map(Number));
  assert.equal(a1Rows.length, 3, viaUrl);
  for (const [tokens, pr] of a1Rows) {
    const c = expected.checkpoints.find((x) => x.tokens === tokens);
    assert.ok(Math.abs(pr - c.mean_k_pr) <= 1e-4 * c.mean_k_pr, `tokens ${tokens}: ${pr} vs ${c.mean_k_pr}`);
  }
  assert.deepEqual(errors, []);
  assert.deepEqual(dropped.errors, []);
  await dropped.page.context().close();

  // The shared figure opened fresh offers to open its files from their URLs.
  const viewer = await (await browser.newContext()).newPage();
  await viewer.goto(link);
  // Figure 1's files: the checkpoints, the batches and the config (not A1's metrics.jsonl).
  const figureFiles = STUDY.filter((p) => !p.endsWith('.jsonl'));
  // The page mounts once its module has compiled (seconds on a busy machine): wait for the button.
  await viewer.waitForSelector('#shared-reopen', { timeout: 60_000 });
  assert.equal(await viewer.$eval('#shared-reopen', (b) => b.textContent), `Open the ${figureFiles.length} files from their URLs`);
  await viewer.click('#shared-reopen');
  await waitForInventory(viewer, figureFiles.length);
  await figureReady(viewer);
  assert.equal(await figureCsv(viewer), viaUrl);
  await viewer.context().close();
  await page.context().close();
});

test('Link to this view of files opened in the URL box names their URLs; opened fresh, it reopens them and the view applies', { timeout: 180_000 }, async () => {
  const { page, errors } = await openPage(browser, page0.url);
  const urls = STUDY.map((p) => `${files0.base}/ranges/${p}`);
  await page.fill('#url-input', urls.join(' '));
  await page.press('#url-input', 'Enter');
  await waitForInventory(page, STUDY.length);
  await figureReady(page);
  assert.doesNotMatch(await page.evaluate(() => location.hash), /src=/, 'the box does not write src= into the address');
  await page.selectOption('#metric', 'erank');
  await page.waitForFunction(() => /(?:^#|&)view=/.test(location.hash), null, { timeout: 10_000 });

  await page.focus('#view-link');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('#view-link-status').textContent.length > 0);
  assert.match(await page.$eval('#view-link-status', (p) => p.textContent), new RegExp(`reopens the ${STUDY.length} files opened from URLs\\.$`));
  const link = await page.$eval('#view-link-url', (i) => i.value);
  const hash = new URL(link).hash;
  const src = /(?:#|&)src=([^&]*)/.exec(hash)?.[1]?.split(',').map(decodeURIComponent);
  assert.deepEqual([...(src ?? [])].sort(), [...urls].sort(), `the link names every URL: ${link}`);
  assert.match(hash, /(?:#|&)view=v1\./, `the link holds the view: ${link}`);

  const viewer = await (await browser.newContext()).newPage();
  const viewerErrors = [];
  viewer.on('pageerror', (e) => viewerErrors.push(String(e)));
  await viewer.goto(link);
  await waitForInventory(viewer, STUDY.length);
  await figureReady(viewer);
  assert.equal(await viewer.$eval('#metric', (s) => s.value), 'erank');
  assert.deepEqual(errors, []);
  assert.deepEqual(viewerErrors, []);
  await viewer.context().close();
  await page.context().close();
});

test('a server without Range support, one without CORS, and refused schemes get messages that say so', { timeout: 60_000 }, async () => {
  // No Range support: the checkpoint is refused, the small log is read whole.
  const { page } = await openPage(browser, srcLink('norange', ['runs/A1/ckpt_tokens_0.safetensors', 'runs/A1/metrics.jsonl']));
  await waitForInventory(page, 1);
  const noRange = await notices(page);
  assert.equal(noRange.length, 1, noRange.join(' | '));
  assert.match(noRange[0], new RegExp(`^${files0.base}/norange/runs/A1/ckpt_tokens_0\\.safetensors: the server does not support Range requests .*answers Range requests with 206`));
  assert.equal(await page.$eval('#inventory tr.file', (tr) => tr.dataset.path), 'norange/runs/A1/metrics.jsonl');
  assert.ok(!files0.log.some((r) => r.mode === 'norange' && r.path.endsWith('.safetensors') && r.range === null), 'the checkpoint was fetched whole');

  // No CORS: typed in the URL box and opened with the keyboard.
  await page.fill('#url-input', `${files0.base}/nocors/runs/A1/ckpt_tokens_0.safetensors`);
  await page.press('#url-input', 'Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('#notices li')].some((l) => /CORS/.test(l.textContent)), null, { timeout: 20_000 });
  const noCors = (await notices(page)).find((n) => /CORS/.test(n));
  // The box offers the page link that opens what was typed.
  const srcHref = await page.$eval('#src-link', (a) => a.href);
  assert.equal(decodeURIComponent(new URL(srcHref).hash.replace(/^#src=/, '')), `${files0.base}/nocors/runs/A1/ckpt_tokens_0.safetensors`);
  assert.match(noCors, new RegExp(`^${files0.base}/nocors/runs/A1/ckpt_tokens_0\\.safetensors: the browser blocked the answer: the server does not allow this page \\(${page0.url.replace(/\/$/, '').replace(/[.]/g, '\\.')}\\) to read its files \\(no CORS headers\\)\\. Serve them with .Access-Control-Allow-Origin`));
  await page.context().close();

  // javascript:, data: and file: are refused; nothing of them reaches the page as markup.
  const hostile = [
    'javascript:document.body.dataset.pwned=1',
    'data:text/html,<img src=x onerror="document.body.dataset.pwned=1">',
    'file:///etc/passwd',
  ];
  const bad = await openPage(browser, `${page0.url}#src=${hostile.map(encodeURIComponent).join(',')}`);
  await bad.page.waitForFunction(() => document.querySelectorAll('#notices li').length === 3, null, { timeout: 20_000 });
  const refused = await notices(bad.page);
  assert.ok(refused.every((n) => /URLs are refused; only http:\/\/ and https:\/\/ files can be opened$/.test(n)), refused.join(' | '));
  assert.match(refused.join('\n'), /`javascript:`.*\n.*`data:`.*\n.*`file:`/);
  assert.equal(await bad.page.evaluate(() => document.body.dataset.pwned ?? null), null);
  assert.equal(await bad.page.$$eval('#notices img', (i) => i.length), 0);
  assert.equal(await bad.page.$$eval('#inventory tr.file', (r) => r.length), 0);
  assert.deepEqual(bad.errors, []);
  await bad.page.context().close();
});
