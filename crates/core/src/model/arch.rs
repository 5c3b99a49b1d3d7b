//! Architecture recognition: which model family a checkpoint holds, its sizes,
//! and where each layer's W_q, W_k, W_v, W_o and norms live among its tensors.
//!
//! Input is plain data — the `(name, shape)` pairs of a checkpoint, its
//! `__metadata__` map and an optional parsed `config.json` — so recognition
//! depends on no file reader. Names are matched after removing wrapper prefixes
//! ([`super::names`]); every name in an [`Architecture`] is the name *as
//! stored*, so a reader can fetch the tensor.
//!
//! Families (one file each under `arch/`):
//! - [`Family::Reference`]: the user's MinimalLLM, merged `qkvo_proj`.
//! - [`Family::Llama`]: Hugging Face Llama / Mistral / Qwen2 / Qwen3 names,
//!   with or without the `model.` prefix.
//! - [`Family::Gpt2`]: GPT-2, fused Conv1D `c_attn`.
//! - [`Family::MetaLlama`]: Meta's `consolidated.00.pth` names with `params.json`
//!   (Q and K per head in Meta's coordinates: see `arch/meta.rs`).
//!
//! Recognition and the forward pass are separate questions: a recognised
//! checkpoint whose config asks for something the pass does not do (a RoPE
//! scaling, an activation it has no kernel for) says so in
//! [`Architecture::no_forward_pass`] and still gets its weight spectra.
//!
//! Recognition never guesses: a missing or misshapen tensor, a gap in the
//! layers, a config that disagrees with the shapes, or a head count that the
//! shapes cannot tell is [`Recognition::Unknown`] with a reason that names the
//! tensor and both numbers. W_k follows `shared/METRICS.md`: the `d_k × d_model`
//! block of the key projection that produces one kv-head.

mod config;
mod gpt2;
mod llama;
mod lookup;
mod meta;
mod reference;
mod rope;

use std::collections::BTreeMap;

pub use config::is_meta_params;
use config::Config;
use lookup::Lookup;
pub use meta::meta_ffn_hidden;

/// A model family whose tensor layout rankscope knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// The user's MinimalLLM: merged `qkvo_proj [q+k+v+o, d_model]`.
    Reference,
    /// Hugging Face Llama / Mistral / Qwen2 / Qwen3 names (separate q/k/v/o projections).
    Llama,
    /// GPT-2: fused Conv1D `c_attn [d_model, 3·d_model]`.
    Gpt2,
    /// Meta's original Llama layout (`consolidated.00.pth` + `params.json`: `tok_embeddings`,
    /// `attention.wq`, `feed_forward.w1`, …), interleaved-pair RoPE.
    MetaLlama,
}

impl Family {
    /// Lower-case name used in summaries and messages.
    pub fn label(self) -> &'static str {
        match self {
            Family::Reference => "reference",
            Family::Llama => "llama",
            Family::Gpt2 => "gpt2",
            Family::MetaLlama => "meta-llama",
        }
    }
}

/// How positions enter attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rope {
    /// Rotate pairs `(x[2i], x[2i+1])` (torchtune; the reference model).
    InterleavedPairs,
    /// Rotate `(x[i], x[i + d/2])` (Hugging Face `rotate_half`).
    RotateHalf,
    /// No rotary embedding (GPT-2: learned absolute positions).
    None,
}

