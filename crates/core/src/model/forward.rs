//! The forward pass: one transformer written once over an [`Architecture`],
//! branching only where families differ, that hands out Q/K per head
//! ([`Probe`]) and lets a caller edit the keys ([`KeyTransform`], surgery).
//!
//! Conventions (`shared/fixtures/README.md`, "Model conventions"):
//! x = emb[ids]·s (s = √d_model for the reference model, 1 for Llama); per
//! block pre-norm RMSNorm → attention → residual → RMSNorm → MLP → residual;
//! final RMSNorm; logits = x·W_headᵀ (the embedding when tied). Attention:
//! per-head q/k RMSNorm over d_k when present, then RoPE (interleaved pairs
//! for the reference model and Meta's layout, rotate-half for Hugging Face
//! Llama, whose q/k rows are already permuted for it; frequencies scaled as the config's
//! `RopeScaling` asks), GQA (query head h reads kv-head h / (n_heads/n_kv)),
//! causal softmax scaled 1/√d_k. MLP: `down(relu(up(x))²)` (reference) or
//! `down(silu(gate(x))·up(x))` (Llama). Family options on the same loop:
//! projection biases (Qwen2, GPT-2), per-head q/k RMSNorm (Qwen3), a sliding
//! window (Mistral), and GPT-2's LayerNorm with β, learned positions added to
//! the embedding, no RoPE and `c_proj(gelu(c_fc(x)))`. A norm whose weight the
//! architecture does not name is left out. A recognised model whose config asks
//! for more ([`Architecture::no_forward_pass`]) is refused when loaded.
//!
//! Weights are read layer by layer by byte range and upcast to f32 once: all
//! of them into a [`ModelWeights`] (surgery, importance, the GPU upload), or
//! one block at a time by a [`StreamedModel`], which runs its batches through
//! each block and drops it before reading the next (peak memory one block plus
//! the activations: a 7B model on a laptop or in a wasm worker). Activations
//! are f32; matrix products go through our own AVX-512 product on x86-64 CPUs that have it
//! (`sgemm_avx512.rs`) and `matrixmultiply::sgemm` elsewhere (wasm32 included).

mod kernels;
mod load;
mod memory;
mod probe;
mod rope;
#[cfg(target_arch = "x86_64")]
mod sgemm_avx512;
mod stream;
mod view;

pub use load::{EmbeddingRows, ModelWeights};
pub use probe::{KeyCollector, KeyTransform, NoProbe, Probe};
pub use rope::rope_cos_sin;
pub use stream::{BatchRun, BlockWeights, HeadWeights, StreamedModel};
pub use view::{LayerView, MatrixView, MlpView, ModelView};

/// The forward pass's f32 matrix product, `C [m, n] = A [m, k] · B` with B `[k, n]` row-major,
/// or with `b_transposed` a row-major `[n, k]` read transposed (a linear layer's weights), all
/// row-major and packed. Public so that the benchmarks time the product the pass runs.
///
/// # Panics
/// If a slice is shorter than its shape.
pub fn matmul(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    b_transposed: bool,
    c: &mut [f32],
) {
    let sb = if b_transposed {
        kernels::Strides::transposed(k)
    } else {
        kernels::Strides::rows(n)
    };
    kernels::gemm(
        (m, k, n),
        a,
        kernels::Strides::rows(k),
        b,
        sb,
        0.0,
        c,
        kernels::Strides::rows(n),
    );
}

use crate::formats::tokens::TokenBatch;
use crate::model::arch::Architecture;
use crate::model::tensors::TensorError;
use kernels::{
    activate_all, causal_attention, gated, relu_squared, rms_norm_rows, AttentionScratch, Matrix,
    Norm,
};
use load::{LayerSpectra, Mlp};
use rope::RopeTable;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("tensor `{0}` is not in the checkpoint")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("token id {id} at position {position} of sequence {sequence} is not below the vocabulary size {vocab}")]
    TokenOutOfVocab {
        id: u32,
        sequence: usize,
        position: usize,
        vocab: usize,
    },
    #[error("the forward pass cannot run this {family} model: {why}")]
    Unsupported { family: &'static str, why: String },
    #[error("a sequence of {len} tokens is longer than the model's {max} learned positions")]
    TooManyPositions { len: usize, max: usize },
    #[error("an empty sequence or batch has no logits")]
    EmptySequence,
    #[error("a token batch of {batch} × {seq_len} holds {ids} ids")]
    MalformedBatch {
        ids: usize,
        batch: usize,
        seq_len: usize,
    },
    #[error("sequences of {0} tokens have no next-token targets (at least 2 are needed)")]
    TooShortForLoss(usize),
    #[error(transparent)]
    Read(TensorError),
    /// A pass stopped between blocks or sequences because its caller asked it to.
    #[error("cancelled")]
    Cancelled,
    /// The device a backend runs on failed (a GPU lost, a buffer past its limits, a read-back).
    #[error("{0}")]
    Device(String),
}

