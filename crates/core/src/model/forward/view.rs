//! A read-only view of [`ModelWeights`] for other forward-pass implementations (the GPU one
//! in `rankscope-gpu`): every weight as a slice with its shape, plus the constants the CPU
//! pass uses (embedding scale, RoPE table), taken from the same code so that the two passes
//! cannot drift apart.

use super::kernels::Matrix;
use super::load::{LayerSpectra, Mlp};
use super::ModelWeights;
use crate::model::arch::{Activation, Architecture, Family, NormKind};
use crate::model::tensors::WeightValues;

/// A weight matrix, row-major `[rows (out), cols (in)]`: f32, or a bf16 checkpoint's own
/// values (see [`WeightValues::to_f32`]).
#[derive(Debug, Clone, Copy)]
pub struct MatrixView<'a> {
    pub values: &'a WeightValues,
    pub rows: usize,
    pub cols: usize,
}

/// The MLP of one block (see the module doc of `forward` for the formulas).
#[derive(Debug, Clone, Copy)]
pub enum MlpView<'a> {
    /// Reference: `down(relu(up(x))²)`.
    SquaredRelu {
        up: MatrixView<'a>,
        down: MatrixView<'a>,
    },
    /// Llama: `down(silu(gate(x)) · up(x))`.
    SwiGlu {
        gate: MatrixView<'a>,
        up: MatrixView<'a>,
        down: MatrixView<'a>,
    },
    /// GPT-2: `proj(act(fc(x)))` with `arch.activation`.
    Plain {
        fc: MatrixView<'a>,
        proj: MatrixView<'a>,
    },
}

/// One transformer block. A norm the architecture does not name is `None` and left out.
#[derive(Debug, Clone, Copy)]
pub struct LayerView<'a> {
    /// `[n_heads·d_k, d_model]`.
    pub w_q: MatrixView<'a>,
    /// `[n_kv_heads·d_k, d_model]`.
    pub w_k: MatrixView<'a>,
    pub w_v: MatrixView<'a>,
    /// `[d_model, n_heads·d_k]`.
    pub w_o: MatrixView<'a>,
    /// γ over d_k, applied per head.
    pub q_norm: Option<&'a [f32]>,
    pub k_norm: Option<&'a [f32]>,
    /// γ over d_model (pre-norm before attention and before the MLP).
    pub attn_norm: Option<&'a [f32]>,
    pub mlp_norm: Option<&'a [f32]>,
    pub mlp: MlpView<'a>,
}

/// Everything a forward pass reads, borrowed from a [`ModelWeights`].
#[derive(Debug, Clone)]
pub struct ModelView<'a> {
    pub arch: &'a Architecture,
    /// `[vocab, d_model]`.
    pub embedding: MatrixView<'a>,
    /// x = embedding[id] · `embedding_scale`.
    pub embedding_scale: f32,
    /// `[vocab, d_model]`: the embedding itself when tied.
    pub lm_head: MatrixView<'a>,
    /// Whether `lm_head` is the embedding (so an uploader can share one buffer).
    pub lm_head_is_embedding: bool,
    pub final_norm: Option<&'a [f32]>,
    /// ε of every RMSNorm, as the CPU pass uses it (f32).
    pub norm_eps: f32,
    pub layers: Vec<LayerView<'a>>,
    /// What the model needs beyond what the views above describe (biases,
    /// LayerNorm, learned positions, a sliding window, an activation other
    /// than the family's own), e.g. `["biases", "LayerNorm"]`. Empty for the
    /// reference and plain Llama models. A pass that reads only the views must
    /// refuse a model with any of these rather than compute something else.
    pub extensions: Vec<&'static str>,
}

pub(super) fn matrix(m: &Matrix) -> MatrixView<'_> {
    MatrixView {
        values: &m.values,
        rows: m.rows,
        cols: m.cols,
    }
}

pub(super) fn layer(l: &LayerSpectra) -> LayerView<'_> {
    LayerView {
        w_q: matrix(&l.w_q),
        w_k: matrix(&l.w_k),
        w_v: matrix(&l.w_v),
        w_o: matrix(&l.w_o),
        q_norm: l.q_norm.as_deref(),
        k_norm: l.k_norm.as_deref(),
        attn_norm: l.attn_norm.as_ref().map(|n| n.gamma.as_slice()),
        mlp_norm: l.mlp_norm.as_ref().map(|n| n.gamma.as_slice()),
        mlp: match &l.mlp {
            Mlp::SquaredRelu { up, down } => MlpView::SquaredRelu {
                up: matrix(up),
                down: matrix(down),
            },
            Mlp::SwiGlu { gate, up, down } => MlpView::SwiGlu {
                gate: matrix(gate),
                up: matrix(up),
                down: matrix(down),
            },
            Mlp::Plain { fc, proj } => MlpView::Plain {
                fc: matrix(fc),
                proj: matrix(proj),
            },
        },
    }
}

