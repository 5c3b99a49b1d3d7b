//! The forward pass on the GPU: the CPU pass of `rankscope_core::model::forward` (same
//! conventions: embedding scale, pre-norm RMSNorm, per-head q/k norm, RoPE, GQA, causal
//! softmax, relu² or SwiGLU, final norm, tied or separate head), with every step a kernel
//! on buffers that stay on the GPU. Only the logits (or the keys the spectra need) are read
//! back, once, at the end.
//!
//! Activations stay token-major, `[t, heads·d_k]` for Q/K/V, as the projections write them:
//! the per-head norms treat that buffer as `[t·heads, d_k]` rows, RoPE indexes the position
//! as `row / heads`, and the attention kernel reads head h's columns with strides, so no
//! head-major copies are needed.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use rankscope_core::analysis::gram_spectra::Activation;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{Architecture, Rope};
use rankscope_core::model::backend::KeyEdit;
use rankscope_core::model::capture::{BlockProbe, GramProbe, PerActivation};
use rankscope_core::model::forward::{rope_cos_sin, LayerView, MatrixView, MlpView, ModelWeights};
use wgpu::util::DeviceExt;

use crate::{to_u32, Gpu, GpuError, GpuMatrix, GpuTensor, GramAccumulation, GramAccumulator};

/// `Params` of rms_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    rows: u32,
    width: u32,
    eps: f32,
    pad: u32,
}

/// `Params` of rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeParams {
    rows: u32,
    heads: u32,
    half: u32,
    style: u32,
}

/// `Params` of attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttentionParams {
    t: u32,
    n_heads: u32,
    n_kv: u32,
    d_k: u32,
    scale: f32,
    pad: [u32; 3],
}

/// `Params` of key_edit.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EditParams {
    rows: u32,
    heads: u32,
    d_k: u32,
    offset: u32,
}

/// `Params` of nll.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NllParams {
    rows: u32,
    vocab: u32,
    row0: u32,
    t: u32,
    out_offset: u32,
    pad: [u32; 3],
}

/// `Params` of embed.wgsl and elementwise.wgsl (`width`, `scale`: embed only).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementParams {
    len: u32,
    width: u32,
    scale: f32,
    pad: u32,
}

/// Invocations per workgroup of the element-wise kernels (embed, RoPE, activations).
const ELEMENT_LANES: usize = 64;

enum GpuMlp {
    SquaredRelu {
        up: GpuMatrix,
        down: GpuMatrix,
    },
    SwiGlu {
        gate: GpuMatrix,
        up: GpuMatrix,
        down: GpuMatrix,
    },
}

/// One block's weights on the GPU; a norm the model does not have is `None` (left out).
pub(crate) struct GpuLayer {
    w_q: GpuMatrix,
    w_k: GpuMatrix,
    w_v: GpuMatrix,
    w_o: GpuMatrix,
    q_norm: Option<GpuMatrix>,
    k_norm: Option<GpuMatrix>,
    attn_norm: Option<GpuMatrix>,
    mlp_norm: Option<GpuMatrix>,
    mlp: GpuMlp,
}

/// RoPE's cos/sin for one sequence length.
pub(crate) struct RopeTable {
    t: usize,
    cos: GpuTensor,
    sin: GpuTensor,
}

/// The kernels of a pass and the constants they need, whatever holds the weights: the whole
/// model uploaded ([`GpuModel`]) or one block at a time (`stream.rs`). The arithmetic of a
/// block is [`Kernels::block`] for both, so the two passes cannot drift apart.
pub(crate) struct Kernels<'g> {
    pub gpu: &'g Gpu,
    pub arch: Architecture,
    norm_eps: f32,
}

/// A model whose weights live on the GPU (uploaded once by [`GpuModel::upload`]), ready to
/// run sequences: [`GpuModel::logits`], [`GpuModel::keys`].
pub struct GpuModel<'g> {
    k: Kernels<'g>,
    embedding: GpuMatrix,
    /// The output head when it is not the embedding.
    lm_head: Option<GpuMatrix>,
    embedding_scale: f32,
    final_norm: Option<GpuMatrix>,
    layers: Vec<GpuLayer>,
    rope: RefCell<Option<Rc<RopeTable>>>,
    /// The key norms' γ per layer, kept on the host too (surgery's γ order reads them).
    key_norms: Vec<Option<Vec<f32>>>,
}

/// The activation buffers of one pass of `t` tokens: the residual stream and the scratch.
struct Workspace {
    x: GpuTensor,
    s: Scratch,
}

/// The buffers a block writes between reading the residual stream and adding to it, reused
/// from block to block and (in a streamed pass) from sequence to sequence of one length.
pub(crate) struct Scratch {
    h: GpuTensor,
    q_proj: GpuTensor,
    q_normed: GpuTensor,
    q_rope: GpuTensor,
    k_proj: GpuTensor,
    k_normed: GpuTensor,
    k_rope: GpuTensor,
    /// K after a key edit (surgery), when the pass has one.
    k_edited: GpuTensor,
    v: GpuTensor,
    /// `[n_heads·t, t]`: each (head, query) row's probabilities.
    scores: GpuTensor,
    attn: GpuTensor,
    ff_a: GpuTensor,
    ff_b: GpuTensor,
    rope: Rc<RopeTable>,
}