impl From<TensorError> for ForwardError {
    fn from(e: TensorError) -> Self {
        match e {
            TensorError::MissingTensor(name) => ForwardError::MissingTensor(name),
            other => ForwardError::Read(other),
        }
    }
}

/// Logits of one sequence, `[positions, vocab]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// `positions · vocab` values; row `t` predicts token `t + 1`.
    pub data: Vec<f32>,
    /// Number of positions T (the sequence length).
    pub positions: usize,
    /// Vocabulary size (row length).
    pub vocab: usize,
}

impl Logits {
    /// The logits at position `t` (empty if out of range).
    pub fn row(&self, t: usize) -> &[f32] {
        self.data
            .get(t * self.vocab..(t + 1) * self.vocab)
            .unwrap_or(&[])
    }
}

/// Every buffer one forward pass of `t` tokens needs, allocated once and
/// reused across layers and across the sequences of a batch.
struct Workspace {
    t: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    /// Head-major `[n_heads][t][d_k]`.
    q: Vec<f32>,
    /// Head-major `[n_kv][t][d_k]`: projection, after key norm (+ surgery), after RoPE.
    k_raw: Vec<f32>,
    k: Vec<f32>,
    k_rope: Vec<f32>,
    v: Vec<f32>,
    /// `[t, n_heads·d_k]`.
    attn: Vec<f32>,
    ff_a: Vec<f32>,
    ff_b: Vec<f32>,
    attention: AttentionScratch,
    rope: RopeTable,
    logits: Vec<f32>,
}

impl Workspace {
    /// Buffers for one sequence of `t` tokens; the `t × vocab` logits only when `logits`.
    fn new(arch: &Architecture, t: usize, logits: bool) -> Self {
        let q_width = arch.n_heads * arch.d_k;
        let kv = arch.n_kv_heads * arch.d_k * t;
        Self {
            t,
            x: memory::zeroed(t * arch.d_model),
            h: memory::zeroed(t * arch.d_model),
            q: memory::zeroed(t * q_width),
            k_raw: memory::zeroed(kv),
            k: memory::zeroed(kv),
            k_rope: memory::zeroed(kv),
            v: memory::zeroed(kv),
            attn: memory::zeroed(t * q_width),
            ff_a: memory::zeroed(t * arch.d_ff),
            ff_b: memory::zeroed(t * arch.d_ff),
            attention: AttentionScratch::new(arch.kv_group(), t, arch.d_k),
            rope: RopeTable::of(arch, t),
            logits: if logits {
                memory::zeroed(t * arch.vocab)
            } else {
                Vec::new()
            },
        }
    }
}

impl ModelWeights {
    /// Logits `[T, vocab]` of one sequence. `probe` sees every layer's Q and K
    /// per head; `surgery`, when given, edits K after the key norm, before RoPE.
    pub fn forward(
        &self,
        ids: &[u32],
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
    ) -> Result<Logits, ForwardError> {
        if ids.is_empty() {
            return Err(ForwardError::EmptySequence);
        }
        check_ids(self.arch(), ids, 0)?;
        check_positions(ids.len(), self.position_embedding.as_ref())?;
        let mut pass = Pass::new(self.arch(), ids.len(), true);
        self.run(&mut pass, ids, probe, surgery);
        pass.head(self.final_norm.as_ref(), self.lm_head(), |_, _, _| {});
        Ok(Logits {
            data: pass.ws.logits,
            positions: ids.len(),
            vocab: self.arch().vocab,
        })
    }

    /// Runs every sequence of `batch` in order (row `b·T + t` for a
    /// [`KeyCollector`]) for what `probe` sees: the output head is not run
    /// (at the full reference size it is a quarter of the pass's FLOPs, and its
    /// `t × vocab` logits 200 MB at t = 1024).
    pub fn run_batch(
        &self,
        batch: &TokenBatch,
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
    ) -> Result<(), ForwardError> {
        self.for_each_sequence(batch, probe, surgery, false, |_, _, _| {})
    }

