//! Benchmark: the full surgery sweep (SVD, γ, random × 10 fractions, 5 seeds
//! = 1 baseline + 63 edited forward passes, plus one eval pass for the SVD
//! bases) on a synthetic full-size reference checkpoint (22 layers, d_model
//! 512, 8/4 heads, d_k 64, d_ff 2048, vocab 49152, BF16, QK-norm), natively,
//! single thread.
//!
//! `cargo run --release -p rankscope-core --example bench_surgery [sequences seq_len]`
//! (held-out and eval batches both `sequences × seq_len` tokens; default 1 × 1024).

#[path = "../benches/weights_common.rs"]
#[allow(dead_code)]
mod common;

use rankscope_core::analysis::surgery::{run_sweep, SweepOptions};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::block_on;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let (seqs, seq_len) = match args[..] {
        [b, t] => (b, t),
        _ => (1, 1024),
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
    let t = Instant::now();
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &ckpt),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    println!(
        "{} ({} params, BF16), loaded in {:.2?}",
        arch.summary(),
        ckpt.params(),
        t.elapsed()
    );

    let batch = |salt: usize| TokenBatch {
        batch: seqs,
        seq_len,
        ids: (0..seqs * seq_len)
            .map(|i| ((i * 7919 + salt * 104_729) % common::VOCAB) as u32)
            .collect(),
    };
    let (eval, heldout) = (batch(1), batch(2));

    let t = Instant::now();
    let base = model.mean_cross_entropy(&heldout, None).expect("loss");
    let one = t.elapsed();
    println!("one held-out forward pass ({seqs} × {seq_len} tokens): {one:.2?} (loss {base:.4})");

    let options = SweepOptions::default();
    let t = Instant::now();
    let mut passes = 0usize;
    // Time per strategy: each progress call closes the previous pass.
    let mut per_strategy: Vec<(&'static str, std::time::Duration, usize)> = Vec::new();
    let mut last: Option<(&'static str, Instant)> = None;
    let result = run_sweep(
        &model,
        &eval,
        &heldout,
        &options,
        &mut |p| {
            passes += 1;
            let now = Instant::now();
            if let Some((name, since)) = last.take() {
                match per_strategy.iter_mut().find(|e| e.0 == name) {
                    Some(e) => {
                        e.1 += now - since;
                        e.2 += 1;
                    }
                    None => per_strategy.push((name, now - since, 1)),
                }
            }
            // The first call (done = 0) announces the baseline pass, after the SVD bases.
            last = Some((
                if p.done == 0 {
                    "baseline"
                } else {
                    p.strategy.label()
                },
                now,
            ));
        },
        &|| false,
    )
    .expect("sweep");
    let total = t.elapsed();
    if let Some((name, since)) = last {
        match per_strategy.iter_mut().find(|e| e.0 == name) {
            Some(e) => {
                e.1 += since.elapsed();
                e.2 += 1;
            }
            None => per_strategy.push((name, since.elapsed(), 1)),
        }
    }
    for (name, time, n) in &per_strategy {
        println!(
            "  {name:<8} {n:>2} passes, {:.2?} per pass",
            *time / *n as u32
        );
    }
    // + 1: the eval-batch pass that collects K for the SVD bases.
    let forwards = passes + 1;
    println!(
        "full sweep (3 strategies × {} fractions, {} random seeds): {forwards} forward passes in {total:.2?} = {:.2?} per pass ({:.0} tokens/s)",
        options.fractions.len(),
        options.seeds,
        total / forwards as u32,
        (forwards * seqs * seq_len) as f64 / total.as_secs_f64()
    );
    let last = result.fractions.len() - 1;
    println!(
        "losses at p = {}: SVD {:.4}, γ {:.4}, random mean {:.4} (baseline {:.4})",
        result.fractions[last],
        result.svd.as_ref().unwrap()[last],
        result.gamma.as_ref().unwrap()[last],
        result.random.as_ref().unwrap().mean[last],
        result.baseline
    );
}
