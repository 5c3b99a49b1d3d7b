//! A checkpoint's tensors by name, read by byte range from one or more files
//! (a single file or the shards of a sharded model), decoded to f32 on the fly (or a bf16
//! weight kept as stored, [`WeightValues`]).
//! Only the requested block of a tensor is read: a head's rows of a row-major
//! `[out, in]` matrix are one contiguous range. The forward pass
//! (`model::forward`) and the weight spectra
//! (`analysis::weights`) both read through [`Shards`].

use crate::formats::safetensors::{
    bf16_bits_into, bf16_bits_to_f32, decode_f32, decode_f32_into, row_major_bytes, scan_values,
    Dtype, Header, SafetensorsError, TensorInfo, ValueScan,
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
    /// Whether [`BlockTap::block`] wants `tensor`'s blocks: a block kept in bf16 is widened
    /// to f32 for the tap only when it does.
    fn wants(&self, tensor: &TensorInfo) -> bool;
    /// `data` is the tensor's row-major elements `offset..offset + data.len()`, f32.
    fn block(&self, tensor: &TensorInfo, offset: usize, data: &[f32]);
}

/// A block's values as [`Shards::read_block_values`] gives them: f32, or a bf16 tensor's
/// stored bits when the reader keeps bf16. Widening bf16 to f32 is exact, so a product that
/// widens B as it packs it computes what it computes from the f32 copy, bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightValues {
    F32(Vec<f32>),
    /// The bits of each bf16 value, row-major.
    Bf16(Vec<u16>),
}