    /// K and Q per head of every sequence of `batch`, stacked (METRICS.md "Representations").
    pub fn collect_keys(
        &self,
        batch: &TokenBatch,
        surgery: Option<&dyn KeyTransform>,
    ) -> Result<KeyCollector, ForwardError> {
        let mut collector = KeyCollector::new(self.arch(), batch.batch * batch.seq_len);
        self.run_batch(batch, &mut collector, surgery)?;
        Ok(collector)
    }

    /// Mean next-token cross-entropy (nats) over all `B·(T−1)` targets of
    /// `batch`; the log-softmax is taken in f64 from the f32 logits.
    pub fn mean_cross_entropy(
        &self,
        batch: &TokenBatch,
        surgery: Option<&dyn KeyTransform>,
    ) -> Result<f64, ForwardError> {
        if batch.seq_len < 2 {
            return Err(ForwardError::TooShortForLoss(batch.seq_len));
        }
        let vocab = self.arch().vocab;
        let mut total = 0.0f64;
        self.for_each_sequence(batch, &mut NoProbe, surgery, true, |_, ids, logits| {
            for (t, &target) in ids.iter().enumerate().skip(1) {
                let row = &logits[(t - 1) * vocab..t * vocab];
                total += negative_log_likelihood(row, target as usize);
            }
        })?;
        Ok(total / (batch.batch * (batch.seq_len - 1)) as f64)
    }

    /// Runs each row of `batch` through every block, one row at a time with one shared
    /// workspace; `each(b, ids, logits)` when `logits`.
    fn for_each_sequence(
        &self,
        batch: &TokenBatch,
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
        logits: bool,
        mut each: impl FnMut(usize, &[u32], &[f32]),
    ) -> Result<(), ForwardError> {
        check_tokens(self.arch(), batch)?;
        check_positions(batch.seq_len, self.position_embedding.as_ref())?;
        let mut pass = Pass::new(self.arch(), batch.seq_len, logits);
        for b in 0..batch.batch {
            self.run(&mut pass, batch.row(b), probe, surgery);
            if logits {
                pass.head(self.final_norm.as_ref(), self.lm_head(), |_, ids, l| {
                    each(b, ids, l)
                });
            }
        }
        Ok(())
    }

    /// The forward pass proper of one checked sequence, up to the last block.
    fn run<'a>(
        &'a self,
        pass: &mut Pass<'a>,
        ids: &'a [u32],
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
    ) {
        let d = self.arch().d_model;
        pass.embed(
            [ids],
            |id, row| {
                let at = id as usize * d;
                self.embedding.values.widen_into(at..at + d, row);
            },
            self.position_embedding.as_ref(),
        );
        for (l, layer) in self.layers.iter().enumerate() {
            pass.block(l, layer, probe, surgery);
        }
    }
}

/// A batch that is not empty, holds exactly `batch × seq_len` ids, all below the vocabulary
/// (public so that every backend refuses the same batches with the same errors).
pub fn check_tokens(arch: &Architecture, batch: &TokenBatch) -> Result<(), ForwardError> {
    if batch.seq_len == 0 || batch.batch == 0 {
        return Err(ForwardError::EmptySequence);
    }
    if Some(batch.ids.len()) != batch.batch.checked_mul(batch.seq_len) {
        return Err(ForwardError::MalformedBatch {
            ids: batch.ids.len(),
            batch: batch.batch,
            seq_len: batch.seq_len,
        });
    }
    for b in 0..batch.batch {
        check_ids(arch, batch.row(b), b)?;
    }
    Ok(())
}

/// Sequences of `len` tokens fit the learned position table, when the model has one.
fn check_positions(len: usize, positions: Option<&Matrix>) -> Result<(), ForwardError> {
    match positions {
        Some(p) if len > p.rows => Err(ForwardError::TooManyPositions { len, max: p.rows }),
        _ => Ok(()),
    }
}

fn check_ids(arch: &Architecture, ids: &[u32], sequence: usize) -> Result<(), ForwardError> {
    let vocab = arch.vocab;
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(position) => Err(ForwardError::TokenOutOfVocab {
            id: ids[position],
            sequence,
            position,
            vocab,
        }),
        None => Ok(()),
    }
}

/// Sequences on their way through the blocks: each one's residual stream between blocks, and
/// one workspace for the block in progress. The in-memory pass takes one sequence at a time
/// through every block; a streamed pass ([`StreamedModel`]) takes every sequence of its batches
/// through a block before it reads the next block's weights. The arithmetic of each sequence is
/// the same either way (sequences never mix), so both give the same numbers bit for bit.
struct Pass<'a> {
    arch: &'a Architecture,
    ws: Workspace,
    /// The token ids of each sequence in flight and its residual stream `[t, d_model]`.
    rows: Vec<(&'a [u32], Vec<f32>)>,
}

