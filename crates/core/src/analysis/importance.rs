//! γ vs SVD importance (METRICS.md "Gamma vs SVD importance"; fixtures README
//! `final.gamma_vs_svd`): per layer and key coordinate d, x = |γ_d| and
//! y = leverage of d in the top-r90 subspace of K, Σ_{i≤r90} V_{d,i}², averaged
//! over the layer's kv-heads; Spearman ρ per layer and pooled, with a
//! permutation p-value (numpy `default_rng(seed)`, so the reference's
//! permutations are reproduced exactly). Also a seeded bootstrap over the
//! eval batch's sequences for a per-layer metric.

use serde::{Deserialize, Serialize};

use super::numpy_rng::NumpyRng;
use super::spectrum::right_singular_vectors;
use super::spectrum::{metrics_from_singular_values, singular_values_f32, SpectrumError};
use super::surgery::SurgeryError;
use crate::model::forward::{KeyCollector, ModelWeights};

/// Permutations for the p-value and their seed, as the reference.
pub const DEFAULT_PERMUTATIONS: usize = 10_000;

/// Σ_{i<r} V_{d,i}² for every row d of V (columns by descending σ).
pub fn leverage(v: &nalgebra::DMatrix<f64>, r: usize) -> Vec<f64> {
    (0..v.nrows())
        .map(|d| (0..r.min(v.ncols())).map(|i| v[(d, i)] * v[(d, i)]).sum())
        .collect()
}

/// Ranks 1..n, ties get their average rank.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman ρ and its two-sided permutation p-value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Spearman {
    /// NaN when x or y is constant.
    pub rho: f64,
    /// (1 + #{|ρ_perm| ≥ |ρ|}) / (n_perm + 1).
    pub p_perm: f64,
    pub n: usize,
    pub n_perm: usize,
    pub perm_seed: u64,
}

/// Spearman ρ (average ranks for ties) with a permutation p-value: `n_perm`
/// permutations of y drawn by `numpy.random.default_rng(seed).permutation`.
pub fn spearman(x: &[f64], y: &[f64], n_perm: usize, seed: u64) -> Spearman {
    assert_eq!(x.len(), y.len(), "spearman: x and y differ in length");
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let rho = pearson(&rx, &ry);
    let mut rng = NumpyRng::new(seed);
    let mut exceed = 0usize;
    let mut perm = ry.clone();
    // Permuting the ranks of y is permuting y (the ranks travel with the values).
    for _ in 0..n_perm {
        perm.copy_from_slice(&ry);
        rng.shuffle(&mut perm);
        // Relative slack against rounding: equal |ρ| counts as "at least as extreme".
        if pearson(&rx, &perm).abs() >= rho.abs() * (1.0 - 1e-12) {
            exceed += 1;
        }
    }
    Spearman {
        rho,
        p_perm: (1 + exceed) as f64 / (n_perm + 1) as f64,
        n: x.len(),
        n_perm,
        perm_seed: seed,
    }
}

/// One layer of the scatter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LayerImportance {
    pub layer: usize,
    pub r90_per_head: Vec<usize>,
    /// `[kv_head][d]`.
    pub leverage_per_head: Vec<Vec<f64>>,
    /// Mean over kv-heads, per coordinate d.
    pub leverage: Vec<f64>,
    /// |γ_d|; `None` without a key norm.
    pub abs_gamma: Option<Vec<f64>>,
    pub spearman: Option<Spearman>,
}

/// Figure 5's data for one checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Importance {
    pub layers: Vec<LayerImportance>,
    /// All L·d_k coordinates pooled; `None` without a key norm.
    pub overall: Option<Spearman>,
    pub has_key_norm: bool,
}

