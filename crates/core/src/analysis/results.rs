//! The results of the activation analysis — which K ([`KeyVariant`]), the spectra of a layer and
//! of a checkpoint, progress and errors — apart from the code that computes them, so that
//! `activations`, `gram_spectra` and `study` each import these types and never each other.

use super::spectrum::SpectrumError;
use super::weights::{HeadSpectrum, ModelSpectra};
use crate::model::forward::ForwardError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which K (METRICS.md "Representations"); the default is [`KeyVariant::PostNorm`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyVariant {
    /// After the key norm (when the model has one), before RoPE: what the reference probe hooks.
    #[default]
    PostNorm,
    /// After RoPE (what attention uses).
    PostRope,
    /// The projection before the key norm.
    Raw,
    /// The default K with its column means removed.
    Centered,
}

impl KeyVariant {
    pub const ALL: [KeyVariant; 4] = [
        KeyVariant::PostNorm,
        KeyVariant::PostRope,
        KeyVariant::Raw,
        KeyVariant::Centered,
    ];

    /// The name used on the command line, in JSON and in share links.
    pub fn key(self) -> &'static str {
        match self {
            KeyVariant::PostNorm => "post_norm",
            KeyVariant::PostRope => "post_rope",
            KeyVariant::Raw => "raw",
            KeyVariant::Centered => "centered",
        }
    }

    /// Parses [`KeyVariant::key`] (also `default`, `post-rope`, `centred`).
    pub fn from_key(key: &str) -> Option<KeyVariant> {
        match key {
            "default" | "post-norm" => Some(KeyVariant::PostNorm),
            "post-rope" => Some(KeyVariant::PostRope),
            "centred" => Some(KeyVariant::Centered),
            k => KeyVariant::ALL.into_iter().find(|v| v.key() == k),
        }
    }

    /// Where K is taken, for captions: "after k_norm, before RoPE", ….
    pub fn k_where(self) -> &'static str {
        match self {
            KeyVariant::PostNorm => "after k_norm, before RoPE",
            KeyVariant::PostRope => "after k_norm and RoPE",
            KeyVariant::Raw => "raw projection, before k_norm and RoPE",
            KeyVariant::Centered => "after k_norm, before RoPE, column-centred",
        }
    }

    /// Where Q is taken for this variant (only centring applies to Q).
    pub fn q_where(self) -> &'static str {
        match self {
            KeyVariant::Centered => "after q_norm, before RoPE, column-centred",
            _ => "after q_norm, before RoPE",
        }
    }
}

impl fmt::Display for KeyVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One variant's K spectra of a layer, per kv-head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantHeads {
    pub variant: KeyVariant,
    pub heads: Vec<HeadSpectrum>,
}

/// Activation spectra of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationLayer {
    pub layer: usize,
    /// K per kv-head, one entry per computed variant (in the order asked).
    pub k: Vec<VariantHeads>,
    /// Q per query head, after the query norm, before RoPE.
    pub q_heads: Vec<HeadSpectrum>,
    /// Q column-centred, when [`KeyVariant::Centered`] was computed.
    pub q_centered: Option<Vec<HeadSpectrum>>,
}

impl ActivationLayer {
    /// K heads of `variant`, if it was computed.
    pub fn k_heads(&self, variant: KeyVariant) -> Option<&[HeadSpectrum]> {
        self.k
            .iter()
            .find(|v| v.variant == variant)
            .map(|v| v.heads.as_slice())
    }
}

/// Every layer's K and Q activation spectra of one checkpoint on one eval batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationSpectra {
    pub d_k: usize,
    pub d_model: usize,
    /// Eval batch shape `[B, T]`; every K/Q matrix has B·T rows.
    pub eval_batch: usize,
    pub eval_seq_len: usize,
    pub layers: Vec<ActivationLayer>,
    /// Mean next-token cross-entropy (nats) over the held-out set, when one was given.
    pub heldout_loss: Option<f64>,
}

impl ActivationSpectra {
    /// The spectra of `variant` in the shape the study figures take (K in
    /// `k_heads`, Q in `q_heads`, no γ); `None` if the variant was not computed.
    pub fn spectra(&self, variant: KeyVariant) -> Option<ModelSpectra> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let q = match variant {
                    KeyVariant::Centered => l.q_centered.clone()?,
                    _ => l.q_heads.clone(),
                };
                Some(super::weights::LayerSpectra {
                    layer: l.layer,
                    k_heads: l.k_heads(variant)?.to_vec(),
                    q_heads: q,
                    gamma_k: None,
                    gamma_q: None,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ModelSpectra {
            d_k: self.d_k,
            d_model: self.d_model,
            layers,
        })
    }
}

/// What a long computation is doing, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading and converting weights, one layer at a time.
    Loading,
    /// The forward pass over the eval batch, one sequence at a time.
    EvalForward,
    /// A streamed forward pass (`model::forward::StreamedModel`): each layer's weights read,
    /// the eval (and held-out) batch run through them, the weights dropped; one layer at a time.
    Streaming,
    /// SVDs, one layer at a time.
    Spectra,
    /// The held-out loss, one sequence at a time.
    HeldOut,
}

/// Progress: `done` of `total` units of `stage` (layers or sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, unit) = match self.stage {
            Stage::Loading => ("loading weights", "layer"),
            Stage::EvalForward => ("forward pass on the eval batch", "sequence"),
            Stage::Streaming => ("forward pass, weights read block by block", "layer"),
            Stage::Spectra => ("activation spectra", "layer"),
            Stage::HeldOut => ("held-out loss", "sequence"),
        };
        write!(f, "{what}: {unit} {} of {}", self.done, self.total)
    }
}

/// Why activation spectra could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("spectrum of {matrix} head {head} of layer {layer}: {source}")]
    Spectrum {
        matrix: &'static str,
        layer: usize,
        head: usize,
        source: SpectrumError,
    },
    #[error("cancelled")]
    Cancelled,
}