/// [`ModelView::extensions`] of `w`: its blocks' ([`layer_extensions`]), then the model's own
/// ([`model_extensions`]).
fn extensions(w: &ModelWeights) -> Vec<&'static str> {
    let mut found = Vec::new();
    for l in &w.layers {
        layer_extensions(l, &mut found);
    }
    for what in model_extensions(w.arch()) {
        note(&mut found, true, what);
    }
    found
}

/// Adds `what` to `found` when `yes` and not there yet.
fn note(found: &mut Vec<&'static str>, yes: bool, what: &'static str) {
    if yes && !found.contains(&what) {
        found.push(what);
    }
}

/// What one block needs beyond the views (biases, a sliding window, a plain MLP), added to
/// `found`: a streamed pass checks each block as it reads it.
pub(super) fn layer_extensions(l: &LayerSpectra, found: &mut Vec<&'static str>) {
    let mut mats = vec![&l.w_q, &l.w_k, &l.w_v, &l.w_o];
    match &l.mlp {
        Mlp::SquaredRelu { up, down } => mats.extend([up, down]),
        Mlp::SwiGlu { gate, up, down } => mats.extend([gate, up, down]),
        Mlp::Plain { fc, proj } => mats.extend([fc, proj]),
    }
    note(found, mats.iter().any(|m| m.bias.is_some()), "biases");
    note(found, l.window.is_some(), "sliding-window attention");
    note(
        found,
        matches!(l.mlp, Mlp::Plain { .. }),
        "a plain (non-gated) MLP",
    );
}

/// [`ModelView::extensions`] from the architecture alone, in the same order, so that a streamed
/// pass can refuse a model before reading anything: the blocks' (the biases and windows
/// [`LayerTensors`] names, GPT-2's plain MLP), then the model's own (LayerNorm, learned positions,
/// an activation other than the family's own).
///
/// [`LayerTensors`]: crate::model::arch::LayerTensors
pub(super) fn arch_extensions(arch: &Architecture) -> Vec<&'static str> {
    let mut found = Vec::new();
    for t in &arch.layers {
        let b = &t.biases;
        let biased = [&b.q, &b.k, &b.v, &b.o].iter().any(|b| b.is_some())
            || b.mlp.iter().any(Option::is_some);
        note(&mut found, biased, "biases");
        note(&mut found, t.window.is_some(), "sliding-window attention");
        note(
            &mut found,
            arch.family == Family::Gpt2,
            "a plain (non-gated) MLP",
        );
    }
    for what in model_extensions(arch) {
        note(&mut found, true, what);
    }
    found
}

/// What the model needs beyond the views whatever its blocks hold (LayerNorm, learned
/// positions, an activation other than the family's own).
fn model_extensions(arch: &Architecture) -> Vec<&'static str> {
    let mut found = Vec::new();
    note(&mut found, arch.norm != NormKind::Rms, "LayerNorm");
    note(
        &mut found,
        arch.position_embedding.is_some(),
        "learned position embeddings",
    );
    let own = match arch.family {
        Family::Reference => Activation::ReluSquared,
        Family::Llama | Family::MetaLlama => Activation::Silu,
        Family::Gpt2 => Activation::GeluTanh,
    };
    note(
        &mut found,
        arch.activation != own,
        "an activation other than the family's own",
    );
    found
}

/// The factor the embedding rows are multiplied by: √d_model for the reference model, 1 otherwise.
pub(super) fn embedding_scale(arch: &Architecture) -> f32 {
    match arch.family {
        Family::Reference => (arch.d_model as f64).sqrt() as f32,
        Family::Llama | Family::Gpt2 | Family::MetaLlama => 1.0,
    }
}

impl ModelWeights {
    /// Every weight, borrowed, with the constants of the forward pass.
    pub fn view(&self) -> ModelView<'_> {
        let arch = self.arch();
        ModelView {
            arch,
            embedding: matrix(&self.embedding),
            embedding_scale: embedding_scale(arch),
            lm_head: matrix(self.lm_head()),
            lm_head_is_embedding: std::ptr::eq(self.lm_head(), &self.embedding),
            final_norm: self.final_norm.as_ref().map(|n| n.gamma.as_slice()),
            norm_eps: arch.norm_eps as f32,
            layers: self.layers.iter().map(layer).collect(),
            extensions: extensions(self),
        }
    }
}
