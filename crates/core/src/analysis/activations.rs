//! Activation spectra: K per kv-head and Q per query head of every layer on
//! the eval batch, from one forward pass, with every rank metric
//! (`shared/METRICS.md`, "Representations" and "Spectral metrics"), and the
//! mean held-out cross-entropy when a held-out set is given.
//!
//! K is the `(B·T) × d_k` stack of a kv-head's keys, row `b·T + t`, **not
//! centred** by default, taken after the key norm and before RoPE; the
//! variants of METRICS.md are [`KeyVariant`]. Q is per query head after the
//! query norm, before RoPE (column-centred too for [`KeyVariant::Centered`]).
//! Every SVD is f64 ([`super::spectrum::singular_values`]); the forward pass is f32.
//!
//! The result reuses [`super::weights::HeadSpectrum`]: [`ActivationSpectra::spectra`] gives a
//! [`super::weights::ModelSpectra`] whose `k_heads`/`q_heads` are the activations, so the
//! study figures draw it unchanged; their caption names the source through
//! [`super::trajectory::SpectraSource`].

use super::gram_spectra::{
    blocks_spectra, Activation, BlockProbe, GramProbe, PendingSpectra, SpectraRoutes,
};
use crate::model::backend::{row_batch, ForwardBackend};
use crate::source::block_on;
// The result types and the head-spectrum functions live apart from this module (results.rs,
// gram_spectra.rs), so that no two analysis modules import each other; re-exported here, where
// callers have always found them.
pub use super::gram_spectra::{head_spectra, head_spectrum, head_spectrum_from_gram};
pub use super::results::{
    ActivationError, ActivationLayer, ActivationSpectra, KeyVariant, Progress, Stage, VariantHeads,
};
use super::trajectory::{CheckpointSpectra, RunSpectra};
use crate::formats::tokens::TokenBatch;
use crate::model::arch::Architecture;
use crate::model::forward::{
    negative_log_likelihood, BatchRun, ForwardError, KeyCollector, ModelWeights, NoProbe, Probe,
    StreamedModel,
};
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};

/// Most bytes of K and Q blocks [`activation_spectra`] holds at once: past it, a batch's
/// spectra come from per-head Gram matrices summed sequence by sequence
/// ([`activation_spectra_from_grams`]), which hold `d_k × d_k` per head whatever the batch.
pub const BLOCK_BUDGET_BYTES: usize = 256 << 20;

/// Runs `eval` through `model` on the CPU, collecting K and Q per head, and returns
/// their spectra for each of `variants` (all four when empty), plus the mean
/// held-out cross-entropy when `heldout` is given. `progress` is called after
/// every sequence and layer; `cancelled` is checked as often, and a `true`
/// ends the work with [`ActivationError::Cancelled`]. Holds the blocks while
/// they fit [`BLOCK_BUDGET_BYTES`] (see [`activation_spectra_on`]).
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

/// [`activation_spectra`] holding at most `block_budget` bytes of K and Q blocks (see
/// [`activation_spectra_on`]), on the CPU, blocking.
pub fn activation_spectra_within(
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    block_budget: usize,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    let run = activation_spectra_on(
        model,
        eval,
        heldout,
        variants,
        block_budget,
        progress,
        cancelled,
    );
    Ok(block_on(run)?.0)
}

