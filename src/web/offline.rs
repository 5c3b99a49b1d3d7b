//! Offline after the first load: registers `sw.js` (network first, cache as
//! fallback) and caches what the page loaded before the worker ran, plus the
//! analysis worker's files, which load only on the first analysis.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function enable_offline() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  navigator.serviceWorker.register('./sw.js').then(() => navigator.serviceWorker.ready).then(async () => {
    const here = new URL('./', location.href);
    const loaded = performance.getEntriesByType('resource').map((e) => e.name)
      .filter((u) => u.startsWith(here.href));
    const files = [here.href, ...loaded, './worker_loader.js', './worker.js', './worker_bg.wasm', './example/manifest.json'];
    const cache = await caches.open('rankscope-v1');
    await Promise.all([...new Set(files)].map((u) => cache.add(u).catch(() => {})));
    document.documentElement.dataset.offlineReady = 'true';
  }).catch((e) => console.warn('offline mode unavailable:', e));
}
"#)]
extern "C" {
    fn enable_offline();
}

/// Starts the service worker (a no-op where the browser has none, or over plain http off localhost).
pub fn enable() {
    enable_offline();
}
