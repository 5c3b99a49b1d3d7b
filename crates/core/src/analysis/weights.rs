//! Spectra of a checkpoint's attention weights — no forward pass needed:
//! W_k per kv-head and W_q per query head (METRICS.md "W_k of layer l, kv-head
//! h"), with every rank metric and WeightWatcher's extras, and the γ of the
//! key/query norms.
//!
//! Weights are read by byte range: a head's block of a row-major `[out, in]`
//! tensor is `d_k` consecutive rows, i.e. one contiguous range, so only that
//! block is ever read. Written `async` so the page (Blob slices) and the CLI
//! (file seeks, through `block_on`) share it.

use super::spectrum::{singular_values_f32, weight_metrics, SpectrumError, WeightMetrics};
// The tensor reader lived here first; it is re-exported so analysis code keeps one path.
use crate::model::arch::{Architecture, WeightLoc};
pub use crate::model::tensors::{Shards, TensorError};
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};

/// One head's weight block: its singular values (descending, f64) and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSpectrum {
    pub singular_values: Vec<f64>,
    pub metrics: WeightMetrics,
}

/// The attention weights of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    pub layer: usize,
    /// W_k per kv-head (`d_k × d_model`).
    pub k_heads: Vec<HeadSpectrum>,
    /// W_q per query head (`d_k × d_model`).
    pub q_heads: Vec<HeadSpectrum>,
    /// γ of the key norm (length d_k), when the model has one.
    pub gamma_k: Option<Vec<f32>>,
    /// γ of the query norm.
    pub gamma_q: Option<Vec<f32>>,
}

/// Every layer's attention-weight spectra of one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightSpectra {
    pub d_k: usize,
    pub d_model: usize,
    pub layers: Vec<LayerWeights>,
}

/// Why a checkpoint's weight spectra could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// A tensor could not be found or read.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("spectrum of `{tensor}` rows {start}..{end}: {source}")]
    Spectrum {
        tensor: String,
        start: usize,
        end: usize,
        source: SpectrumError,
    },
}

async fn head_spectrum<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    loc: &WeightLoc,
) -> Result<HeadSpectrum, WeightError> {
    let (data, rows, cols) = shards.read_block(loc).await?;
    let (start, end) = match loc {
        WeightLoc::Rows { start, end, .. } | WeightLoc::Cols { start, end, .. } => (*start, *end),
        WeightLoc::Whole { .. } => (0, rows),
    };
    let spectrum_err = |source| WeightError::Spectrum {
        tensor: loc.tensor().to_string(),
        start,
        end,
        source,
    };
    let singular_values = singular_values_f32(&data, rows, cols).map_err(spectrum_err)?;
    let metrics = weight_metrics(&singular_values).map_err(spectrum_err)?;
    Ok(HeadSpectrum {
        singular_values,
        metrics,
    })
}

/// W_k and W_q spectra of every layer and head, and the norms' γ.
/// `progress` gets 0..=1 after each layer.
pub async fn weight_spectra<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
    progress: &mut dyn FnMut(f64),
) -> Result<WeightSpectra, WeightError> {
    let mut layers = Vec::with_capacity(arch.n_layers);
    for (l, tensors) in arch.layers.iter().enumerate() {
        let mut k_heads = Vec::with_capacity(arch.n_kv_heads);
        for h in 0..arch.n_kv_heads {
            k_heads.push(head_spectrum(shards, &arch.w_k_head(l, h)).await?);
        }
        let mut q_heads = Vec::with_capacity(arch.n_heads);
        for h in 0..arch.n_heads {
            q_heads.push(head_spectrum(shards, &arch.w_q_head(l, h)).await?);
        }
        let gamma_k = match &tensors.k_norm {
            Some(name) => Some(shards.read_vector(name).await?),
            None => None,
        };
        let gamma_q = match &tensors.q_norm {
            Some(name) => Some(shards.read_vector(name).await?),
            None => None,
        };
        layers.push(LayerWeights {
            layer: l,
            k_heads,
            q_heads,
            gamma_k,
            gamma_q,
        });
        progress((l + 1) as f64 / arch.n_layers.max(1) as f64);
    }
    Ok(WeightSpectra {
        d_k: arch.d_k,
        d_model: arch.d_model,
        layers,
    })
}
