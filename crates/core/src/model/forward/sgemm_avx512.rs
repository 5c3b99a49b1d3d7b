//! An f32 matrix product for x86-64 CPUs with AVX-512, used by [`super::kernels::gemm`] in
//! place of `matrixmultiply::sgemm` where the CPU has it.
//!
//! Why our own: the forward pass is 90% matrix products. On the forward's shapes
//! `matrixmultiply` (a 16×16 kernel: one broadcast of A per fused multiply-add, A and B both
//! packed on every call) ran at 60–70% of this machine's FMA peak (213–222 GFLOP/s for a loop of
//! independent FMAs); this runs the same products ~10% faster in the same runs (README,
//! "Benchmarks"). The crates that do this were measured before writing it: the `gemm` crate and
//! `faer`'s matmul ran these shapes slower than `matrixmultiply`.
//!
//! The layout is the textbook one (Goto & van de Geijn; BLIS): B packed in `KC × NC` blocks of
//! 32-column panels, and a register tile of 12 rows × 32 columns (24 accumulators, two vectors
//! of B and one broadcast of A per two FMAs). A is not packed: every caller's A is row-major,
//! and the kernel broadcasts from its 12 rows in place (packing it, by a scalar loop, made the
//! products slower). Unlike BLIS, a tile's rows of A stay in L1 while B's packed block streams
//! past them from L2 (see [`gemm`]).
//! B = Wᵀ of a row-major W — a linear layer, the keys — is packed by 16×16 transposes in
//! registers.
//!
//! Every C element is summed over k in order, `KC` at a time, one fused multiply-add per
//! term, whatever the shape or the tile it falls in: a row of C is the same bit for bit
//! whether its product had 1 row or 1024 (the streaming and batched passes rely on it).

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps, _mm_prefetch, _MM_HINT_T0,
};

use crate::formats::safetensors::bf16_bits_to_f32;

use std::cell::RefCell;

use super::kernels::Strides;

/// Rows of C per micro-tile: one broadcast of A each.
const MR: usize = 12;
/// Columns of C per micro-tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one packed block: a tile's 12 rows of A are `MR·KC·4` = 12 KiB, within L1, and
/// the packed block of B `KC·NC·4` = 1 MiB, within L2.
const KC: usize = 256;
/// Columns of B packed at once (a multiple of `NR`).
const NC: usize = 1024;

thread_local! {
    /// The packed block of B, at most `KC·NC` floats (1 MiB), kept per thread as BLAS
    /// libraries keep theirs: a buffer allocated and zeroed per call made the forward pass
    /// 8–10% slower (there are ~3000 products in a full-size pass, most of them attention's).
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// What B's elements are stored as: f32, or the bits of bf16 values (`u16`: a bf16
/// checkpoint's weights, kept as stored). Packing widens them to f32, exactly, so the kernel
/// and C are the same whichever B holds the values.
// `load16` is an unsafe method: a vector load from a raw pointer.
#[allow(unsafe_code)]
pub(super) trait Element: Copy {
    /// The value as f32.
    fn widen(self) -> f32;

    /// The 16 values from `p`, widened.
    ///
    /// # Safety
    /// AVX-512F is available; 16 values are readable from `p`.
    unsafe fn load16(p: *const Self) -> __m512;
}

impl Element for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }

    #[inline]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_loadu_ps(p) }
    }
}

/// bf16 bits: a bf16 value is the top half of an f32.
impl Element for u16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        bf16_bits_to_f32(self)
    }

    /// The shift of [`bf16_bits_to_f32`], and its quietening of a signalling NaN, on 16
    /// lanes: so a NaN weight gives the same bits as the f32 copy would.
    #[inline]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const u16) -> __m512 {
        use std::arch::x86_64::{
            _mm256_loadu_si256, _mm512_and_si512, _mm512_castsi512_ps, _mm512_cmpgt_epu32_mask,
            _mm512_cvtepu16_epi32, _mm512_mask_or_epi32, _mm512_set1_epi32, _mm512_slli_epi32,
        };
        // SAFETY: the caller's contract: 16 u16 are 32 readable bytes.
        let bits = _mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(p.cast()) });
        let nan = _mm512_cmpgt_epu32_mask(
            _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFF)),
            _mm512_set1_epi32(0x7F80),
        );
        let quiet = _mm512_mask_or_epi32(bits, nan, bits, _mm512_set1_epi32(0x40));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(quiet))
    }
}

