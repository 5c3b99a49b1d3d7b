//! Decoding tensor bytes to numbers (F16/BF16 through `half`), reading a
//! tensor chunk by chunk, and counting non-finite values from the raw bits.

// `is_multiple_of` is Rust 1.87; the workspace's rust-version is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use serde::Serialize;

use super::{read_range, Dtype, SafetensorsError, TensorInfo};
use crate::source::ByteSource;

/// Elements decoded per chunk when a tensor is read and converted, so that a
/// read never holds the raw bytes and the converted copy of a whole tensor at
/// once (see [`read_tensor_f32`]).
pub(super) const DECODE_CHUNK_BYTES: usize = 8 << 20;

/// Reads one tensor and converts it to `f32`. The tensor is read in chunks of
/// a few MiB so that peak memory is the converted tensor plus one chunk, not
/// the raw bytes plus the converted copy.
pub fn read_tensor_f32(
    src: &(impl ByteSource + ?Sized),
    t: &TensorInfo,
) -> Result<Vec<f32>, SafetensorsError> {
    read_tensor_chunked(src, t, decode_f32_into)
}

/// Reads one tensor and converts it to `f64` (chunked like [`read_tensor_f32`]).
pub fn read_tensor_f64(
    src: &(impl ByteSource + ?Sized),
    t: &TensorInfo,
) -> Result<Vec<f64>, SafetensorsError> {
    read_tensor_chunked(src, t, decode_f64_into)
}

/// A `decode_*_into` function.
type DecodeInto<T> = fn(&[u8], Dtype, &mut Vec<T>) -> Result<(), SafetensorsError>;

fn read_tensor_chunked<T>(
    src: &(impl ByteSource + ?Sized),
    t: &TensorInfo,
    decode_into: DecodeInto<T>,
) -> Result<Vec<T>, SafetensorsError> {
    if t.strides.is_some() {
        // A strided view is gathered whole, then converted.
        let bytes = super::read_tensor_bytes(src, t)?;
        let mut out = Vec::new();
        decode_into(&bytes, t.dtype, &mut out)?;
        return Ok(out);
    }
    let too_large = || SafetensorsError::TooLargeForMemory {
        what: format!("tensor \"{}\"", t.name),
        len: t.len,
    };
    let numel: usize = t.numel().try_into().map_err(|_| too_large())?;
    // Check the dtype (and the tensor's byte length) once, before any read.
    decode_into(&[], t.dtype, &mut Vec::new())?;
    let size = t.dtype.size_bytes() as u64;
    if t.dtype.size_bits() < 8 || t.len % size > 0 {
        return Err(SafetensorsError::RaggedBytes {
            dtype: t.dtype,
            len: t.len,
            size,
        });
    }
    let chunk = (DECODE_CHUNK_BYTES as u64 / size) * size;
    let mut out = Vec::new();
    out.try_reserve_exact(numel).map_err(|_| too_large())?;
    let mut offset = 0u64;
    while offset < t.len {
        let len = chunk.min(t.len - offset);
        let bytes = read_range(src, t.start.saturating_add(offset), len)?;
        decode_into(&bytes, t.dtype, &mut out)?;
        offset += len;
    }
    Ok(out)
}

