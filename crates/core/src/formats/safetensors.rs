//! safetensors checkpoints, read lazily: the header once, then each tensor by
//! its byte range.
//!
//! Format (<https://github.com/huggingface/safetensors#format>): an 8-byte
//! little-endian `u64` `n`, then `n` bytes of UTF-8 JSON (may be padded with
//! trailing spaces), then the tensor data. The JSON maps tensor names to
//! `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the
//! start of the data) plus an optional `"__metadata__"` map of string → string.
//!
//! We parse the header ourselves instead of calling `safetensors::SafeTensors`
//! because that crate stores offsets as `usize`, which is 32 bits on wasm32:
//! files over 4 GB would fail in the page. Here every offset is a `u64`, the
//! validation mirrors the crate's (`SafeTensors::read_metadata` and
//! `Metadata::validate`) and adds what it lacks (duplicate names, precise
//! messages). Nothing in this module can panic on any input.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::source::ByteSource;

mod decode;
pub use decode::{
    bf16_bits_into, bf16_bits_to_f32, decode_f32, decode_f32_into, decode_f64, decode_f64_into,
    decode_i64, gather_strided, read_tensor_f32, read_tensor_f64, scan_values, ValueScan,
};

/// Largest header we read, in bytes: the same cap as the safetensors crate
/// (`MAX_HEADER_SIZE`), so a corrupt length never makes us allocate gigabytes.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Length of the little-endian `u64` that starts every file.
const LEN_PREFIX: u64 = 8;

/// Element type of a tensor, spelled as in the safetensors spec.
///
/// Every dtype the spec names is parsed; the FP8/FP6/FP4 and complex ones are
/// refused only when a tensor of that type is decoded.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    BOOL,
    F4,
    F6_E2M3,
    F6_E3M2,
    U8,
    I8,
    F8_E5M2,
    F8_E4M3,
    F8_E8M0,
    F8_E4M3FNUZ,
    F8_E5M2FNUZ,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    C64,
    F64,
    I64,
    U64,
}

