//! `G += XᵀX` in f64 for a row-major f32 block X: the one product behind every activation
//! spectrum (each head's K and Q Gram, [`super::capture::HeadGram::add_block`]).
//!
//! Written here rather than called as a general f64 product (`matrixmultiply::dgemm`, which
//! this replaced) because the Gram has structure a general product cannot use:
//! - it is symmetric, so only the tiles on and above the diagonal are multiplied (20 of 32 at
//!   d = 64) and the rest is mirrored;
//! - X is f32, so each row is widened to f64 as it is read, in a small buffer that stays in
//!   L1, instead of a widened copy of the whole block first;
//! - the column sums (for the centred spectra) are taken in the same pass.
//!
//! On the full-size benchmark's 440 Grams of 1024 × 64 the widened copy and `dgemm` took
//! ~100 ms of the 265 ms of activation spectra; this kernel takes ~40 ms (92 µs a Gram), and in
//! wasm the spectra went 674 → 317 ms.
//!
//! Every entry is the sum over the rows in their order, one rounding per row: a product of
//! two f32 values is exact in f64, so a fused multiply-add rounds exactly as a multiply then
//! an add does. The result is therefore the same bit for bit on every CPU and in wasm, whatever
//! tile size each uses, and adding a block in pieces gives the same Gram as adding it whole.

/// Rows widened to f64 at a time: 32 rows × 64 columns × 8 B = 16 KiB, within L1.
const CHUNK_ROWS: usize = 32;

/// `gram += XᵀX` and `sums += X's column sums`, X the row-major `[rows, d]` block `x`
/// (`x.len()` a multiple of `d`), `gram` row-major `[d, d]` with both triangles (symmetric on
/// entry: only its upper triangle is read, and the lower is written as its mirror).
#[allow(unsafe_code)]
pub(crate) fn add_gram(gram: &mut [f64], sums: &mut [f64], x: &[f32], d: usize) {
    assert_eq!(gram.len(), d * d, "a d × d Gram");
    assert_eq!(sums.len(), d, "d column sums");
    if d == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked above.
        return add_gram_tiled::<8, 16>(gram, sums, x, d, &|tile| unsafe { tile_avx512(tile) });
    }
    // 4 × 4 tiles: 8 of the 16 SSE2 (or wasm simd128) registers hold the accumulators.
    add_gram_tiled::<4, 4>(gram, sums, x, d, &tile_portable::<4, 4>);
}

/// One tile of G (`TI` rows × `TJ` columns at `ib`, `jb`; row-major, `dp` wide) plus the
/// products of the rows of `wide` (f64, `dp` wide): `G[i][j] += Σ_r X[r][i]·X[r][j]`, row by row
/// in order.
struct Tile<'a> {
    g: &'a mut [f64],
    wide: &'a [f64],
    dp: usize,
    ib: usize,
    jb: usize,
}

