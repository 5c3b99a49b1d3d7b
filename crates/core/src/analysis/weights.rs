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
use crate::formats::safetensors::TensorInfo;
use crate::model::arch::{Architecture, WeightLoc};
use crate::model::tensors::BlockTap;
pub use crate::model::tensors::{Shards, TensorError};
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// One head's weight block: its singular values (descending, f64) and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSpectrum {
    pub singular_values: Vec<f64>,
    pub metrics: WeightMetrics,
}

/// One layer's K and Q head spectra (weights or activations), with the norm γ's where the model has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpectra {
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

/// Every layer's K and Q head spectra of one checkpoint: of the weights (W_k, W_q), or of the
/// activations (K = W_k·X, Q = W_q·X on the eval batch; `analysis::activations`), which have the
/// same shape per head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpectra {
    pub d_k: usize,
    pub d_model: usize,
    pub layers: Vec<LayerSpectra>,
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
    spectrum_of(loc, &data, rows, cols)
}

/// The spectrum of a head's block `[rows, cols]` (row-major, as [`Shards::read_block`] gives it).
fn spectrum_of(
    loc: &WeightLoc,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Result<HeadSpectrum, WeightError> {
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
    let singular_values = singular_values_f32(data, rows, cols).map_err(spectrum_err)?;
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
) -> Result<ModelSpectra, WeightError> {
    weight_spectra_after(shards, arch, None, progress).await
}

/// Which head of which layer a [`WeightTap`] slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Head {
    K(usize, usize),
    Q(usize, usize),
}

/// Takes the weight spectra from blocks read for something else (the forward pass reads
/// every W_k and W_q): each head's spectrum is computed when its rows go by, so W_k and W_q
/// are read once for both analyses and only singular values are kept. Set on the
/// [`Shards`] with [`Shards::with_tap`]; [`weight_spectra_after`] reads what it missed.
pub struct WeightTap {
    /// Tensor name → the heads (and norms, `None`) it holds.
    wanted: HashMap<String, Vec<(Option<Head>, WeightLoc)>>,
    heads: Mutex<HashMap<Head, Result<HeadSpectrum, WeightError>>>,
    norms: Mutex<HashMap<String, Vec<f32>>>,
}

impl WeightTap {
    pub fn new(arch: &Architecture) -> Self {
        let mut wanted: HashMap<String, Vec<(Option<Head>, WeightLoc)>> = HashMap::new();
        let mut want = |head: Option<Head>, loc: WeightLoc| {
            wanted
                .entry(loc.tensor().to_string())
                .or_default()
                .push((head, loc))
        };
        for (l, tensors) in arch.layers.iter().enumerate() {
            for h in 0..arch.n_kv_heads {
                want(Some(Head::K(l, h)), arch.w_k_head(l, h));
            }
            for h in 0..arch.n_heads {
                want(Some(Head::Q(l, h)), arch.w_q_head(l, h));
            }
            for name in tensors.k_norm.iter().chain(&tensors.q_norm) {
                want(
                    None,
                    WeightLoc::Whole {
                        tensor: name.clone(),
                    },
                );
            }
        }
        Self {
            wanted,
            heads: Mutex::new(HashMap::new()),
            norms: Mutex::new(HashMap::new()),
        }
    }

    fn take_head(&self, head: Head) -> Option<Result<HeadSpectrum, WeightError>> {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&head)
    }

    fn take_norm(&self, name: &str) -> Option<Vec<f32>> {
        self.norms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }
}

impl BlockTap for WeightTap {
    fn wants(&self, t: &TensorInfo) -> bool {
        self.wanted.contains_key(&t.name)
    }

    fn block(&self, t: &TensorInfo, offset: usize, data: &[f32]) {
        let Some(wanted) = self.wanted.get(&t.name) else {
            return;
        };
        let numel = usize::try_from(t.numel()).unwrap_or(usize::MAX);
        let whole = offset == 0 && data.len() == numel;
        let (rows, cols) = match t.shape[..] {
            [r, c] => (r as usize, c as usize),
            _ => (numel, 1),
        };
        for (head, loc) in wanted {
            let Some(head) = head else {
                if whole {
                    let mut norms = self.norms.lock().unwrap_or_else(|e| e.into_inner());
                    norms.insert(t.name.clone(), data.to_vec());
                }
                continue;
            };
            // The head's block, exactly as `Shards::read_block` would give it.
            let block: Option<(Vec<f32>, usize, usize)> = match loc {
                WeightLoc::Whole { .. } => whole.then(|| (data.to_vec(), rows, cols)),
                WeightLoc::Rows { start, end, .. } => {
                    let (from, to) = (start * cols, end * cols);
                    (from >= offset && to <= offset + data.len() && end <= &rows)
                        .then(|| (data[from - offset..to - offset].to_vec(), end - start, cols))
                }
                WeightLoc::Cols { start, end, .. } => (whole && end <= &cols).then(|| {
                    let mut block = Vec::with_capacity((end - start) * rows);
                    for c in *start..*end {
                        block.extend((0..rows).map(|r| data[r * cols + c]));
                    }
                    (block, end - start, rows)
                }),
            };
            if let Some((block, r, c)) = block {
                let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
                heads
                    .entry(*head)
                    .or_insert_with(|| spectrum_of(loc, &block, r, c));
            }
        }
    }
}

/// A norm's γ: as `tap` saw it, else read.
async fn norm_gamma<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    tap: Option<&WeightTap>,
    name: Option<&str>,
) -> Result<Option<Vec<f32>>, WeightError> {
    let Some(name) = name else { return Ok(None) };
    Ok(Some(match tap.and_then(|t| t.take_norm(name)) {
        Some(seen) => seen,
        None => shards.read_vector(name).await?,
    }))
}

/// [`weight_spectra`], taking what `tap` saw from earlier reads and reading only the rest:
/// after a forward pass with the tap on its [`Shards`], nothing.
pub async fn weight_spectra_after<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
    tap: Option<&WeightTap>,
    progress: &mut dyn FnMut(f64),
) -> Result<ModelSpectra, WeightError> {
    let mut layers = Vec::with_capacity(arch.n_layers);
    for (l, tensors) in arch.layers.iter().enumerate() {
        let mut k_heads = Vec::with_capacity(arch.n_kv_heads);
        for h in 0..arch.n_kv_heads {
            k_heads.push(match tap.and_then(|t| t.take_head(Head::K(l, h))) {
                Some(seen) => seen?,
                None => head_spectrum(shards, &arch.w_k_head(l, h)).await?,
            });
        }
        let mut q_heads = Vec::with_capacity(arch.n_heads);
        for h in 0..arch.n_heads {
            q_heads.push(match tap.and_then(|t| t.take_head(Head::Q(l, h))) {
                Some(seen) => seen?,
                None => head_spectrum(shards, &arch.w_q_head(l, h)).await?,
            });
        }
        let gamma_k = norm_gamma(shards, tap, tensors.k_norm.as_deref()).await?;
        let gamma_q = norm_gamma(shards, tap, tensors.q_norm.as_deref()).await?;
        layers.push(LayerSpectra {
            layer: l,
            k_heads,
            q_heads,
            gamma_k,
            gamma_q,
        });
        progress((l + 1) as f64 / arch.n_layers.max(1) as f64);
    }
    Ok(ModelSpectra {
        d_k: arch.d_k,
        d_model: arch.d_model,
        layers,
    })
}
