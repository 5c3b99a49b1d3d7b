//! Eigenvalues of a small dense symmetric matrix (a head's `d_k × d_k` Gram), without
//! eigenvectors: Householder tridiagonalisation, then the root-free QL iteration of Pal, Walker
//! and Kahan (LAPACK's `dsterf`).
//!
//! Written here rather than taken from nalgebra (`symmetric_eigenvalues`) or faer because the
//! activation spectra and Figure 3's bootstrap take hundreds to tens of thousands of them: on
//! 64×64 Grams nalgebra took ~160 µs each (~57 tridiagonalising in generic column loops, ~100
//! in QR sweeps with a square root per rotation) and faer 0.24 140 µs; this one ~115 µs (~45
//! and ~68: whole-column updates that vectorise, rotations without a square root; what is left
//! is the latency of two dependent divisions per rotation). Measured on the full-size
//! benchmark: activation spectra 242 → 222 ms, the bootstrap's Gram route (4 × 256 tokens, 200
//! resamples) 2.77 → 2.48 s. Its eigenvalues agree with nalgebra's to a few ulps of λ_max (the
//! tests below), the accuracy either has.
//!
//! Callers with many Grams (a layer's spectra, a bootstrap resample's heads) hand them over
//! together ([`symmetric_eigenvalues_each`]): their QL iterations run interleaved, so that the
//! latency of one matrix's divisions overlaps another's (~135 µs each one at a time, ~80 each
//! eight at once, tridiagonalisation included; activation spectra 168–176 → 144 ms, the
//! bootstrap above 2.55 → 1.85 s).

use nalgebra::DMatrix;

/// Eigenvalues of the symmetric matrix `a` (square, finite; only its lower triangle is read),
/// in no particular order. `None` when the iteration does not converge within 30 sweeps per
/// eigenvalue, as LAPACK allows — never seen; the caller then takes nalgebra's.
pub fn symmetric_eigenvalues(a: &DMatrix<f64>) -> Option<Vec<f64>> {
    symmetric_eigenvalues_each(&[a]).pop().flatten()
}

/// [`symmetric_eigenvalues`] of each matrix, the same values bit for bit, with the QL
/// iterations of the matrices run interleaved, a rotation of each in turn. One QL iteration
/// is a chain of dependent divisions (latency-bound, ~20 ns a rotation); the chains of
/// different matrices overlap in the CPU.
pub fn symmetric_eigenvalues_each(matrices: &[&DMatrix<f64>]) -> Vec<Option<Vec<f64>>> {
    // Scaled to max |a| = 1 (as nalgebra does), so that the squares the QL takes neither
    // overflow nor lose the matrix to underflow.
    let scales: Vec<f64> = matrices
        .iter()
        .map(|a| {
            debug_assert_eq!(a.nrows(), a.ncols());
            a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
        })
        .collect();
    let mut iterations: Vec<Option<Ql>> = matrices
        .iter()
        .zip(&scales)
        .map(|(a, &scale)| {
            (a.nrows() > 0 && scale != 0.0).then(|| {
                let (d, e) = tridiagonal(a, scale);
                Ql::new(d, &e)
            })
        })
        .collect();
    // Round robin: one step (a rotation, or setting up the next sweep) of each unfinished one.
    loop {
        let mut running = false;
        for ql in iterations.iter_mut().flatten() {
            running |= ql.step();
        }
        if !running {
            break;
        }
    }
    iterations
        .into_iter()
        .zip(matrices.iter().zip(&scales))
        .map(|(ql, (a, &scale))| match ql {
            None => Some(vec![0.0; a.nrows()]),
            Some(ql) => ql.eigenvalues().map(|mut d| {
                d.iter_mut().for_each(|v| *v *= scale);
                d
            }),
        })
        .collect()
}

/// Lanes of the column pieces [`tridiagonal`] updates: whole pieces, so that every update
/// is full vectors (SSE2, simd128 or AVX-512 alike) with no scalar remainder loop.
const LANES: usize = 8;

/// The diagonal `d` (n) and off-diagonal `e` (n − 1) of a tridiagonal matrix similar to `a/scale`,
/// by n − 2 Householder reflections from the left and right (LAPACK's `dsytd2`, lower). The
/// trailing block is kept whole, both triangles, so that each update is a column loop.
///
/// Columns are stored `np` long (n rounded up to [`LANES`]) and updated from the piece that
/// holds the first active row: the rows above it (already reduced) and below n (padding) see
/// v = w = 0 there, so `c − (v·w + w·v)` leaves them as they are, and w's rows there are reset
/// to zero after the product that fills them. Every active value is computed as in the
/// unpadded loop, bit for bit (the 64 × 64 Grams of the activation spectra: ~50 → ~36 µs).
#[allow(unsafe_code)]
fn tridiagonal(a: &DMatrix<f64>, scale: f64) -> (Vec<f64>, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked above.
        return unsafe { tridiagonal_avx512(a, scale) };
    }
    tridiagonal_body(a, scale)
}

