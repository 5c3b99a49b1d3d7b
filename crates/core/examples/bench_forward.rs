//! Timing of one forward pass of a full-size-ish model (plain `Instant`).
//!
//! `cargo run --release -p rankscope-core --example bench_forward [layers d_model tokens]`
//!
//! A reference-layout checkpoint (merged `qkvo_proj`, QK-norm, GQA 8/4,
//! d_k = d_model/8, d_ff = 4·d_model, vocab 256) with random F32 weights is
//! built in memory and read through the real pipeline (header →
//! `recognise` → `ModelWeights::load`); then one sequence is run with no
//! probe and with a `KeyCollector`. Defaults: 22 layers, d_model 512, 1024 tokens.

use std::collections::HashMap;
use std::time::Instant;

use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::{KeyCollector, ModelWeights, NoProbe};
use rankscope_core::source::block_on;
use safetensors::tensor::TensorView;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let (layers, d, t) = match args[..] {
        [l, d, t] => (l, d, t),
        _ => (22, 512, 1024),
    };
    let (heads, kv, vocab) = (8, 4, 256);
    let (d_k, d_ff) = (d / heads, 4 * d);

    let mut state = 1u64;
    let mut random = |n: usize, scale: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale).to_le_bytes()
            })
            .collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
        (
            "token_embedding.weight".into(),
            vec![vocab, d],
            random(vocab * d, 0.1),
        ),
        (
            "norm.weight".into(),
            vec![d],
            vec![1f32; d].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ];
    let w = 1.0 / (d as f32).sqrt();
    for l in 0..layers {
        let p = format!("transformer_blocks.{l}.");
        let ones =
            |n: usize| -> Vec<u8> { vec![1f32; n].iter().flat_map(|v| v.to_le_bytes()).collect() };
        tensors.push((
            format!("{p}attention.qkvo_proj"),
            vec![2 * d + 2 * kv * d_k, d],
            random((2 * d + 2 * kv * d_k) * d, w),
        ));
        tensors.push((format!("{p}attention.q_norm.weight"), vec![d_k], ones(d_k)));
        tensors.push((format!("{p}attention.k_norm.weight"), vec![d_k], ones(d_k)));
        tensors.push((
            format!("{p}feed_forward.up_proj.weight"),
            vec![d_ff, d],
            random(d_ff * d, w),
        ));
        tensors.push((
            format!("{p}feed_forward.down_proj.weight"),
            vec![d, d_ff],
            random(d * d_ff, w),
        ));
        tensors.push((format!("{p}norm1.weight"), vec![d], ones(d)));
        tensors.push((format!("{p}norm2.weight"), vec![d], ones(d)));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let config = format!(
        r#"{{"d_model": {d}, "n_heads": {heads}, "n_kv_heads": {kv}, "n_layers": {layers}, "d_ff": {d_ff}, "vocab_size": {vocab}, "use_qk_norm": true}}"#
    );
    let file = safetensors::serialize(views, Some(HashMap::from([("config".to_string(), config)])))
        .expect("serialize");
    drop(tensors);

    let header = read_header(&file).expect("header");
    let names: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&names, &header.metadata, None) else {
        panic!("not recognised")
    };
    let start = Instant::now();
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &file),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    println!(
        "{} ({:.1} MB f32), loaded in {:.2?}",
        arch.summary(),
        file.len() as f64 / 1e6,
        start.elapsed()
    );

    let ids: Vec<u32> = (0..t).map(|i| (i * 31 % vocab) as u32).collect();
    let flops = layers as f64
        * (2.0 * t as f64 * d as f64 * (2.0 * d as f64 + 2.0 * (kv * d_k) as f64 + 2.0 * d_ff as f64)
            + 2.0 * heads as f64 * (t * t) as f64 * d_k as f64) // causal QKᵀ and PV, half of 2·2·t²·d_k each
        + 2.0 * (t * d * vocab) as f64;
    for round in 0..2 {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let logits = model.forward(&ids, &mut NoProbe, None).expect("forward");
        let plain = start.elapsed();
        let cpu = cpu_seconds().zip(cpu).map(|(b, a)| b - a);
        let start = Instant::now();
        let mut keys = KeyCollector::new(&arch);
        model.forward(&ids, &mut keys, None).expect("forward");
        let probed = start.elapsed();
        println!(
            "round {round}: {t} tokens: forward {:.2?} wall, {} ({:.1} GFLOP/s per CPU second), with KeyCollector {:.2?}; logit[0,0] = {}",
            plain,
            cpu.map_or("CPU time unknown".into(), |c| format!("{c:.2} s CPU")),
            flops / cpu.unwrap_or(plain.as_secs_f64()) / 1e9,
            probed,
            logits.row(0)[0]
        );
    }
}

/// CPU time of this thread (user + system), from `/proc` on Linux: on a
/// shared machine it estimates the time on an idle core better than wall time.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 (1-based), in ticks of 1/100 s.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
