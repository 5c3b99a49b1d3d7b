// Launching Debian's Chromium through playwright-core, and dropping files on
// the page the way a user's drag-and-drop does.
import { chromium } from 'playwright-core';

export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
      '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs],
  });
}

/**
 * Chromium with WebGPU on SwiftShader (a CPU implementation of Vulkan), as on a
 * machine without a GPU: slow, but the same WebGPU API and shaders.
 */
export async function launchWebGpu() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
      '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
  });
}

/** Opens the page and waits for the app to mount; fails on any page error. */
/** `cores`: what `navigator.hardwareConcurrency` says, which sizes the page's worker pool. */
export async function openPage(browser, url, { cores } = {}) {
  // A context of its own (as browser.newPage gives), made explicitly: the accessibility audit needs one.
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  if (cores !== undefined) {
    await context.addInitScript((n) => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => n }), cores);
  }
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('#dropzone', { timeout: 60_000 });
  return { page, errors };
}

/**
 * Drops files on the drop zone. `files` are [{ url, path }]: each is fetched
 * from the test server inside the page and becomes a File named by its
 * relative path, as a dropped folder's files are.
 */
export async function dropFiles(page, files) {
  await page.evaluate(async (files) => {
    const dt = new DataTransfer();
    for (const f of files) {
      const resp = await fetch(f.url);
      const blob = await resp.blob();
      dt.items.add(new File([blob], f.path));
    }
    const zone = document.querySelector('#dropzone');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files);
}

/** Waits until no file is being read and `count` rows are in the table. */
export async function waitForInventory(page, count, timeout = 120_000) {
  await page.waitForFunction(
    (n) => document.querySelectorAll('#inventory tr.pending').length === 0
      && document.querySelectorAll('#inventory tr.file').length === n,
    count, { timeout },
  );
}

/** The inventory table as objects keyed by column name. */
export async function readInventory(page) {
  return page.evaluate(() => {
    const heads = [...document.querySelectorAll('#inventory thead th')].map((th) => th.textContent.trim());
    return [...document.querySelectorAll('#inventory tr.file')].map((tr) => {
      const row = {};
      [...tr.children].forEach((td, i) => { row[heads[i]] = td.textContent.trim(); });
      row.status = tr.dataset.status;
      row.path = tr.dataset.path;
      row.kind = tr.dataset.kind;
      row.messages = [...tr.querySelectorAll('ul.messages li')].map((li) => li.textContent);
      return row;
    });
  });
}

/** Opens the built-in example study and waits until its analysis has finished. */
export async function openExample(page, timeout = 600_000) {
  await page.click('#open-example');
  await page.waitForSelector('#inventory tr.file', { timeout: 120_000 });
  await settled(page, timeout);
}

/** Waits until no file is being read and no analysis runs, with Figure 1 drawn. */
export async function settled(page, timeout = 300_000) {
  await page.waitForFunction(() => document.querySelectorAll('#inventory tr.pending').length === 0
    && !document.querySelector('#example-progress') && !document.querySelector('#spectra-progress')
    && document.querySelector('#figure-trajectory canvas'), null, { timeout });
}

/**
 * An accessibility audit of the page as it is (axe-core, WCAG 2.x A/AA rules
 * and best practices): the violations by impact, and the serious or critical
 * ones in full for the test's message.
 */
export async function audit(page) {
  const { default: AxeBuilder } = await import('@axe-core/playwright');
  const result = await new AxeBuilder({ page }).analyze();
  const counts = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  for (const v of result.violations) counts[v.impact] = (counts[v.impact] ?? 0) + v.nodes.length;
  const severe = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  return { counts, severe, rules: result.violations.map((v) => `${v.impact} ${v.id} (${v.nodes.length})`), passes: result.passes.length };
}
