//! The GPU forward pass streamed block by block, for the activation spectra (and the held-out
//! loss) of a model too large to upload whole, as the CPU's streamed pass
//! (`rankscope_core::model::forward::StreamedModel`) does on the host: block `l` is read from the
//! checkpoint, uploaded, every eval (and held-out) sequence goes through it, its per-head Grams
//! are read back, and its buffers are dropped before block `l + 1` is read. Each sequence's
//! residual stream stays on the GPU from block to block; the embedding is read only for the
//! batches' token ids, the final norm and output head only after the last block and only for
//! the held-out loss. Peak GPU memory is one block plus the activations (plus the head at the
//! end); the host holds one block at a time too, never the whole model.
//!
//! The arithmetic of a block is [`Kernels::block`], the whole-model pass's own, and the spectra
//! come from the same Gram route as `activation_spectra_on` over a [`crate::GpuModel`]
//! (`PendingSpectra`), so the numbers are the whole-model GPU pass's.

use std::rc::Rc;

use rankscope_core::analysis::activations::{
    check_batch, check_held_out, ActivationError, ActivationSpectra, KeyVariant, Progress, Stage,
};
use rankscope_core::analysis::gram_spectra::{PendingSpectra, SpectraRoutes};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::capture::{Activation, BlockProbe, GramProbe};
use rankscope_core::model::forward::{check_tokens, ForwardError, StreamedModel};
use rankscope_core::source::AsyncByteSource;

use crate::backend::device;
use crate::forward::{
    check_activations_fit, check_fits, read_layer_grams, upload_checked, upload_gamma,
    upload_layer, Keep, Kernels, LayerGrams, Losses, Scratch,
};
use crate::{Gpu, GpuError, GpuTensor};

/// Whether `model` can run streamed on `gpu` with these batches, before anything is read: the
/// model is one the GPU pass implements, and each of a block's weights, the activations of each
/// batch's sequences and (for the held-out loss) the output head fit the adapter's buffers.
pub(crate) fn check_streamable<S: AsyncByteSource>(
    gpu: &Gpu,
    model: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
) -> Result<(), GpuError> {
    let arch = model.arch();
    let needs = model.extensions();
    if !needs.is_empty() {
        return Err(GpuError::UnsupportedModel {
            family: arch.family.label(),
            needs: needs.join(", "),
        });
    }
    let (d, d_ff) = (arch.d_model, arch.d_ff);
    let q_rows = arch.n_heads * arch.d_k;
    // W_o is W_q's size, W_v W_k's, and the MLP's matrices are all d_ff × d_model.
    for (what, len) in [
        ("a block's W_q", q_rows * d),
        ("a block's W_k", arch.n_kv_heads * arch.d_k * d),
        ("a block's MLP weight", d_ff * d),
    ] {
        check_fits(gpu, what.into(), len)?;
    }
    check_activations_fit(gpu, arch, eval.seq_len)?;
    if let Some(h) = heldout {
        check_activations_fit(gpu, arch, h.seq_len)?;
        check_fits(gpu, "the output head".into(), arch.vocab * d)?;
    }
    Ok(())
}