impl<'g> GpuModel<'g> {
    /// Uploads every weight of `weights` once: matrices as [`GpuMatrix`], norms' γ as
    /// one-row matrices. A tied head shares the embedding's buffer.
    /// A model that needs more than the views carry ([`ModelView::extensions`]: biases,
    /// LayerNorm, …) is [`GpuError::UnsupportedModel`] before anything is uploaded.
    ///
    /// [`ModelView::extensions`]: rankscope_core::model::forward::ModelView::extensions
    pub fn upload(gpu: &'g Gpu, weights: &ModelWeights) -> Result<Self, GpuError> {
        let view = weights.view();
        if !view.extensions.is_empty() {
            return Err(GpuError::UnsupportedModel {
                family: view.arch.family.label(),
                needs: view.extensions.join(", "),
            });
        }
        let layers = view
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| upload_layer(gpu, view.arch, l, layer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            k: Kernels::new(gpu, view.arch),
            embedding: upload_checked(gpu, "the embedding".into(), view.embedding)?,
            lm_head: if view.lm_head_is_embedding {
                None
            } else {
                Some(upload_checked(gpu, "the output head".into(), view.lm_head)?)
            },
            embedding_scale: view.embedding_scale,
            final_norm: upload_gamma(gpu, view.final_norm),
            key_norms: view
                .layers
                .iter()
                .map(|l| l.k_norm.map(<[f32]>::to_vec))
                .collect(),
            layers,
            rope: RefCell::new(None),
        })
    }

    /// The GPU the weights live on.
    pub fn gpu(&self) -> &'g Gpu {
        self.k.gpu
    }

    /// The architecture the weights were loaded for.
    pub fn arch(&self) -> &Architecture {
        &self.k.arch
    }

    /// Logits `[t, vocab]` row-major of one sequence (row p predicts token p + 1), as
    /// `ModelWeights::forward` computes them.
    ///
    /// The `t × vocab` logits can exceed the adapter's largest buffer (201 MB at t = 1024 with a
    /// 49152-token vocabulary; WebGPU's default limit is 128 MiB), so the head runs on as many
    /// rows at a time as fit: see [`GpuModel::logits_in_chunks`].
    pub async fn logits(&self, ids: &[u32]) -> Result<Vec<f32>, GpuError> {
        let vocab = self.k.arch.vocab;
        check_fits(self.k.gpu, "the logits of one token".into(), vocab)?;
        let limit = self.k.gpu.max_buffer_bytes();
        let rows = (limit / (4 * vocab.max(1) as u64)).max(1) as usize;
        self.logits_in_chunks(ids, rows).await
    }

    /// [`GpuModel::logits`] with the output head run on at most `max_rows` rows at a time, each
    /// chunk read back before the next (the pass itself runs once).
    pub async fn logits_in_chunks(
        &self,
        ids: &[u32],
        max_rows: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let gpu = self.k.gpu;
        let ws = self.run(ids, None, self.layers.len(), None)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embedding);
        let h = self.final_norm(&ws);
        let (t, vocab) = (ids.len(), self.k.arch.vocab);
        let rows = max_rows.clamp(1, t);
        if rows == t {
            let mut logits = gpu.zeros(t, vocab);
            gpu.linear(h, head, &mut logits, false);
            return gpu.read(&logits).await;
        }
        let mut out = Vec::with_capacity(t * vocab);
        for start in (0..t).step_by(rows) {
            let n = rows.min(t - start);
            let chunk = gpu.zeros(n, self.k.arch.d_model);
            gpu.copy_rows(h, start, &chunk);
            let mut logits = gpu.zeros(n, vocab);
            gpu.linear(&chunk, head, &mut logits, false);
            out.extend(gpu.read(&logits).await?);
        }
        Ok(out)
    }

    /// K of every layer and kv-head, after the key norm, before RoPE — what
    /// `Probe::keys` gets as `post_norm_pre_rope` (the K of METRICS.md): `keys[layer][kv_head]`
    /// is `[t, d_k]` row-major. Each layer's K stays in its own buffer during the pass and is
    /// read back after it, in one transfer; the output head is not run.
    pub async fn keys(&self, ids: &[u32]) -> Result<Vec<Vec<Vec<f32>>>, GpuError> {
        let keep = vec![
            Keep {
                k_normed: true,
                ..Keep::default()
            };
            self.layers.len()
        ];
        let layers = self.probe(ids, &keep).await?;
        Ok(layers.into_iter().map(|l| l.k_normed).collect())
    }

    /// Runs one sequence and reads back, per layer, what the CPU pass hands its `Probe`, each
    /// when that layer's `keep[layer]` asks: K after the key norm before RoPE, K before the key norm, K after RoPE,
    /// and Q per query head after the query norm before RoPE, each `[head][t·d_k]`. Every kept
    /// matrix gets a buffer of its own during the pass and all are read back after it, in one
    /// transfer, so nothing is read mid-pass; the output head is not run.
    pub(crate) async fn probe(
        &self,
        ids: &[u32],
        keep: &[Keep],
    ) -> Result<Vec<ProbedLayer>, GpuError> {
        let mut kept = Vec::with_capacity(self.layers.len());
        // The pass stops after the deepest layer anything is kept from.
        let depth = keep.iter().rposition(|k| k.any()).map_or(0, |l| l + 1);
        self.run(ids, Some((keep, &mut kept)), depth, None)?;
        self.k.read_kept(&kept, ids.len()).await
    }

    /// [`GpuModel::keys`] of every sequence of `batch`, stacked in batch order: `keys[layer][kv_head]`
    /// is `[B·T, d_k]` with row `b·T + t` = position t of sequence b, the matrix
    /// `ModelWeights::collect_keys` hands the spectra (METRICS.md "Representations").
    pub async fn batch_keys(&self, batch: &TokenBatch) -> Result<Vec<Vec<Vec<f32>>>, GpuError> {
        let mut stacked: Vec<Vec<Vec<f32>>> =
            vec![vec![Vec::new(); self.k.arch.n_kv_heads]; self.layers.len()];
        for b in 0..batch.batch {
            for (into, from) in stacked.iter_mut().zip(self.keys(batch.row(b)).await?) {
                into.iter_mut()
                    .zip(from)
                    .for_each(|(into, from)| into.extend_from_slice(&from));
            }
        }
        Ok(stacked)
    }

    /// Runs one sequence and queues, per layer, each kept matrix's per-head Gram and column
    /// sums into `grams[layer]` (made by [`LayerGrams::new`] with the same `keep` and length);
    /// nothing is read back, so a batch's sequences add up on the GPU.
    pub(crate) fn accumulate_grams(
        &self,
        ids: &[u32],
        keep: Keep,
        grams: &mut [LayerGrams],
    ) -> Result<(), GpuError> {
        let mut kept = Vec::with_capacity(self.layers.len());
        self.run(
            ids,
            Some((&vec![keep; self.layers.len()], &mut kept)),
            self.layers.len(),
            None,
        )?;
        for (kept, grams) in kept.iter().zip(grams.iter_mut()) {
            grams.add(self.k.gpu, kept);
        }
        Ok(())
    }

    /// Queues the pass through the first `depth` blocks (all of them before the final norm);
    /// `keep` receives, per layer run, the token-major `[t, heads·d_k]` matrices that layer's
    /// [`Keep`] asks for; `edit` (from [`GpuModel::upload_edit`]), when given, edits K after the
    /// key norm, before RoPE, as the CPU pass's `KeyTransform`.
    fn run(
        &self,
        ids: &[u32],
        mut keep: Option<(&[Keep], &mut Vec<KeptLayer>)>,
        depth: usize,
        edit: Option<&GpuTensor>,
    ) -> Result<Workspace, GpuError> {
        if ids.is_empty() {
            return Err(GpuError::EmptySequence);
        }
        let arch = &self.k.arch;
        if let Some(position) = ids.iter().position(|&id| id as usize >= arch.vocab) {
            return Err(GpuError::TokenOutOfVocab {
                id: ids[position],
                position,
                vocab: arch.vocab,
            });
        }
        let t = ids.len();
        let mut ws = Workspace {
            x: self.k.gpu.zeros(t, arch.d_model),
            s: Scratch::new(&self.k, t, edit.is_some(), self.rope_table(t))?,
        };
        self.embed(ids, &ws.x);
        for (l, layer) in self.layers.iter().enumerate().take(depth) {
            let what = keep
                .as_ref()
                .and_then(|(what, _)| what.get(l).copied())
                .unwrap_or_default();
            // A pass that keeps matrices ends with them: nothing reads its last block's output.
            let probe_only = keep.is_some() && l + 1 == depth;
            let kept = self
                .k
                .block(l, layer, &mut ws.x, &mut ws.s, what, edit, probe_only);
            if let Some((_, into)) = keep.as_mut() {
                into.push(kept);
            }
        }
        Ok(ws)
    }

    /// Every layer's key edit as one buffer `[layer][kv_head][d_k][d_k]` (k ← k·P), uploaded once
    /// per pass: a few hundred KB against the weights' megabytes, so uploading an edit per pass
    /// costs nothing a user notices, and editing W_k instead would be wrong past a key norm.
    pub(crate) fn upload_edit(&self, edit: &KeyEdit) -> Result<GpuTensor, GpuError> {
        let (n_layers, n_kv, d_k) = (self.layers.len(), self.k.arch.n_kv_heads, self.k.arch.d_k);
        let fits = match edit {
            KeyEdit::Project {
                projectors,
                n_kv: edit_kv,
                d_k: edit_d_k,
            } => {
                *edit_kv == n_kv
                    && *edit_d_k == d_k
                    && projectors.len() == n_layers * n_kv
                    && projectors.iter().all(|p| p.len() == d_k * d_k)
            }
            KeyEdit::Zero {
                zero,
                d_k: edit_d_k,
            } => {
                *edit_d_k == d_k
                    && zero.len() == n_layers
                    && zero.iter().flatten().all(|&i| i < d_k)
            }
        };
        if !fits {
            return Err(GpuError::BadEdit(format!(
                "a key edit that is not for {n_layers} layers × {n_kv} kv-heads × d_k {d_k}"
            )));
        }
        let mut data = Vec::with_capacity(n_layers * n_kv * d_k * d_k);
        for l in 0..n_layers {
            for h in 0..n_kv {
                data.extend(edit.matrix(l, h));
            }
        }
        check_fits(self.k.gpu, "the key edit".into(), data.len())?;
        Ok(self.k.gpu.upload_tensor(&data, data.len(), 1))
    }

    /// Σ over the sequences of `batch` of −log softmax(logits)[next token], summed on the GPU
    /// and read back as one number, the keys edited by `edit` (from [`GpuModel::upload_edit`])
    /// when given. The output head runs on as many rows at a time as fit the adapter's largest
    /// buffer ([`GpuModel::logits`]); nothing but the total is read back.
    pub(crate) async fn total_nll(
        &self,
        batch: &TokenBatch,
        edit: Option<&GpuTensor>,
    ) -> Result<f32, GpuError> {
        let gpu = self.k.gpu;
        let head = self.lm_head.as_ref().unwrap_or(&self.embedding);
        let mut losses = Losses::new(&self.k, batch)?;
        for b in 0..batch.batch {
            let ids = batch.row(b);
            let ws = self.run(ids, None, self.layers.len(), edit)?;
            let final_norm = self.final_norm.as_ref();
            self.k
                .queue_nll(&ws.x, &ws.s, final_norm, head, ids, b, &mut losses);
        }
        let (nll, targets) = (losses.nll, losses.targets);
        let total = gpu.zeros(1, 1);
        let params = ElementParams {
            len: to_u32(targets, "targets"),
            width: 0,
            scale: 0.0,
            pad: 0,
        };
        gpu.dispatch(
            &gpu.forward.sum,
            bytemuck::bytes_of(&params),
            &[&nll.buffer, &total.buffer],
            (1, 1, 1),
        );
        Ok(gpu.read(&total).await?.first().copied().unwrap_or(f32::NAN))
    }

    /// The key norm's γ of `layer`, when the model has one.
    pub(crate) fn key_norm(&self, layer: usize) -> Option<&[f32]> {
        self.key_norms.get(layer)?.as_deref()
    }

    /// Whether sequences of `t` tokens fit the adapter's buffers (the attention probabilities
    /// and the MLP activations are the largest), before a job commits to the GPU.
    pub fn fits(&self, t: usize) -> Result<(), GpuError> {
        check_activations_fit(self.k.gpu, &self.k.arch, t)
    }

    /// The final norm's output (or x itself without one), for the head.
    fn final_norm<'w>(&self, ws: &'w Workspace) -> &'w GpuTensor {
        let d = self.k.arch.d_model;
        self.k
            .norm_or_identity(self.final_norm.as_ref(), &ws.x, &ws.s.h, d)
    }

    fn embed(&self, ids: &[u32], x: &GpuTensor) {
        let ids = self
            .k
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("token ids"),
                contents: bytemuck::cast_slice(ids),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let len = x.rows * x.cols;
        let params = ElementParams {
            len: to_u32(len, "embedding elements"),
            width: to_u32(x.cols, "d_model"),
            scale: self.embedding_scale,
            pad: 0,
        };
        let groups = self.k.gpu.fold_groups(len.div_ceil(ELEMENT_LANES));
        self.k.gpu.dispatch(
            &self.k.gpu.forward.embed,
            bytemuck::bytes_of(&params),
            &[&ids, &self.embedding.buffer, &x.buffer],
            groups,
        );
    }

    /// RoPE's cos/sin for `t` tokens, uploaded once and kept until a different length comes.
    fn rope_table(&self, t: usize) -> Rc<RopeTable> {
        let mut table = self.rope.borrow_mut();
        match table.as_ref() {
            Some(r) if r.t == t => Rc::clone(r),
            _ => Rc::clone(table.insert(Rc::new(self.k.rope_table(t)))),
        }
    }
}

