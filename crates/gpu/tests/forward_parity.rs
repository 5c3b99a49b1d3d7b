//! The GPU forward pass against the CPU one (`ModelWeights::forward`, itself checked against
//! the user's PyTorch reference in the core's `forward_fixtures.rs`), on the fixture
//! checkpoints: runs/B1 final (BF16 stored, QK-norm, GQA 4/2), runs/A2 final (no QK-norm), and
//! stories260K (Llama layout: rotate-half RoPE, SwiGLU, GQA 8/4, d_k 8). Sequences: a whole
//! 128-token row of the eval batch, t = 1, and t = 70 (not a multiple of the product tile).
//! A machine without a GPU adapter FAILS these tests, as in `parity.rs`.
//!
//! Tolerances (both passes are f32 and differ only in summation order; RMSNorm's mean of
//! squares is f64 on the CPU, f32 here):
//! - logits: max |gpu − cpu| ≤ 1e-4 · max |cpu| over the sequence;
//! - K (after k_norm, before RoPE), per layer and kv-head: max |gpu − cpu| ≤ 1e-4 · max |cpu|.
//!
//! Measured on lavapipe (Mesa 22.3.6, llvmpipe): logits ≤ 5.3e-7 (B1, A2) and 1.4e-6
//! (stories260K); K ≤ 7.7e-7 (B1, A2) and 2.5e-6 (stories260K). The margin is for adapters
//! whose exp/sqrt are less exact than lavapipe's (WGSL allows a few ULP).
//!
//! `cargo test -p rankscope-gpu --test forward_parity -- --nocapture` prints the measured errors.

#![cfg(not(target_arch = "wasm32"))]

use rankscope_core::analysis::spectrum::singular_values_f32;
use rankscope_core::model::forward::{KeyCollector, ModelWeights, NoProbe};
use rankscope_gpu::{GpuError, GpuModel};

mod common;
use common::{gpu, load, load_path, tokens, FAMILIES, FIXTURES};

const LOGIT_TOLERANCE: f64 = 1e-4;
const KEY_TOLERANCE: f64 = 1e-4;

/// max |got − want| / max |want|.
fn relative_max_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f64, |m, &w| m.max(f64::from(w).abs()));
    let diff = got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| {
        m.max((f64::from(g) - f64::from(w)).abs())
    });
    diff / scale.max(f64::MIN_POSITIVE)
}

/// Runs `model` on the eval batch's sequences on both sides and checks logits and K.
fn check_model(name: &str, model: &ModelWeights) {
    let gpu_model = GpuModel::upload(gpu(), model).expect("upload");
    let eval = tokens("eval_tokens.safetensors");
    let sequences: [(&str, &[u32]); 3] = [
        ("eval row 0, t=128", eval.row(0)),
        ("t=1", &eval.row(1)[..1]),
        ("eval row 1, t=70", &eval.row(1)[..70]),
    ];
    let arch = model.arch();
    for (what, ids) in sequences {
        let mut collector = KeyCollector::new(arch, ids.len());
        let cpu = model
            .forward(ids, &mut collector, None)
            .expect("CPU forward");
        let logits = pollster::block_on(gpu_model.logits(ids)).expect("GPU logits");
        let logit_error = relative_max_error(&logits, &cpu.data);
        let keys = pollster::block_on(gpu_model.keys(ids)).expect("GPU keys");
        assert_eq!(keys.len(), arch.n_layers);
        let mut key_error = 0.0f64;
        for (l, layer) in keys.iter().enumerate() {
            assert_eq!(layer.len(), arch.n_kv_heads);
            for (h, k) in layer.iter().enumerate() {
                let err = relative_max_error(k, collector.keys(l, h));
                assert!(
                    err <= KEY_TOLERANCE,
                    "{name}, {what}: K of layer {l} kv-head {h}: error {err:e}"
                );
                key_error = key_error.max(err);
            }
        }
        eprintln!("{name}, {what}: max |Δlogit|/max|logit| {logit_error:.2e}, max |ΔK|/max|K| {key_error:.2e}");
        assert!(
            logit_error <= LOGIT_TOLERANCE,
            "{name}, {what}: logits error {logit_error:e}"
        );
    }
}

#[test]
fn b1_final_matches_the_cpu_forward_pass() {
    check_model(
        "B1 (BF16, QK-norm, GQA)",
        &load("runs/B1/ckpt_tokens_327680.safetensors", None),
    );
}

#[test]
fn a2_final_matches_the_cpu_forward_pass() {
    check_model(
        "A2 (no QK-norm)",
        &load("runs/A2/ckpt_tokens_327680.safetensors", None),
    );
}

#[test]
fn stories260k_matches_the_cpu_forward_pass() {
    let path = format!("{FIXTURES}/stories260K/config.json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config"))
            .expect("config JSON");
    check_model(
        "stories260K (Llama)",
        &load("stories260K/model.safetensors", Some(&config)),
    );
}

/// Logits too large for one buffer come in row chunks: 128 tokens in chunks of 7 rows (the
/// last one short) equal the logits made in one piece, and the CPU's.
#[test]
fn logits_in_chunks_equal_the_whole() {
    let model = load("runs/B1/ckpt_tokens_327680.safetensors", None);
    let gpu_model = GpuModel::upload(gpu(), &model).expect("upload");
    let eval = tokens("eval_tokens.safetensors");
    let ids = eval.row(0);
    let whole = pollster::block_on(gpu_model.logits(ids)).expect("logits");
    let chunked = pollster::block_on(gpu_model.logits_in_chunks(ids, 7)).expect("chunked logits");
    assert_eq!(chunked.len(), whole.len());
    let scale = whole.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = chunked
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("logits in chunks of 7 rows vs whole: max |Δ| {diff:.1e} of max |logit| {scale:.2}");
    assert!(diff <= 1e-6 * scale, "chunked logits differ by {diff}");
    let cpu = model.forward(ids, &mut NoProbe, None).expect("CPU forward");
    assert!(relative_max_error(&chunked, &cpu.data) <= LOGIT_TOLERANCE);
}