/// The activation spectra of `eval` (each of `variants`, all four when empty) and the held-out
/// loss when `heldout` is given, with `model`'s forward passes streamed block by block on `gpu`
/// (see the module doc), and how many spectra came from Grams and from blocks. The same checks,
/// errors and numbers as `activation_spectra_on` over the uploaded model; a GPU failure (or a
/// model the GPU pass does not implement) is [`ForwardError::Device`], for the engine to fall
/// back to the CPU on. Progress as the CPU's streamed pass: [`Stage::Streaming`] after each
/// block, [`Stage::HeldOut`] per held-out sequence, [`Stage::Spectra`] per layer; `cancelled` is
/// checked after every block.
pub async fn streamed_activation_spectra<S: AsyncByteSource>(
    gpu: &Gpu,
    model: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), ActivationError> {
    let arch = model.arch();
    check_batch(eval)?;
    if let Some(h) = heldout {
        check_held_out(h)?;
    }
    for batch in std::iter::once(eval).chain(heldout) {
        check_tokens(arch, batch)?;
    }
    if cancelled() {
        return Err(ActivationError::Cancelled);
    }
    check_streamable(gpu, model, eval, heldout).map_err(device)?;
    let variants: &[KeyVariant] = if variants.is_empty() {
        &KeyVariant::ALL
    } else {
        variants
    };
    let activations = Activation::needed_for(variants);
    let keep = Keep::of(|a| activations.contains(&a));
    let k = Kernels::new(gpu, arch);
    let mut grams = GramProbe::new(arch, &[]);
    let collect = Collect::Grams(keep, &mut grams);
    let loss = pass(&k, model, eval, heldout, collect, progress, cancelled)
        .await
        .map_err(stopped)?;
    let mut pending =
        PendingSpectra::from_grams(arch, variants, &|l, a| grams.grams(l, a), cancelled)?;
    drop(grams);
    let needed = pending.needed();
    if !needed.is_empty() {
        // The heads whose Gram the trust test refused (κ > 1e4) need their blocks. Which ones is
        // known only once every sequence's Gram is summed, so a second streamed pass (as the CPU
        // streamed pass and the whole-model GPU pass do) reads back only those heads' blocks,
        // and only as deep as the deepest: keeping every layer's K on the first pass instead
        // would hold B·T rows per head on the GPU for the few that need them. They are rare
        // (ill-conditioned heads of early checkpoints), so the second read costs little overall.
        let keep = Keep::per_layer(&needed, arch.n_layers);
        let mut blocks = BlockProbe::new(&needed);
        let collect = Collect::Blocks(keep, &mut blocks);
        pass(&k, model, eval, None, collect, progress, cancelled)
            .await
            .map_err(stopped)?;
        pending.fill(&blocks.blocks, eval.batch * eval.seq_len, cancelled)?;
    }
    let routes = pending.routes();
    let mut spectra = pending.finish(arch, eval.batch, eval.seq_len, progress);
    spectra.heldout_loss = loss;
    Ok((spectra, routes))
}

/// A cancelled pass is the analysis's [`ActivationError::Cancelled`].
fn stopped(e: ForwardError) -> ActivationError {
    match e {
        ForwardError::Cancelled => ActivationError::Cancelled,
        e => e.into(),
    }
}