impl<'g> Kernels<'g> {
    /// The kernels for `arch`'s passes on `gpu`, with the constants the CPU pass uses.
    pub fn new(gpu: &'g Gpu, arch: &Architecture) -> Self {
        Self {
            gpu,
            arch: arch.clone(),
            // As `ModelView::norm_eps`: the CPU pass's ε, in f32.
            norm_eps: arch.norm_eps as f32,
        }
    }

    /// Queues block `l` (`layer`) over one sequence whose residual stream is `x` (`[t, d_model]`,
    /// updated in place), with `s`'s buffers (made for the same `t`) as scratch: the one copy of
    /// a block's arithmetic, for the whole-model pass and the streamed one. Returns the
    /// token-major `[t, heads·d_k]` matrices `what` asks to keep, each in a buffer of its own;
    /// `edit` (from [`GpuModel::upload_edit`]), when given, edits K after the key norm, before
    /// RoPE, as the CPU pass's `KeyTransform`. With `probe_only` (the last block of a pass that
    /// only keeps Q and K), it stops once they are kept and leaves `x` as it was.
    #[allow(clippy::too_many_arguments)] // each is one of the block's inputs; a struct would only rename them
    pub fn block(
        &self,
        l: usize,
        layer: &GpuLayer,
        x: &mut GpuTensor,
        s: &mut Scratch,
        what: Keep,
        edit: Option<&GpuTensor>,
        probe_only: bool,
    ) -> KeptLayer {
        let (gpu, arch) = (self.gpu, &self.arch);
        let (t, d, d_k) = (x.rows, arch.d_model, arch.d_k);
        let (n_heads, n_kv) = (arch.n_heads, arch.n_kv_heads);
        let rope = Rc::clone(&s.rope);
        // Attention: h = norm(x); q, k, v; per-head norms; RoPE; softmax(QKᵀ)V; x += attn·W_oᵀ.
        let h = self.norm_or_identity(layer.attn_norm.as_ref(), x, &s.h, d);
        // A kept matrix needs a buffer of its own per layer; otherwise the scratch's is reused.
        let own = |wanted: bool, heads: usize| wanted.then(|| gpu.zeros(t, heads * d_k));
        let mut kept = KeptLayer {
            k_normed: own(what.k_normed, n_kv),
            k_raw: own(what.k_raw, n_kv),
            k_rope: own(what.k_rope, n_kv),
            q_normed: own(what.q_normed, n_heads),
        };
        gpu.linear(h, &layer.w_q, &mut s.q_proj, false);
        let q_normed = kept.q_normed.as_ref().unwrap_or(&s.q_normed);
        let q = self.norm_or_identity(layer.q_norm.as_ref(), &s.q_proj, q_normed, d_k);
        keep_copy(gpu, q, kept.q_normed.as_ref());
        let q = self.rotate(&rope, q, &s.q_rope, n_heads);
        let k_proj = kept.k_raw.as_mut().unwrap_or(&mut s.k_proj);
        gpu.linear(h, &layer.w_k, k_proj, false);
        let k_proj: &GpuTensor = k_proj;
        let k_normed = kept.k_normed.as_ref().unwrap_or(&s.k_normed);
        let k = self.norm_or_identity(layer.k_norm.as_ref(), k_proj, k_normed, d_k);
        let k = match edit {
            Some(edit) => self.edit_keys(k, edit, l, &s.k_edited),
            None => k,
        };
        // Without a key norm, K is the projection itself; a kept K is a copy of it.
        keep_copy(gpu, k, kept.k_normed.as_ref());
        let k = self.rotate(&rope, k, kept.k_rope.as_ref().unwrap_or(&s.k_rope), n_kv);
        // Without RoPE, the rotated K is K itself.
        keep_copy(gpu, k, kept.k_rope.as_ref());
        if probe_only {
            return kept;
        }
        gpu.linear(h, &layer.w_v, &mut s.v, false);
        self.attention(q, k, &s.v, &s.scores, &s.attn, t);
        gpu.linear(&s.attn, &layer.w_o, x, true);

        // MLP: x += down(act(h = norm(x))).
        let h = self.norm_or_identity(layer.mlp_norm.as_ref(), x, &s.h, d);
        match &layer.mlp {
            GpuMlp::SquaredRelu { up, down } => {
                gpu.linear(h, up, &mut s.ff_a, false);
                self.activation(&gpu.forward.relu_squared, &s.ff_a, None);
                gpu.linear(&s.ff_a, down, x, true);
            }
            GpuMlp::SwiGlu { gate, up, down } => {
                gpu.linear(h, gate, &mut s.ff_a, false);
                gpu.linear(h, up, &mut s.ff_b, false);
                self.activation(&gpu.forward.silu_mul, &s.ff_a, Some(&s.ff_b));
                gpu.linear(&s.ff_a, down, x, true);
            }
        }
        kept
    }

