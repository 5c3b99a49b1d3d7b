//! Token batches (the eval batch, the held-out set): a `[batch, seq_len]`
//! matrix of token ids, read from safetensors, NumPy `.npy` or JSON.
//!
//! `.npy` is read by a small hand parser (the maintained crates pull in big
//! number and literal-parsing stacks): versions 1, 2 and 3 of the format
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>),
//! C order only, integer dtypes `i1 u1 i2 u2 i4 u4 i8 u8`. Big-endian data
//! (`>i4`) is byte-swapped rather than refused; `=` (native) is read as
//! little-endian, the byte order of every machine NumPy writes on in practice.

use serde::Serialize;

use super::safetensors::{decode_i64, read_header, read_tensor_bytes, Dtype, SafetensorsError};
use crate::source::ByteSource;

/// Token ids, row-major `[batch, seq_len]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq_len: usize,
    pub ids: Vec<u32>,
}

/// Everything that can be wrong with a token file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error(
        "no token tensor: expected \"input_ids\" or exactly one integer tensor, found {found:?}"
    )]
    NoTokenTensor { found: Vec<String> },
    #[error("tensor \"{tensor}\" is {dtype}, but token ids must be integers")]
    NotIntegerDtype { tensor: String, dtype: Dtype },
    #[error("token ids must be a 1-D [seq_len] or 2-D [batch, seq_len] array, but the shape is {shape:?}")]
    BadRank { shape: Vec<u64> },
    #[error("the file holds no token ids (shape {shape:?})")]
    Empty { shape: Vec<u64> },
    #[error("{numel} token ids are more than this platform can hold in memory")]
    TooLarge { numel: u64 },
    #[error("negative token id {id} at row {row}, column {col}")]
    NegativeId { id: i64, row: usize, col: usize },
    #[error("token id {id} at row {row}, column {col} is too large (over 4294967295)")]
    IdTooLarge { id: i128, row: usize, col: usize },
    #[error("token id {id} at row {row}, column {col} is not below the vocabulary size {vocab}")]
    IdOutOfVocab {
        id: u32,
        row: usize,
        col: usize,
        vocab: usize,
    },
    #[error("not a .npy file: it does not start with the magic bytes \\x93NUMPY")]
    NpyBadMagic,
    #[error(".npy format version {major}.{minor} is not supported (only 1.0, 2.0 and 3.0)")]
    NpyVersion { major: u8, minor: u8 },
    #[error(".npy header is malformed: {problem}")]
    NpyHeader { problem: String },
    #[error(
        ".npy array is in Fortran (column-major) order; save it in C order (np.ascontiguousarray)"
    )]
    NpyFortranOrder,
    #[error(".npy dtype \"{descr}\" is not an integer type; token ids must be integers")]
    NpyNotInteger { descr: String },
    #[error(".npy data is {found} bytes but shape and dtype need {expected}")]
    NpyDataLen { expected: u64, found: u64 },
    #[error("token JSON is not valid JSON: {message}")]
    JsonSyntax { message: String },
    #[error("token JSON must be an array of ids, an array of equal-length arrays, or an object with \"input_ids\", \"tokens\" or \"ids\"")]
    JsonShape,
    #[error(
        "row {row} has {len} ids but row 0 has {expected}: all rows must have the same length"
    )]
    JsonRagged {
        row: usize,
        len: usize,
        expected: usize,
    },
    #[error("value at row {row}, column {col} is {found}, not an integer token id")]
    JsonNotInteger {
        row: usize,
        col: usize,
        found: String,
    },
}

