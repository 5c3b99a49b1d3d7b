//! Activation spectra: K per kv-head and Q per query head of every layer on
//! the eval batch, from one forward pass, with every rank metric
//! (`shared/METRICS.md`, "Representations" and "Spectral metrics"), and the
//! mean held-out cross-entropy when a held-out set is given.
//!
//! K is the `(B·T) × d_k` stack of a kv-head's keys, row `b·T + t`, **not
//! centred** by default, taken after the key norm and before RoPE; the
//! variants of METRICS.md are [`KeyVariant`]. Q is per query head after the
//! query norm, before RoPE (column-centred too for [`KeyVariant::Centered`]).
//! Every SVD is f64 ([`singular_values`]); the forward pass is f32.
//!
//! The result reuses [`HeadSpectrum`]: [`ActivationSpectra::spectra`] gives a
//! [`WeightSpectra`] whose `k_heads`/`q_heads` are the activations, so the
//! study figures draw it unchanged; their caption names the source through
//! [`super::study::Source`].

use super::gram_spectra::{Activation, BlockProbe, GramProbe, PendingSpectra, SpectraRoutes};
use super::spectrum::{singular_values, singular_values_from_gram, weight_metrics, SpectrumError};
use super::study::{CheckpointSpectra, RunSpectra};
use super::weights::{HeadSpectrum, WeightSpectra};
use crate::formats::tokens::TokenBatch;
use crate::model::arch::Architecture;
use crate::model::forward::{ForwardError, KeyCollector, ModelWeights};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which K (METRICS.md "Representations"); the default is [`KeyVariant::PostNorm`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyVariant {
    /// After the key norm (when the model has one), before RoPE: what the reference probe hooks.
    #[default]
    PostNorm,
    /// After RoPE (what attention uses).
    PostRope,
    /// The projection before the key norm.
    Raw,
    /// The default K with its column means removed.
    Centered,
}

impl KeyVariant {
    pub const ALL: [KeyVariant; 4] = [
        KeyVariant::PostNorm,
        KeyVariant::PostRope,
        KeyVariant::Raw,
        KeyVariant::Centered,
    ];

    /// The name used on the command line, in JSON and in share links.
    pub fn key(self) -> &'static str {
        match self {
            KeyVariant::PostNorm => "post_norm",
            KeyVariant::PostRope => "post_rope",
            KeyVariant::Raw => "raw",
            KeyVariant::Centered => "centered",
        }
    }

    /// Parses [`KeyVariant::key`] (also `default`, `post-rope`, `centred`).
    pub fn from_key(key: &str) -> Option<KeyVariant> {
        match key {
            "default" | "post-norm" => Some(KeyVariant::PostNorm),
            "post-rope" => Some(KeyVariant::PostRope),
            "centred" => Some(KeyVariant::Centered),
            k => KeyVariant::ALL.into_iter().find(|v| v.key() == k),
        }
    }

    /// Where K is taken, for captions: "after k_norm, before RoPE", ….
    pub fn k_where(self) -> &'static str {
        match self {
            KeyVariant::PostNorm => "after k_norm, before RoPE",
            KeyVariant::PostRope => "after k_norm and RoPE",
            KeyVariant::Raw => "raw projection, before k_norm and RoPE",
            KeyVariant::Centered => "after k_norm, before RoPE, column-centred",
        }
    }

    /// Where Q is taken for this variant (only centring applies to Q).
    pub fn q_where(self) -> &'static str {
        match self {
            KeyVariant::Centered => "after q_norm, before RoPE, column-centred",
            _ => "after q_norm, before RoPE",
        }
    }
}

impl fmt::Display for KeyVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One variant's K spectra of a layer, per kv-head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantHeads {
    pub variant: KeyVariant,
    pub heads: Vec<HeadSpectrum>,
}

/// Activation spectra of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationLayer {
    pub layer: usize,
    /// K per kv-head, one entry per computed variant (in the order asked).
    pub k: Vec<VariantHeads>,
    /// Q per query head, after the query norm, before RoPE.
    pub q_heads: Vec<HeadSpectrum>,
    /// Q column-centred, when [`KeyVariant::Centered`] was computed.
    pub q_centered: Option<Vec<HeadSpectrum>>,
}

impl ActivationLayer {
    /// K heads of `variant`, if it was computed.
    pub fn k_heads(&self, variant: KeyVariant) -> Option<&[HeadSpectrum]> {
        self.k
            .iter()
            .find(|v| v.variant == variant)
            .map(|v| v.heads.as_slice())
    }
}