    /// Reads back the matrices `kept` holds (one sequence of `t` tokens, per layer) in one
    /// transfer, split per head.
    pub async fn read_kept(
        &self,
        kept: &[KeptLayer],
        t: usize,
    ) -> Result<Vec<ProbedLayer>, GpuError> {
        let tensors: Vec<&GpuTensor> = kept
            .iter()
            .flat_map(|k| [&k.k_normed, &k.k_raw, &k.k_rope, &k.q_normed])
            .filter_map(Option::as_ref)
            .collect();
        let mut data = self.gpu.read_all(&tensors).await?.into_iter();
        let d_k = self.arch.d_k;
        let (n_heads, n_kv) = (self.arch.n_heads, self.arch.n_kv_heads);
        let mut heads = |tensor: &Option<GpuTensor>, heads: usize| match tensor {
            Some(_) => split_heads(
                &data.next().expect("one read-back per kept matrix"),
                t,
                heads,
                d_k,
            ),
            None => Vec::new(),
        };
        let layers = kept
            .iter()
            .map(|k| ProbedLayer {
                k_normed: heads(&k.k_normed, n_kv),
                k_raw: heads(&k.k_raw, n_kv),
                k_rope: heads(&k.k_rope, n_kv),
                q_normed: heads(&k.q_normed, n_heads),
            })
            .collect();
        Ok(layers)
    }