impl TokenBatch {
    /// SHA-256 (hex) of the batch's content — its shape and ids, not its file
    /// name — so two files holding the same tokens have the same digest.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((self.batch as u64).to_le_bytes());
        h.update((self.seq_len as u64).to_le_bytes());
        for id in &self.ids {
            h.update(id.to_le_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Builds a batch from `[batch, seq_len]` row-major i64 ids, checking each.
    fn from_i64(
        batch: usize,
        seq_len: usize,
        ids: impl IntoIterator<Item = i128>,
    ) -> Result<Self, TokenError> {
        let ids = ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let (row, col) = (i / seq_len.max(1), i % seq_len.max(1));
                if id < 0 {
                    return Err(TokenError::NegativeId {
                        id: id as i64,
                        row,
                        col,
                    });
                }
                u32::try_from(id).map_err(|_| TokenError::IdTooLarge { id, row, col })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(TokenBatch {
            batch,
            seq_len,
            ids,
        })
    }

    /// Row `b` (empty if out of range).
    pub fn row(&self, b: usize) -> &[u32] {
        let start = b.saturating_mul(self.seq_len);
        self.ids
            .get(start..start.saturating_add(self.seq_len))
            .unwrap_or(&[])
    }

    /// The largest id, `None` for an empty batch.
    pub fn max_id(&self) -> Option<u32> {
        self.ids.iter().copied().max()
    }

    /// Checks that every id is below `vocab`; the error names the first
    /// offending id (row-major order) with its row and column.
    pub fn check_vocab(&self, vocab: usize) -> Result<(), TokenError> {
        match self.ids.iter().position(|&id| id as usize >= vocab) {
            None => Ok(()),
            Some(i) => Err(TokenError::IdOutOfVocab {
                id: self.ids.get(i).copied().unwrap_or_default(),
                row: i / self.seq_len.max(1),
                col: i % self.seq_len.max(1),
                vocab,
            }),
        }
    }
}

/// `[batch, seq_len]` from a shape of rank 1 (batch 1) or 2.
fn batch_dims(shape: &[u64]) -> Result<(usize, usize), TokenError> {
    let (b, s) = match shape {
        [s] => (1, *s),
        [b, s] => (*b, *s),
        _ => {
            return Err(TokenError::BadRank {
                shape: shape.to_vec(),
            })
        }
    };
    let numel = b
        .checked_mul(s)
        .ok_or(TokenError::TooLarge { numel: u64::MAX })?;
    if numel == 0 {
        return Err(TokenError::Empty {
            shape: shape.to_vec(),
        });
    }
    let too_large = || TokenError::TooLarge { numel };
    Ok((
        b.try_into().map_err(|_| too_large())?,
        s.try_into().map_err(|_| too_large())?,
    ))
}

/// Reads token ids from a safetensors file: the tensor `input_ids`, or else
/// the only integer tensor if there is exactly one. Rank 1 is one row.
pub fn parse_tokens_safetensors(
    src: &(impl ByteSource + ?Sized),
) -> Result<TokenBatch, TokenError> {
    let header = read_header(src)?;
    let tensor = match header.tensor("input_ids") {
        Some(t) => t,
        None => {
            let mut ints = header.tensors.iter().filter(|t| t.dtype.is_integer());
            match (ints.next(), ints.next()) {
                (Some(t), None) => t,
                _ => {
                    return Err(TokenError::NoTokenTensor {
                        found: header
                            .tensors
                            .iter()
                            .map(|t| format!("{} ({})", t.name, t.dtype))
                            .collect(),
                    })
                }
            }
        }
    };
    if !tensor.dtype.is_integer() {
        return Err(TokenError::NotIntegerDtype {
            tensor: tensor.name.clone(),
            dtype: tensor.dtype,
        });
    }
    let (batch, seq_len) = batch_dims(&tensor.shape)?;
    let bytes = read_tensor_bytes(src, tensor)?;
    let ids = decode_i64(&bytes, tensor.dtype)?;
    TokenBatch::from_i64(batch, seq_len, ids.into_iter().map(i128::from))
}

/// Reads token ids from a NumPy `.npy` file (see the module docs for what is
/// accepted).
pub fn parse_npy(bytes: &[u8]) -> Result<TokenBatch, TokenError> {
    let header_err = |p: &str| TokenError::NpyHeader {
        problem: p.to_string(),
    };
    if bytes.get(..6) != Some(b"\x93NUMPY".as_slice()) {
        return Err(TokenError::NpyBadMagic);
    }
    let (major, minor) = match bytes.get(6..8) {
        Some([a, b]) => (*a, *b),
        _ => return Err(header_err("file ends inside the version bytes")),
    };
    let (len_size, header_start) = match (major, minor) {
        (1, 0) => (2usize, 10usize),
        (2, 0) | (3, 0) => (4, 12),
        _ => return Err(TokenError::NpyVersion { major, minor }),
    };
    let len_bytes = bytes
        .get(8..8 + len_size)
        .ok_or_else(|| header_err("file ends inside the header length"))?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |a, &b| (a << 8) | usize::from(b));
    let data_start = header_start
        .checked_add(header_len)
        .ok_or_else(|| header_err("header length overflows"))?;
    let header = bytes
        .get(header_start..data_start)
        .ok_or_else(|| header_err("header length is past the end of the file"))?;
    // v1/v2 headers are latin-1 (in practice ASCII), v3 UTF-8.
    let header = std::str::from_utf8(header).map_err(|_| header_err("header is not text"))?;
    let dict = parse_npy_dict(header).map_err(|p| TokenError::NpyHeader { problem: p })?;

    if dict.fortran_order {
        return Err(TokenError::NpyFortranOrder);
    }
    let descr = dict.descr.as_str();
    let (order, kind) = match descr.as_bytes() {
        [o @ (b'<' | b'>' | b'|' | b'='), rest @ ..] => (*o, rest),
        _ => (b'=', descr.as_bytes()),
    };
    let (signed, size) = match kind {
        b"i1" => (true, 1),
        b"u1" => (false, 1),
        b"i2" => (true, 2),
        b"u2" => (false, 2),
        b"i4" => (true, 4),
        b"u4" => (false, 4),
        b"i8" => (true, 8),
        b"u8" => (false, 8),
        _ => {
            return Err(TokenError::NpyNotInteger {
                descr: descr.to_string(),
            })
        }
    };
    let (batch, seq_len) = batch_dims(&dict.shape)?;
    let numel = batch
        .checked_mul(seq_len)
        .ok_or(TokenError::TooLarge { numel: u64::MAX })?;
    let expected = numel.checked_mul(size).ok_or(TokenError::TooLarge {
        numel: numel as u64,
    })?;
    let data = bytes.get(data_start..).unwrap_or(&[]);
    if data.len() != expected {
        return Err(TokenError::NpyDataLen {
            expected: expected as u64,
            found: data.len() as u64,
        });
    }
    let big_endian = order == b'>';
    let ids = data.chunks_exact(size).map(|c| {
        let mut buf = [0u8; 8];
        // Widen to 8 little-endian bytes, sign-extending signed types.
        let negative =
            signed && if big_endian { c.first() } else { c.last() }.is_some_and(|&b| b & 0x80 != 0);
        if negative {
            buf = [0xFF; 8];
        }
        for (i, &b) in c.iter().enumerate() {
            let at = if big_endian { size - 1 - i } else { i };
            if let Some(slot) = buf.get_mut(at) {
                *slot = b;
            }
        }
        if signed {
            i128::from(i64::from_le_bytes(buf))
        } else {
            i128::from(u64::from_le_bytes(buf))
        }
    });
    TokenBatch::from_i64(batch, seq_len, ids)
}

struct NpyDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// Parses the Python dict literal of a `.npy` header, e.g.
/// `{'descr': '<i8', 'fortran_order': False, 'shape': (4, 128), }`.
fn parse_npy_dict(text: &str) -> Result<NpyDict, String> {
    let mut p = Lit {
        s: text.trim().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        match key.as_str() {
            "descr" => {
                descr = Some(p.string().map_err(|_| {
                    "'descr' must be a string such as '<i8' (structured dtypes are not token ids)"
                        .to_string()
                })?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(NpyDict {
        descr: descr.ok_or("no 'descr'")?,
        fortran_order: fortran.ok_or("no 'fortran_order'")?,
        shape: shape.ok_or("no 'shape'")?,
    })
}

/// A cursor over a Python literal.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lit<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at position {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = self
            .peek()
            .filter(|&q| q == b'\'' || q == b'"')
            .ok_or(format!("expected a string at position {}", self.i))?;
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != quote) {
            self.i += 1;
        }
        let body = self.s.get(start..self.i).unwrap_or_default();
        self.expect(quote)?;
        Ok(String::from_utf8_lossy(body).into_owned())
    }
    fn word(&mut self) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or_default()
    }
    fn boolean(&mut self) -> Result<bool, String> {
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err("'fortran_order' must be True or False".to_string()),
        }
    }
    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let w = self.word();
            let digits = w.strip_suffix(b"L").unwrap_or(w); // Python 2 longs
            let dim = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or("'shape' must be a tuple of non-negative integers")?;
            dims.push(dim);
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// Reads token ids from JSON: a flat array (one row), an array of
/// equal-length arrays, or an object whose `input_ids`, `tokens` or `ids` key
/// holds one of those (the first such key in the file; other keys are
/// skipped unread).
///
/// The ids are read as a stream straight into the batch (serde visitors, no
/// `serde_json::Value`): memory is 4 bytes an id, not the ~40 bytes an id of
/// a generic JSON tree, so a 200 MB `[0,0,…]` costs ~400 MB, not 8 GB.
pub fn parse_tokens_json(bytes: &[u8]) -> Result<TokenBatch, TokenError> {
    let mut reader = json_ids::Reader::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(json_ids::Top(&mut reader), &mut de)
        .and_then(|()| de.end());
    if let Some(e) = reader.error.take() {
        return Err(e);
    }
    if let Err(e) = parsed {
        return Err(TokenError::JsonSyntax {
            message: e.to_string(),
        });
    }
    if !reader.found {
        return Err(TokenError::JsonShape);
    }
    let seq_len = reader.row_len.unwrap_or(reader.ids.len());
    let batch = if reader.nested { reader.rows } else { 1 };
    if batch * seq_len == 0 {
        return Err(TokenError::Empty {
            shape: vec![batch as u64, seq_len as u64],
        });
    }
    Ok(TokenBatch {
        batch,
        seq_len,
        ids: reader.ids,
    })
}

/// The serde visitors behind [`parse_tokens_json`]. A problem with the
/// content (a negative id, a ragged row) is kept in [`Reader::error`] and
/// stops the parse through a serde error whose text is not used.
mod json_ids {
    use super::TokenError;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    #[derive(Default)]
    pub(super) struct Reader {
        pub ids: Vec<u32>,
        /// Rows read so far (array-of-arrays form).
        pub rows: usize,
        /// Length of row 0.
        pub row_len: Option<usize>,
        /// Whether the ids come in rows (`[[…], […]]`) rather than flat.
        pub nested: bool,
        /// Whether the ids array was found (top level, or under a key).
        pub found: bool,
        pub error: Option<TokenError>,
    }