/// Whether this CPU runs [`gemm`].
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// A 64-byte-aligned slice of `len` floats inside `buffer` (grown as needed): packed panels
/// start on cache lines, so no vector load splits one.
fn aligned(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len + 16 {
        buffer.resize(len + 16, 0.0);
    }
    let offset = buffer.as_ptr().align_offset(64).min(15);
    &mut buffer[offset..offset + len]
}

/// `C (m×n) = A (m×k) · B (k×n) + beta·C`, A and C row-major with row strides `rsa` and
/// `rsc`, B's values f32 or bf16 ([`Element`]). The caller has checked that every view lies
/// inside its slice, that m, n and k are not zero, and that [`available`] holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<E: Element>(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    rsa: usize,
    b: &[E],
    sb: Strides,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if beta != 0.0 && beta != 1.0 {
        for i in 0..m {
            c[i * rsc..i * rsc + n].iter_mut().for_each(|x| *x *= beta);
        }
    }
    PACKED.with_borrow_mut(|packed_b| {
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let pb = aligned(packed_b, nc.div_ceil(NR) * NR * kc);
                pack_b(b, sb, (pc, kc), (jc, nc), pb);
                // Add to C from the second block on, and from the first when beta asks.
                let accumulate = pc > 0 || beta != 0.0;
                // Each 12-row tile of A runs along the whole block of B: A's 12 rows of `kc`
                // (12 KiB) stay in L1 and B's panels stream past from L2, in order. Panel by
                // panel down the rows (B's panel in L1, A's rows from L2, as BLIS orders it)
                // was 8–10% slower on every shape of the forward pass, and the pass ~9%
                // slower, measured alternating in one session.
                for i0 in (0..m).step_by(MR) {
                    let rows = MR.min(m - i0);
                    let a_rows = &a[i0 * rsa + pc..(i0 + rows - 1) * rsa + pc + kc];
                    for (jr, panel_b) in pb.chunks_exact(NR * kc).enumerate() {
                        let j0 = jc + jr * NR;
                        let cols = NR.min(n - j0);
                        tile(
                            kc,
                            (a_rows, rsa),
                            panel_b,
                            c,
                            (i0, j0, rsc),
                            (rows, cols),
                            accumulate,
                        );
                    }
                }
            }
        }
    });
}

/// Packs `B[pc..pc+kc, jc..jc+nc]` into 32-column panels, each `kc` rows of 32 consecutive
/// floats; the last panel's missing columns are zeros.
fn pack_b<E: Element>(
    b: &[E],
    sb: Strides,
    (pc, kc): (usize, usize),
    (jc, nc): (usize, usize),
    out: &mut [f32],
) {
    for (p, panel) in out.chunks_exact_mut(NR * kc).enumerate() {
        let j0 = jc + p * NR;
        let cols = NR.min(jc + nc - j0);
        if sb.cs == 1 {
            // B row-major: each row of the panel is a contiguous run of B.
            for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                let at = (pc + kk) * sb.rs + j0;
                row.iter_mut()
                    .zip(&b[at..at + cols])
                    .for_each(|(to, &from)| *to = from.widen());
                row[cols..].fill(0.0);
            }
        } else {
            // B = Wᵀ of a row-major W (a linear layer's weights, the keys): row j0 + j of W,
            // read along k, is column j of the panel. Whole 16×16 squares go through
            // registers (scalar packing had taken a fifth of the product's time); the edges one
            // by one.
            panel.fill(0.0);
            let squares = if sb.rs == 1 { kc / 16 } else { 0 };
            for half in 0..cols / 16 {
                for square in 0..squares {
                    let (j, kk) = (half * 16, square * 16);
                    let from = &b[(j0 + j) * sb.cs + pc + kk..][..15 * sb.cs + 16];
                    let to = &mut panel[kk * NR + j..][..15 * NR + 16];
                    // SAFETY: AVX-512F is available (the caller checked); both slices hold the
                    // 16 rows of 16 floats that `transpose16` reads and writes.
                    #[allow(unsafe_code)]
                    unsafe {
                        transpose16(from.as_ptr(), sb.cs, to.as_mut_ptr(), NR)
                    };
                }
            }
            for j in 0..cols {
                let done = if j < cols / 16 * 16 { squares * 16 } else { 0 };
                let at = (j0 + j) * sb.cs + pc * sb.rs;
                for kk in done..kc {
                    panel[kk * NR + j] = b[at + kk * sb.rs].widen();
                }
            }
        }
    }
}