    /// Queues the losses of sequence `b` of `losses`' batch (`ids`, residual stream `x` after
    /// the last block) into `losses.nll`: the final norm (into `s.h`), the head, nll.wgsl. The
    /// head runs on as many rows at a time as fit the adapter's largest buffer.
    #[allow(clippy::too_many_arguments)] // the pass's state, the head's weights, the sequence
    pub fn queue_nll(
        &self,
        x: &GpuTensor,
        s: &Scratch,
        final_norm: Option<&GpuMatrix>,
        head: &GpuMatrix,
        ids: &[u32],
        b: usize,
        losses: &mut Losses,
    ) {
        let gpu = self.gpu;
        let (t, d, vocab) = (losses.t, self.arch.d_model, self.arch.vocab);
        let h = self.norm_or_identity(final_norm, x, &s.h, d);
        let ids_buffer = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("target ids"),
                contents: bytemuck::cast_slice(ids),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let offset = b * (t - 1);
        if let Some(logits) = losses.whole.as_mut() {
            gpu.linear(h, head, logits, false);
            self.nll_rows(logits, &ids_buffer, (t, 0, t, offset), &losses.nll);
            return;
        }
        for row0 in (0..t).step_by(losses.chunk_rows) {
            let n = losses.chunk_rows.min(t - row0);
            let chunk = gpu.zeros(n, d);
            gpu.copy_rows(h, row0, &chunk);
            let mut logits = gpu.zeros(n, vocab);
            gpu.linear(&chunk, head, &mut logits, false);
            self.nll_rows(&logits, &ids_buffer, (n, row0, t, offset), &losses.nll);
        }
    }