impl<'a> Pass<'a> {
    /// A pass for sequences of `t` tokens; the `t × vocab` logits only when `logits`.
    fn new(arch: &'a Architecture, t: usize, logits: bool) -> Self {
        Self {
            arch,
            ws: Workspace::new(arch, t, logits),
            rows: Vec::new(),
        }
    }

    /// Puts `sequences` (checked ids of `t` tokens each) in flight, replacing those before:
    /// x = embedding[id] · scale, the rows given by `row_of(id)`, plus the learned position
    /// rows 0..t when the model has them (GPT-2; `check_positions` refused longer sequences).
    fn embed(
        &mut self,
        sequences: impl IntoIterator<Item = &'a [u32]>,
        row_of: impl Fn(u32, &mut [f32]),
        positions: Option<&Matrix>,
    ) {
        let d = self.arch.d_model;
        let scale = view::embedding_scale(self.arch);
        // The residual buffers of the sequences before, reused.
        let mut spare = std::mem::take(&mut self.rows);
        for ids in sequences {
            debug_assert_eq!(ids.len(), self.ws.t);
            let mut x = spare
                .pop()
                .map(|(_, x)| x)
                .unwrap_or_else(|| memory::zeroed(self.ws.t * d));
            for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
                row_of(id, row);
                row.iter_mut().for_each(|x| *x *= scale);
            }
            if let Some(p) = positions {
                x.iter_mut()
                    .zip(p.values.to_f32().iter())
                    .for_each(|(x, &e)| *x += e);
            }
            self.rows.push((ids, x));
        }
    }

    /// Runs block `l` over every sequence in flight, in order.
    fn block(
        &mut self,
        l: usize,
        layer: &LayerSpectra,
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
    ) {
        // Without logits, nothing reads the last block's output: only its Q and K, which the
        // probe sees before attention (the full-size benchmark's pass: 4% of its FLOPs).
        let probe_only = self.ws.logits.is_empty() && l + 1 == self.arch.n_layers;
        for (_, x) in &mut self.rows {
            std::mem::swap(x, &mut self.ws.x);
            let done = Self::attention_block(
                self.arch,
                l,
                layer,
                probe,
                surgery,
                probe_only,
                &mut self.ws,
            );
            if !done {
                Self::mlp_block(self.arch, layer, &mut self.ws);
            }
            std::mem::swap(x, &mut self.ws.x);
        }
    }

    /// The final norm and output head over each sequence in flight: `each(i, ids, logits)`.
    fn head(
        &mut self,
        final_norm: Option<&Norm>,
        lm_head: &Matrix,
        mut each: impl FnMut(usize, &[u32], &[f32]),
    ) {
        let (t, d) = (self.ws.t, self.arch.d_model);
        let eps = self.arch.norm_eps as f32;
        for (i, (ids, x)) in self.rows.iter().enumerate() {
            match final_norm {
                Some(g) => g.apply_into(x, &mut self.ws.h, d, eps),
                None => self.ws.h.copy_from_slice(x),
            }
            lm_head.apply(&self.ws.h, t, &mut self.ws.logits, false);
            each(i, ids, &self.ws.logits);
        }
    }
}

