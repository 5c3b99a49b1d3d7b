//! Getting figures out of the page: downloads (SVG, PNG at 2×/4×, CSV, JSON),
//! the clipboard, and the page's own address for links.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
// The browser's SVG rasteriser draws the exported SVG at `scale`: text stays
// text until this last step, so PNGs at 2× and 4× are sharp.
export function svg_to_png_blob(svg, width, height, scale) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      URL.revokeObjectURL(url);
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the PNG could not be encoded'))), 'image/png');
    };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error('the SVG could not be rasterised')); };
    img.src = url;
  });
}
export async function sha256_prefix_hex(blob, limit) {
  const buf = await blob.slice(0, limit).arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}
export async function copy_text(text) {
  await navigator.clipboard.writeText(text);
}
"#)]
extern "C" {
    fn svg_to_png_blob(svg: &str, width: u32, height: u32, scale: f64) -> js_sys::Promise;
    #[wasm_bindgen(catch)]
    fn copy_text(text: &str) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn sha256_prefix_hex(blob: &web_sys::Blob, limit: f64) -> Result<js_sys::Promise, JsValue>;
}

fn js_message(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Offers a Blob as a file download (a Blob URL clicked, then revoked).
pub fn save_blob(name: &str, blob: &web_sys::Blob) {
    let Ok(url) = web_sys::Url::create_object_url_with_blob(blob) else {
        return;
    };
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Ok(a) = doc.create_element("a") {
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", name);
        if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
            a.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Offers `text` as a file download.
pub fn save_text(name: &str, text: &str, mime: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    if let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) {
        save_blob(name, &blob);
    }
}

/// Rasterises an SVG at `scale` and downloads it as PNG.
pub async fn save_png(
    name: &str,
    svg: &str,
    width: u32,
    height: u32,
    scale: f64,
) -> Result<(), String> {
    let blob = JsFuture::from(svg_to_png_blob(svg, width, height, scale))
        .await
        .map_err(js_message)?;
    save_blob(name, blob.unchecked_ref());
    Ok(())
}

/// Puts text on the clipboard (needs a secure context: https or localhost).
pub async fn copy_to_clipboard(text: &str) -> Result<(), String> {
    let promise = copy_text(text).map_err(js_message)?;
    JsFuture::from(promise)
        .await
        .map(|_| ())
        .map_err(js_message)
}

/// The page's address without its fragment: where a figure link points.
pub fn page_address() -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return String::new();
    };
    let href = location.href().unwrap_or_default();
    href.split('#').next().unwrap_or_default().to_string()
}

/// The current URL fragment without `#`.
pub fn fragment() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
        .trim_start_matches('#')
        .to_string()
}

/// How much of a file its link digest covers: all of a log or token batch,
/// and of a checkpoint its header and first tensors (hashing gigabytes for a
/// link would take minutes; with the size this still tells files apart).
pub const DIGEST_BYTES: f64 = 1024.0 * 1024.0;

/// `sha256/1MiB:<first 16 hex digits>` of a file's first [`DIGEST_BYTES`]
/// (Web Crypto), for a figure link's provenance.
pub async fn file_digest(blob: &web_sys::Blob) -> Option<String> {
    let promise = sha256_prefix_hex(blob, DIGEST_BYTES).ok()?;
    let hex = JsFuture::from(promise).await.ok()?.as_string()?;
    Some(format!("sha256/1MiB:{}", &hex[..16.min(hex.len())]))
}