    /// `out = k·P_h` per kv-head h of layer `l` (key_edit.wgsl), returning `out`.
    fn edit_keys<'a>(
        &self,
        k: &GpuTensor,
        edit: &GpuTensor,
        l: usize,
        out: &'a GpuTensor,
    ) -> &'a GpuTensor {
        let (n_kv, d_k) = (self.arch.n_kv_heads, self.arch.d_k);
        let params = EditParams {
            rows: to_u32(k.rows, "tokens"),
            heads: to_u32(n_kv, "kv-heads"),
            d_k: to_u32(d_k, "d_k"),
            offset: to_u32(l * n_kv * d_k * d_k, "key edit offset"),
        };
        let groups = self
            .gpu
            .fold_groups((k.rows * n_kv * d_k).div_ceil(ELEMENT_LANES));
        self.gpu.dispatch(
            &self.gpu.forward.key_edit,
            bytemuck::bytes_of(&params),
            &[&k.buffer, &edit.buffer, &out.buffer],
            groups,
        );
        out
    }

    /// Queues nll.wgsl over `rows` rows of `logits` (positions `row0..`, of a sequence of `t`),
    /// writing target p's loss at `nll[offset + p]`.
    fn nll_rows(
        &self,
        logits: &GpuTensor,
        ids: &wgpu::Buffer,
        (rows, row0, t, offset): (usize, usize, usize, usize),
        nll: &GpuTensor,
    ) {
        let params = NllParams {
            rows: to_u32(rows, "logit rows"),
            vocab: to_u32(self.arch.vocab, "vocabulary"),
            row0: to_u32(row0, "position"),
            t: to_u32(t, "tokens"),
            out_offset: to_u32(offset, "target offset"),
            pad: [0; 3],
        };
        let groups = self.gpu.fold_groups(rows);
        self.gpu.dispatch(
            &self.gpu.forward.nll,
            bytemuck::bytes_of(&params),
            &[&logits.buffer, ids, &nll.buffer],
            groups,
        );
    }

    /// `out = RMSNorm(x)` over rows of `width` with γ, returning `out`; without γ (a norm the
    /// model does not have) nothing runs and `x` itself is returned.
    fn norm_or_identity<'a>(
        &self,
        gamma: Option<&GpuMatrix>,
        x: &'a GpuTensor,
        out: &'a GpuTensor,
        width: usize,
    ) -> &'a GpuTensor {
        let Some(gamma) = gamma else { return x };
        let rows = x.rows * x.cols / width;
        let params = NormParams {
            rows: to_u32(rows, "norm rows"),
            width: to_u32(width, "norm width"),
            eps: self.norm_eps,
            pad: 0,
        };
        let groups = self.gpu.fold_groups(rows);
        self.gpu.dispatch(
            &self.gpu.forward.rms_norm,
            bytemuck::bytes_of(&params),
            &[&x.buffer, &gamma.buffer, &out.buffer],
            groups,
        );
        out
    }

    /// RoPE's cos/sin for sequences of `t` tokens, uploaded.
    pub fn rope_table(&self, t: usize) -> RopeTable {
        let half = self.arch.d_k / 2;
        let (cos, sin) = rope_cos_sin(&self.arch, t);
        RopeTable {
            t,
            cos: self.gpu.upload_tensor(&cos, t, half),
            sin: self.gpu.upload_tensor(&sin, t, half),
        }
    }

    /// `out = RoPE(x)` for a token-major `[t, heads·d_k]` buffer, returning `out`; `x` itself
    /// when the model has no RoPE.
    fn rotate<'a>(
        &self,
        table: &RopeTable,
        x: &'a GpuTensor,
        out: &'a GpuTensor,
        heads: usize,
    ) -> &'a GpuTensor {
        let style = match self.arch.rope {
            Rope::InterleavedPairs => 0,
            Rope::RotateHalf => 1,
            Rope::None => return x,
        };
        let half = self.arch.d_k / 2;
        let rows = x.rows * heads;
        let params = RopeParams {
            rows: to_u32(rows, "RoPE rows"),
            heads: to_u32(heads, "heads"),
            half: to_u32(half, "d_k / 2"),
            style,
        };
        let groups = self.gpu.fold_groups((rows * half).div_ceil(ELEMENT_LANES));
        self.gpu.dispatch(
            &self.gpu.forward.rope,
            bytemuck::bytes_of(&params),
            &[&x.buffer, &table.cos.buffer, &table.sin.buffer, &out.buffer],
            groups,
        );
        out
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        scores: &GpuTensor,
        out: &GpuTensor,
        t: usize,
    ) {
        let arch = &self.arch;
        let params = AttentionParams {
            t: to_u32(t, "tokens"),
            n_heads: to_u32(arch.n_heads, "heads"),
            n_kv: to_u32(arch.n_kv_heads, "kv-heads"),
            d_k: to_u32(arch.d_k, "d_k"),
            scale: 1.0 / (arch.d_k as f32).sqrt(),
            pad: [0; 3],
        };
        let groups = self.gpu.fold_groups(t * arch.n_heads);
        self.gpu.dispatch(
            &self.gpu.forward.attention,
            bytemuck::bytes_of(&params),
            &[&q.buffer, &k.buffer, &v.buffer, &scores.buffer, &out.buffer],
            groups,
        );
    }

    /// relu² of `values` in place, or silu(`values`)·`up` into `values`.
    fn activation(
        &self,
        pipeline: &wgpu::ComputePipeline,
        values: &GpuTensor,
        up: Option<&GpuTensor>,
    ) {
        let len = values.rows * values.cols;
        let params = ElementParams {
            len: to_u32(len, "MLP elements"),
            width: 0,
            scale: 0.0,
            pad: 0,
        };
        let groups = self.gpu.fold_groups(len.div_ceil(ELEMENT_LANES));
        let buffers: Vec<&wgpu::Buffer> = std::iter::once(&values.buffer)
            .chain(up.map(|u| &u.buffer))
            .collect();
        self.gpu
            .dispatch(pipeline, bytemuck::bytes_of(&params), &buffers, groups);
    }
}

/// Which of a layer's activations a pass keeps for reading back (see [`GpuModel::probe`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keep {
    pub k_normed: bool,
    pub k_raw: bool,
    pub k_rope: bool,
    pub q_normed: bool,
}

impl Keep {
    /// Whether anything is kept.
    pub fn any(&self) -> bool {
        self.k_normed || self.k_raw || self.k_rope || self.q_normed
    }

    /// Keeps the matrices for which `wants` is true.
    pub fn of(wants: impl Fn(Activation) -> bool) -> Self {
        Self {
            k_normed: wants(Activation::Keys),
            k_raw: wants(Activation::RawKeys),
            k_rope: wants(Activation::RotatedKeys),
            q_normed: wants(Activation::Queries),
        }
    }

    /// Per layer, the matrices of the heads in `needed` ((layer, activation, head), the heads
    /// whose Gram was not trusted): what a second pass reads back.
    pub fn per_layer(needed: &HashSet<(usize, Activation, usize)>, n_layers: usize) -> Vec<Self> {
        (0..n_layers)
            .map(|l| Self::of(|a| needed.iter().any(|&(nl, na, _)| nl == l && na == a)))
            .collect()
    }
}