/// Writes the transpose of the 16×16 block at `from` (rows `from_stride` apart), widened, to
/// `to` (rows `to_stride` apart), in registers: the usual four rounds of shuffles (single
/// floats, 64-bit pairs, then 128-bit lanes twice).
///
/// # Safety
/// AVX-512F is available; both blocks are valid for 16 rows of 16 floats.
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16<E: Element>(
    from: *const E,
    from_stride: usize,
    to: *mut f32,
    to_stride: usize,
) {
    use std::arch::x86_64::{
        _mm512_castpd_ps, _mm512_castps_pd, _mm512_shuffle_f32x4, _mm512_unpackhi_pd,
        _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps,
    };
    // SAFETY: the caller's blocks hold 16 rows of 16 floats.
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { E::load16(from.add(i * from_stride)) });
    // Round 1: interleave rows 2i and 2i+1 float by float.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(x, y)
        } else {
            _mm512_unpackhi_ps(x, y)
        }
    });
    // Round 2: interleave those pairs of rows by 64-bit pairs: u[4g + q] from t[4g + q/2] and
    // t[4g + q/2 + 2] (low, high, low, high).
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (g, q) = (i / 4, i % 4);
        let (x, y) = (
            _mm512_castps_pd(t[4 * g + q / 2]),
            _mm512_castps_pd(t[4 * g + q / 2 + 2]),
        );
        _mm512_castpd_ps(if q % 2 == 0 {
            _mm512_unpacklo_pd(x, y)
        } else {
            _mm512_unpackhi_pd(x, y)
        })
    });
    // Round 3: 128-bit lanes, between groups 4 apart (even lanes, then odd lanes).
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (h, q) = (i / 8, i % 8);
        let (x, y) = (u[h * 8 + q % 4], u[h * 8 + q % 4 + 4]);
        if q < 4 {
            _mm512_shuffle_f32x4::<0x88>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(x, y)
        }
    });
    // Round 4: 128-bit lanes between the two halves.
    for i in 0..16 {
        let (x, y) = (v[i % 8], v[i % 8 + 8]);
        let row = if i < 8 {
            _mm512_shuffle_f32x4::<0x88>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(x, y)
        };
        // SAFETY: row i < 16 of the destination block.
        unsafe { _mm512_storeu_ps(to.add(i * to_stride), row) };
    }
}