    impl Reader {
        fn fail<E: de::Error>(&mut self, e: TokenError) -> E {
            self.error = Some(e);
            E::custom("token ids")
        }
    }

    const KEYS: [&str; 3] = ["input_ids", "tokens", "ids"];

    /// The whole document: the ids array, or an object holding it.
    pub(super) struct Top<'a>(pub &'a mut Reader);

    impl<'de> DeserializeSeed<'de> for Top<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Top<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of token ids or an object with \"input_ids\"")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            Ids(self.0).visit_seq(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if !self.0.found && KEYS.contains(&key.as_ref()) {
                    map.next_value_seed(IdsSeed(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
        // Any other document (a number, a string, …) has no ids: `found` stays false.
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    /// The ids array under a key: it must be an array.
    struct IdsSeed<'a>(&'a mut Reader);

    impl<'de> DeserializeSeed<'de> for IdsSeed<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Ids(self.0))
        }
    }

    /// The ids array: flat ids, or rows of ids (decided by its first element).
    struct Ids<'a>(&'a mut Reader);

    impl<'de> Visitor<'de> for Ids<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of token ids")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let r = self.0;
            r.found = true;
            while seq.next_element_seed(Element(r))?.is_some() {}
            Ok(())
        }
        // A key that holds no array: the document has the wrong shape.
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Err(self.0.fail(TokenError::JsonShape))
        }
    }

    /// One element of the ids array: an id (flat form) or a row.
    struct Element<'a>(&'a mut Reader);

    impl<'de> DeserializeSeed<'de> for Element<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Element<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a token id or a row of token ids")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let r = self.0;
            // Rows after flat ids (`[1, [2]]`) mix the two forms.
            if !r.nested && !r.ids.is_empty() {
                return Err(r.fail(TokenError::JsonShape));
            }
            r.nested = true;
            let row = r.rows;
            let mut col = 0;
            while seq
                .next_element_seed(Id {
                    r: &mut *r,
                    row,
                    col,
                })?
                .is_some()
            {
                col += 1;
            }
            match r.row_len {
                None => r.row_len = Some(col),
                Some(expected) if expected != col => {
                    return Err(r.fail(TokenError::JsonRagged {
                        row,
                        len: col,
                        expected,
                    }));
                }
                Some(_) => {}
            }
            r.rows += 1;
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            self.flat(i128::from(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            self.flat(i128::from(v))
        }
        fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
            let col = self.0.ids.len();
            self.flat_check()?;
            Err(self.0.fail(TokenError::JsonNotInteger {
                row: 0,
                col,
                found: format!("the number {v:?}"),
            }))
        }
        fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
            let col = self.0.ids.len();
            self.flat_check()?;
            Err(self.0.fail(TokenError::JsonNotInteger {
                row: 0,
                col,
                found: format!("{v:?}"),
            }))
        }
        fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
            let col = self.0.ids.len();
            self.flat_check()?;
            Err(self.0.fail(TokenError::JsonNotInteger {
                row: 0,
                col,
                found: v.to_string(),
            }))
        }
        fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
            let col = self.0.ids.len();
            self.flat_check()?;
            Err(self.0.fail(TokenError::JsonNotInteger {
                row: 0,
                col,
                found: "null".into(),
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            Err(self.0.fail(TokenError::JsonShape))
        }
    }

    impl Element<'_> {
        /// A scalar after rows (`[[1], 2]`) mixes the two forms.
        fn flat_check<E: de::Error>(&mut self) -> Result<(), E> {
            if self.0.nested {
                return Err(self.0.fail(TokenError::JsonShape));
            }
            Ok(())
        }
        fn flat<E: de::Error>(mut self, id: i128) -> Result<(), E> {
            self.flat_check()?;
            let col = self.0.ids.len();
            let id = checked_id(id, 0, col).map_err(|e| self.0.fail(e))?;
            self.0.ids.push(id);
            Ok(())
        }
    }

    /// One id of a row.
    struct Id<'a> {
        r: &'a mut Reader,
        row: usize,
        col: usize,
    }

    impl<'de> DeserializeSeed<'de> for Id<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Id<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a token id")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            self.push(i128::from(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            self.push(i128::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            self.not_integer(format!("the number {v:?}"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            self.not_integer(format!("{v:?}"))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
            self.not_integer(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.not_integer("null".into())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            self.not_integer("an array".into())
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
            self.not_integer("an object".into())
        }
    }

    impl Id<'_> {
        fn push<E: de::Error>(self, id: i128) -> Result<(), E> {
            let id = checked_id(id, self.row, self.col).map_err(|e| self.r.fail(e))?;
            self.r.ids.push(id);
            Ok(())
        }
        fn not_integer<E: de::Error>(self, found: String) -> Result<(), E> {
            let (row, col) = (self.row, self.col);
            Err(self.r.fail(TokenError::JsonNotInteger { row, col, found }))
        }
    }

    fn checked_id(id: i128, row: usize, col: usize) -> Result<u32, TokenError> {
        if id < 0 {
            return Err(TokenError::NegativeId {
                id: id as i64,
                row,
                col,
            });
        }
        u32::try_from(id).map_err(|_| TokenError::IdTooLarge { id, row, col })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8], version: u8) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let pre = if version == 1 { 10 } else { 12 };
        while (pre + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((h.len() as u16).to_le_bytes());
        } else {
            out.extend((h.len() as u32).to_le_bytes());
        }
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn npy_all_integer_dtypes_and_versions() {
        let vals: [i64; 6] = [0, 1, 2, 3, 100, 127];
        for (descr, size) in [
            ("<i1", 1),
            ("|u1", 1),
            ("|i1", 1),
            ("<i2", 2),
            ("<u2", 2),
            ("<i4", 4),
            ("<u4", 4),
            ("<i8", 8),
            ("<u8", 8),
        ] {
            let data: Vec<u8> = vals
                .iter()
                .flat_map(|v| v.to_le_bytes()[..size].to_vec())
                .collect();
            for version in [1, 2, 3] {
                let b = parse_npy(&npy(descr, false, "(2, 3)", &data, version)).unwrap();
                assert_eq!((b.batch, b.seq_len), (2, 3), "{descr}");
                assert_eq!(b.ids, vec![0, 1, 2, 3, 100, 127]);
                assert_eq!(b.row(1), &[3, 100, 127]);
            }
        }
        // rank 1 → one row; big-endian is swapped.
        let b = parse_npy(&npy(">i4", false, "(2,)", &[0, 0, 1, 2, 0, 0, 0, 7], 1)).unwrap();
        assert_eq!((b.batch, b.seq_len, b.ids), (1, 2, vec![258, 7]));
    }

    #[test]
    fn npy_errors() {
        let neg = npy("<i2", false, "(1, 2)", &[5, 0, 0xFE, 0xFF], 1);
        assert_eq!(
            parse_npy(&neg),
            Err(TokenError::NegativeId {
                id: -2,
                row: 0,
                col: 1
            })
        );
        assert_eq!(
            parse_npy(&npy("<i2", false, "(1, 2)", &[5, 0], 1)),
            Err(TokenError::NpyDataLen {
                expected: 4,
                found: 2
            })
        );
        assert_eq!(
            parse_npy(&npy("<i2", false, "(1, 2, 1)", &[5, 0, 1, 0], 1)),
            Err(TokenError::BadRank {
                shape: vec![1, 2, 1]
            })
        );
        assert_eq!(
            parse_npy(&npy("<i2", false, "()", &[5, 0], 1)),
            Err(TokenError::BadRank { shape: vec![] })
        );
        assert_eq!(
            parse_npy(&npy("<i2", false, "(0, 5)", &[], 1)),
            Err(TokenError::Empty { shape: vec![0, 5] })
        );
        let mut v4 = npy("<i2", false, "(1,)", &[5, 0], 1);
        v4[6] = 4;
        assert_eq!(
            parse_npy(&v4),
            Err(TokenError::NpyVersion { major: 4, minor: 0 })
        );
        assert!(matches!(
            parse_npy(b"\x93NUMPY\x01\x00\xff\x00{"),
            Err(TokenError::NpyHeader { .. })
        ));
        assert!(matches!(
            parse_npy(b"\x93NUMPY\x01"),
            Err(TokenError::NpyHeader { .. })
        ));
        let huge = npy("<u8", false, "(1,)", &u64::MAX.to_le_bytes(), 1);
        assert!(matches!(
            parse_npy(&huge),
            Err(TokenError::IdTooLarge { row: 0, col: 0, .. })
        ));
        // Every truncation of a valid file is an error, never a panic.
        let good = npy(
            "<i4",
            false,
            "(2, 2)",
            &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0],
            2,
        );
        for n in 0..good.len() {
            assert!(parse_npy(&good[..n]).is_err());
        }
    }

    #[test]
    fn json_forms() {
        let b = parse_tokens_json(b"[1, 2, 3]").unwrap();
        assert_eq!((b.batch, b.seq_len, b.max_id()), (1, 3, Some(3)));
        let b = parse_tokens_json(br#"{"tokens": [[1, 2], [3, 4]]}"#).unwrap();
        assert_eq!((b.batch, b.seq_len), (2, 2));
        assert_eq!(b.row(1), &[3, 4]);
        assert_eq!(b.row(2), &[] as &[u32]);
        assert!(parse_tokens_json(br#"{"ids": [7]}"#).is_ok());
        assert_eq!(
            parse_tokens_json(br#"{"x": [7]}"#),
            Err(TokenError::JsonShape)
        );
        assert_eq!(
            parse_tokens_json(br#"[1, [2]]"#),
            Err(TokenError::JsonShape)
        );
        assert_eq!(
            parse_tokens_json(b"[]"),
            Err(TokenError::Empty { shape: vec![1, 0] })
        );
        assert_eq!(
            parse_tokens_json(b"[[1], [2.5]]"),
            Err(TokenError::JsonNotInteger {
                row: 1,
                col: 0,
                found: "the number 2.5".into()
            })
        );
        assert!(matches!(
            parse_tokens_json(b"[1,"),
            Err(TokenError::JsonSyntax { .. })
        ));
    }

    #[test]
    fn vocab_check_names_first_offender() {
        let b = TokenBatch {
            batch: 2,
            seq_len: 3,
            ids: vec![0, 1, 2, 3, 300, 500],
        };
        assert!(b.check_vocab(501).is_ok());
        let e = b.check_vocab(256).unwrap_err();
        assert_eq!(
            e,
            TokenError::IdOutOfVocab {
                id: 300,
                row: 1,
                col: 1,
                vocab: 256
            }
        );
        assert_eq!(
            e.to_string(),
            "token id 300 at row 1, column 1 is not below the vocabulary size 256"
        );
    }
}