/// The activation spectra of `eval` on any [`ForwardBackend`] (the CPU's in-memory pass, a
/// GPU), with the held-out loss when `heldout` is given, and how many spectra came from Grams
/// and from blocks. The blocks of every K variant and Q take `4 · n_layers · (3·n_kv + n_heads)
/// · B·T · d_k` bytes (115 MB for 22 layers × 1024 tokens at d_k 64, 8/4 heads; 3.7 GB for 32
/// such sequences). Within `block_budget`, and unless the backend
/// [prefers Grams](ForwardBackend::prefers_grams), they are collected in one pass and each
/// spectrum is its block's SVD; otherwise the spectra come from per-head Gram matrices summed
/// over the batch (the Gram route of [`activation_spectra_from_grams`]), which may need a
/// second pass for ill-conditioned heads. Progress: [`Stage::EvalForward`] per sequence (again
/// for a second pass), [`Stage::Spectra`] per layer, [`Stage::HeldOut`] per held-out sequence;
/// `cancelled` is checked as often.
pub async fn activation_spectra_on(
    backend: &impl ForwardBackend,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    block_budget: usize,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), ActivationError> {
    let arch = backend.arch();
    check_batch(eval)?;
    if let Some(batch) = heldout {
        check_held_out(batch)?;
    }
    if cancelled() {
        return Err(ActivationError::Cancelled);
    }
    let (mut spectra, routes) = if backend.prefers_grams() || block_bytes(arch, eval) > block_budget
    {
        gram_route(backend, eval, variants, progress, cancelled).await?
    } else {
        let total = eval.batch;
        let collector = backend
            .collect_keys(eval, &mut |done| {
                progress(Progress {
                    stage: Stage::EvalForward,
                    done,
                    total,
                });
                !cancelled()
            })
            .await
            .map_err(stopped)?;
        let spectra = activation_spectra_from_collector(
            arch,
            eval.batch,
            eval.seq_len,
            &collector,
            variants,
            progress,
            cancelled,
        )?;
        (spectra, SpectraRoutes::default())
    };
    spectra.heldout_loss = match heldout {
        Some(batch) => Some(heldout_loss_on(backend, batch, progress, cancelled).await?),
        None => None,
    };
    Ok((spectra, routes))
}

/// A backend's [`ForwardError::Cancelled`] is the analysis's [`ActivationError::Cancelled`].
fn stopped(e: ForwardError) -> ActivationError {
    match e {
        ForwardError::Cancelled => ActivationError::Cancelled,
        e => e.into(),
    }
}

/// A held-out batch the loss can be taken of: well formed, at least one target per sequence.
pub fn check_held_out(batch: &TokenBatch) -> Result<(), ActivationError> {
    check_batch(batch)?;
    if batch.seq_len < 2 {
        return Err(ForwardError::TooShortForLoss(batch.seq_len).into());
    }
    Ok(())
}

/// The Gram route on `backend`: each sequence's K (the activations `variants` need) and Q are
/// summed into per-head Grams ([`ForwardBackend::grams`]), each spectrum taken from its Gram
/// where [`head_spectrum_from_gram`] trusts it, and for the rest (κ > 1e4) the batch runs again
/// for those heads' blocks only ([`ForwardBackend::blocks`]).
async fn gram_route(
    backend: &impl ForwardBackend,
    eval: &TokenBatch,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), ActivationError> {
    let arch = backend.arch();
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let total = eval.batch;
    let mut step = |done| {
        progress(Progress {
            stage: Stage::EvalForward,
            done,
            total,
        });
        !cancelled()
    };
    let grams = backend
        .grams(eval, &Activation::needed_for(variants), &mut step)
        .await
        .map_err(stopped)?;
    let mut pending =
        PendingSpectra::from_grams(arch, variants, &|l, a| grams.grams(l, a), cancelled)?;
    drop(grams);
    let needed = pending.needed();
    if !needed.is_empty() {
        let blocks = backend
            .blocks(eval, &needed, &mut step)
            .await
            .map_err(stopped)?;
        pending.fill(&blocks.blocks, eval.batch * eval.seq_len, cancelled)?;
    }
    let routes = pending.routes();
    Ok((
        pending.finish(arch, eval.batch, eval.seq_len, progress),
        routes,
    ))
}

/// Bytes of the K (every variant) and Q blocks of `eval`: `4 · n_layers · (3·n_kv + n_heads) ·
/// B·T · d_k`.
fn block_bytes(arch: &Architecture, eval: &TokenBatch) -> usize {
    [
        arch.n_layers,
        3 * arch.n_kv_heads + arch.n_heads,
        eval.batch,
        eval.seq_len,
        arch.d_k,
    ]
    .iter()
    .try_fold(4usize, |bytes, &n| bytes.checked_mul(n))
    .unwrap_or(usize::MAX)
}

/// [`activation_spectra`] on a [`StreamedModel`], which holds one block's weights at a time:
/// the eval batch and the held-out batch go through each block together, so the checkpoint is
/// read once (twice when the Gram route needs its second pass), and peak memory is one block
/// plus the activations (the K/Q blocks, or their Grams past [`BLOCK_BUDGET_BYTES`]). The same
/// numbers as [`activation_spectra`] on the loaded model, bit for bit. `progress` gets
/// [`Stage::Streaming`] after each block, then [`Stage::HeldOut`] per held-out sequence and
/// [`Stage::Spectra`] per layer; `cancelled` is checked after every block.
pub async fn streamed_activation_spectra<S: AsyncByteSource>(
    model: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    streamed_activation_spectra_within(
        model,
        eval,
        heldout,
        variants,
        BLOCK_BUDGET_BYTES,
        progress,
        cancelled,
    )
    .await
}