/// The stacked K of the whole eval batch (4 × 128 rows) and its singular values, which the
/// spectra are computed from: σ within 1e-4 relative (the fixtures' tolerance for σ).
#[test]
fn batch_keys_give_the_cpu_spectra() {
    let model = load("runs/B1/ckpt_tokens_327680.safetensors", None);
    let gpu_model = GpuModel::upload(gpu(), &model).expect("upload");
    let eval = tokens("eval_tokens.safetensors");
    let cpu = model.collect_keys(&eval, None).expect("CPU keys");
    let keys = pollster::block_on(gpu_model.batch_keys(&eval)).expect("GPU keys");
    let d_k = model.arch().d_k;
    let (mut key_error, mut sv_error) = (0.0f64, 0.0f64);
    for (l, layer) in keys.iter().enumerate() {
        for (h, k) in layer.iter().enumerate() {
            assert_eq!(
                k.len(),
                eval.batch * eval.seq_len * d_k,
                "layer {l} kv-head {h}: rows"
            );
            key_error = key_error.max(relative_max_error(k, cpu.keys(l, h)));
            let rows = k.len() / d_k;
            let got = singular_values_f32(k, rows, d_k).expect("svd");
            let want = singular_values_f32(cpu.keys(l, h), rows, d_k).expect("svd");
            for (g, w) in got.iter().zip(&want) {
                sv_error = sv_error.max((g - w).abs() / w.abs().max(f64::MIN_POSITIVE));
            }
        }
    }
    eprintln!(
        "B1 eval batch: max |ΔK|/max|K| {key_error:.2e}, max σ relative error {sv_error:.2e}"
    );
    assert!(key_error <= KEY_TOLERANCE, "K error {key_error:e}");
    assert!(sv_error <= 1e-4, "σ error {sv_error:e}");
}

#[test]
fn bad_input_is_an_error() {
    let model = load("runs/A2/ckpt_tokens_327680.safetensors", None);
    let gpu_model = GpuModel::upload(gpu(), &model).expect("upload");
    assert!(pollster::block_on(gpu_model.logits(&[])).is_err());
    let vocab = model.arch().vocab as u32;
    assert!(pollster::block_on(gpu_model.logits(&[1, vocab])).is_err());
}

/// A family case of the core's test data: its model (with its config.json) and token batch.
fn family(case: &str) -> (ModelWeights, rankscope_core::formats::tokens::TokenBatch) {
    let dir = format!("{FAMILIES}/{case}");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/config.json")).expect("config"),
    )
    .expect("config JSON");
    let model = load_path(&format!("{dir}/model.safetensors"), Some(&config));
    let src = rankscope_core::source::FileSource::open(format!("{dir}/expected.safetensors"))
        .expect("open expected");
    let batch = rankscope_core::formats::tokens::parse_tokens_safetensors(&src).expect("tokens");
    (model, batch)
}

/// Qwen3 (per-head q/k norm, head_dim 32 ≠ d_model/heads, rotate-half RoPE) needs nothing the
/// GPU pass lacks: its logits and K match the CPU pass (itself checked against transformers).
#[test]
fn qwen3_matches_the_cpu_forward_pass() {
    let (model, batch) = family("qwen3");
    let gpu_model = GpuModel::upload(gpu(), &model).expect("upload");
    let ids = batch.row(0);
    let mut collector = KeyCollector::new(model.arch(), ids.len());
    let cpu = model
        .forward(ids, &mut collector, None)
        .expect("CPU forward");
    let logits = pollster::block_on(gpu_model.logits(ids)).expect("GPU logits");
    let logit_error = relative_max_error(&logits, &cpu.data);
    let keys = pollster::block_on(gpu_model.keys(ids)).expect("GPU keys");
    let mut key_error = 0.0f64;
    for (l, layer) in keys.iter().enumerate() {
        for (h, k) in layer.iter().enumerate() {
            key_error = key_error.max(relative_max_error(k, collector.keys(l, h)));
        }
    }
    eprintln!("qwen3: max |Δlogit|/max|logit| {logit_error:.2e}, max |ΔK|/max|K| {key_error:.2e}");
    assert!(logit_error <= LOGIT_TOLERANCE && key_error <= KEY_TOLERANCE);
}

/// Families needing what the GPU pass does not implement are refused with a typed error that
/// names it (the engine then runs them on the CPU), never computed without it.
#[test]
fn families_the_gpu_pass_lacks_are_refused() {
    for (case, needs) in [
        ("gpt2", "LayerNorm"),
        ("qwen2", "biases"),
        ("mistral", "sliding-window attention"),
    ] {
        let (model, _) = family(case);
        match GpuModel::upload(gpu(), &model) {
            Err(e @ GpuError::UnsupportedModel { .. }) => {
                assert!(e.to_string().contains(needs), "{case}: {e}")
            }
            Err(e) => panic!("{case}: expected UnsupportedModel, got {e}"),
            Ok(_) => panic!("{case}: the GPU pass accepted a model it cannot run"),
        }
    }
}
