//! Shared body of the forward / activation-spectra benchmark (native example
//! `bench_forward`, the wasm test `web_bench`, and the CPU rows of the GPU
//! crate's `bench`): a synthetic BF16 checkpoint of the full reference size
//! (the weight benchmark's), a 1 × t-token eval batch (t = 1024 unless asked),
//! then load + forward + every activation spectrum timed in one run, against
//! the best single-thread f32 matmul measured in the same run: the better of
//! `matrixmultiply::sgemm` and the product the forward pass calls (`forward::matmul`: our
//! AVX-512 one where the CPU has it).

#[path = "synthetic_checkpoint.rs"]
#[allow(dead_code)]
pub mod synthetic_checkpoint;

use rankscope_core::analysis::activations::{
    activation_spectra, ActivationSpectra, KeyVariant, Progress, Stage,
};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::{matmul, ModelWeights};
use rankscope_core::source::{block_on, ByteSource};
use synthetic_checkpoint::{
    SyntheticCheckpoint, D_FF, D_K, D_MODEL, FULL_SIZE, HEADS, KV_HEADS, LAYERS, VOCAB,
};

/// Eval tokens: one sequence of this length, unless the caller asks for another.
pub const TOKENS: usize = 1024;

/// FLOPs of the activation-spectra forward pass over `t` tokens: the blocks up to the last
/// one's Q and K, no output head (see [`ReferenceShape::probe_pass_flops`]).
pub fn forward_flops(t: usize) -> f64 {
    FULL_SIZE.probe_pass_flops(t)
}

/// One engine's run of the benchmark, in ms of the caller's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardBench {
    pub tokens: usize,
    /// Header, recognition, read of every tensor (bf16 weight matrices kept as stored where
    /// the product widens them as it packs, else converted to f32).
    pub load_ms: f64,
    /// The eval forward pass with K and Q collected (the faster of two runs).
    pub forward_ms: f64,
    /// Every activation spectrum after it (the faster of two runs).
    pub spectra_ms: f64,
    /// The best single-thread sgemm rate on this engine, the yardstick.
    pub sgemm_gflops: f64,
    /// Mean PR of the default K over every layer and kv-head: the same model gives the same number.
    pub mean_pr: f64,
}

impl ForwardBench {
    /// GFLOP/s of the forward pass.
    pub fn forward_gflops(&self) -> f64 {
        forward_flops(self.tokens) / (self.forward_ms * 1e6)
    }

    /// One line another process can read back with [`ForwardBench::parse`]:
    /// `rankscope-bench engine=… tokens=… load_ms=… …`.
    pub fn line(&self, engine: &str) -> String {
        format!(
            "rankscope-bench engine={engine} tokens={} load_ms={} forward_ms={} spectra_ms={} sgemm_gflops={} mean_pr={}",
            self.tokens, self.load_ms, self.forward_ms, self.spectra_ms, self.sgemm_gflops, self.mean_pr
        )
    }

    /// The engine and measurements of a [`ForwardBench::line`] found anywhere in `line`.
    pub fn parse(line: &str) -> Option<(String, ForwardBench)> {
        let fields = &line[line.find("rankscope-bench ")? + "rankscope-bench ".len()..];
        let value = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let number = |key: &str| value(key)?.parse::<f64>().ok();
        Some((
            value("engine")?.to_string(),
            ForwardBench {
                tokens: value("tokens")?.parse().ok()?,
                load_ms: number("load_ms")?,
                forward_ms: number("forward_ms")?,
                spectra_ms: number("spectra_ms")?,
                sgemm_gflops: number("sgemm_gflops")?,
                mean_pr: number("mean_pr")?,
            },
        ))
    }
}