/// A layer's per-head Grams of the matrices a [`Keep`] asks for, summed over sequences on the GPU.
pub(crate) struct LayerGrams {
    pub k_normed: Option<GramAccumulator>,
    pub k_raw: Option<GramAccumulator>,
    pub k_rope: Option<GramAccumulator>,
    pub q_normed: Option<GramAccumulator>,
}

impl LayerGrams {
    /// Each activation's accumulator, `None` where not kept; in a fixed order.
    pub fn accumulators(&self) -> [(Activation, &Option<GramAccumulator>); 4] {
        [
            (Activation::Keys, &self.k_normed),
            (Activation::RawKeys, &self.k_raw),
            (Activation::RotatedKeys, &self.k_rope),
            (Activation::Queries, &self.q_normed),
        ]
    }

    /// Queues `kept`'s matrices (one sequence's, as this layer's [`Keep`] asked) into their
    /// accumulators; nothing is read back.
    pub fn add(&mut self, gpu: &Gpu, kept: &KeptLayer) {
        let pairs = [
            (&kept.k_normed, &mut self.k_normed),
            (&kept.k_raw, &mut self.k_raw),
            (&kept.k_rope, &mut self.k_rope),
            (&kept.q_normed, &mut self.q_normed),
        ];
        for (tensor, accumulator) in pairs {
            if let (Some(tensor), Some(accumulator)) = (tensor, accumulator) {
                gpu.accumulate_gram(tensor, accumulator);
            }
        }
    }

    /// Empty compensated accumulators for sequences of `t` tokens, one per matrix `keep` asks for.
    pub fn new(gpu: &Gpu, arch: &Architecture, keep: Keep, t: usize) -> Self {
        let accumulator = |wanted: bool, heads: usize| {
            wanted.then(|| gpu.gram_accumulator(t, heads, arch.d_k, GramAccumulation::Compensated))
        };
        Self {
            k_normed: accumulator(keep.k_normed, arch.n_kv_heads),
            k_raw: accumulator(keep.k_raw, arch.n_kv_heads),
            k_rope: accumulator(keep.k_rope, arch.n_kv_heads),
            q_normed: accumulator(keep.q_normed, arch.n_heads),
        }
    }
}

/// Reads `grams` back in one transfer into `out`, `grams[i]` as layer `first + i`.
pub(crate) async fn read_layer_grams(
    gpu: &Gpu,
    first: usize,
    grams: &[LayerGrams],
    out: &mut GramProbe,
) -> Result<(), GpuError> {
    let accumulators: Vec<_> = grams
        .iter()
        .flat_map(|g| g.accumulators())
        .filter_map(|(_, accumulator)| accumulator.as_ref())
        .collect();
    let mut read = gpu.read_grams(&accumulators).await?.into_iter();
    for (i, g) in grams.iter().enumerate() {
        for (activation, accumulator) in g.accumulators() {
            if accumulator.is_some() {
                let heads = read.next().expect("one read-back per accumulator");
                out.set(first + i, activation, heads);
            }
        }
    }
    Ok(())
}

/// A layer's kept activations on the GPU, token-major `[t, heads·d_k]`.
pub(crate) struct KeptLayer {
    k_normed: Option<GpuTensor>,
    k_raw: Option<GpuTensor>,
    k_rope: Option<GpuTensor>,
    q_normed: Option<GpuTensor>,
}

/// A layer's kept activations read back, `[head][t·d_k]` row-major per head (empty when not kept).
pub(crate) struct ProbedLayer {
    pub k_normed: Vec<Vec<f32>>,
    pub k_raw: Vec<Vec<f32>>,
    pub k_rope: Vec<Vec<f32>>,
    pub q_normed: Vec<Vec<f32>>,
}

impl ProbedLayer {
    /// Hands layer `l`'s read-back blocks, head by head, to `probe`.
    pub fn add_to(self, l: usize, probe: &mut BlockProbe) {
        for (activation, heads) in [
            (Activation::Keys, self.k_normed),
            (Activation::RawKeys, self.k_raw),
            (Activation::RotatedKeys, self.k_rope),
            (Activation::Queries, self.q_normed),
        ] {
            for (h, block) in heads.iter().enumerate() {
                probe.add(l, activation, h, block);
            }
        }
    }
}

/// Queues `into = result` when a kept buffer was asked for and a step skipped (no norm, no RoPE)
/// handed back its input instead of writing into it.
fn keep_copy(gpu: &Gpu, result: &GpuTensor, into: Option<&GpuTensor>) {
    if let Some(into) = into.filter(|into| !std::ptr::eq(*into, result)) {
        gpu.copy(result, into);
    }
}

/// Token-major `[t, heads·d_k]` to one `[t, d_k]` row-major block per head.
fn split_heads(data: &[f32], t: usize, heads: usize, d_k: usize) -> Vec<Vec<f32>> {
    let head = |h: usize| {
        (0..t)
            .flat_map(|p| &data[(p * heads + h) * d_k..][..d_k])
            .copied()
            .collect()
    };
    (0..heads).map(head).collect()
}

/// Whether a buffer of `len` f32 fits the adapter's storage-binding and buffer limits.
pub(crate) fn check_fits(gpu: &Gpu, what: String, len: usize) -> Result<(), GpuError> {
    let limit = gpu.max_buffer_bytes();
    let bytes = 4 * len as u64;
    if bytes > limit {
        return Err(GpuError::TooLarge { what, bytes, limit });
    }
    Ok(())
}

