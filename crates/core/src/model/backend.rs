//! What a forward backend does, below the analysis: the analysis (activation spectra, the
//! held-out loss, the surgery sweep) is written once over [`ForwardBackend`], and each backend
//! runs the model its own way — the CPU pass of [`super::forward`] ([`ModelWeights`]
//! implements it) or a GPU (`rankscope-gpu`'s `GpuModel`, weights uploaded once).
//!
//! The trait is small and concrete, in the spirit of candle's `BackendStorage`: a batch goes
//! through the model to the per-head K/Q blocks ([`KeyCollector`]), to the per-head Gram
//! matrices of chosen activations ([`GramProbe`]), to the blocks of chosen heads only
//! ([`BlockProbe`]), or to its mean next-token cross-entropy, optionally with a key edit
//! ([`KeyEdit`], surgery) applied after the key norm and before RoPE. Results come back as the
//! core's own types, so the analysis cannot tell the backends apart; a backend that reads its
//! results back from a device reads the Grams once per batch and the loss as one number.

use std::collections::HashSet;

use super::arch::Architecture;
use super::capture::{Activation, BlockProbe, GramProbe};
use super::forward::{ForwardError, KeyCollector, KeyTransform, ModelWeights};
use crate::formats::tokens::TokenBatch;

/// Called after each sequence of a batch with the number done; `false` stops the pass
/// ([`ForwardError::Cancelled`]).
pub type Step<'a> = &'a mut dyn FnMut(usize) -> bool;

/// A forward pass: the model's weights somewhere (memory, a GPU) and the passes the analysis
/// needs over them. Every method checks the batch as the CPU pass does (the same errors).
#[allow(async_fn_in_trait)] // used with concrete types only, on one thread
pub trait ForwardBackend {
    /// The architecture the weights were loaded for.
    fn arch(&self) -> &Architecture;

    /// Where the passes run, as the page and the CLI show it ("CPU (native)", "GPU: <adapter>").
    fn engine(&self) -> String;

    /// The key norm's γ of `layer` (`d_k` values), when the model has one (surgery's γ order,
    /// importance).
    fn key_norm_weight(&self, layer: usize) -> Option<&[f32]>;

    /// Whether per-head Grams are the cheaper result whatever the batch: a device that must read
    /// results back sums `d_k × d_k` per head on the device instead of reading `B·T × d_k`.
    fn prefers_grams(&self) -> bool {
        false
    }

    /// K (every variant) and Q per head of every sequence of `batch`, stacked in batch order
    /// (row `b·T + t`); `step` after each sequence.
    async fn collect_keys(
        &self,
        batch: &TokenBatch,
        step: Step<'_>,
    ) -> Result<KeyCollector, ForwardError>;

    /// The per-head Grams (and column sums, in f64) of `activations` of every layer, summed over
    /// the sequences of `batch`; `step` after each sequence.
    async fn grams(
        &self,
        batch: &TokenBatch,
        activations: &[Activation],
        step: Step<'_>,
    ) -> Result<GramProbe, ForwardError>;

    /// The stacked `[B·T, d_k]` blocks of the (layer, activation, head)s in `needed` only (the
    /// second pass of the Gram route); `step` after each sequence.
    async fn blocks(
        &self,
        batch: &TokenBatch,
        needed: &HashSet<(usize, Activation, usize)>,
        step: Step<'_>,
    ) -> Result<BlockProbe, ForwardError>;

    /// Mean next-token cross-entropy (nats) over all `B·(T−1)` targets of `batch`, the keys
    /// edited by `edit` when given.
    async fn mean_cross_entropy(
        &self,
        batch: &TokenBatch,
        edit: Option<&KeyEdit>,
    ) -> Result<f64, ForwardError>;

    /// [`ForwardBackend::mean_cross_entropy`] of each edit, in order: what a surgery sweep
    /// hands over a chunk at a time, so that a backend with several cores runs them side by side.
    async fn mean_cross_entropies(
        &self,
        batch: &TokenBatch,
        edits: &[KeyEdit],
    ) -> Result<Vec<f64>, ForwardError> {
        let mut losses = Vec::with_capacity(edits.len());
        for edit in edits {
            losses.push(self.mean_cross_entropy(batch, Some(edit)).await?);
        }
        Ok(losses)
    }
}

/// A key edit for one pass (METRICS.md "Surgery"), applied to K after the key norm, before RoPE.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyEdit {
    /// k ← k·P, P = `projectors[layer·n_kv + kv_head]` (d_k × d_k, row-major).
    Project {
        projectors: Vec<Vec<f32>>,
        n_kv: usize,
        d_k: usize,
    },
    /// Zero coordinates `zero[layer]` of every kv-head of the layer.
    Zero { zero: Vec<Vec<usize>>, d_k: usize },
}