/// The synthetic checkpoint loaded (timed by `now_ms`) and an eval batch of `tokens` tokens.
pub fn load_model(now_ms: &dyn Fn() -> f64, tokens: usize) -> (ModelWeights, TokenBatch, f64) {
    let synthetic = SyntheticCheckpoint::new();
    // The checkpoint as bytes in memory (a file in the page cache, a Blob):
    // loading then measures reading and decoding, not the hash that makes the bytes.
    let file = synthetic
        .read_at(0, synthetic.len() as usize)
        .expect("synthetic bytes");
    drop(synthetic);
    let t0 = now_ms();
    let header = read_header(&file).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("not recognised")
    };
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &file),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    let load_ms = now_ms() - t0;
    let ids: Vec<u32> = (0..tokens)
        .map(|i| ((i * 7919 + 13) % VOCAB) as u32)
        .collect();
    (
        model,
        TokenBatch {
            batch: 1,
            seq_len: tokens,
            ids,
        },
        load_ms,
    )
}

/// Mean PR of the default K over every layer and kv-head.
pub fn mean_k_pr(spectra: &ActivationSpectra) -> f64 {
    let ws = spectra.spectra(KeyVariant::PostNorm).expect("default");
    ws.layers
        .iter()
        .flat_map(|l| &l.k_heads)
        .map(|h| h.metrics.spectrum.pr)
        .sum::<f64>()
        / (LAYERS * KV_HEADS) as f64
}

/// One engine's activation-spectra run, given a progress callback.
pub type SpectraRun<'a> =
    dyn FnMut(&mut dyn FnMut(Progress)) -> Result<ActivationSpectra, String> + 'a;

/// Times `run` twice and keeps the faster forward and spectra, with the mean K PR: `run` gets a
/// progress callback, and the end of the eval forward pass splits its time.
pub fn time_activation_spectra(
    now_ms: &dyn Fn() -> f64,
    run: &mut SpectraRun<'_>,
) -> Result<(f64, f64, f64), String> {
    let (mut forward, mut spectra_ms) = (f64::INFINITY, f64::INFINITY);
    let mut mean_pr = 0.0;
    for _ in 0..2 {
        let mut forward_end = None;
        let start = now_ms();
        let spectra = run(&mut |p| {
            if p.stage == Stage::EvalForward && p.done == p.total {
                forward_end = Some(now_ms());
            }
        })?;
        let end = now_ms();
        let forward_end = forward_end.expect("the eval forward pass reports its end");
        forward = forward.min(forward_end - start);
        spectra_ms = spectra_ms.min(end - forward_end);
        mean_pr = mean_k_pr(&spectra);
    }
    Ok((forward, spectra_ms, mean_pr))
}

/// Runs the CPU benchmark over `tokens` tokens; `now_ms` is the platform's clock.
pub fn measure(now_ms: &dyn Fn() -> f64, tokens: usize) -> ForwardBench {
    let (model, eval, load_ms) = load_model(now_ms, tokens);
    let (forward_ms, spectra_ms, mean_pr) = time_activation_spectra(now_ms, &mut |progress| {
        activation_spectra(&model, &eval, None, &KeyVariant::ALL, progress, &|| false)
            .map_err(|e| e.to_string())
    })
    .expect("activation spectra");
    let (sgemm_gflops, _) = best_sgemm_gflops(now_ms, 3);
    ForwardBench {
        tokens,
        load_ms,
        forward_ms,
        spectra_ms,
        sgemm_gflops,
        mean_pr,
    }
}

/// An f32 matrix product the benchmarks time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Product {
    /// `matrixmultiply::sgemm`.
    Matrixmultiply,
    /// The forward pass's own ([`matmul`]: our AVX-512 product where the CPU has it, else
    /// the same `matrixmultiply` call).
    Forward,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Matrixmultiply => "matrixmultiply",
            Product::Forward => "forward::matmul",
        }
    }
}

