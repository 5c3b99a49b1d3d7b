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
use crate::formats::safetensors::{
    decode_f32, row_major_bytes, Header, SafetensorsError, TensorInfo,
};
use crate::model::arch::{Architecture, WeightLoc};
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
    #[error("tensor `{0}` is not in the checkpoint")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {shape:?}; a 2-D weight matrix was expected")]
    NotMatrix { tensor: String, shape: Vec<u64> },
    #[error("tensor `{tensor}`: rows/columns {start}..{end} are outside its shape {shape:?}")]
    BlockOutside {
        tensor: String,
        start: usize,
        end: usize,
        shape: Vec<u64>,
    },
    #[error("reading tensor `{tensor}`: {message}")]
    Read { tensor: String, message: String },
    #[error("tensor `{tensor}`: {source}")]
    Decode {
        tensor: String,
        source: SafetensorsError,
    },
    #[error("spectrum of `{tensor}` rows {start}..{end}: {source}")]
    Spectrum {
        tensor: String,
        start: usize,
        end: usize,
        source: SpectrumError,
    },
    #[error("too large for this platform: tensor `{0}`")]
    TooLarge(String),
}

/// A checkpoint as one or more safetensors files (shards) and their headers.
pub struct Shards<'a, S> {
    pub parts: Vec<(&'a Header, &'a S)>,
}

impl<'a, S: AsyncByteSource> Shards<'a, S> {
    pub fn single(header: &'a Header, source: &'a S) -> Self {
        Self {
            parts: vec![(header, source)],
        }
    }

    fn find(&self, name: &str) -> Result<(&'a TensorInfo, &'a S), WeightError> {
        self.parts
            .iter()
            .find_map(|(h, s)| h.tensor(name).map(|t| (t, *s)))
            .ok_or_else(|| WeightError::MissingTensor(name.to_string()))
    }

    /// Bytes `offset..offset + len` of the tensor's row-major data, as f32.
    async fn read(
        &self,
        t: &TensorInfo,
        src: &S,
        offset: u64,
        len: u64,
    ) -> Result<Vec<f32>, WeightError> {
        let n = usize::try_from(len).map_err(|_| WeightError::TooLarge(t.name.clone()))?;
        let fetch = |at: u64, n: usize| async move {
            src.fetch(at, n).await.map_err(|e| WeightError::Read {
                tensor: t.name.clone(),
                message: e.to_string(),
            })
        };
        let bytes = if t.strides.is_some() {
            // A strided view (a transposed PyTorch tensor): gather it whole,
            // then take the requested rows.
            let all = usize::try_from(t.len).map_err(|_| WeightError::TooLarge(t.name.clone()))?;
            let dense = row_major_bytes(t, fetch(t.start, all).await?).map_err(|source| {
                WeightError::Decode {
                    tensor: t.name.clone(),
                    source,
                }
            })?;
            let from =
                usize::try_from(offset).map_err(|_| WeightError::TooLarge(t.name.clone()))?;
            dense
                .get(from..from.saturating_add(n))
                .ok_or_else(|| WeightError::Read {
                    tensor: t.name.clone(),
                    message: format!("bytes {from}..+{n} are outside the tensor"),
                })?
                .to_vec()
        } else {
            fetch(t.start + offset, n).await?
        };
        decode_f32(&bytes, t.dtype).map_err(|source| WeightError::Decode {
            tensor: t.name.clone(),
            source,
        })
    }

    /// Reads a weight block as a row-major `[out, in]` f32 matrix.
    pub async fn read_block(
        &self,
        loc: &WeightLoc,
    ) -> Result<(Vec<f32>, usize, usize), WeightError> {
        let (t, src) = self.find(loc.tensor())?;
        let [rows, cols] = t.shape[..] else {
            return Err(WeightError::NotMatrix {
                tensor: t.name.clone(),
                shape: t.shape.clone(),
            });
        };
        let (rows, cols) = (to_usize(rows, t)?, to_usize(cols, t)?);
        let elem = t.dtype.size_bytes() as u64;
        let outside = |start: usize, end: usize, limit: usize| {
            (start > end || end > limit).then(|| WeightError::BlockOutside {
                tensor: t.name.clone(),
                start,
                end,
                shape: t.shape.clone(),
            })
        };
        match loc {
            WeightLoc::Whole { .. } => Ok((self.read(t, src, 0, data_len(t)).await?, rows, cols)),
            WeightLoc::Rows { start, end, .. } => {
                if let Some(e) = outside(*start, *end, rows) {
                    return Err(e);
                }
                let row_bytes = cols as u64 * elem;
                let data = self
                    .read(
                        t,
                        src,
                        *start as u64 * row_bytes,
                        (*end - *start) as u64 * row_bytes,
                    )
                    .await?;
                Ok((data, end - start, cols))
            }
            WeightLoc::Cols { start, end, .. } => {
                // GPT-2 Conv1D stores [in, out]: the block is columns, strided,
                // so read the tensor and transpose the block to [out, in].
                if let Some(e) = outside(*start, *end, cols) {
                    return Err(e);
                }
                let all = self.read(t, src, 0, data_len(t)).await?;
                let out_rows = end - start;
                let mut block = Vec::with_capacity(out_rows * rows);
                for c in *start..*end {
                    block.extend((0..rows).map(|r| all[r * cols + c]));
                }
                Ok((block, out_rows, rows))
            }
        }
    }

    async fn read_vector(&self, name: &str) -> Result<Vec<f32>, WeightError> {
        let (t, src) = self.find(name)?;
        self.read(t, src, 0, data_len(t)).await
    }

    /// Reads a whole tensor (any rank) as row-major f32, with its shape.
    pub async fn read_tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), WeightError> {
        let (t, src) = self.find(name)?;
        let shape = t
            .shape
            .iter()
            .map(|&d| to_usize(d, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((self.read(t, src, 0, data_len(t)).await?, shape))
    }
}

/// Bytes of the tensor's row-major data (`len` is the span of a strided view).
fn data_len(t: &TensorInfo) -> u64 {
    match t.strides {
        None => t.len,
        Some(_) => t.numel().saturating_mul(t.dtype.size_bytes() as u64),
    }
}

fn to_usize(v: u64, t: &TensorInfo) -> Result<usize, WeightError> {
    usize::try_from(v).map_err(|_| WeightError::TooLarge(t.name.clone()))
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
