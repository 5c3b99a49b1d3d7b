//! The benchmarks in WebAssembly (Node), not timed tests: weight spectra, and load + forward +
//! activation spectra. `cargo test --release -p rankscope-core --target wasm32-unknown-unknown --test web_bench -- --include-ignored --nocapture`
//! prints the same reports as the native examples `bench_weights` and `bench_forward`.
#![cfg(target_arch = "wasm32")]

#[path = "../benches/forward_common.rs"]
mod forward_common;

// The weight benchmark, loaded once (through the forward benchmark, which uses its checkpoint).
use forward_common::weights_common as common;

use wasm_bindgen_test::*;

#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_weight_spectra_wasm() {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into()).expect("now").into();
    let now = move || now_fn.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    web_sys_free_log(&format!("wasm\n{}", common::run(&now)));
}

fn web_sys_free_log(s: &str) {
    wasm_bindgen_test::console_log!("{}", s);
}

#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_forward_wasm() {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into()).expect("now").into();
    let now = move || now_fn.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    web_sys_free_log(&format!("wasm\n{}", forward_common::run(&now)));
}
