//! Inside a Web Worker: receive a checkpoint job with its files (Blobs, or
//! URLs it reads by Range requests itself), run it with the core, and post
//! progress and the result back.
//!
//! Messages in:  `{ id, job: "<CheckpointJob JSON>", files: [Blob | {url, size, whole}…], gpu }`
//!               (`gpu`: run forward passes on WebGPU where an adapter opens)
//! Messages out: `{ type: "ready" }` once listening (messages sent before it
//!               would be lost while the module loads), then per job
//!               `{ id, type: "progress", line, fraction }`,
//!               `{ id, type: "done", output: "<JobOutput JSON>" }` or
//!               `{ id, type: "error", message }`.

use super::sources::{open_all, FileHandle};
use js_sys::{Array, Object, Reflect};
use rankscope_core::analysis::jobs::CheckpointJob;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

fn message(fields: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&obj, &JsValue::from_str(k), v);
    }
    obj.into()
}

fn post(scope: &DedicatedWorkerGlobalScope, fields: &[(&str, JsValue)]) {
    // Posting plain objects of strings and numbers cannot fail.
    let _ = scope.post_message(&message(fields));
}

/// The size of this worker's WebAssembly memory (it only grows), reported with
/// each result so that growth from job to job shows.
fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .unchecked_into::<js_sys::ArrayBuffer>()
                .byte_length() as f64
        })
        .unwrap_or(0.0)
}

/// The worker's entry point (the `worker` binary's `main`).
pub fn serve() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let scope = reply_to.clone();
        wasm_bindgen_futures::spawn_local(handle(scope, ev.data()));
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    post(&scope, &[("type", "ready".into())]);
}

async fn handle(scope: DedicatedWorkerGlobalScope, data: JsValue) {
    let id = Reflect::get(&data, &"id".into()).unwrap_or(JsValue::NULL);
    let fail = |message: String| {
        post(
            &scope,
            &[
                ("id", id.clone()),
                ("type", "error".into()),
                ("message", message.into()),
            ],
        )
    };
    let Some(job) = Reflect::get(&data, &"job".into())
        .ok()
        .and_then(|j| j.as_string())
    else {
        return fail("a job message without a job".into());
    };
    let Some(files) = Reflect::get(&data, &"files".into())
        .ok()
        .and_then(|b| b.dyn_into::<Array>().ok())
    else {
        return fail("a job message without its files".into());
    };
    let mut progress = |line: &str, fraction: f64| {
        post(
            &scope,
            &[
                ("id", id.clone()),
                ("type", "progress".into()),
                ("line", line.into()),
                ("fraction", fraction.into()),
            ],
        );
    };
    let gpu = Reflect::get(&data, &"gpu".into())
        .ok()
        .and_then(|g| g.as_bool())
        .unwrap_or(false);
    match run_job_json(&job, files, gpu, &mut progress).await {
        Ok(text) => post(
            &scope,
            &[
                ("id", id.clone()),
                ("type", "done".into()),
                ("output", text.into()),
                ("memory", wasm_memory_bytes().into()),
            ],
        ),
        Err(e) => fail(e),
    }
}

/// Runs a job given as `CheckpointJob` JSON on its files (Blobs, or URLs read by Range
/// requests: [`FileHandle::to_js`]) and returns the
/// `JobOutput` JSON: what a worker does with a message, and what the page calls
/// (through the worker binary's `run_job_here`) where no worker starts.
pub async fn run_job_json(
    job: &str,
    files: Array,
    gpu: bool,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<String, String> {
    let job: CheckpointJob =
        serde_json::from_str(job).map_err(|e| format!("malformed job: {e}"))?;
    let handles: Vec<FileHandle> = files
        .iter()
        .map(FileHandle::from_js)
        .collect::<Option<_>>()
        .ok_or("a job message with a file that is neither a Blob nor a URL")?;
    let sources = open_all(&handles).await?;
    // Boxed: the job's future is large, and run_job_json has two callers (a worker's message,
    // the page's fallback through `run_job_here`); unboxed, each inlined its own copy.
    let output = Box::pin(super::gpu::run_job(&job, &sources, gpu, progress)).await?;
    serde_json::to_string(&output).map_err(|e| format!("the result could not be encoded: {e}"))
}