impl WeightValues {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32: borrowed when they are f32, widened (a copy) when bf16.
    pub fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Self::F32(v) => std::borrow::Cow::Borrowed(v),
            Self::Bf16(v) => {
                std::borrow::Cow::Owned(v.iter().map(|&b| bf16_bits_to_f32(b)).collect())
            }
        }
    }

    /// The values as f32, widened when bf16.
    pub fn into_f32(self) -> Vec<f32> {
        match self {
            Self::F32(v) => v,
            Self::Bf16(_) => self.to_f32().into_owned(),
        }
    }

    /// Values `range`, widened to f32 into `out` (the same length).
    pub fn widen_into(&self, range: Range<usize>, out: &mut [f32]) {
        match self {
            Self::F32(v) => out.copy_from_slice(&v[range]),
            Self::Bf16(v) => out
                .iter_mut()
                .zip(&v[range])
                .for_each(|(o, &b)| *o = bf16_bits_to_f32(b)),
        }
    }
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
        found: (&TensorInfo, &S, usize),
        offset: u64,
        len: u64,
    ) -> Result<Vec<f32>, TensorError> {
        Ok(self
            .read_values(found, offset, len, false)
            .await?
            .into_f32())
    }

    /// Bytes `offset..offset + len` of the tensor's row-major data: as stored when
    /// `keep_bf16` and the tensor is bf16 and row-major, else as f32.
    async fn read_values(
        &self,
        (t, src, part): (&TensorInfo, &S, usize),
        offset: u64,
        len: u64,
        keep_bf16: bool,
    ) -> Result<WeightValues, TensorError> {
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
        } else if keep_bf16 && t.dtype == Dtype::BF16 {
            // The same pieces, each copied as it comes: half the memory of f32 and no
            // conversion (a bf16 checkpoint's load took half the time).
            let chunk = (src.piece_len() / 2).max(1) * 2;
            let mut bits: Vec<u16> = Vec::new();
            let mut done = 0;
            while done < n {
                let len = chunk.min(n - done);
                let bytes = fetch(t.start + offset + done as u64, len).await?;
                if done == 0 {
                    bits.try_reserve_exact(n / 2)
                        .map_err(|_| TensorError::TooLarge(t.name.clone()))?;
                }
                bf16_bits_into(&bytes, &mut bits).map_err(decode_error)?;
                done += len;
            }
            let values = WeightValues::Bf16(bits);
            if let Some(tap) = self.tap.filter(|tap| tap.wants(t)) {
                tap.block(t, (offset / 2) as usize, &values.to_f32());
            }
            return Ok(values);
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
        if let Some(tap) = self.tap.filter(|tap| tap.wants(t)) {
            let elem = (t.dtype.size_bytes() as u64).max(1);
            tap.block(t, (offset / elem) as usize, &data);
        }
        Ok(WeightValues::F32(data))
    }

    /// Reads a weight block as a row-major `[out, in]` f32 matrix.
    pub async fn read_block(
        &self,
        loc: &WeightLoc,
    ) -> Result<(Vec<f32>, usize, usize), TensorError> {
        let (values, rows, cols) = self.read_block_values(loc, false).await?;
        Ok((values.into_f32(), rows, cols))
    }

    /// Reads a weight block as a row-major `[out, in]` matrix: a bf16 tensor's rows as
    /// stored when `keep_bf16`, anything else (and a block of columns) as f32.
    pub async fn read_block_values(
        &self,
        loc: &WeightLoc,
        keep_bf16: bool,
    ) -> Result<(WeightValues, usize, usize), TensorError> {
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
            WeightLoc::Whole { .. } => Ok((
                self.read_values(found, 0, data_len(t), keep_bf16).await?,
                rows,
                cols,
            )),
            WeightLoc::Rows { start, end, .. } => {
                if let Some(e) = outside(*start, *end, rows) {
                    return Err(e);
                }
                let row_bytes = cols as u64 * elem;
                let data = self
                    .read_values(
                        found,
                        *start as u64 * row_bytes,
                        (*end - *start) as u64 * row_bytes,
                        keep_bf16,
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
                Ok((WeightValues::F32(block), out_rows, rows))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::safetensors::read_header;
    use crate::source::block_on;
    use safetensors::tensor::TensorView;

    /// Records what it is handed, for the tensors it wants.
    struct Tap {
        wanted: &'static str,
        seen: Mutex<Vec<(String, usize, Vec<f32>)>>,
    }

    impl BlockTap for Tap {
        fn wants(&self, t: &TensorInfo) -> bool {
            t.name == self.wanted
        }
        fn block(&self, t: &TensorInfo, offset: usize, data: &[f32]) {
            self.seen
                .lock()
                .unwrap()
                .push((t.name.clone(), offset, data.to_vec()));
        }
    }

    /// A bf16 `[3, 4]` weight with a NaN, and an f32 `[2, 2]` one.
    fn checkpoint() -> (Vec<u8>, Vec<u16>) {
        let mut bits: Vec<u16> = (0..12)
            .map(|i| half::bf16::from_f32(i as f32 * 0.37 - 2.0).to_bits())
            .collect();
        bits[9] = 0x7FC0;
        let bf16: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let f32s: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = [
            (
                "w",
                TensorView::new(safetensors::Dtype::BF16, vec![3, 4], &bf16).unwrap(),
            ),
            (
                "v",
                TensorView::new(safetensors::Dtype::F32, vec![2, 2], &f32s).unwrap(),
            ),
        ];
        (safetensors::serialize(views, None).unwrap(), bits)
    }

    fn whole(tensor: &str) -> WeightLoc {
        WeightLoc::Whole {
            tensor: tensor.to_string(),
        }
    }

    /// A bf16 block read for keeping is its stored bits (whole or rows), and widens to what
    /// the f32 read gives; anything else — an f32 tensor, a block of columns, or not keeping —
    /// is f32. The non-finite check and a tap see the bf16 blocks as they see f32 ones.
    #[test]
    fn a_bf16_block_is_kept_as_stored_only_when_asked() {
        let (file, bits) = checkpoint();
        let header = read_header(&file).unwrap();
        let tap = Tap {
            wanted: "w",
            seen: Mutex::new(Vec::new()),
        };
        let shards = Shards::single(&header, &file).with_tap(&tap);

        let (kept, rows, cols) = block_on(shards.read_block_values(&whole("w"), true)).unwrap();
        assert_eq!((rows, cols), (3, 4));
        assert_eq!(kept, WeightValues::Bf16(bits.clone()));
        let (f32s, _, _) = block_on(shards.read_block(&whole("w"))).unwrap();
        let widened = kept.to_f32();
        assert_eq!(widened.len(), f32s.len());
        assert!(widened
            .iter()
            .zip(&f32s)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(f32s[9].is_nan());

        let rows_loc = WeightLoc::Rows {
            tensor: "w".into(),
            start: 1,
            end: 3,
        };
        let (block, rows, _) = block_on(shards.read_block_values(&rows_loc, true)).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(block, WeightValues::Bf16(bits[4..].to_vec()));
        let mut row = [0.0f32; 4];
        block.widen_into(4..8, &mut row);
        assert_eq!(row[..1], f32s[8..9]);

        let cols_loc = WeightLoc::Cols {
            tensor: "w".into(),
            start: 0,
            end: 2,
        };
        let (cols_block, _, _) = block_on(shards.read_block_values(&cols_loc, true)).unwrap();
        assert!(matches!(cols_block, WeightValues::F32(_)));
        let (v, _, _) = block_on(shards.read_block_values(&whole("v"), true)).unwrap();
        assert_eq!(v, WeightValues::F32(vec![1.5, -2.0, 0.25, 8.0]));

        // The tap saw every block of `w` widened (whole, whole again, rows 1..3 from element 4,
        // the columns' whole read), and nothing of `v`.
        let seen = tap.seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|(name, _, _)| name == "w"));
        assert_eq!((seen[2].1, seen[2].2.len()), (4, 8));
        assert!(seen[0]
            .2
            .iter()
            .zip(&f32s)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // The NaN was found in the kept read as in any other.
        let found = shards.non_finite();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].tensor.as_str(), found[0].values.nan), ("w", 1));
    }
}
