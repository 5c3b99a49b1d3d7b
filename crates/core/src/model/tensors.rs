//! A checkpoint's tensors by name, read by byte range from one or more files
//! (a single file or the shards of a sharded model), decoded to f32 on the fly.
//! Only the requested block of a tensor is read: a head's rows of a row-major
//! `[out, in]` matrix are one contiguous range. The forward pass
//! (`model::forward`) and the weight spectra
//! (`analysis::weights`) both read through [`Shards`].

use crate::formats::safetensors::{
    decode_f32, decode_f32_into, row_major_bytes, scan_values, Header, SafetensorsError,
    TensorInfo, ValueScan,
};
use crate::model::arch::WeightLoc;
use crate::source::AsyncByteSource;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

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

/// Sees every block a [`Shards`] decodes, as it is read: how the weight spectra are taken
/// from the forward pass's own reads (`analysis::weights::WeightTap`) instead of reading
/// W_k/W_q a second time.
pub trait BlockTap {
    /// `data` is the tensor's row-major elements `offset..offset + data.len()`, f32.
    fn block(&self, tensor: &TensorInfo, offset: usize, data: &[f32]);
}

/// Non-finite values found in one tensor of a checkpoint's file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonFinite {
    /// Index into [`Shards::parts`] (the file that holds the tensor).
    pub part: usize,
    pub tensor: String,
    pub values: ValueScan,
}

/// What the reads of a [`Shards`] found: per tensor, the stored byte ranges read so far
/// and the non-finite values in them. Each stored byte is scanned once, however often it
/// is read, so the counts are the tensor's (or the part of it the analysis read).
#[derive(Default)]
struct ReadLog {
    /// (part, tensor) → merged, sorted absolute byte ranges read.
    read: BTreeMap<(usize, String), Vec<Range<u64>>>,
    found: BTreeMap<(usize, String), ValueScan>,
}

impl ReadLog {
    /// Scans the bytes of `at..at + bytes.len()` not scanned before.
    fn record(&mut self, part: usize, t: &TensorInfo, at: u64, bytes: &[u8]) {
        let key = (part, t.name.clone());
        let ranges = self.read.entry(key.clone()).or_default();
        let end = at + bytes.len() as u64;
        let mut scan = ValueScan::default();
        let mut from = at;
        for r in ranges.iter().filter(|r| r.end > at && r.start < end) {
            if r.start > from {
                add(
                    &mut scan,
                    scan_values(slice(bytes, at, from..r.start), t.dtype),
                );
            }
            from = from.max(r.end);
        }
        if from < end {
            add(&mut scan, scan_values(slice(bytes, at, from..end), t.dtype));
        }
        ranges.push(at..end);
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        *ranges = merged;
        if scan.non_finite() > 0 {
            add(self.found.entry(key).or_default(), scan);
        }
    }
}

fn slice(bytes: &[u8], at: u64, r: Range<u64>) -> &[u8] {
    &bytes[(r.start - at) as usize..(r.end - at) as usize]
}

fn add(total: &mut ValueScan, s: ValueScan) {
    total.nan += s.nan;
    total.pos_inf += s.pos_inf;
    total.neg_inf += s.neg_inf;
}

/// A checkpoint as one or more safetensors files (shards) and their headers.
pub struct Shards<'a, S> {
    pub parts: Vec<(&'a Header, &'a S)>,
    log: Mutex<ReadLog>,
    tap: Option<&'a dyn BlockTap>,
}

impl<'a, S: AsyncByteSource> Shards<'a, S> {
    /// The files of a checkpoint with their parsed headers (one for a single file).
    pub fn new(parts: Vec<(&'a Header, &'a S)>) -> Self {
        Self {
            parts,
            log: Mutex::new(ReadLog::default()),
            tap: None,
        }
    }

    pub fn single(header: &'a Header, source: &'a S) -> Self {
        Self::new(vec![(header, source)])
    }

    /// Hands every decoded block to `tap` as it is read.
    pub fn with_tap(mut self, tap: &'a dyn BlockTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The tensors whose bytes read so far hold NaN or ±Inf, in part and name order:
    /// the non-finite check happens as the analysis reads, not in a pass of its own.
    pub fn non_finite(&self) -> Vec<NonFinite> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.found
            .iter()
            .map(|((part, tensor), values)| NonFinite {
                part: *part,
                tensor: tensor.clone(),
                values: *values,
            })
            .collect()
    }