/// How RoPE's frequencies are rescaled for contexts longer than the model was
/// trained on: Hugging Face's `rope_parameters` / `rope_scaling` (`rope_type`),
/// or Meta's `use_scaled_rope`. The forward pass computes the frequencies as
/// transformers' `ROPE_INIT_FUNCTIONS` do (`model/forward/rope.rs`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RopeScaling {
    /// θ_i = base^(−2i/d_k) (`rope_type` "default").
    None,
    /// Every frequency divided by `factor` (positions interpolated).
    Linear { factor: f64 },
    /// Dynamic NTK: for a sequence of t > `max_positions` tokens the base becomes
    /// base·(factor·t/max_positions − (factor − 1))^(d_k/(d_k−2)); no change for t ≤ `max_positions`.
    Dynamic { factor: f64, max_positions: usize },
    /// Llama 3.1: wavelengths above `original_max_positions / low_freq_factor` divided by
    /// `factor`, below `original_max_positions / high_freq_factor` kept, smoothly blended between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: usize,
    },
    /// YaRN: interpolation and extrapolation blended by a linear ramp over the dimensions
    /// between the `beta_fast` and `beta_slow` rotation counts, and cos/sin multiplied by
    /// `attention_factor`.
    Yarn {
        factor: f64,
        original_max_positions: usize,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// `rope_type` as transformers names it ("default" for none).
    pub fn label(&self) -> &'static str {
        match self {
            RopeScaling::None => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Llama3 { .. } => "llama3",
            RopeScaling::Yarn { .. } => "yarn",
        }
    }
}

/// Where a matrix lives: a whole tensor, or a row/column block of one (merged projections).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WeightLoc {
    /// The whole tensor, `[out, in]` as stored.
    Whole { tensor: String },
    /// Rows `start..end` of a stored `[out, in]` tensor.
    Rows {
        tensor: String,
        start: usize,
        end: usize,
    },
    /// Columns `start..end` of a GPT-2 Conv1D tensor stored `[in, out]`; the
    /// TRANSPOSE of that block is the `[out, in]` matrix.
    Cols {
        tensor: String,
        start: usize,
        end: usize,
    },
}

impl WeightLoc {
    /// The name (as stored) of the tensor that holds the matrix.
    pub fn tensor(&self) -> &str {
        match self {
            WeightLoc::Whole { tensor }
            | WeightLoc::Rows { tensor, .. }
            | WeightLoc::Cols { tensor, .. } => tensor,
        }
    }

    /// Output dimensions `offset..offset + len` of this matrix, as a block of
    /// the same stored tensor (a `Whole` becomes `Rows`).
    pub fn output_block(&self, offset: usize, len: usize) -> WeightLoc {
        let end_of = |start: usize| start.saturating_add(offset).saturating_add(len);
        match self {
            WeightLoc::Whole { tensor } => WeightLoc::Rows {
                tensor: tensor.clone(),
                start: offset,
                end: end_of(0),
            },
            WeightLoc::Rows { tensor, start, .. } => WeightLoc::Rows {
                tensor: tensor.clone(),
                start: start.saturating_add(offset),
                end: end_of(*start),
            },
            WeightLoc::Cols { tensor, start, .. } => WeightLoc::Cols {
                tensor: tensor.clone(),
                start: start.saturating_add(offset),
                end: end_of(*start),
            },
        }
    }
}

/// The normalisation of the pre-norms and the final norm (per-head q/k norms are always RMSNorm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NormKind {
    /// `x / √(mean(x²) + ε) · γ` (reference, Llama family).
    Rms,
    /// `(x − mean) / √(var + ε) · γ + β` (GPT-2).
    Layer,
}