/// Every layer's K and Q activation spectra of one checkpoint on one eval batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationSpectra {
    pub d_k: usize,
    pub d_model: usize,
    /// Eval batch shape `[B, T]`; every K/Q matrix has B·T rows.
    pub eval_batch: usize,
    pub eval_seq_len: usize,
    pub layers: Vec<ActivationLayer>,
    /// Mean next-token cross-entropy (nats) over the held-out set, when one was given.
    pub heldout_loss: Option<f64>,
}

impl ActivationSpectra {
    /// The spectra of `variant` in the shape the study figures take (K in
    /// `k_heads`, Q in `q_heads`, no γ); `None` if the variant was not computed.
    pub fn spectra(&self, variant: KeyVariant) -> Option<WeightSpectra> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let q = match variant {
                    KeyVariant::Centered => l.q_centered.clone()?,
                    _ => l.q_heads.clone(),
                };
                Some(super::weights::LayerWeights {
                    layer: l.layer,
                    k_heads: l.k_heads(variant)?.to_vec(),
                    q_heads: q,
                    gamma_k: None,
                    gamma_q: None,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(WeightSpectra {
            d_k: self.d_k,
            d_model: self.d_model,
            layers,
        })
    }
}

/// What a long computation is doing, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading and converting weights, one layer at a time.
    Loading,
    /// The forward pass over the eval batch, one sequence at a time.
    EvalForward,
    /// SVDs, one layer at a time.
    Spectra,
    /// The held-out loss, one sequence at a time.
    HeldOut,
}

/// Progress: `done` of `total` units of `stage` (layers or sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, unit) = match self.stage {
            Stage::Loading => ("loading weights", "layer"),
            Stage::EvalForward => ("forward pass on the eval batch", "sequence"),
            Stage::Spectra => ("activation spectra", "layer"),
            Stage::HeldOut => ("held-out loss", "sequence"),
        };
        write!(f, "{what}: {unit} {} of {}", self.done, self.total)
    }
}

