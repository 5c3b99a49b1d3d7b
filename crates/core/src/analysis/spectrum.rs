//! Singular values of key / query / weight matrices and the rank metrics built on them.
//!
//! Definitions: `shared/METRICS.md`, "Spectral metrics of a matrix M". Everything
//! is f64: inputs (f32 / bf16 / f16 as decoded) are converted before any
//! arithmetic, and no SVD is ever computed in lower precision.
//!
//! # Routes
//! Keys are tall and thin (`(B·T) × d_k`, 512×16 in the fixtures, 32768×128 at
//! full scale), where a direct SVD wastes most of its time on the long side.
//! [`SvdRoute::Gram`] forms the f64 Gram matrix of the short side (`MᵀM`, via
//! `transpose()` + gemm) and takes σ = √max(λ, 0) of its symmetric eigenvalues.
//! Its eigenvalues carry an absolute error of about ε·λ_max, so σ_min loses
//! relative accuracy as ~ε·κ²/2 (κ = σ_max/σ_min, ε = 2.2e-16); measured on
//! 600×24 matrices of known spectrum: 7e-14, 1.8e-9 and 1.1e-5 at κ = 1e2,
//! 1e4, 1e6, against 2e-15, 4e-14 and 1.1e-12 for the direct SVD (whose error
//! grows like ε·κ). [`singular_values`] therefore keeps a Gram result only
//! while the Gram spectrum itself shows λ_min/λ_max ≥ [`GRAM_MIN_EIGEN_RATIO`]
//! (= 1e-8, i.e. κ ≤ 1e4, where σ_min is good to ~1e-8 relative, well inside
//! the 1e-6 the metrics need; cond is the sensitive one) and otherwise
//! recomputes with the direct SVD. Rounding puts λ_min within ~1e-14·λ_max of
//! its true value, far below the threshold, so an ill-conditioned matrix is
//! always caught. The tests below prove both routes with κ = 1e2, 1e4, 1e6 and
//! check the fallback, including exactly rank-deficient input.

use nalgebra::{DMatrix, SymmetricEigen, SVD};

use super::eigenvalues::symmetric_eigenvalues_each;
use super::powerlaw::{fit_power_law, PowerLawFit};

/// Cumulative energy fraction that defines r90 (METRICS.md).
const ENERGY_FRACTION: f64 = 0.90;

/// Smallest λ_min/λ_max of the Gram matrix for which [`singular_values`]
/// trusts the Gram route (κ ≤ 1e4); below it the direct SVD is used.
pub const GRAM_MIN_EIGEN_RATIO: f64 = 1e-8;

/// Why a spectrum or its metrics could not be computed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SpectrumError {
    /// The matrix has no rows or no columns, or the singular-value list is empty.
    #[error("empty matrix: there are no singular values")]
    EmptyMatrix,
    /// Every singular value is zero, so PR and the other ratios are undefined.
    #[error("zero matrix: every singular value is 0, so PR is undefined")]
    ZeroMatrix,
    /// A NaN or infinite entry, at this (0-based) row and column.
    #[error("non-finite entry at row {row}, column {col}")]
    NonFinite { row: usize, col: usize },
    /// A singular value given to [`metrics_from_singular_values`] is negative or not finite.
    #[error("singular value #{index} is {value}; singular values are finite and ≥ 0")]
    InvalidSingularValue { index: usize, value: f64 },
    /// A row-major buffer whose length is not `rows × cols`.
    #[error("buffer holds {len} values but the shape {rows}×{cols} needs {expected}")]
    ShapeMismatch {
        len: usize,
        rows: usize,
        cols: usize,
        expected: usize,
    },
    /// The iterative SVD or eigen-solver hit its iteration cap.
    #[error("the {0} did not converge")]
    NoConvergence(&'static str),
}

/// The rank-collapse metrics of one matrix (METRICS.md). Never NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpectrumMetrics {
    /// Participation ratio, reference definition (`svd_probe.py`): (Σσ)²/Σσ².
    pub pr: f64,
    /// Participation ratio of the covariance eigenvalues: (Σσ²)²/Σσ⁴.
    pub pr_eig: f64,
    /// Smallest r with Σ_{i≤r} σ_i² / Σσ² ≥ 0.90.
    pub r90: usize,
    /// σ_1/σ_n; `f64::INFINITY` when σ_n = 0, serialised as the string `"inf"`.
    #[serde(with = "inf_as_string")]
    pub cond: f64,
    /// Entropy effective rank (Roy & Vetterli): exp(−Σ p ln p), p = σ/Σσ.
    pub erank: f64,
    /// Stable rank Σσ²/σ_1².
    pub stable_rank: f64,
}

/// A layer's value: the mean of [`SpectrumMetrics`] over its heads.
///
/// `r90` is the plain mean of the heads' integer r90 as an `f64` (not rounded),
/// as the reference's `k_mean` does (e.g. 8.5). `cond` is `f64::INFINITY` if
/// any head's is (serialised `"inf"`), as numpy's mean gives.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanMetrics {
    pub pr: f64,
    pub pr_eig: f64,
    pub r90: f64,
    #[serde(with = "inf_as_string")]
    pub cond: f64,
    pub erank: f64,
    pub stable_rank: f64,
}

/// Metrics of a weight matrix: the rank metrics plus WeightWatcher's vocabulary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeightMetrics {
    pub spectrum: SpectrumMetrics,
    /// σ_1.
    pub spectral_norm: f64,
    /// log10 Σσ² (log10 of the squared Frobenius norm).
    pub log10_fro2: f64,
    /// Power-law fit of the eigenvalues λ = σ²; `None` with fewer than
    /// [`super::powerlaw::MIN_EIGENVALUES`] (50) positive eigenvalues.
    pub alpha: Option<PowerLawFit>,
}