/// Leverage of every coordinate from eval-batch keys, and (with a key norm)
/// its rank correlation with |γ|. Without a key norm the leverages are still
/// given and `abs_gamma`/`spearman`/`overall` are `None`.
pub fn gamma_vs_svd(
    model: &ModelWeights,
    keys: &KeyCollector,
    n_perm: usize,
    seed: u64,
) -> Result<Importance, SurgeryError> {
    let arch = model.arch();
    let (n_layers, n_kv) = (arch.n_layers, arch.n_kv_heads);
    let has_key_norm = (0..n_layers).all(|l| model.key_norm_weight(l).is_some());
    let mut layers = Vec::with_capacity(n_layers);
    let (mut all_x, mut all_y) = (Vec::new(), Vec::new());
    for layer in 0..n_layers {
        let mut r90_per_head = Vec::with_capacity(n_kv);
        let mut leverage_per_head = Vec::with_capacity(n_kv);
        for kv_head in 0..n_kv {
            let m = super::spectrum::matrix_from_row_major_f32(
                keys.keys(layer, kv_head),
                keys.rows(),
                keys.d_k(),
            )
            .map_err(|source| SurgeryError::Spectrum {
                layer,
                kv_head,
                source,
            })?;
            let (sv, v) = right_singular_vectors(&m).map_err(|source| SurgeryError::Spectrum {
                layer,
                kv_head,
                source,
            })?;
            let r90 = metrics_from_singular_values(&sv)
                .map_err(|source| SurgeryError::Spectrum {
                    layer,
                    kv_head,
                    source,
                })?
                .r90;
            r90_per_head.push(r90);
            leverage_per_head.push(leverage(&v, r90));
        }
        let d_k = keys.d_k();
        let lev: Vec<f64> = (0..d_k)
            .map(|d| leverage_per_head.iter().map(|h| h[d]).sum::<f64>() / n_kv as f64)
            .collect();
        let abs_gamma: Option<Vec<f64>> = has_key_norm
            .then(|| {
                model
                    .key_norm_weight(layer)
                    .map(|g| g.iter().map(|v| f64::from(v.abs())).collect())
            })
            .flatten();
        let spearman = abs_gamma.as_ref().map(|g| {
            all_x.extend_from_slice(g);
            all_y.extend_from_slice(&lev);
            spearman(g, &lev, n_perm, seed)
        });
        layers.push(LayerImportance {
            layer,
            r90_per_head,
            leverage_per_head,
            leverage: lev,
            abs_gamma,
            spearman,
        });
    }
    let overall = has_key_norm.then(|| spearman(&all_x, &all_y, n_perm, seed));
    Ok(Importance {
        layers,
        overall,
        has_key_norm,
    })
}

/// A point estimate with its percentile bootstrap interval.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Linear-interpolated quantile (numpy's default) of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

/// Percentile bootstrap over sequences: `metric(sequences)` gets the indices
/// of a resample (n_sequences draws with replacement, `default_rng(seed)`);
/// `value` is the metric on all sequences in order; the interval is the
/// (1−level)/2 and (1+level)/2 quantiles of `n_boot` resamples. Non-finite
/// resample values are dropped.
pub fn bootstrap_interval(
    n_sequences: usize,
    n_boot: usize,
    level: f64,
    seed: u64,
    metric: &mut dyn FnMut(&[usize]) -> f64,
) -> Interval {
    let all: Vec<usize> = (0..n_sequences).collect();
    let value = metric(&all);
    let mut draws: Vec<f64> = resamples(n_sequences, n_boot, seed)
        .map(|pick| metric(&pick))
        .collect();
    percentile_interval(value, &mut draws, level)
}

/// The `n_boot` resamples of a bootstrap over `n_sequences` sequences: each `n_sequences` indices
/// drawn with replacement by `numpy.random.default_rng(seed)`. The same seed gives the same
/// resamples, so metrics of two runs on one eval batch resampled with one seed are paired.
pub fn resamples(n_sequences: usize, n_boot: usize, seed: u64) -> impl Iterator<Item = Vec<usize>> {
    let mut rng = NumpyRng::new(seed);
    (0..n_boot).map(move |_| {
        (0..n_sequences)
            .map(|_| rng.interval(n_sequences as u64 - 1) as usize)
            .collect()
    })
}

/// `value` with the (1−level)/2 and (1+level)/2 quantiles (numpy's linear interpolation) of the
/// finite `draws` (sorted in place); NaN bounds when none is finite.
pub fn percentile_interval(value: f64, draws: &mut Vec<f64>, level: f64) -> Interval {
    draws.retain(|v| v.is_finite());
    if draws.is_empty() {
        return Interval {
            value,
            lo: f64::NAN,
            hi: f64::NAN,
        };
    }
    draws.sort_by(f64::total_cmp);
    Interval {
        value,
        lo: quantile(draws, (1.0 - level) / 2.0),
        hi: quantile(draws, (1.0 + level) / 2.0),
    }
}

/// Singular values (f64) of one head's K from the rows of the chosen sequences (`seq_len` rows each).
fn head_singular_values(
    keys: &[f32],
    d_k: usize,
    seq_len: usize,
    sequences: &[usize],
) -> Result<Vec<f64>, SpectrumError> {
    let rows: Vec<f32> = sequences
        .iter()
        .flat_map(|&b| {
            keys[b * seq_len * d_k..(b + 1) * seq_len * d_k]
                .iter()
                .copied()
        })
        .collect();
    singular_values_f32(&rows, sequences.len() * seq_len, d_k)
}

