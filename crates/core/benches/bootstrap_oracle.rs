//! Figure 3's bootstrap by brute force, as rankscope computed it before the Gram route: every
//! resample stacks its sequences' K rows and takes each head's singular values of that tall
//! block (`singular_values_f32`, its own Gram with the trust test, else the direct SVD).
//! The oracle of `tests/bootstrap_gram.rs` and the "before" of `examples/bench_bootstrap.rs`.

use rankscope_core::analysis::importance::{bootstrap_interval, LayerPr};
use rankscope_core::analysis::spectrum::{metrics_from_singular_values, singular_values_f32};
use rankscope_core::model::forward::KeyCollector;

/// K PR of one head from the rows of the chosen sequences (`seq_len` rows each).
fn head_pr(keys: &[f32], d_k: usize, seq_len: usize, sequences: &[usize]) -> f64 {
    let rows: Vec<f32> = sequences
        .iter()
        .flat_map(|&b| {
            keys[b * seq_len * d_k..(b + 1) * seq_len * d_k]
                .iter()
                .copied()
        })
        .collect();
    singular_values_f32(&rows, sequences.len() * seq_len, d_k)
        .and_then(|sv| metrics_from_singular_values(&sv))
        .map_or(f64::NAN, |m| m.pr)
}

/// One layer's [`LayerPr`] from its heads' stacked keys, resampled with `seed`.
pub fn layer_pr_brute_force(
    layer: usize,
    heads: &[&[f32]],
    d_k: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
) -> LayerPr {
    let n_seq = heads[0].len() / d_k / seq_len;
    let all: Vec<usize> = (0..n_seq).collect();
    let per_head: Vec<f64> = heads
        .iter()
        .map(|k| head_pr(k, d_k, seq_len, &all))
        .collect();
    let pr = bootstrap_interval(n_seq, n_boot, 0.95, seed, &mut |pick| {
        heads
            .iter()
            .map(|k| head_pr(k, d_k, seq_len, pick))
            .sum::<f64>()
            / heads.len() as f64
    });
    LayerPr {
        layer,
        pr,
        head_min: per_head.iter().copied().fold(f64::INFINITY, f64::min),
        head_max: per_head.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Every layer, seeded `seed + layer` as `layer_pr_with_ci`.
pub fn layer_pr_with_ci_brute_force(
    keys: &KeyCollector,
    n_layers: usize,
    n_kv: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
) -> Vec<LayerPr> {
    (0..n_layers)
        .map(|layer| {
            let heads: Vec<&[f32]> = (0..n_kv).map(|h| keys.keys(layer, h)).collect();
            layer_pr_brute_force(
                layer,
                &heads,
                keys.d_k(),
                seq_len,
                n_boot,
                seed.wrapping_add(layer as u64),
            )
        })
        .collect()
}
