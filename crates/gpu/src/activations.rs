//! Activation spectra with the forward passes on the GPU: the core's
//! `analysis::activations::activation_spectra`, with the eval batch's K (every variant asked for)
//! and Q per head summed into per-head Gram matrices on the GPU ([`GpuModel`], `gram.wgsl`) and
//! read back once, and the held-out loss from GPU logits. The eigen-solves, SVDs and metrics are
//! the core's (`head_spectrum_from_gram`, `head_spectrum`), with the same trust test as its Gram
//! route, so both paths give the same `ActivationSpectra` up to the f32 forward passes'
//! summation order.

use std::collections::{HashMap, HashSet};

use rankscope_core::analysis::activations::{
    check_batch, head_spectrum, head_spectrum_from_gram, ActivationError, ActivationLayer, ActivationSpectra, KeyVariant,
    Progress, Stage, VariantHeads,
};
use rankscope_core::analysis::weights::HeadSpectrum;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::forward::{negative_log_likelihood, ForwardError, ModelWeights};

use crate::forward::{Keep, LayerGrams};
use crate::{Gpu, GpuError, GpuModel, HeadGram};

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

/// How many spectra came from the GPU's Gram matrices, and how many needed the block itself
/// (a Gram too ill conditioned to trust, as the CPU's Gram route also refuses: κ > 1e4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpectraRoutes {
    pub from_gram: usize,
    pub from_block: usize,
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
    Ok(activation_spectra_gpu_routed(&gpu_model, eval, heldout, variants, progress, cancelled).await?.0)
}

/// Which activation a spectrum is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Matrix {
    KNormed,
    KRaw,
    KRope,
    Q,
}

impl Matrix {
    fn of(variant: KeyVariant) -> Self {
        match variant {
            KeyVariant::PostNorm | KeyVariant::Centered => Matrix::KNormed,
            KeyVariant::PostRope => Matrix::KRope,
            KeyVariant::Raw => Matrix::KRaw,
        }
    }

    /// The name in error messages, as the CPU path's.
    fn name(self) -> &'static str {
        if self == Matrix::Q {
            "Q"
        } else {
            "K"
        }
    }
}

/// One group of a layer's spectra: every head of `matrix`, centred or not.
struct Group {
    matrix: Matrix,
    centre: bool,
    /// Per head; `None` until the block itself has been read back (a Gram not trusted).
    heads: Vec<Option<HeadSpectrum>>,
}