/// [`streamed_activation_spectra`] holding at most `block_budget` bytes of K and Q blocks
/// (past it, the Gram route of [`activation_spectra_within`]).
pub async fn streamed_activation_spectra_within<S: AsyncByteSource>(
    model: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    block_budget: usize,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    let arch = model.arch();
    check_batch(eval)?;
    if let Some(h) = heldout {
        check_batch(h)?;
        if h.seq_len < 2 {
            return Err(ForwardError::TooShortForLoss(h.seq_len).into());
        }
    }
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let use_grams = block_bytes(arch, eval) > block_budget;
    let mut collector = (!use_grams).then(|| KeyCollector::new(arch, eval.batch * eval.seq_len));
    let mut grams = use_grams.then(|| GramProbe::new(arch, &Activation::needed_for(variants)));
    let progress = std::cell::RefCell::new(progress);
    let n_layers = arch.n_layers;
    let mut after_block = |l: usize| {
        (progress.borrow_mut())(Progress {
            stage: Stage::Streaming,
            done: l + 1,
            total: n_layers,
        });
        !cancelled()
    };
    // Each held-out row's mean over its T−1 targets, summed in batch order: the same sums as
    // `heldout_loss` (the mean of the rows' `mean_cross_entropy`).
    let mut loss_total = 0.0f64;
    let mut row_loss = |b: usize, ids: &[u32], logits: &[f32]| {
        let vocab = arch.vocab;
        let mut total = 0.0f64;
        for (t, &target) in ids.iter().enumerate().skip(1) {
            total += negative_log_likelihood(&logits[(t - 1) * vocab..t * vocab], target as usize);
        }
        loss_total += total / (ids.len() - 1) as f64;
        (progress.borrow_mut())(Progress {
            stage: Stage::HeldOut,
            done: b + 1,
            total: heldout.map_or(0, |h| h.batch),
        });
    };
    let probe: &mut dyn Probe = match (&mut collector, &mut grams) {
        (Some(c), _) => c,
        (None, Some(g)) => g,
        (None, None) => unreachable!("one of the two is made"),
    };
    let mut runs = vec![BatchRun {
        batch: eval,
        probe,
        logits: None,
    }];
    let mut no_probe = NoProbe;
    if let Some(h) = heldout {
        runs.push(BatchRun {
            batch: h,
            probe: &mut no_probe,
            logits: Some(&mut row_loss),
        });
    }
    model
        .run(&mut runs, None, &mut after_block)
        .await
        .map_err(stopped)?;
    drop(runs);
    let progress = progress.into_inner();
    let mut spectra = match (collector, grams) {
        (Some(collector), _) => activation_spectra_from_collector(
            arch,
            eval.batch,
            eval.seq_len,
            &collector,
            variants,
            progress,
            cancelled,
        )?,
        (None, Some(grams)) => {
            let mut pending =
                PendingSpectra::from_grams(arch, variants, &|l, a| grams.grams(l, a), cancelled)?;
            drop(grams);
            let needed = pending.needed();
            if !needed.is_empty() {
                let mut blocks = BlockProbe::new(&needed);
                let mut runs = [BatchRun {
                    batch: eval,
                    probe: &mut blocks,
                    logits: None,
                }];
                model
                    .run(&mut runs, None, &mut |l| {
                        progress(Progress {
                            stage: Stage::Streaming,
                            done: l + 1,
                            total: n_layers,
                        });
                        !cancelled()
                    })
                    .await
                    .map_err(stopped)?;
                pending.fill(&blocks.blocks, eval.batch * eval.seq_len, cancelled)?;
            }
            pending.finish(arch, eval.batch, eval.seq_len, progress)
        }
        (None, None) => unreachable!("one of the two is made"),
    };
    spectra.heldout_loss = heldout.map(|h| loss_total / h.batch as f64);
    Ok(spectra)
}