/// What a streamed pass takes from the eval batch, block by block.
enum Collect<'c> {
    /// Every layer's per-head Grams of the matrices [`Keep`] names, read back after the layer.
    Grams(Keep, &'c mut GramProbe),
    /// The blocks of the heads the probe wants, per layer's [`Keep`], read back per sequence.
    Blocks(Vec<Keep>, &'c mut BlockProbe),
}

/// Runs `eval` (and `heldout`, when given) through `model` block by block on `k`'s GPU (see the
/// module doc), `collect` taking what it asks for from the eval sequences; the mean held-out loss
/// when `heldout` is given. Stops after the deepest block `collect` needs unless the loss needs
/// them all.
async fn pass<S: AsyncByteSource>(
    k: &Kernels<'_>,
    model: &StreamedModel<'_, '_, S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    mut collect: Collect<'_>,
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<f64>, ForwardError> {
    let (gpu, arch) = (k.gpu, &k.arch);
    let n_layers = arch.n_layers;
    let depth = match (&collect, heldout) {
        (Collect::Blocks(keep, _), None) => keep.iter().rposition(Keep::any).map_or(0, |l| l + 1),
        _ => n_layers,
    };
    let held_ids = heldout.map_or(&[][..], |h| &h.ids);
    let rows = model
        .embedding_rows(eval.ids.iter().chain(held_ids).copied())
        .await?;
    // x = embedding[id] · scale on the host (the embed kernel's one product), uploaded as each
    // sequence's residual stream.
    let scale = model.embedding_scale();
    let embed = |batch: &TokenBatch| -> Vec<GpuTensor> {
        (0..batch.batch)
            .map(|b| {
                let x: Vec<f32> = batch
                    .row(b)
                    .iter()
                    .flat_map(|&id| rows.row(id))
                    .map(|&e| e * scale)
                    .collect();
                gpu.upload_tensor(&x, batch.seq_len, arch.d_model)
            })
            .collect()
    };
    let mut eval_x = embed(eval);
    let mut held_x = heldout.map(embed).unwrap_or_default();
    drop(rows);
    let scratch = |t: usize| Scratch::new(k, t, false, Rc::new(k.rope_table(t)));
    let mut eval_s = scratch(eval.seq_len).map_err(device)?;
    let mut held_s = heldout
        .map(|h| scratch(h.seq_len))
        .transpose()
        .map_err(device)?;

    for l in 0..depth {
        let block = model.read_block(l).await?;
        let needs = block.extensions();
        if !needs.is_empty() {
            return Err(device(GpuError::UnsupportedModel {
                family: arch.family.label(),
                needs: needs.join(", "),
            }));
        }
        let layer = upload_layer(gpu, arch, l, &block.view()).map_err(device)?;
        // Uploaded: the host copy is not needed any more.
        drop(block);
        match &mut collect {
            Collect::Grams(keep, probe) => {
                let mut grams = LayerGrams::new(gpu, arch, *keep, eval.seq_len);
                for x in &mut eval_x {
                    let kept = k.block(l, &layer, x, &mut eval_s, *keep, None, l + 1 == depth);
                    grams.add(gpu, &kept);
                }
                read_layer_grams(gpu, l, std::slice::from_ref(&grams), probe)
                    .await
                    .map_err(device)?;
            }
            Collect::Blocks(keep, probe) => {
                for x in &mut eval_x {
                    let kept = k.block(l, &layer, x, &mut eval_s, keep[l], None, l + 1 == depth);
                    if !keep[l].any() {
                        continue;
                    }
                    let read = k.read_kept(&[kept], eval.seq_len).await.map_err(device)?;
                    for layer in read {
                        layer.add_to(l, probe);
                    }
                }
            }
        }
        if let Some(s) = held_s.as_mut() {
            for x in &mut held_x {
                k.block(l, &layer, x, s, Keep::default(), None, false);
            }
        }
        drop(layer);
        progress(Progress {
            stage: Stage::Streaming,
            done: l + 1,
            total: n_layers,
        });
        if cancelled() {
            return Err(ForwardError::Cancelled);
        }
    }

    let (Some(h), Some(s)) = (heldout, held_s.as_ref()) else {
        return Ok(None);
    };
    let head = model.read_head().await?;
    let final_norm = upload_gamma(gpu, head.final_norm());
    let lm_head = upload_checked(gpu, "the output head".into(), head.lm_head()).map_err(device)?;
    drop(head);
    let mut losses = Losses::new(k, h).map_err(device)?;
    for (b, x) in held_x.iter().enumerate() {
        k.queue_nll(
            x,
            s,
            final_norm.as_ref(),
            &lm_head,
            h.row(b),
            b,
            &mut losses,
        );
    }
    let nll = gpu.read(&losses.nll).await.map_err(device)?;
    // Each row's mean over its T−1 targets, then the mean of the rows: the CPU passes' sums.
    let targets = h.seq_len - 1;
    let mut total = 0.0;
    for (b, row) in nll.chunks(targets).enumerate() {
        total += row.iter().copied().map(f64::from).sum::<f64>() / targets as f64;
        progress(Progress {
            stage: Stage::HeldOut,
            done: b + 1,
            total: h.batch,
        });
    }
    Ok(Some(total / h.batch as f64))
}