/// One block's two halves over the sequence in `ws` (associated functions of [`Pass`], which
/// runs them; `arch` and the weights come from whoever holds them).
impl Pass<'_> {
    /// Attention over `ws.x`, added to it; with `probe_only`, it stops once the probe has seen
    /// Q and K and says so (`true`: `ws.x` is left as it was).
    fn attention_block(
        arch: &Architecture,
        l: usize,
        layer: &LayerSpectra,
        probe: &mut dyn Probe,
        surgery: Option<&dyn KeyTransform>,
        probe_only: bool,
        ws: &mut Workspace,
    ) -> bool {
        let (t, d, d_k) = (ws.t, arch.d_model, arch.d_k);
        let eps = arch.norm_eps as f32;
        let head = t * d_k;
        let probing = probe.active();
        match &layer.attn_norm {
            Some(g) => g.apply_into(&ws.x, &mut ws.h, d, eps),
            None => ws.h.copy_from_slice(&ws.x),
        }

        // One product per projection (the activations are packed once, not
        // once per head), then a scatter into head-major `[head][t][d_k]`.
        let width = arch.n_heads * d_k;
        layer.w_q.apply(&ws.h, t, &mut ws.attn, false);
        to_head_major(&ws.attn, t, arch.n_heads, d_k, &mut ws.q);
        for h in 0..arch.n_heads {
            let q = &mut ws.q[h * head..(h + 1) * head];
            if let Some(g) = &layer.q_norm {
                rms_norm_rows(q, d_k, g, eps);
            }
            if probing {
                probe.queries(l, h, q);
            }
            ws.rope.apply(q, d_k, arch.rope);
        }
        let kv_width = arch.n_kv_heads * d_k;
        let tmp = &mut ws.attn[..t * kv_width];
        layer.w_k.apply(&ws.h, t, tmp, false);
        to_head_major(tmp, t, arch.n_kv_heads, d_k, &mut ws.k_raw);
        for h in 0..arch.n_kv_heads {
            let range = h * head..(h + 1) * head;
            let k = &mut ws.k[range.clone()];
            k.copy_from_slice(&ws.k_raw[range.clone()]);
            if let Some(g) = &layer.k_norm {
                rms_norm_rows(k, d_k, g, eps);
            }
            if let Some(s) = surgery {
                s.apply(l, h, k);
            }
            let k_rope = &mut ws.k_rope[range.clone()];
            k_rope.copy_from_slice(k);
            ws.rope.apply(k_rope, d_k, arch.rope);
            if probing {
                probe.keys(
                    l,
                    h,
                    &ws.k[range.clone()],
                    &ws.k_raw[range.clone()],
                    &ws.k_rope[range],
                );
            }
        }

        if probe_only {
            return true;
        }
        let tmp = &mut ws.attn[..t * kv_width];
        layer.w_v.apply(&ws.h, t, tmp, false);
        to_head_major(tmp, t, arch.n_kv_heads, d_k, &mut ws.v);

        let scale = 1.0 / (d_k as f32).sqrt();
        let group = arch.kv_group();
        for kv in 0..arch.n_kv_heads {
            let heads = kv * group..(kv + 1) * group;
            causal_attention(
                &ws.q[heads.start * head..heads.end * head],
                group,
                &ws.k_rope[kv * head..(kv + 1) * head],
                &ws.v[kv * head..(kv + 1) * head],
                (t, d_k),
                scale,
                layer.window,
                &mut ws.attention,
                &mut ws.attn[heads.start * d_k..],
                width,
            );
        }
        layer.w_o.apply(&ws.attn, t, &mut ws.x, true);
        false
    }

    fn mlp_block(arch: &Architecture, layer: &LayerSpectra, ws: &mut Workspace) {
        let (t, d) = (ws.t, arch.d_model);
        match &layer.mlp_norm {
            Some(g) => g.apply_into(&ws.x, &mut ws.h, d, arch.norm_eps as f32),
            None => ws.h.copy_from_slice(&ws.x),
        }
        match &layer.mlp {
            Mlp::SquaredRelu { up, down } => {
                up.apply(&ws.h, t, &mut ws.ff_a, false);
                relu_squared(&mut ws.ff_a);
                down.apply(&ws.ff_a, t, &mut ws.x, true);
            }
            Mlp::SwiGlu { gate, up, down } => {
                gate.apply(&ws.h, t, &mut ws.ff_a, false);
                up.apply(&ws.h, t, &mut ws.ff_b, false);
                gated(&mut ws.ff_a, &ws.ff_b, arch.activation);
                down.apply(&ws.ff_a, t, &mut ws.x, true);
            }
            Mlp::Plain { fc, proj } => {
                fc.apply(&ws.h, t, &mut ws.ff_a, false);
                activate_all(&mut ws.ff_a, arch.activation);
                proj.apply(&ws.ff_a, t, &mut ws.x, true);
            }
        }
    }
}

/// `[t, heads·d_k]` row-major → head-major `[heads][t][d_k]`.
fn to_head_major(src: &[f32], t: usize, heads: usize, d_k: usize, dst: &mut [f32]) {
    for (h, block) in dst.chunks_exact_mut(t * d_k).take(heads).enumerate() {
        for (p, row) in block.chunks_exact_mut(d_k).enumerate() {
            let at = p * heads * d_k + h * d_k;
            row.copy_from_slice(&src[at..at + d_k]);
        }
    }
}

/// −log softmax(row)[target] in f64 (public so that the GPU path's held-out loss is the same sum).
pub fn negative_log_likelihood(row: &[f32], target: usize) -> f64 {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    max + sum.ln() - f64::from(row[target])
}