/// The core's activation spectra with the forward passes and the Gram matrices on the GPU of
/// `gpu_model` (weights uploaded by [`GpuModel::upload`]): runs `eval` one sequence at a time;
/// each sequence's K (for `variants`, all four when empty) and Q per head are summed into
/// per-head Gram matrices and column sums on the GPU, so nothing is read back between
/// sequences, and all of them are read back once, `d_k × d_k` per head instead of `B·T × d_k`. The CPU takes each spectrum from its
/// Gram's eigenvalues in f64 (centred as `G − s sᵀ/n`) where the core's Gram route would trust
/// it; for the rest (κ > 1e4: collapsed heads) it runs the batch again, reading back only the
/// layers and matrices those heads are in, and takes the SVD of the block, as the CPU path does.
/// With `heldout`, the mean next-token cross-entropy from the GPU's logits. Progress comes in
/// the CPU path's stages and order (eval sequences, layers, held-out sequences); a `true` from
/// `cancelled`, checked as often, ends the work with [`ActivationError::Cancelled`].
pub async fn activation_spectra_gpu_routed(
    gpu_model: &GpuModel<'_>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ActivationSpectra, SpectraRoutes), GpuActivationError> {
    let check = || if cancelled() { Err(ActivationError::Cancelled) } else { Ok(()) };
    check_batch(eval).map_err(ActivationError::from)?;
    if let Some(batch) = heldout {
        check_held_out(batch)?;
    }
    check()?;
    let (gpu, arch) = (gpu_model.gpu(), gpu_model.arch());
    let variants: &[KeyVariant] = if variants.is_empty() { &KeyVariant::ALL } else { variants };
    let keep = Keep {
        k_normed: true,
        k_raw: variants.contains(&KeyVariant::Raw),
        k_rope: variants.contains(&KeyVariant::PostRope),
        q_normed: true,
    };
    let (d_k, rows) = (arch.d_k, eval.batch * eval.seq_len);

    // Pass 1: every sequence's Grams summed on the GPU, read back once.
    let mut grams: Vec<LayerGrams> = (0..arch.n_layers).map(|_| LayerGrams::new(gpu, arch, keep, eval.seq_len)).collect();
    for b in 0..eval.batch {
        check()?;
        gpu_model.accumulate_grams(eval.row(b), keep, &mut grams)?;
        progress(Progress { stage: Stage::EvalForward, done: b + 1, total: eval.batch });
    }
    let accumulators: Vec<_> = grams
        .iter()
        .flat_map(|g| [&g.k_normed, &g.k_raw, &g.k_rope, &g.q_normed])
        .filter_map(Option::as_ref)
        .collect();
    let mut read = gpu.read_grams(&accumulators).await?.into_iter();
    drop(accumulators);
    let mut layer_grams: Vec<HashMap<Matrix, Vec<HeadGram>>> = Vec::with_capacity(arch.n_layers);
    for g in &grams {
        let mut by_matrix = HashMap::new();
        for (matrix, accumulator) in
            [(Matrix::KNormed, &g.k_normed), (Matrix::KRaw, &g.k_raw), (Matrix::KRope, &g.k_rope), (Matrix::Q, &g.q_normed)]
        {
            if accumulator.is_some() {
                by_matrix.insert(matrix, read.next().expect("one read-back per accumulator"));
            }
        }
        layer_grams.push(by_matrix);
    }
    drop(grams);

    // The spectra the Grams can give.
    let groups_of = |l: usize, matrix: Matrix, centre: bool| -> Result<Group, ActivationError> {
        let heads = layer_grams[l][&matrix]
            .iter()
            .enumerate()
            .map(|(h, g)| {
                head_spectrum_from_gram(&g.gram, &g.sums, g.rows, d_k, centre)
                    .map_err(|source| ActivationError::Spectrum { matrix: matrix.name(), layer: l, head: h, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Group { matrix, centre, heads })
    };
    let mut layers: Vec<Vec<Group>> = Vec::with_capacity(arch.n_layers);
    for l in 0..arch.n_layers {
        check()?;
        let mut groups = Vec::with_capacity(variants.len() + 2);
        for &variant in variants {
            groups.push(groups_of(l, Matrix::of(variant), variant == KeyVariant::Centered)?);
        }
        groups.push(groups_of(l, Matrix::Q, false)?);
        if variants.contains(&KeyVariant::Centered) {
            groups.push(groups_of(l, Matrix::Q, true)?);
        }
        layers.push(groups);
    }
    drop(layer_grams);

    // Pass 2, only for heads whose Gram was not trusted: their blocks, read back.
    let routes = fill_from_blocks(gpu_model, eval, &mut layers, d_k, rows, &check).await?;

    let mut out = Vec::with_capacity(arch.n_layers);
    for (l, groups) in layers.into_iter().enumerate() {
        let mut groups = groups.into_iter().map(|g| g.heads.into_iter().map(|h| h.expect("filled from the block")).collect());
        let k = variants.iter().map(|&variant| VariantHeads { variant, heads: groups.next().expect("one group per variant") }).collect();
        let q_heads = groups.next().expect("the Q group");
        let q_centered = groups.next();
        out.push(ActivationLayer { layer: l, k, q_heads, q_centered });
        progress(Progress { stage: Stage::Spectra, done: l + 1, total: arch.n_layers });
    }
    let mut spectra =
        ActivationSpectra { d_k, d_model: arch.d_model, eval_batch: eval.batch, eval_seq_len: eval.seq_len, layers: out, heldout_loss: None };
    if let Some(batch) = heldout {
        spectra.heldout_loss = Some(heldout_loss_gpu(gpu_model, batch, progress, cancelled).await?);
    }
    Ok((spectra, routes))
}

/// Runs the batch again for the spectra still `None` in `layers`, reading back only the layers
/// and matrices they are in, and takes each from its `[B·T, d_k]` block with the core's
/// `head_spectrum` (the CPU path's SVD). No second pass when every Gram was trusted.
async fn fill_from_blocks(
    gpu_model: &GpuModel<'_>,
    eval: &TokenBatch,
    layers: &mut [Vec<Group>],
    d_k: usize,
    rows: usize,
    check: &dyn Fn() -> Result<(), ActivationError>,
) -> Result<SpectraRoutes, GpuActivationError> {
    let mut routes = SpectraRoutes::default();
    let mut needed: HashSet<(usize, Matrix, usize)> = HashSet::new();
    for (l, groups) in layers.iter().enumerate() {
        for group in groups {
            for (h, head) in group.heads.iter().enumerate() {
                match head {
                    Some(_) => routes.from_gram += 1,
                    None => {
                        routes.from_block += 1;
                        needed.insert((l, group.matrix, h));
                    }
                }
            }
        }
    }
    if needed.is_empty() {
        return Ok(routes);
    }
    let keep: Vec<Keep> = (0..layers.len())
        .map(|l| {
            let wants = |matrix: Matrix| needed.iter().any(|&(nl, m, _)| nl == l && m == matrix);
            Keep { k_normed: wants(Matrix::KNormed), k_raw: wants(Matrix::KRaw), k_rope: wants(Matrix::KRope), q_normed: wants(Matrix::Q) }
        })
        .collect();
    let mut blocks: HashMap<(usize, Matrix, usize), Vec<f32>> = needed.iter().map(|&key| (key, Vec::with_capacity(rows * d_k))).collect();
    for b in 0..eval.batch {
        check()?;
        for (l, layer) in gpu_model.probe(eval.row(b), &keep).await?.into_iter().enumerate() {
            for (matrix, heads) in
                [(Matrix::KNormed, layer.k_normed), (Matrix::KRaw, layer.k_raw), (Matrix::KRope, layer.k_rope), (Matrix::Q, layer.q_normed)]
            {
                for (h, data) in heads.into_iter().enumerate() {
                    if let Some(block) = blocks.get_mut(&(l, matrix, h)) {
                        block.extend_from_slice(&data);
                    }
                }
            }
        }
    }
    for (l, groups) in layers.iter_mut().enumerate() {
        check()?;
        for group in groups {
            for (h, head) in group.heads.iter_mut().enumerate() {
                if head.is_none() {
                    let block = &blocks[&(l, group.matrix, h)];
                    *head = Some(head_spectrum(block, rows, d_k, group.centre).map_err(|source| {
                        ActivationError::Spectrum { matrix: group.matrix.name(), layer: l, head: h, source }
                    })?);
                }
            }
        }
    }
    Ok(routes)
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