    fn find(&self, name: &str) -> Result<(&'a TensorInfo, &'a S, usize), TensorError> {
        self.parts
            .iter()
            .enumerate()
            .find_map(|(i, (h, s))| h.tensor(name).map(|t| (t, *s, i)))
            .ok_or_else(|| TensorError::MissingTensor(name.to_string()))
    }

    /// Bytes `offset..offset + len` of the tensor's row-major data, as f32.
    async fn read(
        &self,
        (t, src, part): (&TensorInfo, &S, usize),
        offset: u64,
        len: u64,
    ) -> Result<Vec<f32>, TensorError> {
        let n = usize::try_from(len).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
        let fetch = |at: u64, n: usize| async move {
            let bytes = src.fetch(at, n).await.map_err(|e| TensorError::Read {
                tensor: t.name.clone(),
                message: e.to_string(),
            })?;
            // The non-finite check, on the stored bits, as they go by.
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(part, t, at, &bytes);
            Ok::<_, TensorError>(bytes)
        };
        let decode_error = |source| TensorError::Decode {
            tensor: t.name.clone(),
            source,
        };
        let data = if t.strides.is_some() {
            // A strided view (a transposed PyTorch tensor): gather it whole,
            // then take the requested rows.
            let all = usize::try_from(t.len).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
            let dense = row_major_bytes(t, fetch(t.start, all).await?).map_err(decode_error)?;
            let from =
                usize::try_from(offset).map_err(|_| TensorError::TooLarge(t.name.clone()))?;
            let bytes =
                dense
                    .get(from..from.saturating_add(n))
                    .ok_or_else(|| TensorError::Read {
                        tensor: t.name.clone(),
                        message: format!("bytes {from}..+{n} are outside the tensor"),
                    })?;
            decode_f32(bytes, t.dtype).map_err(decode_error)?
        } else {
            // In pieces of whole elements as long as the source likes, decoded as they
            // come: the raw bytes of a whole block are then never held beside its f32 copy.
            let elem = t.dtype.size_bytes().max(1);
            let chunk = (src.piece_len() / elem).max(1) * elem;
            let mut data = Vec::new();
            let mut done = 0;
            loop {
                let len = chunk.min(n - done);
                let bytes = fetch(t.start + offset + done as u64, len).await?;
                if done == 0 {
                    // Reserved once the first piece is in, so that a read finds only what was
                    // held before it (the streamed pass's test reads the memory held there).
                    data.try_reserve_exact(n / elem)
                        .map_err(|_| TensorError::TooLarge(t.name.clone()))?;
                }
                decode_f32_into(&bytes, t.dtype, &mut data).map_err(decode_error)?;
                done += len;
                if done >= n {
                    break;
                }
            }
            data
        };
        if let Some(tap) = self.tap {
            let elem = (t.dtype.size_bytes() as u64).max(1);
            tap.block(t, (offset / elem) as usize, &data);
        }
        Ok(data)
    }

    /// Reads a weight block as a row-major `[out, in]` f32 matrix.
    pub async fn read_block(
        &self,
        loc: &WeightLoc,
    ) -> Result<(Vec<f32>, usize, usize), TensorError> {
        let found = self.find(loc.tensor())?;
        let t = found.0;
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
            WeightLoc::Whole { .. } => Ok((self.read(found, 0, data_len(t)).await?, rows, cols)),
            WeightLoc::Rows { start, end, .. } => {
                if let Some(e) = outside(*start, *end, rows) {
                    return Err(e);
                }
                let row_bytes = cols as u64 * elem;
                let data = self
                    .read(
                        found,
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
                let all = self.read(found, 0, data_len(t)).await?;
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
        let found = self.find(name)?;
        self.read(found, 0, data_len(found.0)).await
    }

    /// A tensor's shape, read from its header (no data is read).
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, TensorError> {
        let (t, _, _) = self.find(name)?;
        t.shape.iter().map(|&d| to_usize(d, t)).collect()
    }

    /// Reads a whole tensor (any rank) as row-major f32, with its shape.
    pub async fn read_tensor_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), TensorError> {
        let found = self.find(name)?;
        let t = found.0;
        let shape = t
            .shape
            .iter()
            .map(|&d| to_usize(d, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((self.read(found, 0, data_len(t)).await?, shape))
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
