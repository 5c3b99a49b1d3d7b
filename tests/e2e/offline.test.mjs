// End-to-end: the built dist/ served at a sub-path (/rankscope/) works, and
// after the first load it works offline (service worker + cache): the page,
// its analysis workers and the built-in example study.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const fixtures = path.resolve(repo, '../shared/fixtures');

let server, url, browser;
before(async () => {
  ({ server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures, base: '/rankscope/' }));
  browser = await launch();
});
after(async () => { await browser?.close(); server?.close(); });

const openExample = async (page) => {
  await page.click('#open-example');
  await page.waitForSelector('#spectra-runner', { timeout: 120_000 });
  await page.waitForFunction(() => !document.querySelector('#spectra-progress')
    && document.querySelector('#figure-trajectory')?.dataset.series === '4', null, { timeout: 120_000 });
  return page.$eval('#spectra-runner', (p) => p.textContent);
};

test('served at /rankscope/, then offline after the first load', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('#dropzone', { timeout: 60_000 });
  await page.waitForFunction(() => document.documentElement.dataset.offlineReady === 'true', null, { timeout: 60_000 });
  assert.match(await openExample(page), /Web Worker/);

  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('#dropzone', { timeout: 60_000 });
  assert.match(await openExample(page), /Web Worker/, 'the analysis workers load from the cache');
  assert.equal(await page.$eval('#figure-trajectory', (f) => f.dataset.series), '4'); // the plan's A1, A2, B1, B2
  assert.deepEqual(errors, []);
  await context.close();
});
