//! The Web Worker binary: runs checkpoint jobs sent by the page.
//!
//! Its module is also the page's fallback where no worker starts: the page
//! then loads this module on the main thread (src/web/worker_pool.rs) and
//! calls [`run_job_here`], so the analysis code is downloaded once, here, and
//! never in the page's own module.

use wasm_bindgen::prelude::*;

fn main() {
    // On the main thread (the fallback) there is nobody to serve: the page calls
    // `run_job_here` instead.
    if web_sys::window().is_none() {
        rankscope_app::web::worker_main::serve();
    }
}

/// Runs one checkpoint job in this module's thread: `job` is the
/// `CheckpointJob` JSON, `files` its files (Blobs or URL handles), `progress(line, fraction)` is
/// called as it goes; resolves to the `JobOutput` JSON or rejects with the
/// message.
#[wasm_bindgen]
pub async fn run_job_here(
    job: String,
    files: js_sys::Array,
    gpu: bool,
    progress: js_sys::Function,
) -> Result<String, JsValue> {
    rankscope_app::web::worker_main::run_job_json(&job, files, gpu, &mut |line, fraction| {
        let _ = progress.call2(&JsValue::NULL, &line.into(), &fraction.into());
    })
    .await
    .map_err(|e| JsValue::from_str(&e))
}
