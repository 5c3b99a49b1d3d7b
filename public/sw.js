// rankscope's service worker: the page works offline after its first load.
// Network first, so a new build is picked up whenever the server answers; the
// cache when it does not. The page adds what it loaded before this worker was
// running (src/web/offline.rs). Dropped files never pass through here: they
// are read from the user's disk as Blobs.
const CACHE = 'rankscope-v1';
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && response.type === 'basic') {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
        }
        return response;
      })
      .catch(() => caches.match(request, { ignoreSearch: true }).then((hit) => hit || Response.error())),
  );
});