/// How [`singular_values_with`] computes singular values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvdRoute {
    /// nalgebra's Golub–Kahan SVD of the matrix itself.
    Direct,
    /// Symmetric eigenvalues of the f64 Gram matrix of the short side.
    Gram,
}

/// The route [`singular_values`] tries first for a `rows × cols` matrix:
/// [`SvdRoute::Gram`] when one side is at least twice the other (a direct SVD
/// costs ~4·m·n² flops in unblocked code, the Gram matrix m·n² in a blocked
/// gemm), [`SvdRoute::Direct`] for squarish matrices.
pub fn choose_route(rows: usize, cols: usize) -> SvdRoute {
    let (long, short) = (rows.max(cols), rows.min(cols));
    if long >= 2 * short {
        SvdRoute::Gram
    } else {
        SvdRoute::Direct
    }
}

/// Rank metrics from singular values given in any order (a sorted copy is used).
///
/// Errors: [`SpectrumError::EmptyMatrix`] for an empty list,
/// [`SpectrumError::InvalidSingularValue`] for a negative or non-finite value,
/// [`SpectrumError::ZeroMatrix`] when all are zero.
pub fn metrics_from_singular_values(sv: &[f64]) -> Result<SpectrumMetrics, SpectrumError> {
    let sorted = sorted_descending(sv)?;
    let sigma_1 = sorted[0];
    let sigma_n = sorted[sorted.len() - 1];
    // Ratios are scale-free: work with s = σ/σ_1 ∈ [0, 1] so that Σσ⁴ can
    // neither overflow nor underflow whatever the magnitude of the input.
    let s: Vec<f64> = sorted.iter().map(|&v| v / sigma_1).collect();
    let sum1: f64 = s.iter().sum();
    let sum2: f64 = s.iter().map(|v| v * v).sum();
    let sum4: f64 = s.iter().map(|v| (v * v) * (v * v)).sum();

    let mut cumulative = 0.0;
    let mut r90 = s.len();
    for (i, v) in s.iter().enumerate() {
        cumulative += v * v;
        if cumulative / sum2 >= ENERGY_FRACTION {
            r90 = i + 1;
            break;
        }
    }

    let entropy: f64 = s
        .iter()
        .filter(|&&v| v > 0.0) // 0·ln 0 = 0
        .map(|&v| {
            let p = v / sum1;
            -p * p.ln()
        })
        .sum();

    Ok(SpectrumMetrics {
        pr: sum1 * sum1 / sum2,
        pr_eig: sum2 * sum2 / sum4,
        r90,
        cond: if sigma_n == 0.0 {
            f64::INFINITY
        } else {
            sigma_1 / sigma_n
        },
        erank: entropy.exp(),
        stable_rank: sum2,
    })
}

/// Rank metrics plus spectral norm, log10 ‖W‖_F² and the power-law α of λ = σ².
pub fn weight_metrics(sv: &[f64]) -> Result<WeightMetrics, SpectrumError> {
    let spectrum = metrics_from_singular_values(sv)?;
    let sorted = sorted_descending(sv)?;
    let sigma_1 = sorted[0];
    let scaled_sum2: f64 = sorted.iter().map(|&v| (v / sigma_1) * (v / sigma_1)).sum();
    let eigenvalues: Vec<f64> = sorted.iter().map(|&v| v * v).collect();
    Ok(WeightMetrics {
        spectrum,
        spectral_norm: sigma_1,
        log10_fro2: 2.0 * sigma_1.log10() + scaled_sum2.log10(),
        alpha: fit_power_law(&eigenvalues),
    })
}

/// Mean of per-head metrics (a layer's value, METRICS.md); `None` for no heads.
pub fn mean_metrics(per_head: &[SpectrumMetrics]) -> Option<MeanMetrics> {
    if per_head.is_empty() {
        return None;
    }
    let n = per_head.len() as f64;
    let mean = |f: fn(&SpectrumMetrics) -> f64| per_head.iter().map(f).sum::<f64>() / n;
    Some(MeanMetrics {
        pr: mean(|m| m.pr),
        pr_eig: mean(|m| m.pr_eig),
        r90: mean(|m| m.r90 as f64),
        cond: mean(|m| m.cond),
        erank: mean(|m| m.erank),
        stable_rank: mean(|m| m.stable_rank),
    })
}

/// Singular values of `m`, descending (min(rows, cols) of them).
///
/// Takes the route of [`choose_route`]; a Gram result whose λ_min/λ_max is
/// below [`GRAM_MIN_EIGEN_RATIO`] is discarded for the direct SVD (see the
/// module docs for why).
pub fn singular_values(m: &DMatrix<f64>) -> Result<Vec<f64>, SpectrumError> {
    check_matrix(m)?;
    match choose_route(m.nrows(), m.ncols()) {
        SvdRoute::Direct => direct_singular_values(m),
        SvdRoute::Gram => {
            let eig = gram_eigenvalues(m)?;
            if gram_is_trustworthy(&eig, 0.0) {
                Ok(sigma_from_eigenvalues(eig))
            } else {
                direct_singular_values(m)
            }
        }
    }
}

/// Singular values of `m`, descending, by the given route and no fallback.
/// [`singular_values`] is what callers want; this exists to compare routes.
pub fn singular_values_with(m: &DMatrix<f64>, route: SvdRoute) -> Result<Vec<f64>, SpectrumError> {
    check_matrix(m)?;
    match route {
        SvdRoute::Direct => direct_singular_values(m),
        SvdRoute::Gram => Ok(sigma_from_eigenvalues(gram_eigenvalues(m)?)),
    }
}