/// One `rows × cols` tile of C at `(i0, j0)`: `a_rows` holds A's rows i0.. from column pc
/// (`rsa` apart, `kc` each), `panel_b` a packed panel of B. A full tile goes straight into C;
/// a partial one reads its rows of A from a zero-padded copy and writes C through a local tile.
#[allow(unsafe_code)]
fn tile(
    kc: usize,
    (a_rows, rsa): (&[f32], usize),
    panel_b: &[f32],
    c: &mut [f32],
    (i0, j0, rsc): (usize, usize, usize),
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    assert!(panel_b.len() == NR * kc && a_rows.len() == (rows - 1) * rsa + kc);
    if rows == MR && cols == NR {
        let start = i0 * rsc + j0;
        assert!(start + (MR - 1) * rsc + NR <= c.len());
        // SAFETY: the CPU has AVX-512F (the caller checked `available`); A's MR rows of kc
        // floats `rsa` apart and B's kc·NR lie in their slices (asserted above), and so do C's
        // MR rows of NR floats from `start`.
        unsafe {
            kernel(
                kc,
                a_rows.as_ptr(),
                rsa,
                panel_b.as_ptr(),
                c.as_mut_ptr().add(start),
                rsc,
                accumulate,
            )
        };
    } else {
        let mut padded = [0.0f32; MR * KC];
        for (i, row) in padded.chunks_exact_mut(kc).take(rows).enumerate() {
            row.copy_from_slice(&a_rows[i * rsa..i * rsa + kc]);
        }
        let mut local = [0.0f32; MR * NR];
        // SAFETY: as above, with the padded MR×kc copy of A and the local MR×NR tile as C.
        unsafe {
            kernel(
                kc,
                padded.as_ptr(),
                kc,
                panel_b.as_ptr(),
                local.as_mut_ptr(),
                NR,
                false,
            )
        };
        for (i, from) in local.chunks_exact(NR).take(rows).enumerate() {
            let row = &mut c[(i0 + i) * rsc + j0..][..cols];
            if accumulate {
                row.iter_mut().zip(from).for_each(|(c, &v)| *c += v);
            } else {
                row.copy_from_slice(&from[..cols]);
            }
        }
    }
}