/// [`tridiagonal`] with 8-lane vectors (the same arithmetic: no fused operations).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tridiagonal_avx512(a: &DMatrix<f64>, scale: f64) -> (Vec<f64>, Vec<f64>) {
    tridiagonal_body(a, scale)
}

#[inline(always)]
fn tridiagonal_body(a: &DMatrix<f64>, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let n = a.nrows();
    let np = n.div_ceil(LANES) * LANES;
    // Column-major with columns np long, both triangles from the lower one.
    let mut m = vec![0.0f64; np * n];
    for j in 0..n {
        for i in j..n {
            let v = a[(i, j)] / scale;
            m[i + j * np] = v;
            m[j + i * np] = v;
        }
    }
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n.saturating_sub(1)];
    // v and w over all np rows; zero outside the active rows k + 1..n.
    let mut v = vec![0.0f64; np];
    let mut w = vec![0.0f64; np];
    for k in 0..n.saturating_sub(1) {
        d[k] = m[k + k * np];
        // x = column k below the diagonal; its reflection to β·e₁ (LAPACK's `dlarfg`).
        let x = &m[k + 1 + k * np..n + k * np];
        let alpha = x[0];
        let tail = x[1..].iter().map(|t| t * t).sum::<f64>().sqrt();
        if tail == 0.0 {
            e[k] = alpha; // already tridiagonal in this column: H = I
            continue;
        }
        let beta = -alpha.signum() * alpha.hypot(tail);
        let tau = (beta - alpha) / beta;
        let from = (k + 1) / LANES * LANES;
        v[from..k + 1].iter_mut().for_each(|v| *v = 0.0);
        v[k + 1] = 1.0;
        let inv = 1.0 / (alpha - beta);
        v[k + 2..n]
            .iter_mut()
            .zip(&x[1..])
            .for_each(|(v, x)| *v = x * inv);
        e[k] = beta;
        // A₂₂ ← H A₂₂ H with H = I − τ v vᵀ: p = τ A₂₂ v, w = p − (τ/2)(pᵀv) v,
        // A₂₂ ← A₂₂ − v wᵀ − w vᵀ; on whole pieces from the one holding row k + 1.
        let column = |j: usize| from + j * np..(j + 1) * np;
        w[from..].iter_mut().for_each(|w| *w = 0.0);
        for j in k + 1..n {
            let f = tau * v[j];
            let col = &m[column(j)];
            w[from..].iter_mut().zip(col).for_each(|(w, c)| *w += f * c);
        }
        w[from..k + 1].iter_mut().for_each(|w| *w = 0.0);
        let half = 0.5
            * tau
            * w[k + 1..n]
                .iter()
                .zip(&v[k + 1..n])
                .map(|(p, v)| p * v)
                .sum::<f64>();
        for i in k + 1..n {
            w[i] -= half * v[i];
        }
        for j in k + 1..n {
            let (vj, wj) = (v[j], w[j]);
            let col = &mut m[column(j)];
            col.iter_mut()
                .zip(v[from..].iter().zip(&w[from..]))
                .for_each(|(c, (vi, wi))| *c -= vi * wj + wi * vj);
        }
    }
    d[n - 1] = m[(n - 1) + (n - 1) * np];
    (d, e)
}

/// The eigenvalues of the symmetric tridiagonal matrix (`d`, `e`) by the implicit QL iteration
/// with Wilkinson's shift in Pal–Walker–Kahan's root-free form (LAPACK's `dsterf`, QL branch):
/// it carries the squares of `e`, so a rotation costs no square root. An off-diagonal counts
/// as zero once e² ≤ ε²·(|d_m| + |d_m+1|)², the absolute test of nalgebra's QR (and of
/// `tqli`), which also ends on exactly singular matrices.
///
/// Run a [`Ql::step`] at a time, so that several iterations can be interleaved
/// ([`symmetric_eigenvalues_each`]); each computes what the loop of `dsterf` computes, in the
/// same order.
struct Ql {
    d: Vec<f64>,
    /// The squares of the off-diagonal, and a 0 after the last.
    e2: Vec<f64>,
    /// Everything above `l` has converged.
    l: usize,
    sweeps_left: usize,
    /// The sweep under way, if any.
    sweep: Option<Sweep>,
    failed: bool,
}