/// Singular values of M, descending, from its Gram matrix `MᵀM` formed elsewhere (the GPU's
/// compensated Gram, about as accurate as the f64 one), when [`singular_values`] would trust it
/// by the same test: λ_min ≥ [`GRAM_MIN_EIGEN_RATIO`] · max(λ_max, `error_scale`).
/// `error_scale` is what the Gram's rounding error is relative to when that exceeds λ_max: for
/// a Gram centred as `G − s sᵀ/n`, a bound on the uncentred G's λ_max (its trace), so that
/// cancellation in the centring is counted; 0 otherwise. `Ok(None)` — a Gram that is not
/// trustworthy, non-finite or all zero — means: take the direct SVD of M.
pub fn singular_values_from_gram(
    gram: DMatrix<f64>,
    error_scale: f64,
) -> Result<Option<Vec<f64>>, SpectrumError> {
    let mut each = singular_values_from_grams(&[(gram, error_scale)])?;
    Ok(each.pop().flatten())
}

/// [`singular_values_from_gram`] of each `(gram, error_scale)`, the same values bit for bit,
/// with the eigenvalue iterations run interleaved ([`symmetric_eigenvalues_each`]).
pub fn singular_values_from_grams(
    grams: &[(DMatrix<f64>, f64)],
) -> Result<Vec<Option<Vec<f64>>>, SpectrumError> {
    if grams
        .iter()
        .any(|(gram, _)| gram.nrows() == 0 || gram.ncols() != gram.nrows())
    {
        return Err(SpectrumError::EmptyMatrix);
    }
    // A Gram with a NaN or ±∞ is not trusted: its spectrum comes from the matrix itself.
    let finite: Vec<bool> = grams
        .iter()
        .map(|(gram, _)| gram.iter().all(|v| v.is_finite()))
        .collect();
    let usable: Vec<&DMatrix<f64>> = grams
        .iter()
        .zip(&finite)
        .filter_map(|((gram, _), &finite)| finite.then_some(gram))
        .collect();
    // Eigenvalues only, no eigenvectors (Figure 3's bootstrap takes one per head per
    // resample), by the same routine as the Gram route of `singular_values`, so the same
    // values bit for bit (the test below compares them).
    let mut eigenvalues = gram_eigenvalues_each(&usable).into_iter();
    Ok(grams
        .iter()
        .zip(finite)
        .map(|((_, error_scale), finite)| {
            if !finite {
                return None;
            }
            let eigenvalues = eigenvalues.next().expect("one per finite Gram");
            gram_is_trustworthy(&eigenvalues, *error_scale)
                .then(|| sigma_from_eigenvalues(eigenvalues))
        })
        .collect())
}

/// Singular values of a row-major f32 `rows × cols` buffer (what the readers
/// decode), converted to f64 before anything else.
pub fn singular_values_f32(
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<f64>, SpectrumError> {
    singular_values(&transpose_from_row_major_f32(data, rows, cols)?)
}

/// `Mᵀ` as an f64 matrix (`cols × rows`) from M's row-major f32 buffer, checking shape and
/// finiteness: row-major M read as column-major is Mᵀ, which has the same singular values,
/// so where only they are wanted this sequential conversion replaces the strided one of
/// [`matrix_from_row_major_f32`] (the 704 activation spectra of the full-size benchmark:
/// 408 → 304 ms with it).
pub fn transpose_from_row_major_f32(
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Result<DMatrix<f64>, SpectrumError> {
    check_row_major(data, rows, cols)?;
    // Through a Vec, which vectorises; `DMatrix::from_iterator` converts element by element
    // (with the slice centring of `gram_spectra`, the same spectra went 304 → 272 ms).
    let values: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
    Ok(DMatrix::from_vec(cols, rows, values))
}

/// Converts a row-major f32 buffer to an f64 matrix, checking shape and finiteness.
pub fn matrix_from_row_major_f32(
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Result<DMatrix<f64>, SpectrumError> {
    check_row_major(data, rows, cols)?;
    Ok(DMatrix::from_fn(rows, cols, |r, c| {
        f64::from(data[r * cols + c])
    }))
}

/// Shape, emptiness and finiteness of a row-major buffer.
pub(crate) fn check_row_major(data: &[f32], rows: usize, cols: usize) -> Result<(), SpectrumError> {
    check_shape(data, rows, cols)?;
    // A pass without early exit first, which vectorises (a value is NaN or ±∞ when its
    // exponent bits are all ones); the scalar search for the position only when one is there.
    let non_finite = data.iter().fold(0u32, |any, v| {
        any | u32::from(v.to_bits() & 0x7fff_ffff >= 0x7f80_0000)
    });
    if non_finite != 0 {
        first_non_finite(data, cols)?;
    }
    Ok(())
}

/// Shape and emptiness of a row-major buffer (its finiteness is [`check_row_major`]'s, or
/// [`first_non_finite`]'s once a sum over it says it holds a NaN or ±∞).
pub(crate) fn check_shape(data: &[f32], rows: usize, cols: usize) -> Result<(), SpectrumError> {
    let expected = rows.checked_mul(cols).ok_or(SpectrumError::ShapeMismatch {
        len: data.len(),
        rows,
        cols,
        expected: usize::MAX,
    })?;
    if data.len() != expected {
        return Err(SpectrumError::ShapeMismatch {
            len: data.len(),
            rows,
            cols,
            expected,
        });
    }
    if expected == 0 {
        return Err(SpectrumError::EmptyMatrix);
    }
    Ok(())
}

/// [`SpectrumError::NonFinite`] at the first NaN or ±∞ of a row-major buffer, if any.
pub(crate) fn first_non_finite(data: &[f32], cols: usize) -> Result<(), SpectrumError> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(SpectrumError::NonFinite {
            row: i / cols,
            col: i % cols,
        }),
        None => Ok(()),
    }
}

/// Rank metrics of a matrix: [`singular_values`] then [`metrics_from_singular_values`].
pub fn spectrum_metrics(m: &DMatrix<f64>) -> Result<SpectrumMetrics, SpectrumError> {
    metrics_from_singular_values(&singular_values(m)?)
}

/// Singular values (descending) and right singular vectors of `m`.
///
/// Returns `(σ, V)` with `V` of shape `cols × k`, k = min(rows, cols), column
/// i the right singular vector of σ_i; for the tall K matrices that is the
/// full `n × n` V that surgery and leverage need. Tall matrices go through
/// the eigenvectors of the Gram matrix when [`singular_values`] would trust
/// it (same threshold), otherwise through the direct SVD. Vectors of repeated
/// singular values are any orthonormal basis of their subspace, signs arbitrary.
pub fn right_singular_vectors(m: &DMatrix<f64>) -> Result<(Vec<f64>, DMatrix<f64>), SpectrumError> {
    check_matrix(m)?;
    let (rows, cols) = m.shape();
    if rows > cols && choose_route(rows, cols) == SvdRoute::Gram {
        let eig = SymmetricEigen::try_new(gram_matrix(m), f64::EPSILON, iteration_cap(cols))
            .ok_or(SpectrumError::NoConvergence("symmetric eigen-solver"))?;
        let values: Vec<f64> = eig.eigenvalues.iter().copied().collect();
        if gram_is_trustworthy(&values, 0.0) {
            let order = descending_order(&values);
            let sigma = order.iter().map(|&i| values[i].max(0.0).sqrt()).collect();
            let v = DMatrix::from_fn(cols, cols, |r, c| eig.eigenvectors[(r, order[c])]);
            return Ok((sigma, v));
        }
    }
    let k = rows.min(cols);
    let svd = SVD::try_new_unordered(m.clone(), false, true, f64::EPSILON, iteration_cap(k))
        .ok_or(SpectrumError::NoConvergence("SVD"))?;
    let v_t = svd.v_t.ok_or(SpectrumError::NoConvergence("SVD"))?;
    let values: Vec<f64> = svd.singular_values.iter().copied().collect();
    let order = descending_order(&values);
    let sigma = order.iter().map(|&i| values[i]).collect();
    let v = DMatrix::from_fn(cols, k, |r, c| v_t[(order[c], r)]);
    Ok((sigma, v))
}

fn check_matrix(m: &DMatrix<f64>) -> Result<(), SpectrumError> {
    if m.is_empty() {
        return Err(SpectrumError::EmptyMatrix);
    }
    // Column-major storage: entry i is at row i % nrows, column i / nrows.
    if let Some(i) = m.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(SpectrumError::NonFinite {
            row: i % m.nrows(),
            col: i / m.nrows(),
        });
    }
    Ok(())
}

