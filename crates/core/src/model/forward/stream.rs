//! [`StreamedModel`]: forward passes that hold one block's weights at a time, so that a
//! model larger than memory (a 7B checkpoint in a 4 GB wasm worker) runs in about one block
//! plus the activations. Block `l` is read by byte range, every sequence of every batch goes
//! through it, and it is dropped before block `l + 1` is read; the embedding is read only for
//! the batches' token ids, and the output head only when logits are asked for, after the last
//! block. The arithmetic is the in-memory pass's ([`super::Pass`]), sequence by sequence, so
//! the numbers are the same bit for bit; a pass over the whole checkpoint costs one read of
//! every weight it uses.

use super::kernels::{Matrix, Norm};
use super::load::{position_embedding, read_head, read_layer, EmbeddingRows, LayerSpectra};
use super::view::{arch_extensions, embedding_scale, layer, layer_extensions, matrix};
use super::{
    check_positions, check_tokens, ForwardError, KeyTransform, LayerView, MatrixView, ModelWeights,
    Pass, Probe,
};
use crate::formats::tokens::TokenBatch;
use crate::model::arch::{Architecture, Family};
use crate::model::tensors::Shards;
use crate::source::AsyncByteSource;

/// One batch of a streamed pass and what it wants from it.
pub struct BatchRun<'a> {
    pub batch: &'a TokenBatch,
    /// Sees every layer's Q and K per head, sequence by sequence in batch order (row `b·T + t`
    /// for a [`super::KeyCollector`], as in the in-memory pass).
    pub probe: &'a mut dyn Probe,
    /// Called after the last block with `(sequence, ids, logits [T, vocab])`, in batch order;
    /// `None`: the output head is not read nor run for this batch.
    pub logits: Option<&'a mut LogitsSink<'a>>,
}

/// What takes a streamed batch's logits: `(sequence, ids, logits [T, vocab])`.
pub type LogitsSink<'a> = dyn FnMut(usize, &[u32], &[f32]) + 'a;

/// A checkpoint whose forward passes read each block's weights when they reach it.
pub struct StreamedModel<'s, 'a, S> {
    shards: &'s Shards<'a, S>,
    arch: &'s Architecture,
}

impl<'s, 'a, S: AsyncByteSource> StreamedModel<'s, 'a, S> {
    /// The model `arch` describes, read from `shards` as passes need it (nothing is read
    /// here). A model whose [`Architecture::no_forward_pass`] says why it cannot run is
    /// [`ForwardError::Unsupported`], as for [`super::ModelWeights::load`].
    pub fn new(shards: &'s Shards<'a, S>, arch: &'s Architecture) -> Result<Self, ForwardError> {
        if let Some(why) = &arch.no_forward_pass {
            return Err(ForwardError::Unsupported {
                family: arch.family.label(),
                why: why.clone(),
            });
        }
        Ok(Self { shards, arch })
    }

    /// The architecture the passes run.
    pub fn arch(&self) -> &Architecture {
        self.arch
    }

    /// Every weight read into memory at once, for what needs the whole model (the GPU
    /// upload, surgery): [`ModelWeights::load`] (`progress` 0..=1 after each layer).
    pub async fn load(&self, progress: &mut dyn FnMut(f64)) -> Result<ModelWeights, ForwardError> {
        ModelWeights::load(self.shards, self.arch, progress).await
    }

    /// Bytes of every weight the pass uses, as f32: what [`StreamedModel::load`] would hold
    /// (27 GB for Llama-2-7B); a streamed pass holds one block of it.
    pub fn f32_bytes(&self) -> u64 {
        let a = self.arch;
        let (d, d_k, d_ff) = (a.d_model as u64, a.d_k as u64, a.d_ff as u64);
        let (heads, kv) = (a.n_heads as u64, a.n_kv_heads as u64);
        let heads_of_lm = if a.lm_head != a.embedding && !a.tied_lm_head {
            2
        } else {
            1
        };
        let mlp = match a.family {
            Family::Reference => 2,
            _ => 3,
        };
        let block = 2 * heads * d_k * d + 2 * kv * d_k * d + mlp * d * d_ff + 2 * d + 2 * d_k;
        4 * (heads_of_lm * a.vocab as u64 * d + d + a.n_layers as u64 * block)
    }

