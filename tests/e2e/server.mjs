// A static server for the end-to-end tests: the built page (dist/) at `/`,
// and the shared fixtures at `/__fixtures/` (with `/__fixtures/__list?dir=…`
// listing files), on a free loopback port.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
};

function listFiles(root, dir) {
  const out = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r); else out.push(r);
    }
  };
  walk(dir);
  return out.sort();
}

/** `base`: the sub-path the page is served at (default `/`), as on a project page. */
export async function startServer({ dist, fixtures, testdata, base = '/' }) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let root = dist;
    let rel = decodeURIComponent(url.pathname);
    if (testdata && rel.startsWith('/__testdata/')) {
      // The core's small made-up logs (crates/core/tests/data), for sources the fixtures lack.
      root = testdata;
      rel = rel.slice('/__testdata'.length);
    }
    else if (rel.startsWith('/__fixtures/')) {
      root = fixtures;
      rel = rel.slice('/__fixtures'.length);
      if (rel === '/__list') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(listFiles(fixtures, url.searchParams.get('dir') || '')));
        return;
      }
    }
    else if (base !== '/') {
      if (!rel.startsWith(base)) { res.writeHead(404); res.end('not found'); return; }
      rel = '/' + rel.slice(base.length);
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(root, path.normalize(rel));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404); res.end('not found'); return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${server.address().port}${base}`, origin: `http://127.0.0.1:${server.address().port}/` };
}