/// Generous cap on implicit-shift iterations (typically ~2 per value).
fn iteration_cap(n: usize) -> usize {
    1000 * n.max(1)
}

/// nalgebra's SVD, always of the tall orientation (Mᵀ of a wide M has the same
/// σ, and its column-major bidiagonalisation is ~1.7× faster tall than wide).
fn direct_singular_values(m: &DMatrix<f64>) -> Result<Vec<f64>, SpectrumError> {
    let k = m.nrows().min(m.ncols());
    let tall = if m.nrows() >= m.ncols() {
        m.clone()
    } else {
        m.transpose()
    };
    let svd = SVD::try_new_unordered(tall, false, false, f64::EPSILON, iteration_cap(k))
        .ok_or(SpectrumError::NoConvergence("SVD"))?;
    let mut sigma: Vec<f64> = svd.singular_values.iter().copied().collect();
    sigma.sort_by(|a, b| b.total_cmp(a));
    Ok(sigma)
}

/// Gram matrix of the short side: MᵀM for tall M, MMᵀ for wide M.
///
/// One blocked gemm reading M through strides, with no transposed copy: for
/// a 32768×64 M the copy that `transpose()` + `*` makes costs nearly as much
/// as the product, and nalgebra's `tr_mul` (dot products) is several times slower.
// matrixmultiply's gemm takes raw pointers; the SAFETY comment below says why the call is sound.
#[allow(unsafe_code)]
pub(crate) fn gram_matrix(m: &DMatrix<f64>) -> DMatrix<f64> {
    let (rows, cols) = m.shape();
    let n = rows.min(cols);
    let mut g = DMatrix::<f64>::zeros(n, n);
    // Column-major: M[i, j] = data[i + j·rows]; strides fit in isize because
    // the buffer exists. The product is A (n×k) · B (k×n), k = the long side.
    let r = rows as isize;
    let (k, a_strides, b_strides) = if rows >= cols {
        (rows, (r, 1), (1, r)) // A = Mᵀ, B = M
    } else {
        (cols, (1, r), (r, 1)) // A = M, B = Mᵀ
    };
    let a = m.as_slice().as_ptr();
    let c = g.as_mut_slice().as_mut_ptr();
    // SAFETY: A and B address exactly the rows·cols elements of `m`'s buffer
    // (max offset (rows−1) + (cols−1)·rows), C the n·n elements of `g`
    // (column-major, strides 1 and n); `g` is a separate allocation from `m`,
    // and with beta = 0 C is only written.
    unsafe {
        matrixmultiply::dgemm(
            n,
            k,
            n,
            1.0,
            a,
            a_strides.0,
            a_strides.1,
            a,
            b_strides.0,
            b_strides.1,
            0.0,
            c,
            1,
            n as isize,
        );
    }
    g
}

/// Eigenvalues of the Gram matrix, without eigenvectors: the same values bit for bit as
/// `SymmetricEigen::try_new` (see [`singular_values_from_gram`]) in less time. `m` is finite
/// (checked by every caller), so its Gram is too, and the shifted QR iteration converges.
fn gram_eigenvalues(m: &DMatrix<f64>) -> Result<Vec<f64>, SpectrumError> {
    Ok(gram_eigenvalues_of(gram_matrix(m)))
}

/// The eigenvalues of a Gram (symmetric, finite): [`super::eigenvalues::symmetric_eigenvalues`], or nalgebra's
/// where that iteration would not converge.
fn gram_eigenvalues_of(gram: DMatrix<f64>) -> Vec<f64> {
    gram_eigenvalues_each(&[&gram]).remove(0)
}