    /// What the model needs beyond the views of [`StreamedModel::read_block`] and
    /// [`StreamedModel::read_head`] (biases, LayerNorm, learned positions, …), from the
    /// architecture alone: [`super::ModelView::extensions`] of the loaded model, for a pass of
    /// another engine (the GPU's) to refuse before reading anything. Each block read says its
    /// own too ([`BlockWeights::extensions`]).
    pub fn extensions(&self) -> Vec<&'static str> {
        arch_extensions(self.arch)
    }

    /// x = embedding[id] · this, as the in-memory pass and [`super::ModelView`] have it.
    pub fn embedding_scale(&self) -> f32 {
        embedding_scale(self.arch)
    }

    /// The embedding rows of `ids` (each checked below the vocabulary), for another engine's
    /// streamed pass: all it needs of the embedding, as for [`StreamedModel::run`].
    pub async fn embedding_rows(
        &self,
        ids: impl IntoIterator<Item = u32>,
    ) -> Result<EmbeddingRows, ForwardError> {
        EmbeddingRows::read(self.shards, self.arch, ids).await
    }

    /// Block `l`'s weights, read and upcast to f32, for another engine's streamed pass (the
    /// GPU's uploads it, runs its sequences through it and drops it before the next).
    pub async fn read_block(&self, l: usize) -> Result<BlockWeights, ForwardError> {
        Ok(BlockWeights(read_layer(self.shards, self.arch, l).await?))
    }

    /// The final norm and the output head (the embedding when tied), for another engine's
    /// streamed pass after its last block.
    pub async fn read_head(&self) -> Result<HeadWeights, ForwardError> {
        let (final_norm, head) = read_head(self.shards, self.arch).await?;
        Ok(HeadWeights { final_norm, head })
    }

    /// Runs every batch of `runs` through the model, block by block (see the module doc).
    /// `surgery` edits the keys of every batch. `after_block(l)` is called once block `l` has
    /// run over every sequence and been dropped; `false` stops the pass with
    /// [`ForwardError::Cancelled`]. Every batch is checked before anything is read.
    pub async fn run(
        &self,
        runs: &mut [BatchRun<'_>],
        surgery: Option<&dyn KeyTransform>,
        after_block: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), ForwardError> {
        let arch = self.arch;
        // GPT-2's learned positions: small (n_positions × d_model), read whole.
        let positions = position_embedding(self.shards, arch).await?;
        for run in runs.iter() {
            check_tokens(arch, run.batch)?;
            check_positions(run.batch.seq_len, positions.as_ref())?;
        }
        let embedding = EmbeddingRows::read(
            self.shards,
            arch,
            runs.iter().flat_map(|r| r.batch.ids.iter().copied()),
        )
        .await?;
        let mut passes: Vec<Pass<'_>> = runs
            .iter()
            .map(|run| {
                let batch: &TokenBatch = run.batch;
                let mut pass = Pass::new(arch, batch.seq_len, run.logits.is_some());
                pass.embed(
                    (0..batch.batch).map(|b| batch.row(b)),
                    |id, row| {
                        row.iter_mut()
                            .zip(embedding.row(id))
                            .for_each(|(x, &e)| *x = e)
                    },
                    positions.as_ref(),
                );
                pass
            })
            .collect();
        drop(embedding);
        drop(positions);

        for l in 0..arch.n_layers {
            let layer = read_layer(self.shards, arch, l).await?;
            for (pass, run) in passes.iter_mut().zip(runs.iter_mut()) {
                pass.block(l, &layer, run.probe, surgery);
            }
            drop(layer);
            if !after_block(l) {
                return Err(ForwardError::Cancelled);
            }
        }

        if runs.iter().any(|r| r.logits.is_some()) {
            let (final_norm, head) = read_head(self.shards, arch).await?;
            for (pass, run) in passes.iter_mut().zip(runs.iter_mut()) {
                if let Some(each) = run.logits.as_mut() {
                    pass.head(final_norm.as_ref(), &head, |b, ids, logits| {
                        each(b, ids, logits)
                    });
                }
            }
        }
        Ok(())
    }
}

/// One block's weights as [`StreamedModel::read_block`] reads them.
pub struct BlockWeights(LayerSpectra);

impl BlockWeights {
    /// The block's weights, borrowed, as [`super::ModelView::layers`] has them.
    pub fn view(&self) -> LayerView<'_> {
        layer(&self.0)
    }

    /// What this block needs beyond its view (biases, a sliding window, a plain MLP): a pass
    /// that reads only the view must refuse a block with any of these.
    pub fn extensions(&self) -> Vec<&'static str> {
        let mut found = Vec::new();
        layer_extensions(&self.0, &mut found);
        found
    }
}

/// The final norm and the output head as [`StreamedModel::read_head`] reads them.
pub struct HeadWeights {
    final_norm: Option<Norm>,
    head: Matrix,
}

impl HeadWeights {
    /// The final norm's γ, when the model has one (its β, LayerNorm's, is among
    /// [`StreamedModel::extensions`]).
    pub fn final_norm(&self) -> Option<&[f32]> {
        self.final_norm.as_ref().map(|n| n.gamma.as_slice())
    }

    /// The output head `[vocab, d_model]`.
    pub fn lm_head(&self) -> MatrixView<'_> {
        matrix(&self.head)
    }
}