impl KeyEdit {
    /// The edit of (`layer`, `kv_head`) as a d_k × d_k matrix P (row-major), k ← k·P: the
    /// projector, or for a mask the diagonal of kept coordinates (k·diag(mask) is the masked k
    /// exactly: every other term of the sum is an exact zero). What a GPU kernel applies.
    pub fn matrix(&self, layer: usize, kv_head: usize) -> Vec<f32> {
        match self {
            KeyEdit::Project {
                projectors, n_kv, ..
            } => projectors[layer * n_kv + kv_head].clone(),
            KeyEdit::Zero { zero, d_k } => {
                let mut p = vec![0.0f32; d_k * d_k];
                (0..*d_k).for_each(|i| p[i * d_k + i] = 1.0);
                zero[layer].iter().for_each(|&i| p[i * d_k + i] = 0.0);
                p
            }
        }
    }
}

impl KeyTransform for KeyEdit {
    fn apply(&self, layer: usize, kv_head: usize, keys: &mut [f32]) {
        match self {
            KeyEdit::Project {
                projectors,
                n_kv,
                d_k,
            } => {
                let p = &projectors[layer * n_kv + kv_head];
                let mut out = vec![0.0f32; *d_k];
                for row in keys.chunks_exact_mut(*d_k) {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = row
                            .iter()
                            .enumerate()
                            .map(|(i, &k)| k * p[i * d_k + j])
                            .sum();
                    }
                    row.copy_from_slice(&out);
                }
            }
            KeyEdit::Zero { zero, d_k } => {
                let coords = &zero[layer];
                for row in keys.chunks_exact_mut(*d_k) {
                    coords.iter().for_each(|&d| row[d] = 0.0);
                }
            }
        }
    }
}

/// Row `b` of `batch` as a batch of one (ids are checked by the forward pass).
pub fn row_batch(batch: &TokenBatch, b: usize) -> TokenBatch {
    TokenBatch {
        batch: 1,
        seq_len: batch.seq_len,
        ids: batch.row(b).to_vec(),
    }
}

/// "CPU (WebAssembly)" in the page, "CPU (native)" elsewhere.
pub fn cpu_label() -> String {
    if cfg!(target_arch = "wasm32") {
        "CPU (WebAssembly)".into()
    } else {
        "CPU (native)".into()
    }
}

/// The CPU backend: the in-memory forward pass of [`super::forward`], one sequence at a time
/// (so `step` comes between sequences), surgery chunks on the `parallel` pool.
impl ForwardBackend for ModelWeights {
    fn arch(&self) -> &Architecture {
        ModelWeights::arch(self)
    }

    fn engine(&self) -> String {
        cpu_label()
    }

    fn key_norm_weight(&self, layer: usize) -> Option<&[f32]> {
        ModelWeights::key_norm_weight(self, layer)
    }

    async fn collect_keys(
        &self,
        batch: &TokenBatch,
        step: Step<'_>,
    ) -> Result<KeyCollector, ForwardError> {
        let mut collector =
            KeyCollector::new(ModelWeights::arch(self), batch.batch * batch.seq_len);
        run_rows(self, batch, &mut collector, step)?;
        Ok(collector)
    }

    async fn grams(
        &self,
        batch: &TokenBatch,
        activations: &[Activation],
        step: Step<'_>,
    ) -> Result<GramProbe, ForwardError> {
        let mut grams = GramProbe::new(ModelWeights::arch(self), activations);
        run_rows(self, batch, &mut grams, step)?;
        Ok(grams)
    }

    async fn blocks(
        &self,
        batch: &TokenBatch,
        needed: &HashSet<(usize, Activation, usize)>,
        step: Step<'_>,
    ) -> Result<BlockProbe, ForwardError> {
        let mut blocks = BlockProbe::new(needed);
        run_rows(self, batch, &mut blocks, step)?;
        Ok(blocks)
    }

    async fn mean_cross_entropy(
        &self,
        batch: &TokenBatch,
        edit: Option<&KeyEdit>,
    ) -> Result<f64, ForwardError> {
        ModelWeights::mean_cross_entropy(self, batch, edit.map(|e| e as &dyn KeyTransform))
    }

    async fn mean_cross_entropies(
        &self,
        batch: &TokenBatch,
        edits: &[KeyEdit],
    ) -> Result<Vec<f64>, ForwardError> {
        // As many passes at a time as there are threads (one without the `parallel` feature);
        // each pass's loss is the same whichever thread runs it.
        crate::parallel::map(edits, |edit| {
            ModelWeights::mean_cross_entropy(self, batch, Some(edit))
        })
        .into_iter()
        .collect()
    }
}

/// Runs `batch` one row at a time into `probe`, `step` after each (the rows stack as `b·T + t`).
fn run_rows(
    model: &ModelWeights,
    batch: &TokenBatch,
    probe: &mut dyn super::forward::Probe,
    step: Step<'_>,
) -> Result<(), ForwardError> {
    super::forward::check_tokens(ModelWeights::arch(model), batch)?;
    for b in 0..batch.batch {
        model.run_batch(&row_batch(batch, b), probe, None)?;
        if !step(b + 1) {
            return Err(ForwardError::Cancelled);
        }
    }
    Ok(())
}
