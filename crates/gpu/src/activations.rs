//! Activation spectra with the forward passes on the GPU: the core's
//! `analysis::activations::activation_spectra`, with the eval batch's K (every variant asked for)
//! and Q per head read back from [`GpuModel`] into the core's own `KeyCollector`, and the
//! held-out loss from GPU logits. The SVDs and metrics are the core's
//! (`activation_spectra_from_collector`), so both paths give the same `ActivationSpectra` up to
//! the f32 forward passes' summation order.

use rankscope_core::analysis::activations::{
    activation_spectra_from_collector, check_batch, ActivationError, ActivationSpectra, KeyVariant, Progress, Stage,
};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::forward::{negative_log_likelihood, ForwardError, KeyCollector, ModelWeights, Probe};

use crate::forward::Keep;
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
        matches!(self, GpuActivationError::Activation(ActivationError::Cancelled))
    }
}

/// [`rankscope_core::analysis::activations::activation_spectra`] with the forward passes on `gpu`:
/// uploads `model` once, runs `eval` one sequence at a time reading back K (for `variants`, all
/// four when empty) and Q per head once per sequence, computes the spectra on the CPU in f64,
/// and, with `heldout`, the mean next-token cross-entropy from the GPU's logits. Progress comes
/// in the CPU path's stages and order (eval sequences, layers, held-out sequences); a `true`
/// from `cancelled`, checked as often, ends the work with [`ActivationError::Cancelled`].
pub async fn activation_spectra_gpu(
    gpu: &Gpu,
    model: &ModelWeights,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, GpuActivationError> {
    let check = || if cancelled() { Err(ActivationError::Cancelled) } else { Ok(()) };
    check_batch(eval).map_err(ActivationError::from)?;
    if let Some(batch) = heldout {
        check_held_out(batch)?;
    }
    check()?;
    let gpu_model = GpuModel::upload(gpu, model)?;
    let arch = model.arch();
    let variants: &[KeyVariant] = if variants.is_empty() { &KeyVariant::ALL } else { variants };
    let keep = Keep {
        k_normed: true,
        k_raw: variants.contains(&KeyVariant::Raw),
        k_rope: variants.contains(&KeyVariant::PostRope),
        q_normed: true,
    };
    // The core's collector, fed as the CPU pass feeds it (sequence by sequence, so row b·T + t);
    // K variants that were not asked for stay empty and are never read.
    let mut collector = KeyCollector::new(arch);
    for b in 0..eval.batch {
        check()?;
        for (l, layer) in gpu_model.probe(eval.row(b), keep).await?.into_iter().enumerate() {
            for (h, k) in layer.k_normed.iter().enumerate() {
                let (raw, rope) = (layer.k_raw.get(h), layer.k_rope.get(h));
                // `Probe::` by name: the collector's own `keys`/`queries` are the getters.
                Probe::keys(&mut collector, l, h, k, raw.map_or(&[], Vec::as_slice), rope.map_or(&[], Vec::as_slice));
            }
            for (h, q) in layer.q_normed.iter().enumerate() {
                Probe::queries(&mut collector, l, h, q);
            }
        }
        progress(Progress { stage: Stage::EvalForward, done: b + 1, total: eval.batch });
    }

    let mut spectra =
        activation_spectra_from_collector(arch, eval.batch, eval.seq_len, &collector, variants, progress, cancelled)?;
    drop(collector);
    if let Some(batch) = heldout {
        spectra.heldout_loss = Some(heldout_loss_gpu(&gpu_model, batch, progress, cancelled).await?);
    }
    Ok(spectra)
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
            sequence += negative_log_likelihood(&logits[(t - 1) * vocab..t * vocab], target as usize);
        }
        total += sequence / (batch.seq_len - 1) as f64;
        progress(Progress { stage: Stage::HeldOut, done: b + 1, total: batch.batch });
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