/// [`add_gram`] by tiles of `TI` rows × `TJ` columns of G (`TI` divides `TJ`), each kept in
/// registers by `tile` while a chunk of X's rows goes by.
fn add_gram_tiled<const TI: usize, const TJ: usize>(
    gram: &mut [f64],
    sums: &mut [f64],
    x: &[f32],
    d: usize,
    tile: &dyn Fn(Tile<'_>),
) {
    // The Gram's side padded to whole tiles; padded columns of X read as zeros, which add
    // exact zeros.
    let dp = d.div_ceil(TJ) * TJ;
    let mut padded = (dp != d).then(|| {
        let mut g = vec![0.0f64; dp * dp];
        for (row, src) in g.chunks_exact_mut(dp).zip(gram.chunks_exact(d)) {
            row[..d].copy_from_slice(src);
        }
        g
    });
    let g: &mut [f64] = match &mut padded {
        Some(p) => p,
        None => gram,
    };
    let mut wide = vec![0.0f64; CHUNK_ROWS * dp];
    for chunk in x.chunks(CHUNK_ROWS * d) {
        let n = chunk.len() / d;
        for (row, dst) in chunk.chunks_exact(d).zip(wide.chunks_exact_mut(dp)) {
            for ((w, &v), s) in dst.iter_mut().zip(row).zip(sums.iter_mut()) {
                let v = f64::from(v);
                *w = v;
                *s += v;
            }
        }
        for ib in (0..dp).step_by(TI) {
            // The tiles on or above the diagonal: columns from the tile column holding row ib.
            for jb in ((ib / TJ) * TJ..dp).step_by(TJ) {
                tile(Tile {
                    g: &mut *g,
                    wide: &wide[..n * dp],
                    dp,
                    ib,
                    jb,
                });
            }
        }
    }
    if let Some(p) = &padded {
        for (dst, row) in gram.chunks_exact_mut(d).zip(p.chunks_exact(dp)) {
            dst.copy_from_slice(&row[..d]);
        }
    }
    // The lower triangle, as the mirror of the upper one (the tiles also computed some of it,
    // to the same bits: the same products summed in the same order).
    for i in 1..d {
        for j in 0..i {
            gram[i * d + j] = gram[j * d + i];
        }
    }
}

/// A `TI` × `TJ` tile in plain arithmetic (LLVM vectorises the `TJ` columns).
fn tile_portable<const TI: usize, const TJ: usize>(t: Tile<'_>) {
    let mut acc = [[0.0f64; TJ]; TI];
    for (i, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&t.g[(t.ib + i) * t.dp + t.jb..][..TJ]);
    }
    for row in t.wide.chunks_exact(t.dp) {
        let b: [f64; TJ] = row[t.jb..t.jb + TJ].try_into().expect("a tile's columns");
        for (i, acc) in acc.iter_mut().enumerate() {
            let a = row[t.ib + i];
            for j in 0..TJ {
                acc[j] += a * b[j];
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        t.g[(t.ib + i) * t.dp + t.jb..][..TJ].copy_from_slice(a);
    }
}

/// An 8 × 16 tile with AVX-512: 16 accumulators of 8 f64, two loads of X's columns and eight
/// broadcasts of its rows per row of X, sixteen fused multiply-adds (which round as the plain
/// multiply and add do here: the products are exact).
///
/// # Safety
/// AVX-512F is available.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(t: Tile<'_>) {
    use std::arch::x86_64::{
        __m512d, _mm512_fmadd_pd, _mm512_loadu_pd, _mm512_set1_pd, _mm512_storeu_pd,
    };
    let (dp, ib, jb) = (t.dp, t.ib, t.jb);
    assert!(ib + 8 <= dp && jb + 16 <= dp && t.g.len() >= dp * dp);
    let g = t.g.as_mut_ptr();
    // SAFETY (every pointer below): rows ib..ib + 8 and columns jb..jb + 16 of the dp × dp G,
    // and of each dp-wide row of `wide`, are in bounds (asserted above).
    let at = |k: usize| (ib + k / 2) * dp + jb + (k % 2) * 8;
    let mut acc: [__m512d; 16] = std::array::from_fn(|k| unsafe { _mm512_loadu_pd(g.add(at(k))) });
    for row in t.wide.chunks_exact(dp) {
        let p = row.as_ptr();
        let (b0, b1) = unsafe { (_mm512_loadu_pd(p.add(jb)), _mm512_loadu_pd(p.add(jb + 8))) };
        for i in 0..8 {
            let a = _mm512_set1_pd(row[ib + i]);
            acc[2 * i] = _mm512_fmadd_pd(a, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_pd(a, b1, acc[2 * i + 1]);
        }
    }
    for (k, v) in acc.iter().enumerate() {
        unsafe { _mm512_storeu_pd(g.add(at(k)), *v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum over rows in order, one row at a time, in plain f64.
    fn sequential(gram: &mut [f64], sums: &mut [f64], x: &[f32], d: usize) {
        for row in x.chunks_exact(d) {
            for i in 0..d {
                sums[i] += f64::from(row[i]);
                for j in 0..d {
                    gram[i * d + j] += f64::from(row[i]) * f64::from(row[j]);
                }
            }
        }
    }

    fn block(rows: usize, d: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..rows * d)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // Mixed scales and an offset column, so that rounding differs between orders.
                (state as f32 / u32::MAX as f32 - 0.3) * (1.0 + (i % d) as f32 * 37.0)
            })
            .collect()
    }

    /// Bit for bit the in-order sum, for sides that fill tiles and sides that are padded, rows
    /// that fill chunks and rows that do not, on a Gram that already holds a sum; and every
    /// tile size the dispatch can pick gives the same bits.
    #[test]
    fn the_gram_is_the_in_order_sum_bit_for_bit_at_every_shape() {
        for (rows, d) in [
            (1, 1),
            (3, 5),
            (33, 16),
            (100, 64),
            (1024, 64),
            (70, 80),
            (5, 128),
        ] {
            let x = block(rows, d, (rows * 31 + d) as u32);
            let start = block(d + 1, d, 7);
            let mut want_gram = vec![0.0f64; d * d];
            let mut want_sums: Vec<f64> = start[..d].iter().map(|&v| f64::from(v)).collect();
            sequential(&mut want_gram, &mut vec![0.0; d], &start, d);
            let (start_gram, start_sums) = (want_gram.clone(), want_sums.clone());
            sequential(&mut want_gram, &mut want_sums, &x, d);

            let mut gram = start_gram.clone();
            let mut sums = start_sums.clone();
            add_gram(&mut gram, &mut sums, &x, d);
            assert_eq!(gram, want_gram, "{rows} × {d}");
            assert_eq!(sums, want_sums, "{rows} × {d}");

            for (name, tiles) in [
                (
                    "4 × 4",
                    (|g, s, x, d| add_gram_tiled::<4, 4>(g, s, x, d, &tile_portable::<4, 4>))
                        as fn(&mut [f64], &mut [f64], &[f32], usize),
                ),
                ("8 × 16", |g, s, x, d| {
                    add_gram_tiled::<8, 16>(g, s, x, d, &tile_portable::<8, 16>)
                }),
                ("2 × 8", |g, s, x, d| {
                    add_gram_tiled::<2, 8>(g, s, x, d, &tile_portable::<2, 8>)
                }),
            ] {
                let (mut gram, mut sums) = (start_gram.clone(), start_sums.clone());
                tiles(&mut gram, &mut sums, &x, d);
                assert_eq!(gram, want_gram, "{rows} × {d}, {name} tiles");
                assert_eq!(sums, want_sums);
            }
        }
    }

    /// A block added in two pieces gives the Gram of the block added whole, bit for bit.
    #[test]
    fn a_block_in_pieces_is_the_block_whole() {
        let d = 64;
        let x = block(300, d, 3);
        let (mut whole, mut whole_sums) = (vec![0.0; d * d], vec![0.0; d]);
        add_gram(&mut whole, &mut whole_sums, &x, d);
        let (mut parts, mut parts_sums) = (vec![0.0; d * d], vec![0.0; d]);
        add_gram(&mut parts, &mut parts_sums, &x[..77 * d], d);
        add_gram(&mut parts, &mut parts_sums, &x[77 * d..], d);
        assert_eq!(parts, whole);
        assert_eq!(parts_sums, whole_sums);
    }
}