/// Best rate (GFLOP/s) of `blocks` blocks of `calls` products `[m, k]·B` by `product`, B a
/// row-major `[k, n]` or, with `transposed_b`, a row-major `[n, k]` read transposed (a linear
/// layer's weights, as the forward reads them). A block should be ≈ 2–20 GFLOP, so that a
/// coarse clock (a browser's `performance.now()`) is accurate.
// matrixmultiply is called directly (raw pointers; SAFETY comment inside).
#[allow(unsafe_code)]
pub fn sgemm_gflops(
    now_ms: &dyn Fn() -> f64,
    (m, k, n): (usize, usize, usize),
    transposed_b: bool,
    product: Product,
    (calls, blocks): (usize, usize),
) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 17) as f32 * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    // B as [n, k] row-major read transposed (rs 1, cs k), or [k, n] row-major.
    let (rsb, csb) = if transposed_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let mut best = 0.0f64;
    for _ in 0..blocks {
        let t = now_ms();
        for _ in 0..calls {
            match product {
                Product::Forward => matmul((m, k, n), &a, &b, transposed_b, &mut c),
                // SAFETY: a is m×k, b is k×n through the strides above, c is m×n, all in bounds; c is unique.
                Product::Matrixmultiply => unsafe {
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
                },
            }
        }
        let ms = (now_ms() - t).max(1e-6);
        // f64: calls·m·k·n overflows a 32-bit usize
        best = best.max(2.0 * calls as f64 * (m * k * n) as f64 / (ms * 1e6));
    }
    assert!(c[1].is_finite());
    best
}

/// Best single-thread f32 matmul rate (GFLOP/s) over the forward's own shapes:
/// `[t, d]·[d, d_ff]` (MLP up, weights read transposed as the forward does)
/// and a square 512³, by each [`Product`], timed by [`sgemm_gflops`] in `blocks` blocks;
/// the best block counts. The label names the shape and the product.
pub fn best_sgemm_gflops(now_ms: &dyn Fn() -> f64, blocks: usize) -> (f64, String) {
    let mut best = (0.0f64, String::new());
    for (m, k, n, transposed_b, calls) in
        [(TOKENS, D_MODEL, D_FF, true, 8), (512, 512, 512, false, 64)]
    {
        for product in [Product::Matrixmultiply, Product::Forward] {
            let gflops = sgemm_gflops(now_ms, (m, k, n), transposed_b, product, (calls, blocks));
            if gflops > best.0 {
                best = (gflops, format!("{m}×{k}·{k}×{n}, {}", product.name()));
            }
        }
    }
    best
}

/// The tokens asked for by `RANKSCOPE_BENCH_TOKENS` (as read by the platform), else [`TOKENS`].
pub fn tokens_from(variable: Option<String>) -> usize {
    variable
        .and_then(|v| v.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(TOKENS)
}

/// A readable report of `bench`, then its [`ForwardBench::line`] for `engine`.
pub fn report(bench: &ForwardBench, engine: &str) -> String {
    let ForwardBench {
        tokens,
        load_ms,
        forward_ms,
        spectra_ms,
        sgemm_gflops,
        mean_pr,
    } = *bench;
    let params = SyntheticCheckpoint::new().params();
    let n_spectra = LAYERS * (KV_HEADS * (KeyVariant::ALL.len()) + HEADS * 2);
    let fwd_gflops = bench.forward_gflops();
    format!(
        "synthetic reference checkpoint: {LAYERS} layers, d_model {D_MODEL}, {HEADS}/{KV_HEADS} heads (d_k {D_K}), d_ff {D_FF}, vocab {VOCAB}, {params} params (BF16, {:.0} MB)\n\
         load (header, recognition, read per layer; bf16 matrices kept where the product widens them): {load_ms:.0} ms\n\
         eval forward, 1×{tokens} tokens, with KeyCollector (no output head; the last block up to Q and K): {forward_ms:.0} ms = {:.1} GFLOP ({fwd_gflops:.1} GFLOP/s)\n\
         activation spectra: {n_spectra} matrices of {tokens}×{D_K} (K in 4 variants, Q plain + centred), f64: {spectra_ms:.0} ms (mean K PR {mean_pr:.3})\n\
         total per checkpoint (load + forward + spectra): {:.0} ms\n\
         best single-thread f32 sgemm: {sgemm_gflops:.1} GFLOP/s → forward at {:.0}% of matmul speed\n\
         {}",
        params as f64 * 2.0 / 1e6,
        forward_flops(tokens) / 1e9,
        load_ms + forward_ms + spectra_ms,
        100.0 * fwd_gflops / sgemm_gflops,
        bench.line(engine),
    )
}