/// One QL sweep over the unreduced block `d[l..=m]`, from the bottom up; `i` is the row the
/// next rotation ends at (the sweep is over when it reaches `l`).
struct Sweep {
    l: usize,
    m: usize,
    i: usize,
    sigma: f64,
    c: f64,
    s: f64,
    gamma: f64,
    p: f64,
}

impl Ql {
    fn new(d: Vec<f64>, e: &[f64]) -> Self {
        let mut e2: Vec<f64> = e.iter().map(|v| v * v).collect();
        e2.push(0.0);
        Self {
            sweeps_left: 30 * d.len(),
            d,
            e2,
            l: 0,
            sweep: None,
            failed: false,
        }
    }

    /// The eigenvalues, once [`Ql::step`] has returned `false`; `None` if it did not converge.
    fn eigenvalues(self) -> Option<Vec<f64>> {
        (!self.failed).then_some(self.d)
    }

    /// One rotation of the sweep under way, or the end of it, or else the next sweep set up
    /// (deflating the eigenvalues found on the way). `false` once every eigenvalue is found
    /// or the sweeps allowed are spent.
    fn step(&mut self) -> bool {
        let (d, e2) = (&mut self.d, &mut self.e2);
        if let Some(w) = &mut self.sweep {
            if w.i > w.l {
                let i = w.i - 1;
                let bb = e2[i];
                let r = w.p + bb;
                if i + 1 != w.m {
                    e2[i + 1] = w.s * r;
                }
                let old_c = w.c;
                let inv = 1.0 / r; // one division on the chain of dependent steps, not two
                w.c = w.p * inv;
                w.s = bb * inv;
                let old_gamma = w.gamma;
                let alpha = d[i];
                w.gamma = w.c * (alpha - w.sigma) - w.s * old_gamma;
                d[i + 1] = old_gamma + (alpha - w.gamma);
                w.p = if w.c != 0.0 {
                    w.gamma * w.gamma / w.c
                } else {
                    old_c * bb
                };
                w.i = i;
            } else {
                e2[w.l] = w.s * w.p;
                d[w.l] = w.sigma + w.gamma;
                self.sweep = None;
            }
            return true;
        }
        let n = d.len();
        let eps2 = f64::EPSILON * f64::EPSILON;
        let l = &mut self.l;
        while *l < n {
            // The first negligible off-diagonal at or below l: d[l..=m] is an unreduced block.
            let mut m = *l;
            while m + 1 < n {
                let s = d[m].abs() + d[m + 1].abs();
                if e2[m] <= eps2 * s * s {
                    e2[m] = 0.0;
                    break;
                }
                m += 1;
            }
            if m == *l {
                *l += 1; // d[l] is an eigenvalue
                continue;
            }
            if m == *l + 1 {
                // A 2×2 block: its eigenvalues directly (LAPACK's `dlae2`).
                let (a, b, c) = (d[*l], e2[*l].sqrt(), d[*l + 1]);
                let (rt1, rt2) = eigenvalues_2x2(a, b, c);
                d[*l] = rt1;
                d[*l + 1] = rt2;
                e2[*l] = 0.0;
                *l += 2;
                continue;
            }
            if self.sweeps_left == 0 {
                self.failed = true;
                return false;
            }
            self.sweeps_left -= 1;
            // Wilkinson's shift from the top 2×2 of the block.
            let p = d[*l];
            let rte = e2[*l].sqrt();
            let mut sigma = (d[*l + 1] - p) / (2.0 * rte);
            let r = sigma.hypot(1.0);
            sigma = p - rte / (sigma + r.copysign(sigma));
            let gamma = d[m] - sigma;
            self.sweep = Some(Sweep {
                l: *l,
                m,
                i: m,
                sigma,
                c: 1.0,
                s: 0.0,
                gamma,
                p: gamma * gamma,
            });
            return true;
        }
        false
    }
}