/// The row-major bytes of a strided view: element `i` (multi-index) of the
/// result is the `elem`-byte element at `Σ i_d · strides[d]` (in elements)
/// of `raw`. `None` when an element falls outside `raw` or the sizes
/// overflow; a stride of 0 (a broadcast view) repeats elements.
pub fn gather_strided(raw: &[u8], elem: usize, shape: &[u64], strides: &[u64]) -> Option<Vec<u8>> {
    if shape.len() != strides.len() {
        return None;
    }
    let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    let total = usize::try_from(numel.checked_mul(elem as u64)?).ok()?;
    let mut out = Vec::new();
    out.try_reserve_exact(total).ok()?;
    if numel == 0 {
        return Some(out);
    }
    let (last_dim, last_stride) = (*shape.last()?, *strides.last()?);
    let mut index = vec![0u64; shape.len()];
    loop {
        // The row along the last dimension starting at `index`.
        let base: u64 = index
            .iter()
            .zip(strides)
            .try_fold(0u64, |a, (&i, &s)| a.checked_add(i.checked_mul(s)?))?;
        for j in 0..last_dim {
            let at = usize::try_from(
                base.checked_add(j.checked_mul(last_stride)?)?
                    .checked_mul(elem as u64)?,
            )
            .ok()?;
            out.extend_from_slice(raw.get(at..at.checked_add(elem)?)?);
        }
        // Odometer over the leading dimensions.
        let mut d = shape.len() - 1;
        loop {
            if d == 0 {
                return Some(out);
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// Little-endian elements of `N` bytes; an error if `bytes` ends mid-element.
fn le<const N: usize>(
    bytes: &[u8],
    dtype: Dtype,
) -> Result<impl Iterator<Item = [u8; N]> + '_, SafetensorsError> {
    if bytes.len() % N > 0 {
        return Err(SafetensorsError::RaggedBytes {
            dtype,
            len: bytes.len() as u64,
            size: N as u64,
        });
    }
    Ok(bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    }))
}

/// Converts F16/BF16 with `half`'s slice conversion (SIMD where the CPU has
/// it, e.g. F16C), writing straight into `out`. The bits go through a small
/// stack buffer because raw bytes need not be 2-aligned.
fn decode_half_into<T: Copy + Default>(
    bytes: &[u8],
    dtype: Dtype,
    out: &mut Vec<T>,
    convert: impl Fn(&[u16], &mut [T]),
) -> Result<(), SafetensorsError> {
    const BLOCK: usize = 4096;
    let mut bits = [0u16; BLOCK];
    let mut elements = le::<2>(bytes, dtype)?;
    out.reserve(bytes.len() / 2);
    loop {
        let mut n = 0;
        for (dst, b) in bits.iter_mut().zip(elements.by_ref()) {
            *dst = u16::from_le_bytes(b);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let old = out.len();
        out.resize(old + n, T::default());
        if let (Some(src), Some(dst)) = (bits.get(..n), out.get_mut(old..)) {
            convert(src, dst);
        }
    }
}

fn unsupported(dtype: Dtype, target: &str) -> SafetensorsError {
    SafetensorsError::UnsupportedDtype {
        dtype,
        target: target.to_string(),
    }
}

/// bf16 bits → f32, exactly as `half::bf16::to_f32` (a NaN gets its quiet bit set).
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    let nan = u32::from(bits & 0x7FFF > 0x7F80);
    f32::from_bits((u32::from(bits) | (nan << 6)) << 16)
}

/// Appends little-endian BF16 tensor bytes to `out` as they are stored (the bits of each
/// value, not widened): what a weight kept in bf16 holds.
pub fn bf16_bits_into(bytes: &[u8], out: &mut Vec<u16>) -> Result<(), SafetensorsError> {
    out.extend(le::<2>(bytes, Dtype::BF16)?.map(u16::from_le_bytes));
    Ok(())
}

/// Converts little-endian tensor bytes to `f32`: F16/BF16 exactly, F64
/// narrowed (rounded to nearest), integers and BOOL cast.
pub fn decode_f32(bytes: &[u8], dtype: Dtype) -> Result<Vec<f32>, SafetensorsError> {
    let mut out = Vec::new();
    decode_f32_into(bytes, dtype, &mut out)?;
    Ok(out)
}

/// [`decode_f32`], appending to `out`.
pub fn decode_f32_into(
    bytes: &[u8],
    dtype: Dtype,
    out: &mut Vec<f32>,
) -> Result<(), SafetensorsError> {
    match dtype {
        Dtype::F32 => out.extend(le::<4>(bytes, dtype)?.map(f32::from_le_bytes)),
        Dtype::F16 => decode_half_into(bytes, dtype, out, |b, d| {
            b.reinterpret_cast::<f16>().convert_to_f32_slice(d)
        })?,
        // bf16 is the top half of an f32, so widening is a shift (NaNs quietened as `half`
        // does): branch-free, it vectorises on every target, where `half`'s slice
        // conversion is a scalar loop on wasm32 (12× slower there).
        Dtype::BF16 => {
            out.extend(le::<2>(bytes, dtype)?.map(|b| bf16_bits_to_f32(u16::from_le_bytes(b))))
        }
        Dtype::F64 => out.extend(le::<8>(bytes, dtype)?.map(|b| f64::from_le_bytes(b) as f32)),
        Dtype::BOOL => out.extend(bytes.iter().map(|&b| f32::from(u8::from(b != 0)))),
        Dtype::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
        Dtype::I8 => out.extend(bytes.iter().map(|&b| f32::from(b as i8))),
        Dtype::I16 => out.extend(le::<2>(bytes, dtype)?.map(|b| f32::from(i16::from_le_bytes(b)))),
        Dtype::U16 => out.extend(le::<2>(bytes, dtype)?.map(|b| f32::from(u16::from_le_bytes(b)))),
        Dtype::I32 => out.extend(le::<4>(bytes, dtype)?.map(|b| i32::from_le_bytes(b) as f32)),
        Dtype::U32 => out.extend(le::<4>(bytes, dtype)?.map(|b| u32::from_le_bytes(b) as f32)),
        Dtype::I64 => out.extend(le::<8>(bytes, dtype)?.map(|b| i64::from_le_bytes(b) as f32)),
        Dtype::U64 => out.extend(le::<8>(bytes, dtype)?.map(|b| u64::from_le_bytes(b) as f32)),
        _ => return Err(unsupported(dtype, "as 32-bit floats")),
    }
    Ok(())
}

/// Converts little-endian tensor bytes to `f64` (exact for every float dtype
/// and every integer up to 2^53).
pub fn decode_f64(bytes: &[u8], dtype: Dtype) -> Result<Vec<f64>, SafetensorsError> {
    let mut out = Vec::new();
    decode_f64_into(bytes, dtype, &mut out)?;
    Ok(out)
}

/// [`decode_f64`], appending to `out`.
pub fn decode_f64_into(
    bytes: &[u8],
    dtype: Dtype,
    out: &mut Vec<f64>,
) -> Result<(), SafetensorsError> {
    match dtype {
        Dtype::F64 => out.extend(le::<8>(bytes, dtype)?.map(f64::from_le_bytes)),
        Dtype::F32 => out.extend(le::<4>(bytes, dtype)?.map(|b| f64::from(f32::from_le_bytes(b)))),
        Dtype::F16 => decode_half_into(bytes, dtype, out, |b, d| {
            b.reinterpret_cast::<f16>().convert_to_f64_slice(d)
        })?,
        Dtype::BF16 => decode_half_into(bytes, dtype, out, |b, d| {
            b.reinterpret_cast::<bf16>().convert_to_f64_slice(d)
        })?,
        Dtype::BOOL => out.extend(bytes.iter().map(|&b| f64::from(u8::from(b != 0)))),
        Dtype::U8 => out.extend(bytes.iter().map(|&b| f64::from(b))),
        Dtype::I8 => out.extend(bytes.iter().map(|&b| f64::from(b as i8))),
        Dtype::I16 => out.extend(le::<2>(bytes, dtype)?.map(|b| f64::from(i16::from_le_bytes(b)))),
        Dtype::U16 => out.extend(le::<2>(bytes, dtype)?.map(|b| f64::from(u16::from_le_bytes(b)))),
        Dtype::I32 => out.extend(le::<4>(bytes, dtype)?.map(|b| f64::from(i32::from_le_bytes(b)))),
        Dtype::U32 => out.extend(le::<4>(bytes, dtype)?.map(|b| f64::from(u32::from_le_bytes(b)))),
        Dtype::I64 => out.extend(le::<8>(bytes, dtype)?.map(|b| i64::from_le_bytes(b) as f64)),
        Dtype::U64 => out.extend(le::<8>(bytes, dtype)?.map(|b| u64::from_le_bytes(b) as f64)),
        _ => return Err(unsupported(dtype, "as 64-bit floats")),
    }
    Ok(())
}

/// Converts little-endian integer tensor bytes (U8..I64, U64 up to
/// `i64::MAX`) to `i64`. Floats and BOOL are refused.
pub fn decode_i64(bytes: &[u8], dtype: Dtype) -> Result<Vec<i64>, SafetensorsError> {
    Ok(match dtype {
        Dtype::U8 => bytes.iter().map(|&b| i64::from(b)).collect(),
        Dtype::I8 => bytes.iter().map(|&b| i64::from(b as i8)).collect(),
        Dtype::I16 => le::<2>(bytes, dtype)?
            .map(|b| i64::from(i16::from_le_bytes(b)))
            .collect(),
        Dtype::U16 => le::<2>(bytes, dtype)?
            .map(|b| i64::from(u16::from_le_bytes(b)))
            .collect(),
        Dtype::I32 => le::<4>(bytes, dtype)?
            .map(|b| i64::from(i32::from_le_bytes(b)))
            .collect(),
        Dtype::U32 => le::<4>(bytes, dtype)?
            .map(|b| i64::from(u32::from_le_bytes(b)))
            .collect(),
        Dtype::I64 => le::<8>(bytes, dtype)?.map(i64::from_le_bytes).collect(),
        Dtype::U64 => le::<8>(bytes, dtype)?
            .map(|b| {
                let v = u64::from_le_bytes(b);
                i64::try_from(v).map_err(|_| SafetensorsError::IntegerOutOfRange { value: v })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(unsupported(
                dtype,
                "as integers (it is not an integer type)",
            ))
        }
    })
}

/// Counts of non-finite values in a tensor.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ValueScan {
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
}

impl ValueScan {
    /// NaNs and infinities together.
    pub fn non_finite(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf
    }

    fn add(&mut self, bits: u64, sign: u64, exp: u64, mant: u64) {
        if bits & exp == exp {
            if bits & mant != 0 {
                self.nan += 1;
            } else if bits & sign != 0 {
                self.neg_inf += 1;
            } else {
                self.pos_inf += 1;
            }
        }
    }
}

/// Whether any value of `bytes` (little-endian, 2, 4 or 8 bytes wide) has every bit of `exp`
/// set (NaN or ±∞ for an IEEE float's exponent mask). In blocks of 1 KiB: inside a block, a
/// branch-free count in the values' own width, which vectorises (one u64 count for every
/// width ran 4× slower on BF16 and was a fifth of loading a checkpoint); between blocks, an
/// early exit.
fn any_all_ones(bytes: &[u8], width: usize, exp: u64) -> bool {
    bytes.chunks(1024).any(|block| match width {
        2 => {
            let exp = exp as u16;
            let hits: u16 = block
                .chunks_exact(2)
                .map(|c| u16::from(u16::from_le_bytes([c[0], c[1]]) & exp == exp))
                .sum();
            hits > 0
        }
        4 => {
            let exp = exp as u32;
            let hits: u32 = block
                .chunks_exact(4)
                .map(|c| u32::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & exp == exp))
                .sum();
            hits > 0
        }
        _ => {
            let hits: u64 = block
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from(u64::from_le_bytes(a) & exp == exp)
                })
                .sum();
            hits > 0
        }
    })
}

