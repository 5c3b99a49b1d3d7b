//! The streamed forward pass in WebAssembly (Node): activation spectra and held-out loss of the
//! Llama-2-7B-shaped synthetic checkpoint (`support/synthetic_llama.rs`, 13.5 GB of BF16 computed
//! from their offsets) on 2 × 32 tokens, through the same core code as the page's worker
//! (`analysis::jobs::CpuEngine` → `streamed_activation_spectra`). Prints the wasm linear memory
//! at the end: it only grows, so it is the run's peak. A benchmark (minutes), not in CI:
//! `cargo test -p rankscope-core --target wasm32-unknown-unknown --test web_streaming -- --include-ignored --nocapture`.
#![cfg(target_arch = "wasm32")]

#[path = "support/synthetic_llama.rs"]
#[allow(dead_code)] // the recording and block size serve the native test
mod synthetic_llama;

use rankscope_core::analysis::activations::{streamed_activation_spectra, KeyVariant};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::model::forward::StreamedModel;
use rankscope_core::source::block_on;
use synthetic_llama::{batch, recognised, Shape, Synthetic, LLAMA2_7B};
use wasm_bindgen_test::*;

/// Bytes of this module's linear memory (it never shrinks: the run's peak).
fn memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65536
}

#[wasm_bindgen_test]
#[ignore = "benchmark: a 13.5 GB synthetic checkpoint, minutes"]
fn llama2_7b_shaped_activation_spectra_in_wasm() {
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
    let start = now();
    // `RANKSCOPE_STREAM_LAYERS=n` keeps the first n blocks (a shorter run: the peak does not
    // grow with the depth, but for the collected K/Q, 4.2 MB a layer at 2 × 32 tokens).
    let layers = js_sys::Reflect::get(&js_sys::global(), &"process".into())
        .and_then(|process| js_sys::Reflect::get(&process, &"env".into()))
        .and_then(|env| js_sys::Reflect::get(&env, &"RANKSCOPE_STREAM_LAYERS".into()))
        .ok()
        .and_then(|v| v.as_string())
        .and_then(|v| v.parse().ok())
        .unwrap_or(LLAMA2_7B.layers);
    let shape = Shape {
        layers,
        ..LLAMA2_7B
    };
    let src = Synthetic::new(&shape, None);
    let (header, arch) = recognised(&src, &shape);
    let shards = Shards::single(&header, &src);
    let model = StreamedModel::new(&shards, &arch).expect("model");
    let eval = batch(2, 32, shape.vocab, 0);
    let heldout = batch(2, 32, shape.vocab, 1);
    let before = memory_bytes();
    let got = block_on(streamed_activation_spectra(
        &model,
        &eval,
        Some(&heldout),
        &[],
        &mut |p| {
            if p.done == p.total || p.done.is_multiple_of(8) {
                console_log!("{:>7.1} s  {p}", (now() - start) / 1e3);
            }
        },
        &|| false,
    ))
    .expect("streamed");
    let peak = memory_bytes();
    let loss = got.heldout_loss.expect("loss");
    let pr = got.layers[layers - 1]
        .k_heads(KeyVariant::PostNorm)
        .expect("K")[0]
        .metrics
        .spectrum
        .pr;
    console_log!(
        "wasm 7B-shaped, {layers} of 32 blocks: {:.1} s; linear memory {:.0} MB before the pass, {:.0} MB at the end (peak); held-out loss {loss:.4}; last layer's K head 0 PR {pr:.2}",
        (now() - start) / 1e3,
        before as f64 / 1e6,
        peak as f64 / 1e6
    );
    assert!(loss.is_finite() && pr.is_finite());
    assert!(peak < 1_500_000_000, "wasm memory {peak}");
}
