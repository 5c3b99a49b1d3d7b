//! The weight-spectra benchmark in WebAssembly (Node), not a timed test:
//! `cargo test --release -p rankscope-core --target wasm32-unknown-unknown --test web_bench -- --include-ignored`
//! prints the same report as the native example.
#![cfg(target_arch = "wasm32")]

#[path = "../benches/weights_common.rs"]
mod common;

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

#[path = "../benches/forward_common.rs"]
mod forward_common;

#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_forward_wasm() {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into()).expect("now").into();
    let now = move || now_fn.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    web_sys_free_log(&format!("wasm\n{}", forward_common::run(&now)));
}
