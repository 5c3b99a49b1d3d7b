//! A checkpoint's tensors by name, read by byte range from one or more files
//! (a single file or the shards of a sharded model), decoded to f32 on the fly.
//! Only the requested block of a tensor is read: a head's rows of a row-major
//! `[out, in]` matrix are one contiguous range. The forward pass
//! (`model::forward`) and the weight spectra
//! (`analysis::weights`) both read through [`Shards`].

use crate::formats::safetensors::{
    decode_f32, row_major_bytes, Header, SafetensorsError, TensorInfo,
};
use crate::model::arch::WeightLoc;
use crate::source::AsyncByteSource;

/// Why a tensor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
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

    fn find(&self, name: &str) -> Result<(&'a TensorInfo, &'a S), TensorError> {
        self.parts
            .iter()
            .find_map(|(h, s)| h.tensor(name).map(|t| (t, *s)))
            .ok_or_else(|| TensorError::MissingTensor(name.to_string()))
    }

    /// Bytes `offset..offset + len` of the tensor's row-major data, as f32.
    async fn read(
        &self,
        t: &TensorInfo,
        src: &S,
        offset: u64,
        len: u64,
    ) -> Result<Vec<f32>, TensorError> {
        let n = usize::try_from(len).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
        let fetch = |at: u64, n: usize| async move {
            src.fetch(at, n).await.map_err(|e| TensorError::Read {
                tensor: t.name.clone(),
                message: e.to_string(),
            })
        };
        let bytes = if t.strides.is_some() {
            // A strided view (a transposed PyTorch tensor): gather it whole,
            // then take the requested rows.
            let all = usize::try_from(t.len).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
            let dense = row_major_bytes(t, fetch(t.start, all).await?).map_err(|source| {
                TensorError::Decode {
                    tensor: t.name.clone(),
                    source,
                }
            })?;
            let from =
                usize::try_from(offset).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
            dense
                .get(from..from.saturating_add(n))
                .ok_or_else(|| TensorError::Read {
                    tensor: t.name.clone(),
                    message: format!("bytes {from}..+{n} are outside the tensor"),
                })?
                .to_vec()
        } else {
            fetch(t.start + offset, n).await?
        };
        decode_f32(&bytes, t.dtype).map_err(|source| TensorError::Decode {
            tensor: t.name.clone(),
            source,
        })
    }

    /// Reads a weight block as a row-major `[out, in]` f32 matrix.
    pub async fn read_block(
        &self,
        loc: &WeightLoc,
    ) -> Result<(Vec<f32>, usize, usize), TensorError> {
        let (t, src) = self.find(loc.tensor())?;
        let [rows, cols] = t.shape[..] else {
            return Err(TensorError::NotMatrix {
                tensor: t.name.clone(),
                shape: t.shape.clone(),
            });
        };
        let (rows, cols) = (to_usize(rows, t)?, to_usize(cols, t)?);
        let elem = t.dtype.size_bytes() as u64;
        let outside = |start: usize, end: usize, limit: usize| {
            (start > end || end > limit).then(|| TensorError::BlockOutside {
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

    /// Reads a whole tensor as f32 (a norm's γ, a bias).
    pub async fn read_vector(&self, name: &str) -> Result<Vec<f32>, TensorError> {
        let (t, src) = self.find(name)?;
        self.read(t, src, 0, data_len(t)).await
    }

    /// A tensor's shape, read from its header (no data is read).
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, TensorError> {
        let (t, _) = self.find(name)?;
        t.shape.iter().map(|&d| to_usize(d, t)).collect()
    }

    /// Reads a whole tensor (any rank) as row-major f32, with its shape.
    pub async fn read_tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), TensorError> {
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

fn to_usize(v: u64, t: &TensorInfo) -> Result<usize, TensorError> {
    usize::try_from(v).map_err(|_| TensorError::TooLarge(t.name.clone()))
}