/// Counts NaN, +∞ and −∞ in raw tensor bytes by looking at the bits, without
/// converting (no allocation). IEEE-like floats (F16, BF16, F32, F64,
/// F8_E5M2) and the FP8 formats with NaN codes (F8_E4M3: `S1111111`;
/// FNUZ formats: `0x80`; F8_E8M0: `0xFF`) are scanned; integers, BOOL and
/// the sub-byte formats have no non-finite values and give zeros. A trailing
/// partial element is ignored.
pub fn scan_values(bytes: &[u8], dtype: Dtype) -> ValueScan {
    let mut s = ValueScan::default();
    // Almost every tensor has no non-finite value: a branch-free count of all-ones exponents
    // (which vectorises) says so at memory speed, and only a tensor with some is classified
    // value by value below. The analysis scans every weight it reads, so this is on the load path.
    let none = match dtype {
        Dtype::F64 => !any_all_ones(bytes, 8, 0x7FF0_0000_0000_0000),
        Dtype::F32 => !any_all_ones(bytes, 4, 0x7F80_0000),
        Dtype::F16 => !any_all_ones(bytes, 2, 0x7C00),
        Dtype::BF16 => !any_all_ones(bytes, 2, 0x7F80),
        _ => false,
    };
    if none {
        return s;
    }
    match dtype {
        Dtype::F64 => {
            for c in bytes.chunks_exact(8) {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                s.add(
                    u64::from_le_bytes(a),
                    1 << 63,
                    0x7FF0_0000_0000_0000,
                    0x000F_FFFF_FFFF_FFFF,
                );
            }
        }
        Dtype::F32 => {
            for c in bytes.chunks_exact(4) {
                let mut a = [0u8; 4];
                a.copy_from_slice(c);
                s.add(
                    u64::from(u32::from_le_bytes(a)),
                    1 << 31,
                    0x7F80_0000,
                    0x007F_FFFF,
                );
            }
        }
        Dtype::F16 | Dtype::BF16 => {
            let (exp, mant) = if dtype == Dtype::F16 {
                (0x7C00, 0x03FF)
            } else {
                (0x7F80, 0x007F)
            };
            for c in bytes.chunks_exact(2) {
                s.add(
                    u64::from(u16::from_le_bytes([c[0], c[1]])),
                    1 << 15,
                    exp,
                    mant,
                );
            }
        }
        Dtype::F8_E5M2 => bytes
            .iter()
            .for_each(|&b| s.add(u64::from(b), 0x80, 0x7C, 0x03)),
        Dtype::F8_E4M3 => s.nan = bytes.iter().filter(|&&b| b & 0x7F == 0x7F).count() as u64,
        Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ => {
            s.nan = bytes.iter().filter(|&&b| b == 0x80).count() as u64
        }
        Dtype::F8_E8M0 => s.nan = bytes.iter().filter(|&&b| b == 0xFF).count() as u64,
        _ => {}
    }
    s
}

#[cfg(test)]
mod bf16_widening {
    /// The shift equals `half`'s conversion bit for bit, for all 65,536 patterns.
    #[test]
    fn matches_half_for_every_bit_pattern() {
        for bits in 0..=u16::MAX {
            let want = half::bf16::from_bits(bits).to_f32().to_bits();
            assert_eq!(
                super::bf16_bits_to_f32(bits).to_bits(),
                want,
                "bits {bits:#06x}"
            );
        }
    }
}
