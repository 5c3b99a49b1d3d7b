//! Getting `File`s with their relative paths: from a drop (files and whole
//! folders), from the file dialogs, and from the built-in example.

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A file to inspect, with the path the user sees (`runs/A1/ckpt_tokens_0.safetensors`).
#[derive(Clone)]
pub struct PickedFile {
    pub path: String,
    pub file: web_sys::Blob,
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
            Some(PickedFile { path, file })
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

/// The built-in example study: `example/manifest.json` lists its files,
/// fetched one after another from the same static server (no network beyond
/// it). `on_file(done, total)` is called before each
/// file and at the end; when it returns `false` the download stops (cancel)
/// and `Ok(None)` comes back.
pub async fn fetch_example(
    on_file: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<Vec<PickedFile>>, String> {
    let base = "example/";
    let manifest = fetch_blob(&format!("{base}manifest.json")).await?;
    let text = JsFuture::from(manifest.text())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let text = text.as_string().unwrap_or_default();
    let paths: Vec<String> = serde_json::from_str(&text)
        .map_err(|e| format!("example/manifest.json is not a list of paths: {e}"))?;
    let mut out = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        if !on_file(i, paths.len()) {
            return Ok(None);
        }
        let file = fetch_blob(&format!("{base}{path}")).await?;
        out.push(PickedFile {
            path: format!("example/{path}"),
            file,
        });
    }
    on_file(paths.len(), paths.len());
    Ok(Some(out))
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
