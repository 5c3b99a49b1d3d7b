//! Getting `File`s with their relative paths: from a drop (files and whole
//! folders), from the file dialogs, from the built-in example, and from URLs
//! (`#src=` links and the URL box; read by Range requests, see `url_source`).

use super::sources::FileHandle;
use super::url_source::UrlSource;
use rankscope_core::source::remote::{RemoteError, RemoteUrl, MAX_URLS};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A file to inspect, with the path the user sees (`runs/A1/ckpt_tokens_0.safetensors`).
#[derive(Clone)]
pub struct PickedFile {
    pub path: String,
    pub file: FileHandle,
}

// Folder traversal uses the callback-style FileSystem entry API; it is far
// shorter in JS than through web-sys. The entries must be taken synchronously
// inside the drop event (the DataTransfer is emptied once it returns), which
// `collect` does before its first `await`.
#[wasm_bindgen(inline_js = r#"
export function collect(dt) {
  const items = Array.from(dt.items || []).filter(i => i.kind === 'file');
  const entries = items.map(i => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  const plain = Array.from(dt.files || []);
  return (async () => {
    if (!entries.some(e => e)) {
      return plain.map(f => ({ file: f, path: f.webkitRelativePath || f.name }));
    }
    const out = [];
    const walk = async (entry) => {
      if (entry.isFile) {
        const file = await new Promise((res, rej) => entry.file(res, rej));
        out.push({ file, path: entry.fullPath.replace(/^\/+/, '') });
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
          if (!batch.length) break;
          for (const e of batch) await walk(e);
        }
      }
    };
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]) await walk(entries[i]);
      else if (plain[i]) out.push({ file: plain[i], path: plain[i].name });
    }
    return out;
  })();
}
export function from_list(list) {
  return Array.from(list || []).map(f => ({ file: f, path: f.webkitRelativePath || f.name }));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = collect)]
    fn collect_js(dt: &web_sys::DataTransfer) -> js_sys::Promise;
    #[wasm_bindgen(js_name = from_list)]
    fn from_list_js(list: &web_sys::FileList) -> js_sys::Array;
}

fn to_picked(array: &js_sys::Array) -> Vec<PickedFile> {
    array
        .iter()
        .filter_map(|item| {
            let file = js_sys::Reflect::get(&item, &"file".into())
                .ok()?
                .dyn_into::<web_sys::Blob>()
                .ok()?;
            let path = js_sys::Reflect::get(&item, &"path".into())
                .ok()?
                .as_string()?;
            Some(PickedFile {
                path,
                file: FileHandle::Blob(file),
            })
        })
        .collect()
}

/// Starts collecting a drop. Call it inside the drop handler (synchronously);
/// await the returned future afterwards.
pub fn collect_drop(
    dt: &web_sys::DataTransfer,
) -> impl std::future::Future<Output = Result<Vec<PickedFile>, String>> {
    let promise = collect_js(dt);
    async move {
        let value = JsFuture::from(promise)
            .await
            .map_err(|e| format!("could not read the dropped items: {e:?}"))?;
        Ok(to_picked(&value.unchecked_into()))
    }
}

/// Files chosen in a file or folder dialog.
pub fn from_file_list(list: &web_sys::FileList) -> Vec<PickedFile> {
    to_picked(&from_list_js(list))
}

/// The example study's download so far: shown as a progress bar in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    pub bytes_done: f64,
    pub bytes_total: f64,
    pub files_done: usize,
    pub files_total: usize,
    /// When it started (ms, `Date.now()`), for the time left.
    pub started_ms: f64,
}

impl Download {
    /// The share of the bytes received, 0..=1.
    pub fn fraction(&self) -> f64 {
        if self.bytes_total <= 0.0 {
            return 0.0;
        }
        (self.bytes_done / self.bytes_total).clamp(0.0, 1.0)
    }
}

/// One file of the example's manifest.
#[derive(serde::Deserialize)]
struct ExampleFile {
    path: String,
    /// Its size, so the progress bar knows the whole download from the start.
    bytes: u64,
}

/// How many files are fetched at once: the connections a browser opens to one
/// server over HTTP/1.1.
const PARALLEL_FETCHES: u32 = 6;

