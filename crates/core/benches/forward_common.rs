//! Shared body of the forward / activation-spectra benchmark (native example
//! `bench_forward` and the wasm test `web_bench`): a synthetic BF16
//! checkpoint of the full reference size (the weight benchmark's), a
//! 1 × 1024-token eval batch, then load + forward + every activation
//! spectrum timed in one run, against the best single-thread f32 matmul
//! (`matrixmultiply::sgemm`, what the forward pass calls) measured in the same run.

#[path = "weights_common.rs"]
#[allow(dead_code)]
pub mod weights_common;

use rankscope_core::analysis::activations::{activation_spectra, KeyVariant, Stage};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, ByteSource};
use weights_common::{SyntheticCheckpoint, D_FF, D_K, D_MODEL, FULL_SIZE, HEADS, KV_HEADS, LAYERS, VOCAB};

/// Eval tokens: one sequence of this length.
pub const TOKENS: usize = 1024;

/// FLOPs of one full-size forward pass over `t` tokens (see [`ReferenceShape::forward_flops`]).
pub fn forward_flops(t: usize) -> f64 {
    FULL_SIZE.forward_flops(t)
}

/// Best single-thread f32 matmul rate (GFLOP/s) over the forward's own shapes:
/// `[t, d]·[d, d_ff]` (MLP up, weights read transposed as the forward does)
/// and a square 512³. Each shape is timed in `blocks` blocks of several calls
/// (≈ 2–20 GFLOP per block, so a coarse clock such as thread CPU time is
/// accurate); the best block counts.
pub fn best_sgemm_gflops(now_ms: &dyn Fn() -> f64, blocks: usize) -> (f64, String) {
    let mut best = (0.0f64, String::new());
    for (m, k, n, transposed_b, calls) in [(TOKENS, D_MODEL, D_FF, true, 8), (512, 512, 512, false, 64)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 17) as f32 * 0.01).collect();
        let mut c = vec![0.0f32; m * n];
        // B as [n, k] row-major read transposed (rs 1, cs k), or [k, n] row-major.
        let (rsb, csb) = if transposed_b { (1, k as isize) } else { (n as isize, 1) };
        for _ in 0..blocks {
            let t = now_ms();
            for _ in 0..calls {
                // SAFETY: a is m×k, b is k×n through the strides above, c is m×n, all in bounds; c is unique.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
            let ms = (now_ms() - t).max(1e-6);
            let gflops = 2.0 * calls as f64 * (m * k * n) as f64 / (ms * 1e6); // f64: calls·m·k·n overflows a 32-bit usize
            if gflops > best.0 {
                best = (gflops, format!("{m}×{k}·{k}×{n}"));
            }
        }
        assert!(c[1].is_finite());
    }
    best
}

/// Runs the benchmark; `now_ms` is the platform's clock. Returns a report.
pub fn run(now_ms: &dyn Fn() -> f64) -> String {
    let synthetic = SyntheticCheckpoint::new();
    let params = synthetic.params();
    // The checkpoint as bytes in memory (a file in the page cache, a Blob):
    // loading then measures decoding and the bf16 → f32 conversion, not the hash that makes the bytes.
    let t = now_ms();
    let file = synthetic.read_at(0, synthetic.len() as usize).expect("synthetic bytes");
    let t_make = now_ms() - t;
    drop(synthetic);

    let t0 = now_ms();
    let header = read_header(&file).expect("header");
    let tensors: Vec<_> = header.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else { panic!("not recognised") };
    let model = block_on(ModelWeights::load(&Shards::single(&header, &file), &arch, &mut |_| {})).expect("load");
    let t_load = now_ms() - t0;
    drop(file);

    let ids: Vec<u32> = (0..TOKENS).map(|i| ((i * 7919 + 13) % VOCAB) as u32).collect();
    let eval = TokenBatch { batch: 1, seq_len: TOKENS, ids };
    let (mut t_forward, mut t_spectra) = (f64::INFINITY, f64::INFINITY);
    let mut mean_pr = 0.0;
    for _ in 0..2 {
        let mut marks = Vec::new();
        let start = now_ms();
        let spectra =
            activation_spectra(&model, &eval, None, &KeyVariant::ALL, &mut |p| marks.push((p, now_ms())), &|| false)
                .expect("activation spectra");
        let end = now_ms();
        let forward_end = marks.iter().find(|(p, _)| p.stage == Stage::EvalForward).expect("forward mark").1;
        t_forward = t_forward.min(forward_end - start);
        t_spectra = t_spectra.min(end - forward_end);
        let ws = spectra.spectra(KeyVariant::PostNorm).expect("default");
        mean_pr = ws.layers.iter().flat_map(|l| &l.k_heads).map(|h| h.metrics.spectrum.pr).sum::<f64>()
            / (LAYERS * KV_HEADS) as f64;
    }
    let (mm_gflops, mm_shape) = best_sgemm_gflops(now_ms, 3);
    let flops = forward_flops(TOKENS);
    let fwd_gflops = flops / (t_forward * 1e6);
    let n_spectra = LAYERS * (KV_HEADS * (KeyVariant::ALL.len()) + HEADS * 2);
    format!(
        "synthetic reference checkpoint: {LAYERS} layers, d_model {D_MODEL}, {HEADS}/{KV_HEADS} heads (d_k {D_K}), d_ff {D_FF}, vocab {VOCAB}, {params} params (BF16, {:.0} MB; made in {t_make:.0} ms, not counted)\n\
         load (header, recognition, read + bf16→f32 per layer): {t_load:.0} ms\n\
         eval forward, 1×{TOKENS} tokens, with KeyCollector: {t_forward:.0} ms = {:.1} GFLOP ({fwd_gflops:.1} GFLOP/s)\n\
         activation spectra: {n_spectra} matrices of {TOKENS}×{D_K} (K in 4 variants, Q plain + centred), f64: {t_spectra:.0} ms (mean K PR {mean_pr:.3})\n\
         total per checkpoint (load + forward + spectra): {:.0} ms\n\
         best single-thread f32 sgemm ({mm_shape}): {mm_gflops:.1} GFLOP/s → forward at {:.0}% of matmul speed",
        params as f64 * 2.0 / 1e6,
        flops / 1e9,
        t_load + t_forward + t_spectra,
        100.0 * fwd_gflops / mm_gflops,
    )
}