/// The register tile: `C[MR×NR] (+)= Σ_p a[p]ᵀ · b[p]`, a and b packed panels of `kc` steps.
///
/// # Safety
/// AVX-512F is available; `a` holds `kc·MR` floats, `b` `kc·NR`, and `c` is valid for `MR` rows
/// of `NR` floats `rsc` apart.
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    rsa: usize,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    // Fetch the C tile into L1 while the products run: it comes from outside the caches
    // (C is up to megabytes, each tile's rows `rsc` apart), and the sum at the end waits on it.
    for i in 0..MR {
        // SAFETY: row i < MR of C, NR floats (two cache lines at most... three when unaligned).
        unsafe {
            let row = c.add(i * rsc);
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.add(NR - 1).cast());
        }
    }
    let mut low: [__m512; MR] = [_mm512_setzero_ps(); MR];
    let mut high: [__m512; MR] = [_mm512_setzero_ps(); MR];
    // Four steps per trip: the addresses of A's twelve rows are computed once for the four
    // (one trip at a time, the address arithmetic took the FMA units' ports).
    macro_rules! step {
        ($p:expr) => {{
            let p = $p;
            // SAFETY: p < kc, so every offset lies inside the panels (the caller's contract).
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * NR));
                let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
                for i in 0..MR {
                    let ai = _mm512_set1_ps(*a.add(i * rsa + p));
                    low[i] = _mm512_fmadd_ps(ai, b0, low[i]);
                    high[i] = _mm512_fmadd_ps(ai, b1, high[i]);
                }
            }
        }};
    }
    let whole = kc / 4 * 4;
    for p in (0..whole).step_by(4) {
        step!(p);
        step!(p + 1);
        step!(p + 2);
        step!(p + 3);
    }
    for p in whole..kc {
        step!(p);
    }
    for i in 0..MR {
        // SAFETY: row i < MR of C, NR floats from its start.
        unsafe {
            let row = c.add(i * rsc);
            if accumulate {
                low[i] = _mm512_add_ps(_mm512_loadu_ps(row), low[i]);
                high[i] = _mm512_add_ps(_mm512_loadu_ps(row.add(16)), high[i]);
            }
            _mm512_storeu_ps(row, low[i]);
            _mm512_storeu_ps(row.add(16), high[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix in [-1, 1).
    fn matrix(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `A·B + beta·C` in f64, through the same strides.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        (m, k, n): (usize, usize, usize),
        a: &[f32],
        sa: Strides,
        b: &[f32],
        sb: Strides,
        beta: f32,
        c: &[f32],
        rsc: usize,
    ) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| a[i * sa.rs + p * sa.cs] as f64 * b[p * sb.rs + j * sb.cs] as f64)
                    .sum();
                out[i * n + j] = dot + beta as f64 * c[i * rsc + j] as f64;
            }
        }
        out
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_square_of_sixteen_is_transposed_between_strided_rows() {
        if !available() {
            return;
        }
        let from: Vec<f32> = (0..16 * 20).map(|i| i as f32).collect();
        let mut to = vec![-1.0f32; 16 * 24];
        // SAFETY: AVX-512F is available; 16 rows of 16 floats, 20 and 24 apart, fit both.
        unsafe { transpose16(from.as_ptr(), 20, to.as_mut_ptr(), 24) };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(to[j * 24 + i], from[i * 20 + j], "({i}, {j})");
            }
            assert!(
                to[i * 24 + 16..i * 24 + 24].iter().all(|&x| x == -1.0),
                "row {i} written past 16"
            );
        }
    }

    /// B held as bf16 bits gives the C of B widened to f32 first, bit for bit, on shapes around
    /// every block edge, transposed or not — with NaNs (signalling and quiet) and infinities in
    /// B, which the packing widens as `bf16_bits_to_f32` does.
    #[test]
    fn bf16_b_gives_the_product_of_its_widening() {
        if !available() {
            return;
        }
        for (s, &(m, k, n)) in [(1, 1, 1), (13, 257, 33), (25, 40, 70), (12, 512, 1030)]
            .iter()
            .enumerate()
        {
            let a = matrix(m * k, s as u64);
            let mut bits: Vec<u16> = matrix(n * k, 50 + s as u64)
                .iter()
                .map(|v| (v.to_bits() >> 16) as u16)
                .collect();
            if bits.len() > 40 {
                // A signalling NaN, a quiet one with a sign, +∞ and −∞.
                for (at, b) in [(3, 0x7F81), (17, 0xFFC1), (29, 0x7F80), (38, 0xFF80)] {
                    bits[at] = b;
                }
            }
            let widened: Vec<f32> = bits.iter().map(|&b| b.widen()).collect();
            for (b_transposed, beta) in [(true, 0.0), (false, 1.0)] {
                let sb = if b_transposed {
                    Strides::transposed(k)
                } else {
                    Strides::rows(n)
                };
                let c0 = matrix(m * n, 70 + s as u64);
                let (mut want, mut got) = (c0.clone(), c0);
                gemm((m, k, n), &a, k, &widened, sb, beta, &mut want, n);
                gemm((m, k, n), &a, k, &bits, sb, beta, &mut got, n);
                assert!(
                    want.iter()
                        .zip(&got)
                        .all(|(w, g)| w.to_bits() == g.to_bits()),
                    "{m}×{k}·{k}×{n} ({b_transposed})"
                );
                if bits.len() > 40 {
                    assert!(got.iter().any(|v| v.is_nan()), "the NaNs reached C");
                }
            }
        }
    }

    #[test]
    fn products_of_every_edge_shape_match_an_f64_product() {
        if !available() {
            return;
        }
        // Shapes around every block edge: MR 12, NR 32, KC 256, NC 1024.
        let shapes = [
            (1, 1, 1),
            (11, 3, 31),
            (12, 256, 32),
            (13, 257, 33),
            (241, 300, 70),
            (25, 40, 2049),
            (128, 64, 1000),
        ];
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            let a = matrix(m * k, s as u64);
            let w = matrix(n * k, 100 + s as u64);
            for (b_transposed, beta) in [(true, 0.0), (false, 1.0), (true, 0.5)] {
                let sb = if b_transposed {
                    Strides::transposed(k)
                } else {
                    Strides::rows(n)
                };
                let rsc = n + 3; // C is a column block of a wider matrix
                let mut c = matrix(m * rsc, 200 + s as u64);
                let want = reference((m, k, n), &a, Strides::rows(k), &w, sb, beta, &c, rsc);
                gemm((m, k, n), &a, k, &w, sb, beta, &mut c, rsc);
                for i in 0..m {
                    for j in 0..n {
                        let (got, want) = (c[i * rsc + j] as f64, want[i * n + j]);
                        // f32 sums of k products of values below 1: k·ε of error at most.
                        assert!((got - want).abs() <= 1e-6 * (k as f64 + 1.0), "{m}×{k}·{k}×{n} ({b_transposed}, {beta}) at ({i}, {j}): {got} vs {want}");
                    }
                }
            }
        }
    }
}