impl Scratch {
    /// The scratch of a pass of `t` tokens (with a buffer for edited keys when `edit`), RoPE's
    /// table for `t` with it; refused when the largest activations do not fit the adapter.
    pub fn new(k: &Kernels, t: usize, edit: bool, rope: Rc<RopeTable>) -> Result<Self, GpuError> {
        let (gpu, arch) = (k.gpu, &k.arch);
        let (d, d_k, d_ff) = (arch.d_model, arch.d_k, arch.d_ff);
        let (n_heads, n_kv) = (arch.n_heads, arch.n_kv_heads);
        // The largest activations: every head's probabilities, the MLP's hidden layer (the
        // logits, when asked for, are made in chunks that fit: `logits`).
        check_activations_fit(gpu, arch, t)?;
        Ok(Self {
            h: gpu.zeros(t, d),
            q_proj: gpu.zeros(t, n_heads * d_k),
            q_normed: gpu.zeros(t, n_heads * d_k),
            q_rope: gpu.zeros(t, n_heads * d_k),
            k_proj: gpu.zeros(t, n_kv * d_k),
            k_normed: gpu.zeros(t, n_kv * d_k),
            k_rope: gpu.zeros(t, n_kv * d_k),
            k_edited: gpu.zeros(if edit { t } else { 0 }, n_kv * d_k),
            v: gpu.zeros(t, n_kv * d_k),
            scores: gpu.zeros(n_heads * t, t),
            attn: gpu.zeros(t, n_heads * d_k),
            ff_a: gpu.zeros(t, d_ff),
            ff_b: gpu.zeros(t, d_ff),
            rope,
        })
    }
}

/// The per-target losses of a held-out batch on the GPU, `[B·(T−1)]`, queued sequence by
/// sequence ([`Kernels::queue_nll`]), with the logits buffer every sequence reuses when its
/// logits fit one buffer.
pub(crate) struct Losses {
    pub nll: GpuTensor,
    pub targets: usize,
    t: usize,
    /// Rows of logits the head makes at a time.
    chunk_rows: usize,
    whole: Option<GpuTensor>,
}

impl Losses {
    pub fn new(k: &Kernels, batch: &TokenBatch) -> Result<Self, GpuError> {
        let (gpu, vocab, t) = (k.gpu, k.arch.vocab, batch.seq_len);
        let targets = batch.batch * t.saturating_sub(1);
        check_fits(gpu, format!("the losses of {targets} targets"), targets)?;
        check_fits(gpu, "the logits of one token".into(), vocab)?;
        let chunk_rows = ((gpu.max_buffer_bytes() / (4 * vocab.max(1) as u64)).max(1) as usize)
            .clamp(1, t.max(1));
        Ok(Self {
            nll: gpu.zeros(targets, 1),
            targets,
            t,
            chunk_rows,
            whole: (chunk_rows == t).then(|| gpu.zeros(t, vocab)),
        })
    }
}

/// One block's weights uploaded (block `l` of `arch`): matrices as [`GpuMatrix`], each checked
/// against the adapter's limits; norms' γ as one-row matrices. A plain MLP is
/// [`GpuError::UnsupportedModel`] (the callers refuse the model's other extensions first).
pub(crate) fn upload_layer(
    gpu: &Gpu,
    arch: &Architecture,
    l: usize,
    layer: &LayerView<'_>,
) -> Result<GpuLayer, GpuError> {
    let matrix =
        |what: &str, m: MatrixView<'_>| upload_checked(gpu, format!("layer {l} {what}"), m);
    let vector = |gamma: Option<&[f32]>| upload_gamma(gpu, gamma);
    let mlp = match layer.mlp {
        MlpView::SquaredRelu { up, down } => GpuMlp::SquaredRelu {
            up: matrix("MLP up", up)?,
            down: matrix("MLP down", down)?,
        },
        MlpView::SwiGlu { gate, up, down } => GpuMlp::SwiGlu {
            gate: matrix("MLP gate", gate)?,
            up: matrix("MLP up", up)?,
            down: matrix("MLP down", down)?,
        },
        // Among the model's extensions, refused before: never uploaded as something else.
        MlpView::Plain { .. } => {
            return Err(GpuError::UnsupportedModel {
                family: arch.family.label(),
                needs: "a plain (non-gated) MLP".into(),
            })
        }
    };
    Ok(GpuLayer {
        w_q: matrix("W_q", layer.w_q)?,
        w_k: matrix("W_k", layer.w_k)?,
        w_v: matrix("W_v", layer.w_v)?,
        w_o: matrix("W_o", layer.w_o)?,
        q_norm: vector(layer.q_norm),
        k_norm: vector(layer.k_norm),
        attn_norm: vector(layer.attn_norm),
        mlp_norm: vector(layer.mlp_norm),
        mlp,
    })
}

/// `m` uploaded, once [`check_fits`] allows it.
pub(crate) fn upload_checked(
    gpu: &Gpu,
    what: String,
    m: MatrixView<'_>,
) -> Result<GpuMatrix, GpuError> {
    check_fits(gpu, what, m.values.len())?;
    // A bf16 weight is widened for the upload (the GPU's kernels read f32), one at a time.
    Ok(gpu.upload_matrix(&m.values.to_f32(), m.rows, m.cols))
}

/// A norm's γ as a one-row matrix, when the model has the norm.
pub(crate) fn upload_gamma(gpu: &Gpu, gamma: Option<&[f32]>) -> Option<GpuMatrix> {
    gamma.map(|g| gpu.upload_matrix(g, 1, g.len()))
}

/// Whether sequences of `t` tokens fit the adapter's buffers: the attention probabilities and
/// the MLP activations are the largest.
pub(crate) fn check_activations_fit(
    gpu: &Gpu,
    arch: &Architecture,
    t: usize,
) -> Result<(), GpuError> {
    check_fits(
        gpu,
        format!("attention probabilities of {t} tokens"),
        arch.n_heads * t * t,
    )?;
    check_fits(
        gpu,
        format!("the MLP activations of {t} tokens"),
        t * arch.d_ff,
    )
}