/// The spectra of [`activation_spectra`] from per-head Gram matrices, on the CPU: each
/// sequence's K (the activations `variants` need) and Q are summed into f64 Grams and column
/// sums ([`GramProbe`]), so memory does not grow with the batch, and each spectrum is taken
/// from its Gram where the Gram route's trust test allows ([`head_spectrum_from_gram`]). For the
/// rest (κ > 1e4) the batch runs again, keeping only those heads' blocks ([`BlockProbe`]), and
/// reporting [`Stage::EvalForward`] again. No held-out loss; the routes say how many spectra
/// came from each.
pub fn activation_spectra_from_grams(
    model: &ModelWeights,
    eval: &TokenBatch,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), ActivationError> {
    check_batch(eval)?;
    if cancelled() {
        return Err(ActivationError::Cancelled);
    }
    block_on(gram_route(model, eval, variants, progress, cancelled))
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
    // Which of the post-norm K's spectra (plain, centred) and of Q's are asked, in that order.
    let keys_centres: Vec<bool> = variants
        .iter()
        .filter_map(|v| match v {
            KeyVariant::PostNorm => Some(false),
            KeyVariant::Centered => Some(true),
            KeyVariant::PostRope | KeyVariant::Raw => None,
        })
        .collect();
    let query_centres: &[bool] = if variants.contains(&KeyVariant::Centered) {
        &[false, true]
    } else {
        &[false]
    };
    let mut layers = Vec::with_capacity(arch.n_layers);
    for l in 0..arch.n_layers {
        if cancelled() {
            return Err(ActivationError::Cancelled);
        }
        let failed = |matrix: &'static str, head: usize| {
            move |source| ActivationError::Spectrum {
                matrix,
                layer: l,
                head,
                source,
            }
        };
        let mut k: Vec<VariantHeads> = variants
            .iter()
            .map(|&variant| VariantHeads {
                variant,
                heads: Vec::with_capacity(arch.n_kv_heads),
            })
            .collect();
        // Every block of the layer in one list, their eigenvalues found together
        // (`blocks_spectra`): per kv-head K (plain and centred are one block: one Gram for
        // both) then the other K variants asked, in their order; then Q per query head.
        let mut blocks: Vec<(&[f32], &[bool])> = Vec::new();
        for h in 0..arch.n_kv_heads {
            blocks.push((collector.keys(l, h), &keys_centres));
            for variant in variants {
                match variant {
                    KeyVariant::PostRope => blocks.push((collector.post_rope_keys(l, h), &[false])),
                    KeyVariant::Raw => blocks.push((collector.raw_keys(l, h), &[false])),
                    KeyVariant::PostNorm | KeyVariant::Centered => {}
                }
            }
        }
        for h in 0..arch.n_heads {
            blocks.push((collector.queries(l, h), query_centres));
        }
        let mut results = blocks_spectra(&blocks, rows, d_k).into_iter();
        let mut next = |matrix, head| {
            results
                .next()
                .expect("one result per block")
                .map_err(failed(matrix, head))
        };
        for h in 0..arch.n_kv_heads {
            let mut keys = next("K", h)?.into_iter();
            for slot in &mut k {
                let spectrum = match slot.variant {
                    KeyVariant::PostNorm | KeyVariant::Centered => {
                        keys.next().expect("one spectrum per centring asked")
                    }
                    KeyVariant::PostRope | KeyVariant::Raw => next("K", h)?.remove(0),
                };
                slot.heads.push(spectrum);
            }
        }
        let mut q_heads = Vec::with_capacity(arch.n_heads);
        let mut q_centred = Vec::with_capacity(arch.n_heads);
        for h in 0..arch.n_heads {
            let mut spectra = next("Q", h)?.into_iter();
            q_heads.push(spectra.next().expect("the plain Q"));
            q_centred.extend(spectra);
        }
        let q_centered = query_centres.contains(&true).then_some(q_centred);
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
/// (as [`ModelWeights::mean_cross_entropy`]), one sequence at a time, on the CPU.
pub fn heldout_loss(
    model: &ModelWeights,
    batch: &TokenBatch,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<f64, ActivationError> {
    block_on(heldout_loss_on(model, batch, progress, cancelled))
}

/// [`heldout_loss`] on any backend: one number per sequence, [`Stage::HeldOut`] after each.
pub async fn heldout_loss_on(
    backend: &impl ForwardBackend,
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
        total += backend
            .mean_cross_entropy(&row_batch(batch, b), None)
            .await?;
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
    /// `SpectraSource::Activations(variant)` so the caption says so.
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