/// K PR of one head from the rows of the chosen sequences (`seq_len` rows each).
fn head_pr(
    keys: &[f32],
    d_k: usize,
    seq_len: usize,
    sequences: &[usize],
) -> Result<f64, SpectrumError> {
    Ok(metrics_from_singular_values(&head_singular_values(keys, d_k, seq_len, sequences)?)?.pr)
}

/// A checkpoint's value of a per-head K metric (the mean over layers of the mean over kv-heads,
/// as Figure 1) on every resample of [`resamples`]`(n_sequences, n_boot, seed)` of the eval
/// batch's sequences (keys as collected: after the key norm, before RoPE). `metric` maps a head's
/// singular values to its value (`None` where undefined); a resample where it is undefined for
/// some head gives NaN.
pub fn layer_mean_resamples(
    keys: &KeyCollector,
    n_layers: usize,
    n_kv: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
    metric: &dyn Fn(&[f64]) -> Option<f64>,
) -> Result<Vec<f64>, SpectrumError> {
    if seq_len == 0
        || !keys.rows().is_multiple_of(seq_len)
        || keys.rows() == 0
        || n_layers == 0
        || n_kv == 0
    {
        return Err(SpectrumError::EmptyMatrix);
    }
    let d_k = keys.d_k();
    resamples(keys.rows() / seq_len, n_boot, seed)
        .map(|pick| {
            let mut sum = 0.0;
            for layer in 0..n_layers {
                for h in 0..n_kv {
                    let sv = head_singular_values(keys.keys(layer, h), d_k, seq_len, &pick)?;
                    sum += metric(&sv).unwrap_or(f64::NAN);
                }
            }
            Ok(sum / (n_layers * n_kv) as f64)
        })
        .collect()
}

/// Per layer: K PR (mean over kv-heads), the min and max over heads, and a
/// 95% bootstrap CI over the eval batch's sequences (`n_boot` resamples, seeded).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LayerPr {
    pub layer: usize,
    pub pr: Interval,
    pub head_min: f64,
    pub head_max: f64,
}

/// [`LayerPr`] for every layer of collected eval-batch keys (`seq_len` tokens per sequence).
pub fn layer_pr_with_ci(
    keys: &KeyCollector,
    n_layers: usize,
    n_kv: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
) -> Result<Vec<LayerPr>, SpectrumError> {
    let d_k = keys.d_k();
    if seq_len == 0 || !keys.rows().is_multiple_of(seq_len) || keys.rows() == 0 {
        return Err(SpectrumError::EmptyMatrix);
    }
    let n_seq = keys.rows() / seq_len;
    (0..n_layers)
        .map(|layer| {
            let all: Vec<usize> = (0..n_seq).collect();
            let heads = (0..n_kv)
                .map(|h| head_pr(keys.keys(layer, h), d_k, seq_len, &all))
                .collect::<Result<Vec<_>, _>>()?;
            let mut failed = None;
            let pr = bootstrap_interval(
                n_seq,
                n_boot,
                0.95,
                seed.wrapping_add(layer as u64),
                &mut |pick| {
                    let mut sum = 0.0;
                    for h in 0..n_kv {
                        match head_pr(keys.keys(layer, h), d_k, seq_len, pick) {
                            Ok(v) => sum += v,
                            Err(e) => {
                                failed.get_or_insert(e);
                                return f64::NAN;
                            }
                        }
                    }
                    sum / n_kv as f64
                },
            );
            if let Some(e) = failed.filter(|_| !pr.value.is_finite()) {
                return Err(e);
            }
            Ok(LayerPr {
                layer,
                pr,
                head_min: heads.iter().copied().fold(f64::INFINITY, f64::min),
                head_max: heads.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_of_monotone_data_is_one() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v * v).collect();
        let s = spearman(&x, &y, 1000, 0);
        assert!((s.rho - 1.0).abs() < 1e-12);
        assert!(s.p_perm < 0.01);
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_mean() {
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut mean = |p: &[usize]| p.iter().map(|&i| data[i]).sum::<f64>() / p.len() as f64;
        let a = bootstrap_interval(6, 500, 0.95, 3, &mut mean);
        let b = bootstrap_interval(6, 500, 0.95, 3, &mut mean);
        assert_eq!(a, b);
        assert!(a.lo < 3.5 && 3.5 < a.hi && a.value == 3.5, "{a:?}");
    }
}