/// The eigenvalues of `[[a, b], [b, c]]`, larger first, as LAPACK's `dlae2` takes them (no
/// cancellation in the smaller one).
fn eigenvalues_2x2(a: f64, b: f64, c: f64) -> (f64, f64) {
    let sm = a + c;
    let adf = (a - c).abs();
    let ab = 2.0 * b.abs();
    let (acmx, acmn) = if a.abs() > c.abs() { (a, c) } else { (c, a) };
    let rt = if adf > ab {
        adf * (1.0 + (ab / adf).powi(2)).sqrt()
    } else if adf < ab {
        ab * (1.0 + (adf / ab).powi(2)).sqrt()
    } else {
        ab * std::f64::consts::SQRT_2
    };
    if sm < 0.0 {
        let rt1 = 0.5 * (sm - rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    } else if sm > 0.0 {
        let rt1 = 0.5 * (sm + rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    } else {
        (0.5 * rt, -0.5 * rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic uniforms in [−0.5, 0.5).
    fn uniforms(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    /// Against nalgebra's eigenvalues: Grams of tall blocks (full rank, graded columns, an
    /// offset column, exactly rank-deficient), a symmetric matrix with negative eigenvalues,
    /// repeated eigenvalues, diagonal and tiny sizes.
    #[test]
    fn eigenvalues_match_nalgebra_to_a_few_ulps_of_the_largest() {
        let mut u = uniforms(7);
        let mut cases: Vec<DMatrix<f64>> = Vec::new();
        for (rows, cols, grade, rank) in [
            (1024, 64, 0.0, 64),
            (1024, 64, 0.3, 64),
            (300, 64, 3.0, 64),
            (200, 32, 0.0, 5),
            (100, 16, 0.0, 1),
            (40, 3, 0.0, 3),
        ] {
            let basis = DMatrix::from_fn(rows, rank, |_, _| u());
            let mix = DMatrix::from_fn(rank, cols, |_, j| u() * (1.0 + grade * j as f64));
            let mut x = basis * mix;
            x.column_mut(0).add_scalar_mut(0.7);
            cases.push(x.transpose() * &x);
        }
        let s = DMatrix::from_fn(48, 48, |_, _| u());
        cases.push(&s + s.transpose());
        cases.push(DMatrix::identity(20, 20) * 3.0);
        cases.push(DMatrix::from_diagonal(&nalgebra::DVector::from_fn(
            9,
            |i, _| (i as f64 - 4.0) * 1e3,
        )));
        cases.push(DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]));
        cases.push(DMatrix::from_row_slice(1, 1, &[-4.5]));
        cases.push(DMatrix::zeros(5, 5));
        for (i, a) in cases.iter().enumerate() {
            let want = sorted(a.clone().symmetric_eigenvalues().iter().copied().collect());
            let got = sorted(symmetric_eigenvalues(a).expect("converges"));
            let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let n = a.nrows() as f64;
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 4.0 * n * f64::EPSILON * largest,
                    "case {i} ({n}×{n}): {g} vs {w}"
                );
            }
        }
        assert!(symmetric_eigenvalues(&DMatrix::zeros(0, 0))
            .expect("empty")
            .is_empty());
    }

    /// Interleaved, each matrix gets the eigenvalues it gets alone, bit for bit and in its
    /// place: matrices of different sizes (so that sweeps end at different steps), a zero
    /// matrix, 1 × 1 and empty ones among them.
    #[test]
    fn eigenvalues_found_together_are_those_found_alone() {
        let mut u = uniforms(3);
        let mut gram = |rows: usize, cols: usize| {
            let x = DMatrix::from_fn(rows, cols, |_, j| u() * (1.0 + 0.2 * j as f64));
            x.transpose() * &x
        };
        let matrices = [
            gram(1024, 64),
            gram(300, 17),
            DMatrix::zeros(4, 4),
            gram(1024, 64),
            DMatrix::from_row_slice(1, 1, &[2.5]),
            DMatrix::zeros(0, 0),
            gram(90, 33),
        ];
        let refs: Vec<&DMatrix<f64>> = matrices.iter().collect();
        let together = symmetric_eigenvalues_each(&refs);
        assert_eq!(together.len(), matrices.len());
        for (i, (a, got)) in matrices.iter().zip(&together).enumerate() {
            let alone = symmetric_eigenvalues(a).expect("converges");
            let got = got.as_ref().expect("converges");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got), bits(&alone), "matrix {i}");
        }
    }

    /// Known eigenvalues: 1..=n on the diagonal of a random rotation Q·diag·Qᵀ.
    #[test]
    fn eigenvalues_of_a_rotated_diagonal_are_its_entries() {
        let n = 64;
        let mut u = uniforms(11);
        let q = DMatrix::from_fn(n, n, |_, _| u()).qr().q();
        let diag = DMatrix::from_diagonal(&nalgebra::DVector::from_fn(n, |i, _| (i + 1) as f64));
        let a = &q * diag * q.transpose();
        let got = sorted(symmetric_eigenvalues(&a).expect("converges"));
        for (i, g) in got.iter().enumerate() {
            assert!((g - (i + 1) as f64).abs() < 1e-12 * n as f64, "{i}: {g}");
        }
    }
}
