//! The benchmarks in WebAssembly (Node), not timed tests: weight spectra, and load + forward +
//! activation spectra. `cargo test --release -p rankscope-core --target wasm32-unknown-unknown --test web_bench -- --include-ignored --nocapture`
//! prints the same reports as the native examples `bench_weights` and `bench_forward`.
#![cfg(target_arch = "wasm32")]

#[path = "../benches/forward_common.rs"]
#[allow(dead_code)] // each benchmark uses its own part
mod forward_common;

// Both benchmarks' files include the synthetic checkpoint: two copies of it in this test binary.
#[path = "../benches/weights_common.rs"]
#[allow(clippy::duplicate_mod)]
mod common;

use wasm_bindgen_test::*;

#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_weight_spectra_wasm() {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into())
        .expect("now")
        .into();
    let now = move || {
        now_fn
            .call0(&perf)
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    web_sys_free_log(&format!("wasm\n{}", common::run(&now)));
}

fn web_sys_free_log(s: &str) {
    wasm_bindgen_test::console_log!("{}", s);
}

#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_forward_wasm() {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into())
        .expect("now")
        .into();
    let now = move || {
        now_fn
            .call0(&perf)
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    // Node's environment, so that `scripts/bench.sh` can ask for a length.
    let variable = js_sys::Reflect::get(&js_sys::global(), &"process".into())
        .and_then(|process| js_sys::Reflect::get(&process, &"env".into()))
        .and_then(|env| js_sys::Reflect::get(&env, &"RANKSCOPE_BENCH_TOKENS".into()))
        .ok()
        .and_then(|v| v.as_string());
    let bench = forward_common::measure(&now, forward_common::tokens_from(variable));
    web_sys_free_log(&format!(
        "wasm (performance.now)\n{}",
        forward_common::report(&bench, "wasm")
    ));
}

/// The full surgery sweep (SVD, γ, random × 10 fractions, 5 seeds: 1 baseline
/// + 63 edited passes, plus the eval pass for the bases) on the full-size
/// checkpoint, 1 × 256 tokens — the wasm counterpart of
/// `cargo run --release -p rankscope-core --example bench_surgery 1 256`.
#[wasm_bindgen_test]
#[ignore = "benchmark: run with --include-ignored"]
fn bench_surgery_wasm() {
    use rankscope_core::analysis::surgery::{run_sweep, SweepOptions};
    use rankscope_core::analysis::weights::Shards;
    use rankscope_core::formats::safetensors::read_header;
    use rankscope_core::formats::tokens::TokenBatch;
    use rankscope_core::model::arch::{recognise, Recognition};
    use rankscope_core::model::forward::ModelWeights;
    use rankscope_core::source::block_on;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into())
        .expect("now")
        .into();
    let now = move || {
        now_fn
            .call0(&perf)
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let ckpt = common::SyntheticCheckpoint::new();
    let header = read_header(&ckpt).expect("header");
    let names: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&names, &header.metadata, None) else {
        panic!("not recognised")
    };
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &ckpt),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    let batch = |salt: usize| TokenBatch {
        batch: 1,
        seq_len: 256,
        ids: (0..256)
            .map(|i| ((i * 7919 + salt * 104_729) % common::VOCAB) as u32)
            .collect(),
    };
    let (eval, heldout) = (batch(1), batch(2));
    let t = now();
    let mut passes = 0usize;
    run_sweep(
        &model,
        &eval,
        &heldout,
        &SweepOptions::default(),
        &mut |_| passes += 1,
        &|| false,
    )
    .expect("sweep");
    let total = (now() - t) / 1000.0;
    web_sys_free_log(&format!(
        "wasm surgery sweep, 1 × 256 tokens: {passes} forward passes + the eval pass in {total:.1} s = {:.2} s per pass",
        total / (passes + 1) as f64
    ));
}
