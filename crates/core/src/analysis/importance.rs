//! γ vs SVD importance (METRICS.md "Gamma vs SVD importance"; fixtures README
//! `final.gamma_vs_svd`): per layer and key coordinate d, x = |γ_d| and
//! y = leverage of d in the top-r90 subspace of K, Σ_{i≤r90} V_{d,i}², averaged
//! over the layer's kv-heads; Spearman ρ per layer and pooled, with a
//! permutation p-value (numpy `default_rng(seed)`, so the reference's
//! permutations are reproduced exactly). Also a seeded bootstrap over the
//! eval batch's sequences for a per-layer metric.

use serde::{Deserialize, Serialize};

use nalgebra::DMatrix;

use super::gram_spectra::{HeadGram, SpectraRoutes};
use super::numpy_rng::NumpyRng;
use super::spectrum::{
    matrix_from_row_major_f32, metrics_from_singular_values, right_singular_vectors,
    singular_values_from_grams, singular_values_with, SpectrumError, SvdRoute,
};
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
/// given and `abs_gamma`/`spearman`/`overall` are `None`. Layers run on
/// [`crate::parallel::map`] (each with its own permutations of `seed`).
pub fn gamma_vs_svd(
    model: &ModelWeights,
    keys: &KeyCollector,
    n_perm: usize,
    seed: u64,
) -> Result<Importance, SurgeryError> {
    let n_layers = model.arch().n_layers;
    let has_key_norm = (0..n_layers).all(|l| model.key_norm_weight(l).is_some());
    let indices: Vec<usize> = (0..n_layers).collect();
    let layers = crate::parallel::map(&indices, |&layer| {
        layer_importance(model, keys, layer, has_key_norm, n_perm, seed)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let overall = has_key_norm.then(|| {
        let (mut all_x, mut all_y) = (Vec::new(), Vec::new());
        for l in &layers {
            all_x.extend_from_slice(l.abs_gamma.as_deref().unwrap_or_default());
            all_y.extend_from_slice(&l.leverage);
        }
        spearman(&all_x, &all_y, n_perm, seed)
    });
    Ok(Importance {
        layers,
        overall,
        has_key_norm,
    })
}

/// One layer of [`gamma_vs_svd`].
fn layer_importance(
    model: &ModelWeights,
    keys: &KeyCollector,
    layer: usize,
    has_key_norm: bool,
    n_perm: usize,
    seed: u64,
) -> Result<LayerImportance, SurgeryError> {
    let n_kv = model.arch().n_kv_heads;
    let mut r90_per_head = Vec::with_capacity(n_kv);
    let mut leverage_per_head = Vec::with_capacity(n_kv);
    for kv_head in 0..n_kv {
        let m = matrix_from_row_major_f32(keys.keys(layer, kv_head), keys.rows(), keys.d_k())
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
    let spearman = abs_gamma.as_ref().map(|g| spearman(g, &lev, n_perm, seed));
    Ok(LayerImportance {
        layer,
        r90_per_head,
        leverage_per_head,
        leverage: lev,
        abs_gamma,
        spearman,
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

/// The sequences of `n_boot` bootstrap resamples: each `n_sequences` draws with replacement
/// from `numpy.random.default_rng(seed)` (`rng.integers(0, n)` one at a time), in draw order.
pub fn bootstrap_picks(n_sequences: usize, n_boot: usize, seed: u64) -> Vec<Vec<usize>> {
    resamples(n_sequences, n_boot, seed).collect()
}

/// `value` with the (1−level)/2 and (1+level)/2 quantiles of the resample values `draws`;
/// non-finite draws are dropped (NaN bounds when none is left).
pub fn percentile_interval(value: f64, mut draws: Vec<f64>, level: f64) -> Interval {
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
        lo: quantile(&draws, (1.0 - level) / 2.0),
        hi: quantile(&draws, (1.0 + level) / 2.0),
    }
}

/// Percentile bootstrap over sequences: `metric(sequences)` gets the indices
/// of a resample ([`bootstrap_picks`]); `value` is the metric on all sequences in order; the
/// interval is [`percentile_interval`] of the `n_boot` resamples.
pub fn bootstrap_interval(
    n_sequences: usize,
    n_boot: usize,
    level: f64,
    seed: u64,
    metric: &mut dyn FnMut(&[usize]) -> f64,
) -> Interval {
    let all: Vec<usize> = (0..n_sequences).collect();
    let value = metric(&all);
    let draws = bootstrap_picks(n_sequences, n_boot, seed)
        .iter()
        .map(|pick| metric(pick))
        .collect();
    percentile_interval(value, draws, level)
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
    let n_seq = keys.rows() / seq_len;
    // Each head's per-sequence Grams once; a resample only reweights them (as Figure 3's
    // bootstrap, [`layer_pr_of_heads`]).
    let heads: Vec<(&[f32], Vec<HeadGram>)> = (0..n_layers)
        .flat_map(|layer| (0..n_kv).map(move |h| (layer, h)))
        .map(|(layer, h)| {
            let k = keys.keys(layer, h);
            (k, HeadGram::per_sequence(k, seq_len, d_k))
        })
        .collect();
    let by_head: Vec<(&[f32], &[HeadGram])> =
        heads.iter().map(|(k, g)| (*k, g.as_slice())).collect();
    let mut routes = SpectraRoutes::default();
    resamples(n_seq, n_boot, seed)
        .map(|pick| {
            let mut copies = vec![0usize; n_seq];
            pick.iter().for_each(|&b| copies[b] += 1);
            let each =
                resampled_singular_values(&by_head, d_k, seq_len, &pick, &copies, &mut routes)?;
            let sum: f64 = each.iter().map(|sv| metric(sv).unwrap_or(f64::NAN)).sum();
            Ok(sum / heads.len() as f64)
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

/// [`LayerPr`] for every layer of collected eval-batch keys (`seq_len` tokens per sequence):
/// [`layer_pr_of_heads`] of each layer's kv-heads, resampled with seed `seed + layer`.
pub fn layer_pr_with_ci(
    keys: &KeyCollector,
    n_layers: usize,
    n_kv: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
) -> Result<Vec<LayerPr>, SpectrumError> {
    (0..n_layers)
        .map(|layer| {
            let heads: Vec<&[f32]> = (0..n_kv).map(|h| keys.keys(layer, h)).collect();
            let (pr, _) = layer_pr_of_heads(
                layer,
                &heads,
                keys.d_k(),
                seq_len,
                n_boot,
                seed.wrapping_add(layer as u64),
            )?;
            Ok(pr)
        })
        .collect()
}

/// One layer's [`LayerPr`] from its kv-heads' stacked keys (`heads[h]` is `[n·seq_len, d_k]`
/// row-major, row `b·seq_len + t`), with the bootstrap over the n sequences seeded by `seed`,
/// and how many head spectra took each route.
///
/// A resample only reweights the sequences, so each head's Gram `KᵀK` is summed once per
/// sequence ([`HeadGram::per_sequence`]) and a resample's Gram is their sum with multiplicity
/// ([`HeadGram::weighted_sum`]): d_k × d_k work per sequence instead of T·d_k², then one
/// symmetric eigen-solve. Where the Gram route's trust test ([`singular_values_from_grams`])
/// refuses a resample's Gram (κ > 1e4: a collapsed head), that head's PR comes from the SVD
/// of the resample's stacked rows, as it always did. Resamples run on [`crate::parallel::map`].
pub fn layer_pr_of_heads(
    layer: usize,
    heads: &[&[f32]],
    d_k: usize,
    seq_len: usize,
    n_boot: usize,
    seed: u64,
) -> Result<(LayerPr, SpectraRoutes), SpectrumError> {
    let rows = heads.first().map_or(0, |k| k.len() / d_k.max(1));
    if heads.is_empty() || d_k == 0 || seq_len == 0 || rows == 0 || !rows.is_multiple_of(seq_len) {
        return Err(SpectrumError::EmptyMatrix);
    }
    if let Some(k) = heads.iter().find(|k| k.len() != rows * d_k) {
        return Err(SpectrumError::ShapeMismatch {
            len: k.len(),
            rows,
            cols: d_k,
            expected: rows * d_k,
        });
    }
    let n_seq = rows / seq_len;
    let grams: Vec<Vec<HeadGram>> =
        crate::parallel::map(heads, |k| HeadGram::per_sequence(k, seq_len, d_k));
    let by_head: Vec<(&[f32], &[HeadGram])> = heads
        .iter()
        .zip(&grams)
        .map(|(&k, g)| (k, g.as_slice()))
        .collect();
    let resample = |pick: &[usize]| -> (Result<Vec<f64>, SpectrumError>, SpectraRoutes) {
        let mut copies = vec![0usize; n_seq];
        pick.iter().for_each(|&b| copies[b] += 1);
        let mut routes = SpectraRoutes::default();
        let prs = resampled_singular_values(&by_head, d_k, seq_len, pick, &copies, &mut routes)
            .and_then(|each| {
                each.iter()
                    .map(|sv| Ok(metrics_from_singular_values(sv)?.pr))
                    .collect()
            });
        (prs, routes)
    };
    let all: Vec<usize> = (0..n_seq).collect();
    let (per_head, mut routes) = resample(&all);
    let per_head = per_head?;
    let mean = |prs: &[f64]| prs.iter().sum::<f64>() / prs.len() as f64;
    let picks = bootstrap_picks(n_seq, n_boot, seed);
    let mut draws = Vec::with_capacity(n_boot);
    for (prs, r) in crate::parallel::map(&picks, |pick| resample(pick)) {
        routes.from_gram += r.from_gram;
        routes.from_block += r.from_block;
        // A resample whose spectrum fails (all-zero rows) is dropped, as a non-finite draw.
        draws.push(prs.map_or(f64::NAN, |prs| mean(&prs)));
    }
    let pr = LayerPr {
        layer,
        pr: percentile_interval(mean(&per_head), draws, 0.95),
        head_min: per_head.iter().copied().fold(f64::INFINITY, f64::min),
        head_max: per_head.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    Ok((pr, routes))
}

/// Singular values of each head's K over the sequences of `pick` (`copies[b]` = how often b
/// was picked), a head given as its stacked keys and its per-sequence Grams: from the sum of
/// those Grams when the trust test passes, else from the stacked rows' direct SVD. The
/// eigenvalues of every head's Gram are found together ([`singular_values_from_grams`]: the
/// iterations interleaved, the same values bit for bit). `routes` counts which route each
/// spectrum took.
fn resampled_singular_values(
    heads: &[(&[f32], &[HeadGram])],
    d_k: usize,
    seq_len: usize,
    pick: &[usize],
    copies: &[usize],
    routes: &mut SpectraRoutes,
) -> Result<Vec<Vec<f64>>, SpectrumError> {
    let summed: Vec<(DMatrix<f64>, f64)> = heads
        .iter()
        .map(|(_, grams)| {
            let gram = HeadGram::weighted_sum(grams, copies, d_k);
            (DMatrix::from_row_slice(d_k, d_k, &gram.gram), 0.0)
        })
        .collect();
    let from_gram = singular_values_from_grams(&summed)?;
    heads
        .iter()
        .zip(from_gram)
        .map(|((keys, _), sv)| match sv {
            Some(sv) => {
                routes.from_gram += 1;
                Ok(sv)
            }
            None => {
                routes.from_block += 1;
                let block = seq_len * d_k;
                let rows: Vec<f32> = pick
                    .iter()
                    .flat_map(|&b| keys[b * block..(b + 1) * block].iter().copied())
                    .collect();
                let m = matrix_from_row_major_f32(&rows, pick.len() * seq_len, d_k)?;
                singular_values_with(&m, SvdRoute::Direct)
            }
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
