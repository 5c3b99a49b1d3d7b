//! [`GpuModel`] as the core's `ForwardBackend`: the analysis (activation spectra, the held-out
//! loss, the surgery sweep) runs its passes here with the weights uploaded once. What comes
//! back is the core's own types, read back once per batch: per-head Grams summed on the GPU
//! (`gram.wgsl`), the blocks of chosen heads, and the loss as one number per pass (`nll.wgsl`,
//! `sum.wgsl`), with surgery's key edit applied on the GPU (`key_edit.wgsl`).

use std::collections::HashSet;

use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::Architecture;
use rankscope_core::model::backend::{ForwardBackend, KeyEdit, Step};
use rankscope_core::model::capture::{Activation, BlockProbe, GramProbe};
use rankscope_core::model::forward::{check_tokens, ForwardError, KeyCollector, Probe};

use crate::forward::{read_layer_grams, Keep, LayerGrams};
use crate::{GpuError, GpuModel};

/// A GPU failure as the core's error (the engine falls back to the CPU on it where it can).
pub(crate) fn device(e: GpuError) -> ForwardError {
    ForwardError::Device(format!("GPU: {e}"))
}

impl ForwardBackend for GpuModel<'_> {
    fn arch(&self) -> &Architecture {
        GpuModel::arch(self)
    }

    fn engine(&self) -> String {
        format!("GPU: {}", self.gpu().adapter_summary())
    }

    fn key_norm_weight(&self, layer: usize) -> Option<&[f32]> {
        self.key_norm(layer)
    }

    /// Reading `B·T × d_k` blocks back costs more than summing `d_k × d_k` Grams on the GPU.
    fn prefers_grams(&self) -> bool {
        true
    }

    async fn collect_keys(
        &self,
        batch: &TokenBatch,
        step: Step<'_>,
    ) -> Result<KeyCollector, ForwardError> {
        let arch = GpuModel::arch(self);
        check_tokens(arch, batch)?;
        let keep = vec![Keep::of(|_| true); arch.n_layers];
        let mut collector = KeyCollector::new(arch, batch.batch * batch.seq_len);
        for b in 0..batch.batch {
            let layers = self.probe(batch.row(b), &keep).await.map_err(device)?;
            for (l, layer) in layers.iter().enumerate() {
                for h in 0..arch.n_kv_heads {
                    let (k, raw, rope) = (&layer.k_normed[h], &layer.k_raw[h], &layer.k_rope[h]);
                    Probe::keys(&mut collector, l, h, k, raw, rope);
                }
                for (h, q) in layer.q_normed.iter().enumerate() {
                    Probe::queries(&mut collector, l, h, q);
                }
            }
            if !step(b + 1) {
                return Err(ForwardError::Cancelled);
            }
        }
        Ok(collector)
    }

    /// Each sequence's Grams are added on the GPU, so nothing is read back between sequences;
    /// all of them are read back once, after the batch.
    async fn grams(
        &self,
        batch: &TokenBatch,
        activations: &[Activation],
        step: Step<'_>,
    ) -> Result<GramProbe, ForwardError> {
        let arch = GpuModel::arch(self);
        check_tokens(arch, batch)?;
        let keep = Keep::of(|a| activations.contains(&a));
        let gpu = self.gpu();
        let mut grams: Vec<LayerGrams> = (0..arch.n_layers)
            .map(|_| LayerGrams::new(gpu, arch, keep, batch.seq_len))
            .collect();
        for b in 0..batch.batch {
            self.accumulate_grams(batch.row(b), keep, &mut grams)
                .map_err(device)?;
            if !step(b + 1) {
                return Err(ForwardError::Cancelled);
            }
        }
        let mut out = GramProbe::new(arch, &[]);
        read_layer_grams(gpu, 0, &grams, &mut out)
            .await
            .map_err(device)?;
        Ok(out)
    }

    /// Reads back only the layers and matrices the needed heads are in, stopping after the
    /// deepest.
    async fn blocks(
        &self,
        batch: &TokenBatch,
        needed: &HashSet<(usize, Activation, usize)>,
        step: Step<'_>,
    ) -> Result<BlockProbe, ForwardError> {
        let arch = GpuModel::arch(self);
        check_tokens(arch, batch)?;
        let mut blocks = BlockProbe::new(needed);
        let keep = Keep::per_layer(needed, arch.n_layers);
        for b in 0..batch.batch {
            let layers = self.probe(batch.row(b), &keep).await.map_err(device)?;
            for (l, layer) in layers.into_iter().enumerate() {
                layer.add_to(l, &mut blocks);
            }
            if !step(b + 1) {
                return Err(ForwardError::Cancelled);
            }
        }
        Ok(blocks)
    }

    /// The edit is uploaded once for the pass and applied on the GPU; every target's loss is
    /// summed on the GPU and one number is read back.
    async fn mean_cross_entropy(
        &self,
        batch: &TokenBatch,
        edit: Option<&KeyEdit>,
    ) -> Result<f64, ForwardError> {
        if batch.seq_len < 2 {
            return Err(ForwardError::TooShortForLoss(batch.seq_len));
        }
        check_tokens(GpuModel::arch(self), batch)?;
        let edit = edit
            .map(|e| self.upload_edit(e))
            .transpose()
            .map_err(device)?;
        let total = self.total_nll(batch, edit.as_ref()).await.map_err(device)?;
        Ok(f64::from(total) / (batch.batch * (batch.seq_len - 1)) as f64)
    }
}
