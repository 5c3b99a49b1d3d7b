//! Shared body of the weight-spectra benchmark (native example and wasm test):
//! a synthetic checkpoint of the full reference size, all W_k/W_q spectra, and
//! a single-thread f32 matmul measured in the same run for the ratio.

use rankscope_core::analysis::weights::{weight_spectra, Shards};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::source::block_on;

#[path = "synthetic_checkpoint.rs"]
#[allow(dead_code)] // each benchmark uses its own part
mod synthetic_checkpoint;
pub use synthetic_checkpoint::*;

/// Runs the benchmark; `now_ms` is the platform's clock. Returns a report.
pub fn run(now_ms: &dyn Fn() -> f64) -> String {
    let ckpt = SyntheticCheckpoint::new();
    let t0 = now_ms();
    let header = read_header(&ckpt).expect("synthetic header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("synthetic checkpoint not recognised")
    };
    let t_header = now_ms() - t0;

    // All W_k (4 per layer) and W_q (8 per layer) blocks: 264 matrices of 64 × 512.
    let mut best_spectra = f64::INFINITY;
    for _ in 0..3 {
        let t = now_ms();
        let ws = block_on(weight_spectra(
            &Shards::single(&header, &ckpt),
            &arch,
            &mut |_| {},
        ))
        .expect("spectra");
        best_spectra = best_spectra.min(now_ms() - t);
        assert_eq!(ws.layers.len(), LAYERS);
    }
    // The same bytes read and decoded without any SVD: the I/O share.
    let t = now_ms();
    let mut read_only = 0usize;
    for l in 0..LAYERS {
        let loc = rankscope_core::model::arch::WeightLoc::Rows {
            tensor: format!("transformer_blocks.{l}.attention.qkvo_proj"),
            start: 0,
            end: (HEADS + KV_HEADS) * D_K,
        };
        read_only += block_on(Shards::single(&header, &ckpt).read_block(&loc))
            .expect("read")
            .0
            .len();
    }
    let t_read = now_ms() - t;

    // Single-thread f32 matmul, 512 × 512 × 512, best of 5: the machine's yardstick.
    let n = 512;
    let a = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 5 + j * 11) % 17) as f32 * 0.01);
    let mut best_mm = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..5 {
        let t = now_ms();
        let c = &a * &b;
        best_mm = best_mm.min(now_ms() - t);
        sink += c[(1, 2)];
    }
    let gflops = 2.0 * (n * n * n) as f64 / (best_mm * 1e6);
    // FLOPs of the Gram products the spectra need: 264 blocks of (64×512)·(512×64).
    let blocks = LAYERS * (HEADS + KV_HEADS);
    let gram_gflop = blocks as f64 * 2.0 * (D_K * D_K * D_MODEL) as f64 / 1e9;
    format!(
        "synthetic reference checkpoint: {LAYERS} layers, d_model {D_MODEL}, {HEADS}/{KV_HEADS} heads, d_ff {D_FF}, vocab {VOCAB}, {} params (BF16)\n\
         header + recognition: {t_header:.2} ms\n\
         all weight spectra ({blocks} blocks of {D_K}×{D_MODEL}, f64): {best_spectra:.1} ms (best of 3)\n\
         of which reading + decoding the blocks: {t_read:.1} ms ({read_only} values)\n\
         f32 matmul {n}³ single thread: {best_mm:.2} ms = {gflops:.1} GFLOP/s (sink {sink:.1})\n\
         ratio spectra / one {n}³ matmul: {:.1}; spectra Gram work {gram_gflop:.3} GFLOP → {:.2} GFLOP/s effective ({:.0}% of matmul peak)",
        ckpt.params(),
        best_spectra / best_mm,
        gram_gflop / (best_spectra / 1e3),
        100.0 * (gram_gflop / (best_spectra / 1e3)) / gflops,
    )
}