/// The MLP's nonlinearity: applied to the gate of a gated MLP (Llama family)
/// or to the hidden layer of a plain one (GPT-2, reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `relu(x)²` (the reference model).
    ReluSquared,
    /// `x · sigmoid(x)` (`silu`, Llama's SwiGLU).
    Silu,
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`; GPT-2).
    GeluTanh,
    /// Exact GELU with erf (`gelu`).
    Gelu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// The activation a Hugging Face config names (`hidden_act`, `activation_function`);
    /// `None` for one the forward pass has no kernel for.
    pub fn from_hf_name(name: &str) -> Option<Activation> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "gelu" => Some(Activation::Gelu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// A bias vector, or the range `start..end` of a stored vector (GPT-2's fused
/// `c_attn.bias [3·d]` holds the q, k and v biases one after the other).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BiasLoc {
    pub tensor: String,
    pub start: usize,
    pub end: usize,
}

/// The biases of one block, where the family has them (none for the reference
/// model and bias-free Llama; q/k/v for Qwen2; everything for GPT-2).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LayerBiases {
    pub q: Option<BiasLoc>,
    pub k: Option<BiasLoc>,
    pub v: Option<BiasLoc>,
    pub o: Option<BiasLoc>,
    /// LayerNorm β of the pre-attention / pre-MLP norm (GPT-2).
    pub attn_norm: Option<String>,
    pub mlp_norm: Option<String>,
    /// One per tensor of [`LayerTensors::mlp`], same order.
    pub mlp: Vec<Option<BiasLoc>>,
}

/// The tensors of one transformer block (names as stored).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerTensors {
    /// Query projection, `[n_heads·d_k, d_model]`.
    pub w_q: WeightLoc,
    /// Key projection, `[n_kv_heads·d_k, d_model]`.
    pub w_k: WeightLoc,
    /// Value projection, `[n_kv_heads·d_k, d_model]`.
    pub w_v: WeightLoc,
    /// Output projection, `[d_model, n_heads·d_k]`.
    pub w_o: WeightLoc,
    /// Per-head query norm weight `[d_k]` (QK-norm models).
    pub q_norm: Option<String>,
    /// Per-head key norm weight `[d_k]`, the γ of METRICS.md (QK-norm models).
    pub k_norm: Option<String>,
    /// Pre-attention norm weight.
    pub attn_norm: Option<String>,
    /// Pre-MLP norm weight.
    pub mlp_norm: Option<String>,
    /// MLP weights: reference `[up, down]`; Llama `[gate, up, down]`; GPT-2 `[c_fc, c_proj]`.
    pub mlp: Vec<String>,
    /// The block's remaining tensors that its layout allows: biases (GPT-2
    /// `c_attn.bias`, `ln_1.bias`, …; Qwen2-style `q_proj.bias`) and buffers
    /// (`rotary_emb.inv_freq`, GPT-2 `attn.bias`). Empty for the reference
    /// model and bias-free Llama. Any other extra tensor makes the checkpoint `Unknown`.
    pub other: Vec<String>,
    /// The biases among those tensors that the forward pass adds, by role.
    pub biases: LayerBiases,
    /// Sliding-window attention: a position sees itself and the `window − 1`
    /// positions before it (Mistral; Qwen2/3 with `use_sliding_window`). `None`: all earlier ones.
    pub window: Option<usize>,
}

/// A recognised checkpoint: family, sizes and where every tensor lives.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Architecture {
    pub family: Family,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_k: usize,
    pub d_ff: usize,
    pub vocab: usize,
    /// The longest token sequence the model takes (its context): the config's
    /// `max_position_embeddings` / `n_positions` / `block_size` / `max_seq_len`, or the
    /// rows of a learned position embedding; `None` when nothing says. A token batch
    /// with longer sequences does not fit the model (`inventory::batches`).
    pub context: Option<usize>,
    pub qk_norm: bool,
    pub rope: Rope,
    /// RoPE base (0 when `rope` is [`Rope::None`]).
    pub rope_theta: f64,
    /// RoPE frequency scaling (long-context variants).
    pub rope_scaling: RopeScaling,
    /// Epsilon of every norm (RMSNorm; LayerNorm for GPT-2).
    pub norm_eps: f64,
    /// RMSNorm or LayerNorm for the pre-norms and the final norm.
    pub norm: NormKind,
    /// The MLP's nonlinearity.
    pub activation: Activation,
    /// Whether the output head is the embedding (see each family's module for the rule).
    pub tied_lm_head: bool,
    /// Token embedding `[vocab, d_model]`.
    pub embedding: String,
    /// The tensor that actually holds the output head (== `embedding` when tied and stored once).
    pub lm_head: String,
    pub final_norm: Option<String>,
    /// Learned position embedding (GPT-2 `wpe`), `[n_positions, d_model]`.
    pub position_embedding: Option<String>,
    /// LayerNorm β of the final norm (GPT-2 `ln_f.bias`).
    pub final_norm_bias: Option<String>,
    /// Why the forward pass cannot run this recognised model (a config
    /// setting it does not implement); `None` when it can. Weight spectra need no forward pass.
    pub no_forward_pass: Option<String>,
    pub layers: Vec<LayerTensors>,
    /// Model-level tensors outside the fields above that the layout allows (GPT-2 `ln_f.bias`).
    pub other: Vec<String>,
    /// The wrapper prefix removed from the names for matching (`"_orig_mod."`), if any.
    pub prefix_removed: Option<String>,
    /// How `n_heads` / `d_k` were determined: "metadata config", "config.json", "k_norm shape", …
    pub source_of_heads: String,
    /// Tensors of the file that the layout does not use (buffers, extras), as stored.
    pub unused: Vec<String>,
}

impl Architecture {
    /// The `d_k × d_model` block of W_k that produces kv-head `kv_head` of
    /// `layer` (METRICS.md): rows of `qkvo_proj` (reference), rows of `k_proj`
    /// (Llama), columns of `c_attn` (GPT-2). `None` when out of range.
    pub fn try_w_k_head(&self, layer: usize, kv_head: usize) -> Option<WeightLoc> {
        if kv_head >= self.n_kv_heads {
            return None;
        }
        let layer = self.layers.get(layer)?;
        Some(
            layer
                .w_k
                .output_block(kv_head.checked_mul(self.d_k)?, self.d_k),
        )
    }

    /// The `d_k × d_model` block of W_q that produces query head `head`; `None` when out of range.
    pub fn try_w_q_head(&self, layer: usize, head: usize) -> Option<WeightLoc> {
        if head >= self.n_heads {
            return None;
        }
        let layer = self.layers.get(layer)?;
        Some(
            layer
                .w_q
                .output_block(head.checked_mul(self.d_k)?, self.d_k),
        )
    }

    /// As [`Self::try_w_k_head`].
    ///
    /// # Panics
    /// If `layer >= n_layers` or `kv_head >= n_kv_heads` (a caller's bug, like
    /// indexing a slice out of range).
    pub fn w_k_head(&self, layer: usize, kv_head: usize) -> WeightLoc {
        match self.try_w_k_head(layer, kv_head) {
            Some(loc) => loc,
            None => panic!(
                "w_k_head({layer}, {kv_head}) out of range: {} layers, {} kv-heads",
                self.n_layers, self.n_kv_heads
            ),
        }
    }

    /// As [`Self::try_w_q_head`].
    ///
    /// # Panics
    /// If `layer >= n_layers` or `head >= n_heads`.
    pub fn w_q_head(&self, layer: usize, head: usize) -> WeightLoc {
        match self.try_w_q_head(layer, head) {
            Some(loc) => loc,
            None => panic!(
                "w_q_head({layer}, {head}) out of range: {} layers, {} heads",
                self.n_layers, self.n_heads
            ),
        }
    }

    /// Query heads per kv-head (GQA; 1 without it): heads `kv·group .. (kv+1)·group` read
    /// kv-head `kv`.
    pub fn kv_group(&self) -> usize {
        (self.n_heads / self.n_kv_heads.max(1)).max(1)
    }

    /// The kv-head that query head `head` reads (GQA `repeat_interleave`):
    /// `head / (n_heads / n_kv_heads)`.
    pub fn kv_head_of(&self, head: usize) -> usize {
        head / self.kv_group()
    }

    /// One line, e.g. `reference · 4 layers · d_model 64 · 4 heads / 2 kv · d_k 16 · QK-norm · vocab 256
    /// · context 128` (the context when known), ending in `· no forward pass: <why>` when [`Self::no_forward_pass`] says so.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} · {} layers · d_model {} · {} heads / {} kv · d_k {} · {} · vocab {}",
            self.family.label(),
            self.n_layers,
            self.d_model,
            self.n_heads,
            self.n_kv_heads,
            self.d_k,
            if self.qk_norm {
                "QK-norm"
            } else {
                "no QK-norm"
            },
            self.vocab
        );
        match self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor }
            | RopeScaling::Dynamic { factor, .. }
            | RopeScaling::Llama3 { factor, .. }
            | RopeScaling::Yarn { factor, .. } => {
                line.push_str(&format!(
                    " · RoPE scaling {} ×{factor}",
                    self.rope_scaling.label()
                ));
            }
        }
        if let Some(n) = self.context {
            line.push_str(&format!(" · context {n}"));
        }
        if let Some(why) = &self.no_forward_pass {
            line.push_str(" · no forward pass: ");
            line.push_str(why);
        }
        line
    }
}

