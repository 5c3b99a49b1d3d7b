// Reports (asserts nothing) the time from opening the page to a ready drop
// zone — the `rankscope-dropzone-ready` mark, navigation start = 0 — over
// several fresh browser contexts (nothing cached), on the loopback server and
// on a throttled link. Run after `bash scripts/build.sh`:
//   cd tests/e2e && node ./page_ready.mjs [runs=5] [mbit=20]
// The test server sends files uncompressed, so the throttled run moves the raw
// bytes; a server that gzips sends the budget script's gzip sizes instead.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const runs = Number(process.argv[2] ?? 5);
const mbit = Number(process.argv[3] ?? 20);

const { server, url } = await startServer({ dist: path.join(repo, 'dist'), fixtures: repo });
const browser = await launch();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once(throttle) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  if (throttle) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 20, downloadThroughput: (mbit * 1e6) / 8, uploadThroughput: (mbit * 1e6) / 8,
    });
  }
  await page.goto(url);
  await page.waitForFunction(() => performance.getEntriesByName('rankscope-dropzone-ready').length > 0
    && document.querySelector('#dropzone input:not([disabled])'), null, { timeout: 120_000 });
  const r = await page.evaluate(() => {
    const mark = performance.getEntriesByName('rankscope-dropzone-ready')[0];
    const wasm = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm'))
      .map((e) => `${e.name.split('/').pop()} ${(e.encodedBodySize / 1e6).toFixed(2)} MB`);
    return { ms: mark.startTime, wasm };
  });
  await context.close();
  return r;
}

for (const throttle of [false, true]) {
  const times = [];
  let wasm = [];
  for (let i = 0; i < runs; i++) {
    const r = await once(throttle);
    times.push(r.ms);
    wasm = r.wasm;
  }
  const where = throttle ? `${mbit} Mbit/s, 20 ms latency, uncompressed` : 'loopback, uncompressed';
  console.log(`drop zone ready (${where}; ${wasm.join(', ')}): median ${median(times).toFixed(0)} ms `
    + `of ${runs} fresh loads [${times.map((t) => t.toFixed(0)).join(', ')}]`);
}
await browser.close();
server.close();