/// [`gram_eigenvalues_of`] each Gram, interleaved ([`symmetric_eigenvalues_each`]).
fn gram_eigenvalues_each(grams: &[&DMatrix<f64>]) -> Vec<Vec<f64>> {
    symmetric_eigenvalues_each(grams)
        .into_iter()
        .zip(grams)
        .map(|(eigenvalues, gram)| {
            eigenvalues.unwrap_or_else(|| gram.symmetric_eigenvalues().iter().copied().collect())
        })
        .collect()
}

/// λ_min ≥ [`GRAM_MIN_EIGEN_RATIO`] · max(λ_max, `error_scale`) (rounding can make λ_min
/// negative); `error_scale` as [`singular_values_from_gram`] takes it, 0 for a Gram formed
/// from the matrix itself.
fn gram_is_trustworthy(eigenvalues: &[f64], error_scale: f64) -> bool {
    let max = eigenvalues
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let min = eigenvalues.iter().copied().fold(f64::INFINITY, f64::min);
    max > 0.0 && min >= GRAM_MIN_EIGEN_RATIO * max.max(error_scale)
}

fn sigma_from_eigenvalues(eigenvalues: Vec<f64>) -> Vec<f64> {
    let mut sigma: Vec<f64> = eigenvalues.into_iter().map(|l| l.max(0.0).sqrt()).collect();
    sigma.sort_by(|a, b| b.total_cmp(a));
    sigma
}

fn descending_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order
}

fn sorted_descending(sv: &[f64]) -> Result<Vec<f64>, SpectrumError> {
    if sv.is_empty() {
        return Err(SpectrumError::EmptyMatrix);
    }
    if let Some((index, &value)) = sv
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return Err(SpectrumError::InvalidSingularValue { index, value });
    }
    let mut sorted = sv.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    if sorted[0] == 0.0 {
        return Err(SpectrumError::ZeroMatrix);
    }
    Ok(sorted)
}