// Fetching many files with a byte count as they stream in is far shorter in
// JS than through web-sys (ReadableStream readers). `cancelled()` is asked
// between chunks; it aborts every fetch.
#[wasm_bindgen(inline_js = r#"
export async function fetch_all(base, paths, total, parallel, on_progress, cancelled) {
  const out = new Array(paths.length);
  const controller = new AbortController();
  let next = 0, bytes = 0, files = 0;
  const report = () => on_progress(bytes, Math.max(total, bytes), files);
  const one = async (i) => {
    const url = base + paths[i];
    const resp = await fetch(url, { signal: controller.signal });
    if (!resp.ok) throw new Error(`fetching ${url}: HTTP ${resp.status}`);
    let blob;
    if (resp.body) {
      const chunks = [];
      const reader = resp.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        bytes += value.byteLength;
        report();
        if (cancelled()) { controller.abort(); return; }
      }
      blob = new Blob(chunks);
    } else {
      blob = await resp.blob();
      bytes += blob.size;
    }
    out[i] = blob;
    files += 1;
    report();
  };
  const lane = async () => {
    while (next < paths.length && !cancelled()) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, paths.length) }, lane));
  } catch (e) {
    controller.abort();
    if (cancelled()) return null;
    throw (e instanceof Error ? e.message : String(e));
  }
  return cancelled() ? null : out;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = fetch_all, catch)]
    async fn fetch_all_js(
        base: &str,
        paths: &js_sys::Array,
        total: f64,
        parallel: u32,
        on_progress: &Closure<dyn FnMut(f64, f64, u32)>,
        cancelled: &Closure<dyn FnMut() -> bool>,
    ) -> Result<JsValue, JsValue>;
}

/// The built-in example study: `example/manifest.json` lists its files with
/// their sizes; they are fetched [`PARALLEL_FETCHES`] at a time from the same
/// static server (no network beyond it). `progress` gets the bytes received
/// as they stream in; when `cancelled()` turns true the download stops and
/// `Ok(None)` comes back.
pub async fn fetch_example(
    progress: impl Fn(Download) + 'static,
    cancelled: impl Fn() -> bool + 'static,
) -> Result<Option<Vec<PickedFile>>, String> {
    let base = "example/";
    let manifest = fetch_blob(&format!("{base}manifest.json")).await?;
    let text = JsFuture::from(manifest.text())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let text = text.as_string().unwrap_or_default();
    let files: Vec<ExampleFile> = serde_json::from_str(&text).map_err(|e| {
        format!("example/manifest.json is not a list of {{\"path\", \"bytes\"}}: {e}")
    })?;
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let total = files.iter().map(|f| f.bytes as f64).sum::<f64>();
    let started_ms = js_sys::Date::now();
    let files_total = files.len();
    let start = Download {
        bytes_done: 0.0,
        bytes_total: total,
        files_done: 0,
        files_total,
        started_ms,
    };
    progress(start);
    let on_progress = Closure::<dyn FnMut(f64, f64, u32)>::new(move |done, total, files| {
        progress(Download {
            bytes_done: done,
            bytes_total: total,
            files_done: files as usize,
            files_total,
            started_ms,
        })
    });
    let cancelled = Closure::<dyn FnMut() -> bool>::new(cancelled);
    let js_paths: js_sys::Array = paths.iter().map(|p| JsValue::from_str(p)).collect();
    let blobs = fetch_all_js(
        base,
        &js_paths,
        total,
        PARALLEL_FETCHES,
        &on_progress,
        &cancelled,
    )
    .await
    .map_err(|e| e.as_string().unwrap_or_else(|| format!("{e:?}")))?;
    if blobs.is_null() {
        return Ok(None);
    }
    let blobs: js_sys::Array = blobs.unchecked_into();
    paths
        .into_iter()
        .zip(blobs.iter())
        .map(|(path, blob)| {
            let file = blob
                .dyn_into::<web_sys::Blob>()
                .map_err(|_| format!("fetching {base}{path}: not a blob"))?;
            Ok(PickedFile {
                path: format!("example/{path}"),
                file: FileHandle::Blob(file),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

async fn fetch_blob(url: &str) -> Result<web_sys::Blob, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("fetching {url}: {e:?}"))?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| format!("fetching {url}: not a response"))?;
    if !resp.ok() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    let blob = JsFuture::from(resp.blob().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("{e:?}"))?;
    blob.dyn_into()
        .map_err(|_| format!("fetching {url}: not a blob"))
}

/// Opens files served over HTTP: each URL is checked (http and https only;
/// relative ones against the page), then asked for its first byte (size and
/// Range support), all at once. The files that open, with their URL paths as
/// inventory paths, and one message per URL that does not (naming it).
pub async fn open_urls(texts: &[String]) -> (Vec<PickedFile>, Vec<String>) {
    if texts.len() > MAX_URLS {
        return (
            Vec::new(),
            vec![RemoteError::TooMany { count: texts.len() }.to_string()],
        );
    }
    let base = super::export::page_address();
    let opening = texts.iter().map(|text| {
        // The browser's own parser resolves a relative URL against the page and
        // normalises it; the core then checks what it gives.
        let absolute = web_sys::Url::new_with_base(text.trim(), &base)
            .map(|u| u.href())
            .unwrap_or_else(|_| text.clone());
        let base = base.clone();
        async move {
            let remote = RemoteUrl::parse(&absolute, Some(&base))?;
            let (file, _) = UrlSource::open(&remote).await?;
            Ok::<_, RemoteError>(PickedFile {
                path: remote.path,
                file: FileHandle::Url(file),
            })
        }
    });
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for result in futures::future::join_all(opening).await {
        match result {
            Ok(f) => files.push(f),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (files, problems)
}