/// Why activation spectra could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("spectrum of {matrix} head {head} of layer {layer}: {source}")]
    Spectrum {
        matrix: &'static str,
        layer: usize,
        head: usize,
        source: SpectrumError,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Most bytes of K and Q blocks [`activation_spectra`] holds at once: past it, a batch's
/// spectra come from per-head Gram matrices summed sequence by sequence
/// ([`activation_spectra_from_grams`]), which hold `d_k × d_k` per head whatever the batch.
pub const BLOCK_BUDGET_BYTES: usize = 256 << 20;

/// Runs `eval` through `model`, collecting K and Q per head, and returns
/// their spectra for each of `variants` (all four when empty), plus the mean
/// held-out cross-entropy when `heldout` is given. `progress` is called after
/// every sequence and layer; `cancelled` is checked as often, and a `true`
/// ends the work with [`ActivationError::Cancelled`]. Holds the blocks while
/// they fit [`BLOCK_BUDGET_BYTES`] (see [`activation_spectra_within`]).
pub fn activation_spectra(
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    activation_spectra_within(
        model,
        eval,
        heldout,
        variants,
        BLOCK_BUDGET_BYTES,
        progress,
        cancelled,
    )
}

/// [`activation_spectra`] holding at most `block_budget` bytes of K and Q blocks. The blocks of
/// every K variant and Q take `4 · n_layers · (3·n_kv + n_heads) · B·T · d_k` bytes (115 MB for
/// 22 layers × 1024 tokens at d_k 64, 8/4 heads; 3.7 GB for 32 such sequences). Within the
/// budget they are collected in one pass and each spectrum is its block's SVD; past it, the
/// spectra come from Gram matrices ([`activation_spectra_from_grams`]), which may need a second
/// pass for ill-conditioned heads.
pub fn activation_spectra_within(
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    block_budget: usize,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    let arch = model.arch();
    let check = || {
        if cancelled() {
            Err(ActivationError::Cancelled)
        } else {
            Ok(())
        }
    };

    check_batch(eval)?;
    let block_bytes = [
        arch.n_layers,
        3 * arch.n_kv_heads + arch.n_heads,
        eval.batch,
        eval.seq_len,
        arch.d_k,
    ]
    .iter()
    .try_fold(4usize, |bytes, &n| bytes.checked_mul(n))
    .unwrap_or(usize::MAX);
    let mut spectra = if block_bytes > block_budget {
        activation_spectra_from_grams(model, eval, variants, progress, cancelled)?.0
    } else {
        // One sequence at a time into one collector (rows stack as b·T + t), so
        // progress and cancellation come between sequences.
        let mut collector = KeyCollector::new(arch);
        for b in 0..eval.batch {
            check()?;
            model.run_batch(&row_batch(eval, b), &mut collector, None)?;
            progress(Progress {
                stage: Stage::EvalForward,
                done: b + 1,
                total: eval.batch,
            });
        }
        activation_spectra_from_collector(
            arch,
            eval.batch,
            eval.seq_len,
            &collector,
            variants,
            progress,
            cancelled,
        )?
    };

    spectra.heldout_loss = match heldout {
        Some(batch) => Some(heldout_loss(model, batch, progress, cancelled)?),
        None => None,
    };
    Ok(spectra)
}

/// The spectra of [`activation_spectra`] from per-head Gram matrices: each sequence's K (the
/// activations `variants` need) and Q are summed into f64 Grams and column sums
/// ([`GramProbe`]), so memory does not grow with the batch, and each spectrum is taken from its
/// Gram where the Gram route's trust test allows ([`head_spectrum_from_gram`]). For the rest
/// (κ > 1e4) the batch runs again, keeping only those heads' blocks ([`BlockProbe`]), and
/// reporting [`Stage::EvalForward`] again. No held-out loss; the routes say how many spectra
/// came from each.
pub fn activation_spectra_from_grams(
    model: &ModelWeights,
    eval: &TokenBatch,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), ActivationError> {
    let arch = model.arch();
    let check = || {
        if cancelled() {
            Err(ActivationError::Cancelled)
        } else {
            Ok(())
        }
    };
    check_batch(eval)?;
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let mut grams = GramProbe::new(arch, &Activation::needed_for(variants));
    for b in 0..eval.batch {
        check()?;
        model.run_batch(&row_batch(eval, b), &mut grams, None)?;
        progress(Progress {
            stage: Stage::EvalForward,
            done: b + 1,
            total: eval.batch,
        });
    }
    let mut pending =
        PendingSpectra::from_grams(arch, variants, &|l, a| grams.grams(l, a), cancelled)?;
    drop(grams);
    let needed = pending.needed();
    if !needed.is_empty() {
        let mut blocks = BlockProbe::new(&needed);
        for b in 0..eval.batch {
            check()?;
            model.run_batch(&row_batch(eval, b), &mut blocks, None)?;
            progress(Progress {
                stage: Stage::EvalForward,
                done: b + 1,
                total: eval.batch,
            });
        }
        pending.fill(&blocks.blocks, eval.batch * eval.seq_len, cancelled)?;
    }
    let routes = pending.routes();
    Ok((
        pending.finish(arch, eval.batch, eval.seq_len, progress),
        routes,
    ))
}

/// The spectra of K and Q already collected over an eval batch of `batch × seq_len` tokens (the
/// collector holds `batch·seq_len` rows per head): what [`activation_spectra`] does after its
/// forward pass, public so that another forward pass (the GPU's) that fills a [`KeyCollector`]
/// gets the very same result. Only the collected matrices of `variants` (all four when empty)
/// are read; `heldout_loss` is left `None` for the caller. `progress` is called after every
/// layer ([`Stage::Spectra`]), `cancelled` checked before each.
pub fn activation_spectra_from_collector(
    arch: &Architecture,
    batch: usize,
    seq_len: usize,
    collector: &KeyCollector,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let (d_k, rows) = (arch.d_k, batch * seq_len);
    let mut layers = Vec::with_capacity(arch.n_layers);
    for l in 0..arch.n_layers {
        if cancelled() {
            return Err(ActivationError::Cancelled);
        }
        let mut k = Vec::with_capacity(variants.len());
        for &variant in variants {
            let heads = (0..arch.n_kv_heads)
                .map(|h| {
                    let data = match variant {
                        KeyVariant::PostNorm | KeyVariant::Centered => collector.keys(l, h),
                        KeyVariant::PostRope => collector.post_rope_keys(l, h),
                        KeyVariant::Raw => collector.raw_keys(l, h),
                    };
                    head_spectrum(data, rows, d_k, variant == KeyVariant::Centered).map_err(
                        |source| ActivationError::Spectrum {
                            matrix: "K",
                            layer: l,
                            head: h,
                            source,
                        },
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            k.push(VariantHeads { variant, heads });
        }
        let q = |centre: bool| {
            (0..arch.n_heads)
                .map(|h| {
                    head_spectrum(collector.queries(l, h), rows, d_k, centre).map_err(|source| {
                        ActivationError::Spectrum {
                            matrix: "Q",
                            layer: l,
                            head: h,
                            source,
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let q_heads = q(false)?;
        let q_centered = if variants.contains(&KeyVariant::Centered) {
            Some(q(true)?)
        } else {
            None
        };
        layers.push(ActivationLayer {
            layer: l,
            k,
            q_heads,
            q_centered,
        });
        progress(Progress {
            stage: Stage::Spectra,
            done: l + 1,
            total: arch.n_layers,
        });
    }
    let d_model = arch.d_model;
    Ok(ActivationSpectra {
        d_k,
        d_model,
        eval_batch: batch,
        eval_seq_len: seq_len,
        layers,
        heldout_loss: None,
    })
}

/// Mean next-token cross-entropy over all `B·(T−1)` targets of `batch`
/// (as [`ModelWeights::mean_cross_entropy`]), one sequence at a time.
pub fn heldout_loss(
    model: &ModelWeights,
    batch: &TokenBatch,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<f64, ActivationError> {
    check_batch(batch)?;
    let mut total = 0.0;
    for b in 0..batch.batch {
        if cancelled() {
            return Err(ActivationError::Cancelled);
        }
        // Each row's mean is over the same T−1 targets, so the mean of means is the overall mean.
        total += model.mean_cross_entropy(&row_batch(batch, b), None)?;
        progress(Progress {
            stage: Stage::HeldOut,
            done: b + 1,
            total: batch.batch,
        });
    }
    Ok(total / batch.batch as f64)
}

/// A batch that is not empty and holds exactly `batch × seq_len` ids (public for the GPU
/// path, which must refuse the same batches with the same errors).
pub fn check_batch(batch: &TokenBatch) -> Result<(), ForwardError> {
    if batch.batch == 0 || batch.seq_len == 0 {
        return Err(ForwardError::EmptySequence);
    }
    if Some(batch.ids.len()) != batch.batch.checked_mul(batch.seq_len) {
        return Err(ForwardError::MalformedBatch {
            ids: batch.ids.len(),
            batch: batch.batch,
            seq_len: batch.seq_len,
        });
    }
    Ok(())
}

/// Row `b` of `batch` as a batch of one (ids are checked by the forward pass).
fn row_batch(batch: &TokenBatch, b: usize) -> TokenBatch {
    TokenBatch {
        batch: 1,
        seq_len: batch.seq_len,
        ids: batch.row(b).to_vec(),
    }
}

/// Singular values (f64) and metrics of a row-major `[rows, d_k]` f32 block,
/// its column means removed first when `centre`.
pub fn head_spectrum(
    data: &[f32],
    rows: usize,
    d_k: usize,
    centre: bool,
) -> Result<HeadSpectrum, SpectrumError> {
    let m = super::spectrum::matrix_from_row_major_f32(data, rows, d_k)?;
    let m = if centre { centred(m) } else { m };
    let singular_values = singular_values(&m)?;
    let metrics = weight_metrics(&singular_values)?;
    Ok(HeadSpectrum {
        singular_values,
        metrics,
    })
}

/// [`head_spectrum`] from the block's Gram matrix `XᵀX` (`[d_k, d_k]` row-major) and column
/// sums over `rows` rows instead of the block itself — what the GPU path sums on the GPU. Centred,
/// the Gram is `XᵀX − s sᵀ/rows`, and the trust test counts the cancellation that can cost
/// (its error scale is the uncentred trace). `Ok(None)` when the Gram cannot be trusted (see
/// [`singular_values_from_gram`]): then [`head_spectrum`] of the block gives the answer.
pub fn head_spectrum_from_gram(
    gram: &[f64],
    sums: &[f64],
    rows: usize,
    d_k: usize,
    centre: bool,
) -> Result<Option<HeadSpectrum>, SpectrumError> {
    if d_k == 0 || rows == 0 {
        return Err(SpectrumError::EmptyMatrix);
    }
    let expected = d_k * d_k;
    if gram.len() != expected || sums.len() != d_k {
        return Err(SpectrumError::ShapeMismatch {
            len: gram.len(),
            rows: d_k,
            cols: d_k,
            expected,
        });
    }
    let mut g = DMatrix::from_row_slice(d_k, d_k, gram);
    let error_scale = if centre {
        let trace = g.trace();
        let n = rows as f64;
        g -= DMatrix::from_fn(d_k, d_k, |i, j| sums[i] * sums[j] / n);
        trace
    } else {
        0.0
    };
    let Some(singular_values) = singular_values_from_gram(g, error_scale)? else {
        return Ok(None);
    };
    let metrics = weight_metrics(&singular_values)?;
    Ok(Some(HeadSpectrum {
        singular_values,
        metrics,
    }))
}

/// Column-centred copy, means in f64.
fn centred(mut m: DMatrix<f64>) -> DMatrix<f64> {
    let rows = m.nrows() as f64;
    for mut col in m.column_iter_mut() {
        let mean = col.iter().sum::<f64>() / rows;
        col.iter_mut().for_each(|v| *v -= mean);
    }
    m
}

/// A checkpoint's activation spectra and where it sits in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationCheckpoint {
    pub path: String,
    pub step: Option<u64>,
    pub tokens: Option<u64>,
    pub spectra: ActivationSpectra,
}

/// A run's checkpoints' activation spectra, in training order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRun {
    pub run: String,
    /// Palette index, as in [`RunSpectra`].
    pub color: usize,
    pub checkpoints: Vec<ActivationCheckpoint>,
}

impl ActivationRun {
    /// The run as the study figures take it, for one K variant (checkpoints
    /// without that variant are left out). Draw with
    /// `Source::Activations(variant)` so the caption says so.
    pub fn run_spectra(&self, variant: KeyVariant) -> RunSpectra {
        RunSpectra {
            run: self.run.clone(),
            color: self.color,
            checkpoints: self
                .checkpoints
                .iter()
                .filter_map(|c| {
                    Some(CheckpointSpectra {
                        path: c.path.clone(),
                        step: c.step,
                        tokens: c.tokens,
                        spectra: c.spectra.spectra(variant)?,
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_keys_round_trip() {
        for v in KeyVariant::ALL {
            assert_eq!(KeyVariant::from_key(v.key()), Some(v));
        }
        assert_eq!(KeyVariant::from_key("centred"), Some(KeyVariant::Centered));
        assert_eq!(KeyVariant::from_key("nope"), None);
        assert_eq!(KeyVariant::default(), KeyVariant::PostNorm);
    }

    #[test]
    fn centring_removes_a_constant_offset() {
        // Rank-1 data plus a constant offset: centred, one singular value is left.
        let (rows, d) = (40, 3);
        let data: Vec<f32> = (0..rows * d)
            .map(|i| (i / d) as f32 * [1.0, 2.0, -1.0][i % d] + 5.0)
            .collect();
        let plain = head_spectrum(&data, rows, d, false).expect("plain");
        let c = head_spectrum(&data, rows, d, true).expect("centred");
        assert!(plain.singular_values[1] > 1e-3);
        assert!(
            c.singular_values[1] < 1e-9 * c.singular_values[0],
            "{:?}",
            c.singular_values
        );
        assert_eq!(c.metrics.spectrum.r90, 1);
    }

    /// The Gram route agrees with the block's own spectrum, centred or not, and gives way
    /// (`None`) where the block is ill conditioned or centring cancels almost everything.
    #[test]
    fn spectrum_from_gram_matches_the_block() {
        let (rows, d) = (50, 4);
        let gram_of = |data: &[f32]| {
            let mut g = vec![0.0f64; d * d];
            let mut sums = vec![0.0f64; d];
            for row in data.chunks(d) {
                for i in 0..d {
                    sums[i] += row[i] as f64;
                    for j in 0..d {
                        g[i * d + j] += row[i] as f64 * row[j] as f64;
                    }
                }
            }
            (g, sums)
        };
        // Well conditioned, with a mean of 3 on every column.
        let data: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 + 2.0)
            .collect();
        let (g, sums) = gram_of(&data);
        for centre in [false, true] {
            let want = head_spectrum(&data, rows, d, centre).expect("block");
            let got = head_spectrum_from_gram(&g, &sums, rows, d, centre)
                .expect("valid")
                .expect("trusted");
            for (a, b) in got.singular_values.iter().zip(&want.singular_values) {
                assert!(
                    (a - b).abs() <= 1e-9 * want.singular_values[0],
                    "centre {centre}: {a} vs {b}"
                );
            }
            assert!((got.metrics.spectrum.pr - want.metrics.spectrum.pr).abs() < 1e-9);
        }
        // Rank 1 plus an offset: centred, the Gram is rank 1, so the direct SVD must answer.
        let data: Vec<f32> = (0..rows * d)
            .map(|i| (i / d) as f32 * [1.0, 2.0, -1.0, 0.5][i % d] + 5.0)
            .collect();
        let (g, sums) = gram_of(&data);
        assert!(head_spectrum_from_gram(&g, &sums, rows, d, true)
            .expect("valid")
            .is_none());
        assert!(head_spectrum_from_gram(&g, &sums[1..], rows, d, true).is_err());
    }

    #[test]
    fn progress_reads_as_a_sentence() {
        let p = Progress {
            stage: Stage::Spectra,
            done: 3,
            total: 22,
        };
        assert_eq!(p.to_string(), "activation spectra: layer 3 of 22");
    }
}