/// Serde for an f64 that may be +∞: written as the string `"inf"` (JSON has no
/// infinity, and serde_json would write `null`), read from a number or `"inf"`.
mod inf_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if *value == f64::INFINITY {
            serializer.serialize_str("inf")
        } else {
            serializer.serialize_f64(*value)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrInf {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match NumberOrInf::deserialize(deserializer)? {
            NumberOrInf::Number(v) => Ok(v),
            NumberOrInf::Text(s) if s == "inf" => Ok(f64::INFINITY),
            NumberOrInf::Text(s) => Err(serde::de::Error::custom(format!(
                "expected a number or \"inf\", found the string {s:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    /// Deterministic standard normals (64-bit LCG + Box–Muller), no rand dependency.
    struct Normals(u64);
    impl Normals {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn next(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
        fn matrix(&mut self, rows: usize, cols: usize) -> DMatrix<f64> {
            DMatrix::from_fn(rows, cols, |_, _| self.next())
        }
    }

    /// U·diag(σ)·Vᵀ with U (rows × n) and V (n × n) orthonormal from QR of normals.
    fn with_spectrum(rows: usize, sigma: &[f64], seed: u64) -> DMatrix<f64> {
        let n = sigma.len();
        let mut g = Normals(seed);
        let u = g.matrix(rows, n).qr().q();
        let v = g.matrix(n, n).qr().q();
        u * DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(sigma)) * v.transpose()
    }

    /// n values from 1 down to 1/κ, geometrically spaced.
    fn geometric(n: usize, kappa: f64) -> Vec<f64> {
        (0..n)
            .map(|i| kappa.powf(-(i as f64) / (n - 1) as f64))
            .collect()
    }

    fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .map(|(g, w)| ((g - w) / w).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn identity_has_full_rank_everywhere() {
        for n in [1usize, 7, 10, 16] {
            let m = spectrum_metrics(&DMatrix::identity(n, n)).expect("identity");
            let nf = n as f64;
            assert!(
                close(m.pr, nf, 1e-12) && close(m.pr_eig, nf, 1e-12),
                "{m:?}"
            );
            assert_eq!(m.r90, (0.9 * nf).ceil() as usize);
            assert!(
                close(m.cond, 1.0, 1e-12)
                    && close(m.erank, nf, 1e-12)
                    && close(m.stable_rank, nf, 1e-12)
            );
        }
    }

    #[test]
    fn rank_one_has_pr_one_and_infinite_cond() {
        let m = metrics_from_singular_values(&[0.0, 3.0, 0.0]).expect("rank 1");
        assert_eq!(
            (m.pr, m.pr_eig, m.r90, m.erank, m.stable_rank),
            (1.0, 1.0, 1, 1.0, 1.0)
        );
        assert_eq!(m.cond, f64::INFINITY);
        let json = serde_json::to_string(&m).expect("serialise");
        assert!(json.contains(r#""cond":"inf""#), "{json}");
        let back: SpectrumMetrics = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, m);

        // A rank-1 matrix: σ_2.. are rounding noise, PR is 1 to rounding.
        let outer = DMatrix::from_fn(8, 3, |r, c| (r as f64 + 1.0) * (c as f64 - 0.5));
        let sv = singular_values(&outer).expect("rank-1 matrix");
        assert!(sv[1] <= 1e-12 * sv[0], "{sv:?}");
        assert!(close(
            metrics_from_singular_values(&sv).expect("metrics").pr,
            1.0,
            1e-9
        ));
    }

    #[test]
    fn diagonal_matches_hand_computed_values() {
        // σ = 4,3,2,1: Σσ = 10, Σσ² = 30, Σσ⁴ = 354, cumulative energy 16/30, 25/30, 29/30.
        let want = SpectrumMetrics {
            pr: 100.0 / 30.0,
            pr_eig: 900.0 / 354.0,
            r90: 3,
            cond: 4.0,
            erank: 3.596_115_466_624_321_6, // exp(−Σ p ln p), p = .4 .3 .2 .1
            stable_rank: 30.0 / 16.0,
        };
        let mut m = DMatrix::zeros(6, 4);
        for (i, s) in [2.0, -4.0, 1.0, 3.0].iter().enumerate() {
            m[(i, i)] = *s;
        }
        for (name, got) in [
            (
                "unsorted list",
                metrics_from_singular_values(&[2.0, 4.0, 1.0, 3.0]).expect("valid"),
            ),
            ("6×4 matrix", spectrum_metrics(&m).expect("valid")),
            (
                "4×6 matrix",
                spectrum_metrics(&m.transpose()).expect("valid"),
            ),
        ] {
            assert_eq!(got.r90, want.r90, "{name}");
            for (g, w) in [
                (got.pr, want.pr),
                (got.pr_eig, want.pr_eig),
                (got.cond, want.cond),
                (got.erank, want.erank),
                (got.stable_rank, want.stable_rank),
            ] {
                assert!(close(g, w, 1e-12), "{name}: {got:?}");
            }
        }
        let w = weight_metrics(&[1.0, 2.0, 3.0, 4.0]).expect("valid");
        assert_eq!(w.spectral_norm, 4.0);
        assert!(close(w.log10_fro2, 1.477_121_254_719_662_4, 1e-14)); // log10 30
        assert_eq!(w.alpha, None);
        // σ_i = i^(−1/2)·…: 200 values give a fit, and α sees λ = σ², not σ.
        let sv: Vec<f64> = (1..=200).map(|i| (i as f64).powf(-0.5)).collect();
        let fit = weight_metrics(&sv)
            .expect("valid")
            .alpha
            .expect("200 eigenvalues are enough");
        let lambda: Vec<f64> = sv.iter().map(|s| s * s).collect();
        assert_eq!(Some(fit), fit_power_law(&lambda));
    }

    #[test]
    fn one_by_one() {
        let sv = singular_values(&DMatrix::from_element(1, 1, -3.0)).expect("1×1");
        assert_eq!(sv, vec![3.0]);
        let m = metrics_from_singular_values(&sv).expect("valid");
        assert_eq!(
            (m.pr, m.pr_eig, m.r90, m.cond, m.erank, m.stable_rank),
            (1.0, 1.0, 1, 1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn zero_and_empty_and_invalid_inputs_are_errors() {
        let zero = DMatrix::<f64>::zeros(5, 3);
        assert_eq!(singular_values(&zero), Ok(vec![0.0; 3]));
        assert_eq!(spectrum_metrics(&zero), Err(SpectrumError::ZeroMatrix));
        assert_eq!(
            metrics_from_singular_values(&[0.0, 0.0]),
            Err(SpectrumError::ZeroMatrix)
        );

        assert_eq!(
            singular_values(&DMatrix::zeros(0, 3)),
            Err(SpectrumError::EmptyMatrix)
        );
        assert_eq!(
            metrics_from_singular_values(&[]),
            Err(SpectrumError::EmptyMatrix)
        );
        assert_eq!(
            singular_values_f32(&[], 0, 4),
            Err(SpectrumError::EmptyMatrix)
        );
        assert_eq!(weight_metrics(&[]), Err(SpectrumError::EmptyMatrix));

        assert_eq!(
            metrics_from_singular_values(&[1.0, -0.5]),
            Err(SpectrumError::InvalidSingularValue {
                index: 1,
                value: -0.5
            })
        );
        assert!(matches!(
            metrics_from_singular_values(&[f64::NAN]),
            Err(SpectrumError::InvalidSingularValue { index: 0, .. })
        ));
        assert_eq!(
            singular_values_f32(&[1.0; 5], 2, 3),
            Err(SpectrumError::ShapeMismatch {
                len: 5,
                rows: 2,
                cols: 3,
                expected: 6
            })
        );
    }

    #[test]
    fn non_finite_entries_are_located() {
        let mut m = DMatrix::from_fn(4, 3, |r, c| (r * 3 + c) as f64);
        m[(2, 1)] = f64::NAN;
        assert_eq!(
            singular_values(&m),
            Err(SpectrumError::NonFinite { row: 2, col: 1 })
        );
        assert_eq!(
            right_singular_vectors(&m).map(|_| ()),
            Err(SpectrumError::NonFinite { row: 2, col: 1 })
        );
        let mut data = vec![1.0f32; 12]; // row-major 4×3
        data[2 * 3 + 1] = f32::INFINITY;
        assert_eq!(
            singular_values_f32(&data, 4, 3),
            Err(SpectrumError::NonFinite { row: 2, col: 1 })
        );
    }

    #[test]
    fn f32_input_is_row_major() {
        let data = [3.0f32, 0.0, 0.0, 0.0, 0.0, 2.0]; // [[3,0,0],[0,0,2]]
        let m = matrix_from_row_major_f32(&data, 2, 3).expect("valid");
        assert_eq!(m[(1, 2)], 2.0);
        assert_eq!(singular_values_f32(&data, 2, 3), Ok(vec![3.0, 2.0]));
    }

    #[test]
    fn serde_accepts_numbers_and_inf_only() {
        let finite = r#"{"pr":2.0,"pr_eig":1.5,"r90":2,"cond":3.5,"erank":1.9,"stable_rank":1.2}"#;
        let m: SpectrumMetrics = serde_json::from_str(finite).expect("finite cond");
        assert_eq!(m.cond, 3.5);
        assert!(serde_json::to_string(&m)
            .expect("serialise")
            .contains(r#""cond":3.5"#));
        let nan = finite.replace("3.5", "\"nan\"");
        assert!(serde_json::from_str::<SpectrumMetrics>(&nan).is_err());
    }

    #[test]
    fn mean_over_heads() {
        let a = metrics_from_singular_values(&[4.0, 3.0, 2.0, 1.0]).expect("valid");
        let b = metrics_from_singular_values(&[1.0; 4]).expect("valid");
        let mean = mean_metrics(&[a.clone(), b.clone()]).expect("two heads");
        assert_eq!(mean.r90, 3.5); // (3 + 4) / 2, not rounded
        assert!(close(mean.pr, (a.pr + 4.0) / 2.0, 1e-15));
        assert!(close(mean.cond, 2.5, 1e-15));
        let c = metrics_from_singular_values(&[1.0, 0.0]).expect("valid");
        let with_inf = mean_metrics(&[a, c]).expect("two heads");
        assert_eq!(with_inf.cond, f64::INFINITY);
        assert!(serde_json::to_string(&with_inf)
            .expect("serialise")
            .contains(r#""cond":"inf""#));
        assert_eq!(mean_metrics(&[]), None);
    }

    #[test]
    fn strided_gram_matches_transpose_product() {
        let mut g = Normals(21);
        for (rows, cols) in [(37, 5), (5, 37), (6, 6), (1, 9), (9, 1)] {
            let m = g.matrix(rows, cols);
            let want = if rows >= cols {
                m.transpose() * &m
            } else {
                &m * m.transpose()
            };
            let got = gram_matrix(&m);
            assert_eq!(got.shape(), want.shape(), "{rows}×{cols}");
            assert!((got - &want).amax() <= 1e-13 * want.amax(), "{rows}×{cols}");
        }
    }

    #[test]
    fn extreme_magnitudes_neither_overflow_nor_underflow() {
        // Σσ⁴ of σ ~ 1e200 overflows and of σ ~ 1e-200 underflows if done naively; the
        // Gram matrices of these overflow / underflow too, so the direct SVD must answer.
        let sigma = geometric(6, 10.0);
        let base = with_spectrum(30, &sigma, 31);
        let want = metrics_from_singular_values(&sigma).expect("valid");
        for scale in [1e200, 1e-200] {
            let sv = singular_values(&(&base * scale)).expect("finite input");
            let scaled: Vec<f64> = sigma.iter().map(|s| s * scale).collect();
            assert!(max_rel_err(&sv, &scaled) < 1e-12, "scale {scale:e}: {sv:?}");
            let got = metrics_from_singular_values(&sv).expect("valid");
            assert!(close(got.pr, want.pr, 1e-12) && close(got.pr_eig, want.pr_eig, 1e-12));
            assert!(close(got.cond, 10.0, 1e-12) && got.erank.is_finite());
            let w = weight_metrics(&sv).expect("valid");
            assert!(close(
                w.log10_fro2,
                2.0 * scale.log10() + sigma.iter().map(|s| s * s).sum::<f64>().log10(),
                1e-12
            ));
        }
    }

    #[test]
    fn route_choice() {
        assert_eq!(choose_route(512, 16), SvdRoute::Gram);
        assert_eq!(choose_route(32768, 64), SvdRoute::Gram);
        assert_eq!(choose_route(16, 64), SvdRoute::Gram);
        assert_eq!(choose_route(64, 64), SvdRoute::Direct);
        assert_eq!(choose_route(100, 60), SvdRoute::Direct);
    }

    /// The accuracy claims of the module docs, on 600×24 matrices of known σ.
    #[test]
    fn routes_against_known_spectra() {
        for (seed, kappa) in [(1u64, 1e2), (2, 1e4), (3, 1e6)] {
            let sigma = geometric(24, kappa);
            let m = with_spectrum(600, &sigma, seed);
            let direct = singular_values_with(&m, SvdRoute::Direct).expect("direct");
            let gram = singular_values_with(&m, SvdRoute::Gram).expect("gram");
            let gram_wide =
                singular_values_with(&m.transpose(), SvdRoute::Gram).expect("gram of Mᵀ");
            let auto = singular_values(&m).expect("auto");
            let (e_direct, e_gram, e_wide) = (
                max_rel_err(&direct, &sigma),
                max_rel_err(&gram, &sigma),
                max_rel_err(&gram_wide, &sigma),
            );
            eprintln!(
                "κ = {kappa:e}: direct {e_direct:.1e}, gram {e_gram:.1e}, gram(Mᵀ) {e_wide:.1e}"
            );
            // Direct: relative error on σ_min grows like ε·κ.
            assert!(e_direct < 1e-8, "κ = {kappa:e}: direct error {e_direct:e}");
            if kappa <= 1e2 {
                assert!(
                    e_gram < 1e-11 && e_wide < 1e-11,
                    "κ = {kappa:e}: gram error {e_gram:e}"
                );
                assert_eq!(auto, gram, "well conditioned: the Gram result is kept");
            } else if kappa <= 1e4 {
                assert!(
                    e_gram < 1e-7 && e_wide < 1e-7,
                    "κ = {kappa:e}: gram error {e_gram:e}"
                );
                assert!(max_rel_err(&auto, &sigma) < 1e-6);
            } else {
                // κ = 1e6: the Gram route has lost σ_min (ε·κ² ≈ 2e-4) ...
                assert!(
                    e_gram > 1e-6,
                    "κ = {kappa:e}: expected the Gram route to fail, error {e_gram:e}"
                );
                // ... so the automatic route must have fallen back to the direct SVD.
                assert_eq!(
                    auto, direct,
                    "ill conditioned: must fall back to the direct SVD"
                );
            }
            // The top of the spectrum is exact on every route.
            assert!(close(gram[0], 1.0, 1e-12) && close(direct[0], 1.0, 1e-12));
        }
    }

    #[test]
    fn fallback_threshold_is_on_the_gram_spectrum() {
        // Just above / below λ_min/λ_max = 1e-8 (κ = 1e4): 10^3.9 stays Gram, 10^4.1 falls back.
        let keep = with_spectrum(400, &geometric(12, 10f64.powf(3.9)), 5);
        assert_eq!(
            singular_values(&keep),
            singular_values_with(&keep, SvdRoute::Gram)
        );
        let fall = with_spectrum(400, &geometric(12, 10f64.powf(4.1)), 6);
        assert_eq!(
            singular_values(&fall),
            singular_values_with(&fall, SvdRoute::Direct)
        );
        // Exactly rank deficient: λ_min is rounding noise, so the direct SVD answers.
        let mut sigma = geometric(12, 10.0);
        sigma[11] = 0.0;
        let deficient = with_spectrum(400, &sigma, 7);
        let sv = singular_values(&deficient).expect("valid");
        assert_eq!(
            Ok(sv.clone()),
            singular_values_with(&deficient, SvdRoute::Direct)
        );
        assert!(sv[11] < 1e-13, "{sv:?}");
    }

    /// A Gram formed elsewhere is trusted by the same λ-ratio test as the Gram route, and an
    /// error scale (a centred Gram's uncentred trace) makes that test stricter.
    #[test]
    fn gram_from_elsewhere_is_trusted_like_the_gram_route() {
        let keep = with_spectrum(400, &geometric(12, 10f64.powf(3.9)), 5);
        let gram = keep.transpose() * &keep;
        assert_eq!(
            singular_values_from_gram(gram.clone(), 0.0).expect("valid"),
            Some(singular_values_with(&keep, SvdRoute::Gram).expect("gram"))
        );
        // λ_min ≈ 10^-7.8 λ_max: an error scale 100× λ_max makes it untrustworthy.
        assert_eq!(singular_values_from_gram(gram, 100.0).expect("valid"), None);
        let fall = with_spectrum(400, &geometric(12, 10f64.powf(4.1)), 6);
        assert_eq!(
            singular_values_from_gram(fall.transpose() * &fall, 0.0).expect("valid"),
            None
        );
        assert_eq!(
            singular_values_from_gram(DMatrix::zeros(3, 3), 0.0).expect("valid"),
            None
        );
        let mut nan = DMatrix::identity(2, 2);
        nan[(0, 1)] = f64::NAN;
        assert_eq!(singular_values_from_gram(nan, 0.0).expect("valid"), None);
        assert!(singular_values_from_gram(DMatrix::zeros(0, 0), 0.0).is_err());
    }

    /// Several Grams at once — trusted, refused, non-finite, all zero, of different sizes —
    /// each get what they get alone, in their places.
    #[test]
    fn grams_taken_together_are_each_taken_alone() {
        let keep = with_spectrum(400, &geometric(12, 10f64.powf(3.9)), 5);
        let fall = with_spectrum(400, &geometric(12, 10f64.powf(4.1)), 6);
        let small = with_spectrum(50, &geometric(5, 10.0), 7);
        let mut nan = DMatrix::identity(3, 3);
        nan[(2, 1)] = f64::INFINITY;
        let grams = vec![
            (keep.transpose() * &keep, 0.0),
            (nan, 0.0),
            (keep.transpose() * &keep, 100.0),
            (fall.transpose() * &fall, 0.0),
            (DMatrix::zeros(4, 4), 0.0),
            (small.transpose() * &small, 0.0),
        ];
        let together = singular_values_from_grams(&grams).expect("valid");
        assert_eq!(together.len(), grams.len());
        for (i, ((gram, scale), got)) in grams.iter().zip(&together).enumerate() {
            let alone = singular_values_from_gram(gram.clone(), *scale).expect("valid");
            assert_eq!(got, &alone, "Gram {i}");
        }
        let trusted: Vec<bool> = together.iter().map(Option::is_some).collect();
        assert_eq!(trusted, [true, false, false, false, false, true]);
        let mut with_empty = grams;
        with_empty.push((DMatrix::zeros(0, 0), 0.0));
        assert!(singular_values_from_grams(&with_empty).is_err());
    }

    fn check_right_vectors(m: &DMatrix<f64>, sigma: &[f64], tol: f64) {
        let (sv, v) = right_singular_vectors(m).expect("valid");
        let k = m.nrows().min(m.ncols());
        assert_eq!((v.nrows(), v.ncols(), sv.len()), (m.ncols(), k, k));
        assert!(max_rel_err(&sv, sigma) < tol, "{sv:?}");
        let vtv = v.transpose() * &v;
        assert!(
            (vtv - DMatrix::identity(k, k)).amax() < 1e-10,
            "V not orthonormal"
        );
        // ‖M v_i‖ = σ_i relative to σ_1 (absolute accuracy of a backward-stable SVD).
        for i in 0..k {
            let norm = (m * v.column(i)).norm();
            assert!(
                (norm - sigma[i]).abs() < 1e-10 * sigma[0],
                "column {i}: {norm} vs {}",
                sigma[i]
            );
        }
    }

    #[test]
    fn right_singular_vectors_on_every_route() {
        let sigma = geometric(16, 50.0);
        let tall = with_spectrum(512, &sigma, 11);
        check_right_vectors(&tall, &sigma, 1e-11); // Gram eigenvectors
        check_right_vectors(&with_spectrum(20, &sigma, 12), &sigma, 1e-11); // squarish: direct
        let ill = geometric(16, 1e7);
        check_right_vectors(&with_spectrum(512, &ill, 13), &ill, 1e-8); // fallback to direct
                                                                        // Gram and direct agree on the directions (distinct σ, up to sign).
        let (_, v_gram) = right_singular_vectors(&tall).expect("valid");
        let svd = SVD::new(tall.clone(), false, true);
        let v_t = svd.v_t.expect("computed");
        for i in 0..16 {
            let dot = v_gram.column(i).dot(&v_t.row(i).transpose()).abs();
            assert!((dot - 1.0).abs() < 1e-9, "direction {i}: |cos| = {dot}");
        }
        // Wide: k = rows columns of V.
        let wide = with_spectrum(40, &sigma, 14).transpose();
        check_right_vectors(&wide, &sigma, 1e-11);
    }
}