impl Dtype {
    /// Every dtype, for look-ups and tests.
    pub const ALL: [Dtype; 22] = [
        Dtype::BOOL,
        Dtype::F4,
        Dtype::F6_E2M3,
        Dtype::F6_E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The safetensors spelling, e.g. `"BF16"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::BOOL => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6_E2M3 => "F6_E2M3",
            Dtype::F6_E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8_E5M2 => "F8_E5M2",
            Dtype::F8_E4M3 => "F8_E4M3",
            Dtype::F8_E8M0 => "F8_E8M0",
            Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// Parses the safetensors spelling; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bits per element (4 and 6 for the sub-byte MX formats).
    pub fn size_bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6_E2M3 | Dtype::F6_E3M2 => 6,
            Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => 8,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }

    /// Bytes per element, rounded up: 1 for the sub-byte F4/F6 formats (whose
    /// layout is checked in bits, see [`Dtype::size_bits`]).
    pub fn size_bytes(self) -> usize {
        match self.size_bits() {
            64 => 8,
            32 => 4,
            16 => 2,
            _ => 1,
        }
    }

    /// Real floating-point types (F16, BF16, F32, F64 and the FP8/FP6/FP4
    /// formats); not complex, not BOOL.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Dtype::F4
                | Dtype::F6_E2M3
                | Dtype::F6_E3M2
                | Dtype::F8_E5M2
                | Dtype::F8_E4M3
                | Dtype::F8_E8M0
                | Dtype::F8_E4M3FNUZ
                | Dtype::F8_E5M2FNUZ
                | Dtype::F16
                | Dtype::BF16
                | Dtype::F32
                | Dtype::F64
        )
    }

    /// Signed and unsigned integer types (U8..U64); not BOOL.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Dtype::U8
                | Dtype::I8
                | Dtype::I16
                | Dtype::U16
                | Dtype::I32
                | Dtype::U32
                | Dtype::I64
                | Dtype::U64
        )
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Dtype {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Dtype {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Dtype::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown dtype \"{name}\"")))
    }
}

/// One tensor of the header, with absolute offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Absolute file offset of the first byte (data offset + 8 + header length).
    pub start: u64,
    /// Length in bytes: the tensor's data, or for a strided view every byte
    /// from its first element to its last.
    pub len: u64,
    /// Element strides of a tensor that is a strided view of its storage (a
    /// transposed PyTorch tensor): its elements are gathered from
    /// `start..start + len` by [`gather_strided`]. `None` for row-major data,
    /// which every safetensors tensor is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strides: Option<Vec<u64>>,
}

impl TensorInfo {
    /// Number of elements. The header parser has checked that this product
    /// does not overflow; for a hand-made `TensorInfo` it saturates.
    pub fn numel(&self) -> u64 {
        self.shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Absolute byte range of the tensor in the file.
    pub fn byte_range(&self) -> Range<u64> {
        self.start..self.start.saturating_add(self.len)
    }
}

/// A parsed and validated header (it travels with a page worker's job, so it deserialises).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Length of the JSON header in bytes (the `n` of the prefix).
    pub header_len: u64,
    /// Length of the whole file in bytes.
    pub file_len: u64,
    /// The `__metadata__` map (empty if absent).
    pub metadata: BTreeMap<String, String>,
    /// Tensors in file (offset) order.
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// The tensor with this exact name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute offset of the first data byte: `8 + header_len`.
    pub fn data_start(&self) -> u64 {
        LEN_PREFIX.saturating_add(self.header_len)
    }

    /// Distinct dtypes, in order of first use (file order).
    pub fn dtypes(&self) -> Vec<Dtype> {
        let mut out = Vec::new();
        for t in &self.tensors {
            if !out.contains(&t.dtype) {
                out.push(t.dtype);
            }
        }
        out
    }
}

/// Everything that can be wrong with a safetensors file, one variant per way.
/// Messages do not name the file: the caller prefixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file is {len} bytes, too short for the 8-byte header length that starts every safetensors file")]
    TooShort { len: u64 },
    #[error("header length is {header_len} bytes, more than the {max} allowed (not a safetensors file, or corrupt)")]
    HeaderTooLarge { header_len: u64, max: u64 },
    #[error(
        "header says {header_len} bytes but the file has only {available} after the length prefix"
    )]
    HeaderPastEnd { header_len: u64, available: u64 },
    #[error("header is not valid UTF-8 text (bad byte at position {position})")]
    HeaderNotUtf8 { position: u64 },
    #[error("header is not valid JSON: {message}")]
    HeaderNotJson { message: String },
    #[error(
        "header is JSON {found}, but it must be an object mapping tensor names to their entries"
    )]
    HeaderNotObject { found: String },
    #[error("\"__metadata__\" must be an object of string values, but it is {found}")]
    MetadataNotObject { found: String },
    #[error(
        "\"__metadata__\" value of key \"{key}\" is {found}, but metadata values must be strings"
    )]
    MetadataValueNotString { key: String, found: String },
    #[error("tensor \"{tensor}\" appears more than once in the header")]
    DuplicateTensor { tensor: String },
    #[error("key \"{key}\" appears more than once in the entry of \"{entry}\"")]
    DuplicateKey { entry: String, key: String },
    #[error("entry for tensor \"{tensor}\" is {found}, but it must be an object with dtype, shape and data_offsets")]
    TensorNotObject { tensor: String, found: String },
    #[error("tensor \"{tensor}\" has no \"{field}\"")]
    MissingField { tensor: String, field: String },
    #[error("tensor \"{tensor}\": \"{field}\" must be {expected}, found {found}")]
    BadField {
        tensor: String,
        field: String,
        expected: String,
        found: String,
    },
    #[error("tensor \"{tensor}\" has unknown dtype \"{dtype}\"")]
    UnknownDtype { tensor: String, dtype: String },
    #[error("tensor \"{tensor}\": data_offsets [{begin}, {end}] end before they begin")]
    OffsetsReversed {
        tensor: String,
        begin: u64,
        end: u64,
    },
    #[error(
        "tensor \"{tensor}\": shape {shape:?} has too many elements to count in 64 bits (overflow)"
    )]
    ShapeOverflow { tensor: String, shape: Vec<u64> },
    #[error(
        "tensor \"{tensor}\": {numel} elements of {dtype} do not fill a whole number of bytes"
    )]
    MisalignedBits {
        tensor: String,
        numel: u64,
        dtype: Dtype,
    },
    #[error("tensor \"{tensor}\": {dtype} {shape:?} needs {expected} bytes but its data_offsets span {actual}")]
    SizeMismatch {
        tensor: String,
        dtype: Dtype,
        shape: Vec<u64>,
        expected: u64,
        actual: u64,
    },
    #[error("tensors \"{first}\" (data bytes {first_begin}..{first_end}) and \"{second}\" (data bytes {second_begin}..{second_end}) overlap")]
    Overlap {
        first: String,
        first_begin: u64,
        first_end: u64,
        second: String,
        second_begin: u64,
        second_end: u64,
    },
    #[error("gap of {gap} unused bytes (data bytes {from}..{to}) before tensor \"{tensor}\": tensor data must be contiguous")]
    Gap {
        tensor: String,
        from: u64,
        to: u64,
        gap: u64,
    },
    #[error("truncated: expected {expected} bytes of tensor data, found {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("trailing bytes: the tensors use {expected} bytes of data but the file has {found} ({extra} extra)")]
    TrailingBytes {
        expected: u64,
        found: u64,
        extra: u64,
    },
    #[error("could not read {len} bytes at offset {offset}: {message}")]
    Io {
        offset: u64,
        len: u64,
        message: String,
    },
    #[error("{what} is {len} bytes, more than this platform can hold in memory")]
    TooLargeForMemory { what: String, len: u64 },
    #[error("unsupported dtype {dtype}: cannot decode it {target}")]
    UnsupportedDtype { dtype: Dtype, target: String },
    #[error("{len} bytes is not a whole number of {dtype} elements ({size} bytes each)")]
    RaggedBytes { dtype: Dtype, len: u64, size: u64 },
    #[error("tensor \"{tensor}\": shape {shape:?} with strides {strides:?} reaches past its {len} bytes")]
    StridedOutside {
        tensor: String,
        shape: Vec<u64>,
        strides: Vec<u64>,
        len: u64,
    },
    #[error("value {value} of a U64 tensor is too large for a signed 64-bit integer")]
    IntegerOutOfRange { value: u64 },
}

/// Validates the 8-byte length prefix and returns the header length `n`.
///
/// Checks: at least 8 bytes, `n ≤ MAX_HEADER_LEN`, and `8 + n ≤ file_len`.
pub fn read_header_len(first8: &[u8], file_len: u64) -> Result<u64, SafetensorsError> {
    let prefix: [u8; 8] =
        first8
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(SafetensorsError::TooShort {
                len: (first8.len() as u64).min(file_len),
            })?;
    if file_len < LEN_PREFIX {
        return Err(SafetensorsError::TooShort { len: file_len });
    }
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            header_len: n,
            max: MAX_HEADER_LEN,
        });
    }
    let available = file_len - LEN_PREFIX; // file_len ≥ 8 checked above
    if n > available {
        return Err(SafetensorsError::HeaderPastEnd {
            header_len: n,
            available,
        });
    }
    Ok(n)
}

/// Reads and validates the header of a safetensors file: two reads (the
/// 8-byte prefix, then the `n` header bytes), never more.
pub fn read_header(src: &(impl ByteSource + ?Sized)) -> Result<Header, SafetensorsError> {
    let file_len = src.len();
    if file_len < LEN_PREFIX {
        return Err(SafetensorsError::TooShort { len: file_len });
    }
    let first8 = read_range(src, 0, LEN_PREFIX)?;
    let n = read_header_len(&first8, file_len)?;
    let json = read_range(src, LEN_PREFIX, n)?;
    parse_header(&json, file_len)
}

/// Parses and validates the JSON header (the `n` bytes after the prefix) of a
/// file that is `file_len` bytes long in total.
///
/// Everything a header can get wrong is checked here; see [`SafetensorsError`].
pub fn parse_header(json: &[u8], file_len: u64) -> Result<Header, SafetensorsError> {
    let header_len = json.len() as u64;
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            header_len,
            max: MAX_HEADER_LEN,
        });
    }
    let data_len = file_len
        .checked_sub(LEN_PREFIX)
        .and_then(|rest| rest.checked_sub(header_len))
        .ok_or(SafetensorsError::HeaderPastEnd {
            header_len,
            available: file_len.saturating_sub(LEN_PREFIX),
        })?;
    let text = std::str::from_utf8(json).map_err(|e| SafetensorsError::HeaderNotUtf8 {
        position: e.valid_up_to() as u64,
    })?;
    let entries = parse_entries(text)?;
    // serde_json keeps the last of repeated keys; a file that says two things
    // about one tensor is refused instead.
    if let Ok(FirstDuplicate(Some(path))) = serde_json::from_str::<FirstDuplicate>(text) {
        let mut path = path.into_iter();
        let entry = path.next().unwrap_or_default();
        return Err(match path.last() {
            None => SafetensorsError::DuplicateTensor { tensor: entry },
            Some(key) => SafetensorsError::DuplicateKey { entry, key },
        });
    }

    let mut metadata = BTreeMap::new();
    let mut seen = HashSet::new();
    // (name, dtype, shape, begin, end) with offsets relative to the data.
    let mut tensors: Vec<(String, Dtype, Vec<u64>, u64, u64)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            return Err(SafetensorsError::DuplicateTensor { tensor: name });
        }
        if name == "__metadata__" {
            metadata = parse_metadata(value)?;
            continue;
        }
        tensors.push(parse_tensor_entry(name, &value)?);
    }

    // Layout: sorted by begin, the ranges must tile [0, data_len) exactly.
    tensors.sort_by(|a, b| (a.3, a.4, &a.0).cmp(&(b.3, b.4, &b.0)));
    let data_start = LEN_PREFIX + header_len; // ≤ file_len, checked above
    let mut end_so_far = 0u64;
    let mut prev: Option<(&str, u64, u64)> = None;
    for (name, _, _, begin, end) in &tensors {
        if *begin < end_so_far {
            let (first, first_begin, first_end) = prev.unwrap_or(("", 0, 0));
            return Err(SafetensorsError::Overlap {
                first: first.to_string(),
                first_begin,
                first_end,
                second: name.clone(),
                second_begin: *begin,
                second_end: *end,
            });
        }
        if *begin > end_so_far {
            if *begin > data_len {
                // The tensor starts past the end of the file: the file is cut
                // short, which is the more useful thing to say than "gap".
                let expected = tensors.iter().map(|t| t.4).max().unwrap_or(0);
                return Err(SafetensorsError::Truncated {
                    expected,
                    found: data_len,
                });
            }
            return Err(SafetensorsError::Gap {
                tensor: name.clone(),
                from: end_so_far,
                to: *begin,
                gap: begin - end_so_far,
            });
        }
        end_so_far = *end;
        prev = Some((name, *begin, *end));
    }
    if end_so_far > data_len {
        return Err(SafetensorsError::Truncated {
            expected: end_so_far,
            found: data_len,
        });
    }
    if end_so_far < data_len {
        return Err(SafetensorsError::TrailingBytes {
            expected: end_so_far,
            found: data_len,
            extra: data_len - end_so_far,
        });
    }

    let tensors = tensors
        .into_iter()
        .map(|(name, dtype, shape, begin, end)| TensorInfo {
            name,
            dtype,
            shape,
            // begin ≤ end ≤ data_len, so data_start + begin ≤ file_len.
            start: data_start + begin,
            len: end - begin,
            strides: None,
        })
        .collect();
    Ok(Header {
        header_len,
        file_len,
        metadata,
        tensors,
    })
}

/// The top-level JSON object as a list of entries, keeping duplicate keys
/// (serde_json's own maps would silently keep the last one).
fn parse_entries(text: &str) -> Result<Vec<(String, Value)>, SafetensorsError> {
    struct Entries(Vec<(String, Value)>);
    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Entries;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry::<String, Value>()? {
                        out.push(entry);
                    }
                    Ok(Entries(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    match serde_json::from_str::<Entries>(text) {
        Ok(Entries(entries)) => Ok(entries),
        // A type error: the JSON is well-formed but not an object (values
        // are `Value`s, which accept anything).
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            Err(SafetensorsError::HeaderNotObject {
                found: describe_json_start(text),
            })
        }
        Err(e) => Err(SafetensorsError::HeaderNotJson {
            message: e.to_string(),
        }),
    }
}

/// The key path to the first repeated object key of a JSON document
/// (`["w", "dtype"]`: `"dtype"` twice in the object under `"w"`), if any.
struct FirstDuplicate(Option<Vec<String>>);

impl<'de> Deserialize<'de> for FirstDuplicate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstDuplicate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_unit<E>(self) -> Result<FirstDuplicate, E> {
                Ok(FirstDuplicate(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FirstDuplicate, A::Error> {
                let mut found = None;
                while let Some(FirstDuplicate(inner)) = seq.next_element()? {
                    found = found.or(inner);
                }
                Ok(FirstDuplicate(found))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FirstDuplicate, A::Error> {
                let mut keys = HashSet::new();
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    let FirstDuplicate(inner) = map.next_value()?;
                    if found.is_none() {
                        if keys.contains(&key) {
                            found = Some(vec![key]);
                        } else if let Some(mut path) = inner {
                            path.insert(0, key.clone());
                            found = Some(path);
                        } else {
                            keys.insert(key);
                        }
                    }
                }
                Ok(FirstDuplicate(found))
            }
        }
        d.deserialize_any(V)
    }
}

fn describe_json_start(text: &str) -> String {
    match text.trim_start().chars().next() {
        Some('[') => "an array",
        Some('"') => "a string",
        Some('t' | 'f') => "a boolean",
        Some('n') => "null",
        _ => "a number",
    }
    .to_string()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn parse_metadata(value: Value) -> Result<BTreeMap<String, String>, SafetensorsError> {
    let map = match value {
        Value::Object(map) => map,
        // As the safetensors crate (`Option<HashMap<..>>`): null = absent.
        Value::Null => return Ok(BTreeMap::new()),
        other => {
            return Err(SafetensorsError::MetadataNotObject {
                found: describe(&other),
            })
        }
    };
    let mut out = BTreeMap::new();
    for (key, v) in map {
        match v {
            Value::String(s) => {
                out.insert(key, s);
            }
            other => {
                return Err(SafetensorsError::MetadataValueNotString {
                    key,
                    found: describe(&other),
                })
            }
        }
    }
    Ok(out)
}

fn parse_tensor_entry(
    name: String,
    value: &Value,
) -> Result<(String, Dtype, Vec<u64>, u64, u64), SafetensorsError> {
    let Value::Object(obj) = value else {
        return Err(SafetensorsError::TensorNotObject {
            tensor: name,
            found: describe(value),
        });
    };
    let field = |f: &str| {
        obj.get(f).ok_or_else(|| SafetensorsError::MissingField {
            tensor: name.clone(),
            field: f.to_string(),
        })
    };
    let bad = |f: &str, expected: &str, v: &Value| SafetensorsError::BadField {
        tensor: name.clone(),
        field: f.to_string(),
        expected: expected.to_string(),
        found: describe(v),
    };

    let dtype_v = field("dtype")?;
    let dtype_s = dtype_v
        .as_str()
        .ok_or_else(|| bad("dtype", "a string", dtype_v))?;
    let shape_v = field("shape")?;
    let offsets_v = field("data_offsets")?;
    let dtype = Dtype::from_name(dtype_s).ok_or_else(|| SafetensorsError::UnknownDtype {
        tensor: name.clone(),
        dtype: dtype_s.to_string(),
    })?;

    const DIMS: &str = "an array of non-negative integers";
    let shape = shape_v
        .as_array()
        .ok_or_else(|| bad("shape", DIMS, shape_v))?
        .iter()
        .map(|d| d.as_u64().ok_or_else(|| bad("shape", DIMS, d)))
        .collect::<Result<Vec<u64>, _>>()?;

    const OFFSETS: &str = "two non-negative integers [begin, end]";
    let offsets = offsets_v
        .as_array()
        .ok_or_else(|| bad("data_offsets", OFFSETS, offsets_v))?;
    let [begin_v, end_v] = offsets.as_slice() else {
        return Err(bad("data_offsets", OFFSETS, offsets_v));
    };
    let begin = begin_v
        .as_u64()
        .ok_or_else(|| bad("data_offsets", OFFSETS, begin_v))?;
    let end = end_v
        .as_u64()
        .ok_or_else(|| bad("data_offsets", OFFSETS, end_v))?;
    if begin > end {
        return Err(SafetensorsError::OffsetsReversed {
            tensor: name,
            begin,
            end,
        });
    }

    let overflow = || SafetensorsError::ShapeOverflow {
        tensor: name.clone(),
        shape: shape.clone(),
    };
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let bits = numel.checked_mul(dtype.size_bits()).ok_or_else(overflow)?;
    if bits % 8 != 0 {
        return Err(SafetensorsError::MisalignedBits {
            tensor: name,
            numel,
            dtype,
        });
    }
    let expected = bits / 8;
    let actual = end - begin;
    if expected != actual {
        return Err(SafetensorsError::SizeMismatch {
            tensor: name,
            dtype,
            shape,
            expected,
            actual,
        });
    }
    Ok((name, dtype, shape, begin, end))
}

fn read_range(
    src: &(impl ByteSource + ?Sized),
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, SafetensorsError> {
    let n: usize = len
        .try_into()
        .map_err(|_| SafetensorsError::TooLargeForMemory {
            what: format!("a read at offset {offset}"),
            len,
        })?;
    src.read_at(offset, n).map_err(|e| SafetensorsError::Io {
        offset,
        len,
        message: e.to_string(),
    })
}

/// Reads the raw bytes of one tensor, row-major: one read of exactly
/// `t.byte_range()` (gathered, for a strided view).
pub fn read_tensor_bytes(
    src: &(impl ByteSource + ?Sized),
    t: &TensorInfo,
) -> Result<Vec<u8>, SafetensorsError> {
    let _: usize = t
        .len
        .try_into()
        .map_err(|_| SafetensorsError::TooLargeForMemory {
            what: format!("tensor \"{}\"", t.name),
            len: t.len,
        })?;
    let raw = read_range(src, t.start, t.len)?;
    row_major_bytes(t, raw)
}

/// `raw` (the bytes of `t.byte_range()`) as the tensor's row-major bytes.
pub fn row_major_bytes(t: &TensorInfo, raw: Vec<u8>) -> Result<Vec<u8>, SafetensorsError> {
    match &t.strides {
        None => Ok(raw),
        Some(strides) => {
            gather_strided(&raw, t.dtype.size_bytes(), &t.shape, strides).ok_or_else(|| {
                SafetensorsError::StridedOutside {
                    tensor: t.name.clone(),
                    shape: t.shape.clone(),
                    strides: strides.clone(),
                    len: t.len,
                }
            })
        }
    }
}

#[cfg(test)]
mod tests;
