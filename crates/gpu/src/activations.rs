//! Activation spectra with the forward passes on the GPU: the core's
//! `analysis::activations::activation_spectra`, with the eval batch's K (every variant asked for)
//! and Q per head summed into per-head Gram matrices on the GPU ([`GpuModel`], `gram.wgsl`) and
//! read back once, and the held-out loss from GPU logits. The eigen-solves, SVDs and metrics are
//! the core's (`gram_spectra::PendingSpectra`, the CPU path's for batches too large to hold), with
//! the same trust test as its Gram route, so both paths give the same `ActivationSpectra` up to
//! the f32 forward passes' summation order.

use std::collections::HashMap;

use rankscope_core::analysis::activations::{
    check_batch, ActivationError, ActivationSpectra, KeyVariant, Progress, Stage,
};
use rankscope_core::analysis::gram_spectra::{
    Activation, BlockProbe, HeadGram, PendingSpectra, PerActivation, SpectraRoutes,
};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::forward::{negative_log_likelihood, ForwardError, ModelWeights};

use crate::forward::{Keep, LayerGrams};
use crate::{Gpu, GpuError, GpuModel};

/// Why activation spectra could not be computed on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuActivationError {
    /// The GPU failed (upload, a buffer too large, reading back) or refused the tokens.
    #[error("GPU: {0}")]
    Gpu(#[from] GpuError),
    /// What the CPU path would also refuse: a malformed batch, a failed SVD, cancellation.
    #[error(transparent)]
    Activation(#[from] ActivationError),
}

impl GpuActivationError {
    /// Whether `cancelled` ended the work.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            GpuActivationError::Activation(ActivationError::Cancelled)
        )
    }
}