/// The outcome of [`recognise`].
// The API fixes `Known(Architecture)` unboxed; one value exists per file, so the size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Recognition {
    Known(Architecture),
    /// Not recognised; `reason` says why (naming the tensor and the numbers),
    /// `tensors` lists the file's tensors as given.
    Unknown {
        reason: String,
        tensors: Vec<(String, Vec<u64>)>,
    },
}

impl Recognition {
    /// The architecture, if recognised.
    pub fn known(&self) -> Option<&Architecture> {
        match self {
            Recognition::Known(arch) => Some(arch),
            Recognition::Unknown { .. } => None,
        }
    }
}

/// The reason given when heads cannot be determined (shared by the families).
pub const HEADS_UNKNOWN: &str =
    "n_heads cannot be told from shapes alone: add config.json or the checkpoint's config metadata";

/// Recognise a checkpoint from its tensor `(name, shape)` pairs, its
/// `__metadata__` map and an optional parsed `config.json`.
///
/// Model sizes come, in this order, from the checkpoint's `config` metadata (a
/// JSON string, as the reference trainer writes it), from `config.json`, or
/// from a per-head norm's shape; a config is always cross-checked against the
/// shapes.
pub fn recognise(
    tensors: &[(String, Vec<u64>)],
    metadata: &BTreeMap<String, String>,
    config_json: Option<&serde_json::Value>,
) -> Recognition {
    let unknown = |reason: String| Recognition::Unknown {
        reason,
        tensors: tensors.to_vec(),
    };
    let mut lookup = match Lookup::new(tensors) {
        Ok(lookup) => lookup,
        Err(reason) => return unknown(reason),
    };
    let config = Config::pick(metadata, config_json);

    let candidates: Vec<Family> = [
        Family::Reference,
        Family::Llama,
        Family::Gpt2,
        Family::MetaLlama,
    ]
    .into_iter()
    .filter(|family| match family {
        Family::Reference => reference::matches(&lookup),
        Family::Llama => llama::matches(&lookup),
        Family::Gpt2 => gpt2::matches(&lookup),
        Family::MetaLlama => meta::matches(&lookup),
    })
    .collect();
    let family = match candidates.as_slice() {
        [one] => *one,
        [] => return unknown(format!("no known layout: {}", describe_names(tensors))),
        many => {
            let labels: Vec<&str> = many.iter().map(|f| f.label()).collect();
            return unknown(format!(
                "ambiguous layout: the names match {} at once",
                labels.join(" and ")
            ));
        }
    };
    let result = match family {
        Family::Reference => reference::recognise(&mut lookup, config.as_ref()),
        Family::Llama => llama::recognise(&mut lookup, config.as_ref()),
        Family::Gpt2 => gpt2::recognise(&mut lookup, config.as_ref()),
        Family::MetaLlama => meta::recognise(&mut lookup, config.as_ref()),
    };
    match result {
        Ok(mut arch) => {
            arch.prefix_removed = lookup.prefix_removed();
            arch.unused = lookup.unused();
            Recognition::Known(arch)
        }
        Err(reason) => unknown(format!("{} layout: {reason}", family.label())),
    }
}

/// A short description of a list of names for "no known layout" messages.
fn describe_names(tensors: &[(String, Vec<u64>)]) -> String {
    const SHOWN: usize = 8;
    if tensors.is_empty() {
        return "the file holds no tensors".to_string();
    }
    let mut names: Vec<&str> = tensors
        .iter()
        .take(SHOWN)
        .map(|(name, _)| name.as_str())
        .collect();
    if tensors.len() > SHOWN {
        names.push("…");
    }
    format!(
        "{} tensors, none in a known family's layout ({})",
        tensors.len(),
        names.join(", ")
    )
}