/// [`rankscope_core::analysis::activations::activation_spectra`] with the forward passes on `gpu`:
/// uploads `model` once, then [`activation_spectra_gpu_routed`].
pub async fn activation_spectra_gpu(
    gpu: &Gpu,
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, GpuActivationError> {
    // What the CPU would refuse is refused before the upload.
    check_batch(eval).map_err(ActivationError::from)?;
    if let Some(batch) = heldout {
        check_held_out(batch)?;
    }
    if cancelled() {
        return Err(ActivationError::Cancelled.into());
    }
    let gpu_model = GpuModel::upload(gpu, model)?;
    Ok(
        activation_spectra_gpu_routed(&gpu_model, eval, heldout, variants, progress, cancelled)
            .await?
            .0,
    )
}

/// The core's activation spectra with the forward passes and the Gram matrices on the GPU of
/// `gpu_model` (weights uploaded by [`GpuModel::upload`]): runs `eval` one sequence at a time;
/// each sequence's K (for `variants`, all four when empty) and Q per head are summed into
/// per-head Gram matrices and column sums on the GPU, so nothing is read back between
/// sequences, and all of them are read back once, `d_k × d_k` per head instead of `B·T × d_k`.
/// The core's `PendingSpectra` takes each spectrum from its Gram's eigenvalues in f64 (centred
/// as `G − s sᵀ/n`) where the Gram route's trust test allows; for the rest (κ > 1e4: collapsed
/// heads) the batch runs again, reading back only the layers and matrices those heads are in
/// and stopping after the deepest, and each is its block's SVD, as on the CPU. With `heldout`,
/// the mean next-token cross-entropy from the GPU's logits. Progress comes in the CPU Gram
/// path's stages and order (eval sequences, again for a second pass, layers, held-out
/// sequences); a `true` from `cancelled`, checked as often, ends the work with
/// [`ActivationError::Cancelled`].
pub async fn activation_spectra_gpu_routed(
    gpu_model: &GpuModel<'_>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), GpuActivationError> {
    let check = || {
        if cancelled() {
            Err(ActivationError::Cancelled)
        } else {
            Ok(())
        }
    };
    check_batch(eval).map_err(ActivationError::from)?;
    if let Some(batch) = heldout {
        check_held_out(batch)?;
    }
    check()?;
    let (gpu, arch) = (gpu_model.gpu(), gpu_model.arch());
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let keep = Keep {
        k_normed: true,
        k_raw: variants.contains(&KeyVariant::Raw),
        k_rope: variants.contains(&KeyVariant::PostRope),
        q_normed: true,
    };
    let rows = eval.batch * eval.seq_len;

    // Pass 1: every sequence's Grams summed on the GPU, read back once.
    let mut grams: Vec<LayerGrams> = (0..arch.n_layers)
        .map(|_| LayerGrams::new(gpu, arch, keep, eval.seq_len))
        .collect();
    for b in 0..eval.batch {
        check()?;
        gpu_model.accumulate_grams(eval.row(b), keep, &mut grams)?;
        progress(Progress {
            stage: Stage::EvalForward,
            done: b + 1,
            total: eval.batch,
        });
    }
    let accumulators: Vec<_> = grams
        .iter()
        .flat_map(|g| g.accumulators())
        .filter_map(|(_, accumulator)| accumulator.as_ref())
        .collect();
    let mut read = gpu.read_grams(&accumulators).await?.into_iter();
    drop(accumulators);
    let mut layer_grams: Vec<HashMap<Activation, Vec<HeadGram>>> =
        Vec::with_capacity(arch.n_layers);
    for g in &grams {
        let mut by_activation = HashMap::new();
        for (activation, accumulator) in g.accumulators() {
            if accumulator.is_some() {
                by_activation.insert(
                    activation,
                    read.next().expect("one read-back per accumulator"),
                );
            }
        }
        layer_grams.push(by_activation);
    }
    drop(grams);
    let grams_of = |l: usize, activation: Activation| {
        layer_grams[l]
            .get(&activation)
            .map_or(&[][..], Vec::as_slice)
    };
    let mut pending = PendingSpectra::from_grams(arch, variants, &grams_of, cancelled)?;
    drop(layer_grams);

    // Pass 2, only for heads whose Gram was not trusted: their blocks, read back.
    let needed = pending.needed();
    if !needed.is_empty() {
        let mut blocks = BlockProbe::new(&needed);
        let keep: Vec<Keep> = (0..arch.n_layers)
            .map(|l| {
                let wants = |activation: Activation| {
                    needed.iter().any(|&(nl, a, _)| nl == l && a == activation)
                };
                Keep {
                    k_normed: wants(Activation::Keys),
                    k_raw: wants(Activation::RawKeys),
                    k_rope: wants(Activation::RotatedKeys),
                    q_normed: wants(Activation::Queries),
                }
            })
            .collect();
        for b in 0..eval.batch {
            check()?;
            for (l, layer) in gpu_model
                .probe(eval.row(b), &keep)
                .await?
                .into_iter()
                .enumerate()
            {
                for (activation, heads) in [
                    (Activation::Keys, layer.k_normed),
                    (Activation::RawKeys, layer.k_raw),
                    (Activation::RotatedKeys, layer.k_rope),
                    (Activation::Queries, layer.q_normed),
                ] {
                    for (h, block) in heads.iter().enumerate() {
                        blocks.add(l, activation, h, block);
                    }
                }
            }
            progress(Progress {
                stage: Stage::EvalForward,
                done: b + 1,
                total: eval.batch,
            });
        }
        pending.fill(&blocks.blocks, rows, cancelled)?;
    }
    let routes = pending.routes();
    let mut spectra = pending.finish(arch, eval.batch, eval.seq_len, progress);
    if let Some(batch) = heldout {
        spectra.heldout_loss = Some(heldout_loss_gpu(gpu_model, batch, progress, cancelled).await?);
    }
    Ok((spectra, routes))
}

/// The core's `heldout_loss` on the GPU: each sequence's logits are read back and their mean
/// next-token cross-entropy taken in f64 with the core's own `negative_log_likelihood`, then
/// the mean over sequences (each has the same T−1 targets), summed in the same order.
pub async fn heldout_loss_gpu(
    model: &GpuModel<'_>,
    batch: &TokenBatch,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<f64, GpuActivationError> {
    check_held_out(batch)?;
    let vocab = model.arch().vocab;
    let mut total = 0.0;
    for b in 0..batch.batch {
        if cancelled() {
            return Err(ActivationError::Cancelled.into());
        }
        let ids = batch.row(b);
        let logits = model.logits(ids).await?;
        let mut sequence = 0.0f64;
        for (t, &target) in ids.iter().enumerate().skip(1) {
            sequence +=
                negative_log_likelihood(&logits[(t - 1) * vocab..t * vocab], target as usize);
        }
        total += sequence / (batch.seq_len - 1) as f64;
        progress(Progress {
            stage: Stage::HeldOut,
            done: b + 1,
            total: batch.batch,
        });
    }
    Ok(total / batch.batch as f64)
}

/// A held-out batch the CPU path accepts: well formed, at least one target per sequence.
fn check_held_out(batch: &TokenBatch) -> Result<(), ActivationError> {
    check_batch(batch)?;
    if batch.seq_len < 2 {
        return Err(ForwardError::TooShortForLoss(batch.seq_len).into());
    }
    Ok(())
}
