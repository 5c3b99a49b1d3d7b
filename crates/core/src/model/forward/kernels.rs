//! The numeric kernels of the forward pass, in f32 on row-major buffers:
//! linear layers and attention products through `matrixmultiply::sgemm`
//! (blocked, SIMD, builds for wasm32), RMSNorm, causal softmax (RoPE: `rope.rs`).
//!
//! Every function writes into a caller's buffer, so a forward pass allocates
//! its workspace once and nothing per token.

use crate::model::arch::{Activation, NormKind};
use crate::model::tensors::WeightValues;

/// A strided view of a row-major-ish matrix: element (i, j) at `i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(super) struct Strides {
    pub rs: usize,
    pub cs: usize,
}

impl Strides {
    /// Row-major with `cols` per row.
    pub fn rows(cols: usize) -> Self {
        Self { rs: cols, cs: 1 }
    }
    /// The transpose of a row-major `[_, cols]` matrix.
    pub fn transposed(cols: usize) -> Self {
        Self { rs: 1, cs: cols }
    }
    /// Number of elements a `rows × cols` view needs (its last offset + 1).
    fn span(self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * self.rs + (cols - 1) * self.cs + 1
        }
    }
}

/// `C (m×n) = A (m×k) · B (k×n) + beta·C`, all f32, through the given strides.
///
/// # Panics
/// If a view reaches past its slice — an internal invariant: every call site
/// sizes its buffers from the shape-checked weights.
// matrixmultiply's gemm takes raw pointers; the SAFETY comment below says why the call is sound.
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    sa: Strides,
    b: &[f32],
    sb: Strides,
    beta: f32,
    c: &mut [f32],
    sc: Strides,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        sa.span(m, k) <= a.len() && sb.span(k, n) <= b.len() && sc.span(m, n) <= c.len(),
        "gemm view outside its buffer ({m}×{k}·{k}×{n})"
    );
    if k == 0 {
        // matrixmultiply scales C by beta then adds nothing; do the same here.
        for i in 0..m {
            for j in 0..n {
                c[i * sc.rs + j * sc.cs] *= beta;
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if sa.cs == 1 && sc.cs == 1 && super::sgemm_avx512::available() {
        super::sgemm_avx512::gemm((m, k, n), a, sa.rs, b, sb, beta, c, sc.rs);
        return;
    }
    // Strides fit in isize: each is at most a span, which fits in a slice.
    let s = |x: usize| x as isize;
    // SAFETY: the assert above keeps every addressed element inside its slice;
    // `c` is a unique borrow, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            s(sa.rs),
            s(sa.cs),
            b.as_ptr(),
            s(sb.rs),
            s(sb.cs),
            beta,
            c.as_mut_ptr(),
            s(sc.rs),
            s(sc.cs),
        );
    }
}

/// `y [t, out] = x [t, in] · Wᵀ` (+ `y` when `accumulate`), W row-major `[out, in]`.
pub(super) fn linear(
    x: &[f32],
    t: usize,
    w: &WeightValues,
    (out, inp): (usize, usize),
    y: &mut [f32],
    accumulate: bool,
) {
    let beta = if accumulate { 1.0 } else { 0.0 };
    let (sx, sw, sy) = (
        Strides::rows(inp),
        Strides::transposed(inp),
        Strides::rows(out),
    );
    #[cfg(target_arch = "x86_64")]
    if let WeightValues::Bf16(bits) = w {
        if super::sgemm_avx512::available() && t > 0 && out > 0 && inp > 0 {
            assert!(
                sx.span(t, inp) <= x.len()
                    && sw.span(inp, out) <= bits.len()
                    && sy.span(t, out) <= y.len(),
                "linear view outside its buffer ({t}×{inp}·{inp}×{out})"
            );
            super::sgemm_avx512::gemm((t, inp, out), x, inp, bits, sw, beta, y, out);
            return;
        }
    }
    // f32 as it is; bf16 widened here where the product cannot widen it as it packs. No
    // matrix is kept in bf16 there ([`keeps_bf16`]), so that serves only a direct caller.
    gemm((t, inp, out), x, sx, &w.to_f32(), sw, beta, y, sy);
}

/// Whether the weights of a bf16 checkpoint are kept in bf16 (half the memory, and a load
/// without conversion) rather than widened to f32 when loaded: where the matrix product
/// widens them as it packs them (x86-64 with AVX-512). Elsewhere `matrixmultiply` reads f32.
pub(super) fn keeps_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::sgemm_avx512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A linear layer: a weight matrix, row-major `[rows (out), cols (in)]`, and its bias
/// `[rows]` where the model has one.
#[derive(Debug, Clone)]
pub(super) struct Matrix {
    /// f32, or a bf16 checkpoint's own values where [`keeps_bf16`]: the products are the same
    /// bit for bit, as widening bf16 is exact.
    pub values: WeightValues,
    pub rows: usize,
    pub cols: usize,
    pub bias: Option<Vec<f32>>,
}

impl Matrix {
    /// `y [t, rows] = x [t, cols] · selfᵀ + bias` (+ `y` when `accumulate`).
    pub fn apply(&self, x: &[f32], t: usize, y: &mut [f32], accumulate: bool) {
        linear(x, t, &self.values, (self.rows, self.cols), y, accumulate);
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.rows).take(t) {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
        }
    }
}

/// A pre-norm or final norm: γ, and β for a LayerNorm that has one.
#[derive(Debug, Clone)]
pub(super) struct Norm {
    pub kind: NormKind,
    pub gamma: Vec<f32>,
    pub beta: Option<Vec<f32>>,
}

impl Norm {
    /// `dst` = each `width`-long row of `src` normalised (RMSNorm: `x / √(mean(x²) + eps) · γ`;
    /// LayerNorm: `(x − mean) / √(var + eps) · γ + β` with the biased variance, as
    /// `torch.nn.LayerNorm`), read and written in one pass.
    pub fn apply_into(&self, src: &[f32], dst: &mut [f32], width: usize, eps: f32) {
        let rows = src.chunks_exact(width).zip(dst.chunks_exact_mut(width));
        match self.kind {
            NormKind::Rms => rows.for_each(|(s, d)| {
                let inv = rms_inverse(s, eps);
                d.iter_mut()
                    .zip(s)
                    .zip(&self.gamma)
                    .for_each(|((d, &v), &g)| *d = v * inv * g);
            }),
            NormKind::Layer => rows.for_each(|(s, d)| {
                let (mean, inv) = mean_and_inverse_deviation(s, eps);
                for (i, (d, &v)) in d.iter_mut().zip(s).enumerate() {
                    *d =
                        (v - mean) * inv * self.gamma[i] + self.beta.as_ref().map_or(0.0, |b| b[i]);
                }
            }),
        }
    }
}

/// A row's mean and `1/√(var + eps)` (biased variance), accumulated in f64.
fn mean_and_inverse_deviation(row: &[f32], eps: f32) -> (f32, f32) {
    let width = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / width;
    let var = row
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / width;
    (mean as f32, 1.0 / (var as f32 + eps).sqrt())
}

/// RMSNorm of each `width`-long row of `x`, in place: `x / √(mean(x²) + eps) · γ`.
/// The mean of squares is accumulated in f64 (the reference's f32 sum is
/// pairwise; either is far inside the tolerances).
pub(super) fn rms_norm_rows(x: &mut [f32], width: usize, gamma: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let inv = rms_inverse(row, eps);
        row.iter_mut()
            .zip(gamma)
            .for_each(|(v, &g)| *v = *v * inv * g);
    }
}

/// `1/√(mean(row²) + eps)`, the mean of squares accumulated in f64 in eight partial sums: one
/// running f64 sum is a chain of dependent adds (four cycles each) that does not vectorise.
fn rms_inverse(row: &[f32], eps: f32) -> f32 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(chunk) {
            *s += f64::from(v) * f64::from(v);
        }
    }
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    let ms = (lanes.iter().sum::<f64>() + rest) / row.len() as f64;
    1.0 / (ms as f32 + eps).sqrt()
}

/// Scratch of [`causal_attention`]: one block of scores for every query head of a kv group,
/// and the group's queries (then outputs) of one block stacked.
pub(super) struct AttentionScratch {
    scores: Vec<f32>,
    /// Each stacked row's sum of softmax numerators.
    sums: Vec<f32>,
    stacked: Vec<f32>,
}

impl AttentionScratch {
    /// For kv groups of `group` query heads over `t` positions of `d_k` values.
    pub fn new(group: usize, t: usize, d_k: usize) -> Self {
        Self {
            scores: vec![0.0; group * ATTENTION_BLOCK * t],
            sums: vec![0.0; group * ATTENTION_BLOCK],
            stacked: vec![0.0; group * ATTENTION_BLOCK * d_k],
        }
    }
}

/// Query rows per block of [`causal_attention`].
const ATTENTION_BLOCK: usize = 64;

/// Causal softmax attention of the `group` query heads that share one kv-head.
///
/// `q` is the group's queries head-major `[group][t][d_k]`, `k` and `v` are `[t, d_k]`
/// row-major (q and k after RoPE); head j's output `[t, d_k]` goes to `out` at column `j·d_k`
/// with row stride `out_rs` (the group's column block of the `[t, n_heads·d_k]` attention
/// output). Rows are processed in blocks of [`ATTENTION_BLOCK`] so that each block only
/// scores the keys it may see (0..end of block): half the work of a full `t × t` product.
/// The group's blocks are stacked into one product with the keys and one with the values:
/// twice the rows per product for two heads per kv-head, and the keys and values packed once
/// for the group (64-row products ran at ~150 GFLOP/s, 128-row ones at ~180). With a sliding
/// `window`, position i sees only keys `i + 1 − window ..= i` (transformers:
/// `kv_idx > q_idx − sliding_window`).
#[allow(clippy::too_many_arguments)]
pub(super) fn causal_attention(
    q: &[f32],
    group: usize,
    k: &[f32],
    v: &[f32],
    (t, d_k): (usize, usize),
    scale: f32,
    window: Option<usize>,
    scratch: &mut AttentionScratch,
    out: &mut [f32],
    out_rs: usize,
) {
    let head = t * d_k;
    let mut start = 0;
    while start < t {
        let end = (start + ATTENTION_BLOCK).min(t);
        let rows = end - start;
        let width = end; // keys 0..end
        let stacked_rows = group * rows;
        let stacked = &mut scratch.stacked[..stacked_rows * d_k];
        for (j, dst) in stacked.chunks_exact_mut(rows * d_k).enumerate() {
            dst.copy_from_slice(&q[j * head + start * d_k..j * head + end * d_k]);
        }
        let s = &mut scratch.scores[..stacked_rows * width];
        // S = Q_block · K[0..end]ᵀ, every head of the group at once
        gemm(
            (stacked_rows, d_k, width),
            stacked,
            Strides::rows(d_k),
            k,
            Strides::transposed(d_k),
            0.0,
            s,
            Strides::rows(width),
        );
        let sums = &mut scratch.sums[..stacked_rows];
        for ((r, row), sum) in s.chunks_exact_mut(width).enumerate().zip(sums.iter_mut()) {
            let visible = start + r % rows + 1;
            let first = window.map_or(0, |w| visible.saturating_sub(w));
            let (before, row) = row.split_at_mut(first);
            before.iter_mut().for_each(|x| *x = 0.0);
            let (seen, masked) = row.split_at_mut(visible - first);
            *sum = softmax_numerators(seen, scale);
            masked.iter_mut().for_each(|x| *x = 0.0);
        }
        // O_block = E · V[0..end] / row sums (E: the numerators), each head's rows to its columns
        gemm(
            (stacked_rows, width, d_k),
            s,
            Strides::rows(width),
            v,
            Strides::rows(d_k),
            0.0,
            stacked,
            Strides::rows(d_k),
        );
        for (i, (row, sum)) in stacked.chunks_exact(d_k).zip(sums.iter()).enumerate() {
            let (j, r) = (i / rows, i % rows);
            let at = (start + r) * out_rs + j * d_k;
            let inv = 1.0 / sum;
            out[at..at + d_k]
                .iter_mut()
                .zip(row)
                .for_each(|(o, &v)| *o = v * inv);
        }
        start = end;
    }
}

/// The numerators of `softmax(x · scale)` of one row of scores, `e^(x·scale − max)`, in
/// place (`scale` > 0), and their sum. The caller divides by it after the product with V:
/// one division per output value instead of a pass over every score.
///
/// The loop is plain arithmetic that LLVM vectorises (SSE2 or simd128 everywhere), and x86-64
/// CPUs with FMA run one of two copies built for AVX2 or AVX-512 with fused multiply-adds (the
/// exponential's polynomial is most of the work): the scalar loop this replaced called libm's
/// `expf` and kept one serial sum, and took a tenth of the forward pass. The copies round
/// differently from the portable loop (within 2 ulp of e^x either way) and alike to each other.
#[allow(unsafe_code)]
pub(super) fn softmax_numerators(x: &mut [f32], scale: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F and FMA, checked above.
            return unsafe { softmax_numerators_avx512(x, scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 and FMA, checked above.
            return unsafe { softmax_numerators_avx2(x, scale) };
        }
    }
    softmax_body::<false>(x, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_numerators_avx2(x: &mut [f32], scale: f32) -> f32 {
    softmax_body::<true>(x, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn softmax_numerators_avx512(x: &mut [f32], scale: f32) -> f32 {
    softmax_body::<true>(x, scale)
}

#[inline(always)]
fn softmax_body<const FUSED: bool>(x: &mut [f32], scale: f32) -> f32 {
    // max(x)·scale = max(x·scale): multiplying by a positive number keeps the order, rounding
    // included, so every shifted score below is ≤ 0.
    // Partial maxima, 64 then 16 at a time, each lane its own (LLVM keeps one running maximum
    // in order otherwise); the maximum is exact, so the order in which it is taken changes
    // nothing. `greater` skips a NaN score as `f32::max` does, in one instruction; with 64
    // lanes (four vectors) the maxima are four independent chains, where one vector of 16
    // lanes waited on each maximum before the next (the softmax took ~25% longer).
    let mut peaks = [f32::NEG_INFINITY; 64];
    let mut chunks = x.chunks_exact(64);
    for chunk in &mut chunks {
        for (p, &v) in peaks.iter_mut().zip(chunk) {
            *p = greater(*p, v);
        }
    }
    let mut lanes = [f32::NEG_INFINITY; 16];
    for quarter in peaks.chunks_exact(16) {
        for (p, &v) in lanes.iter_mut().zip(quarter) {
            *p = greater(*p, v);
        }
    }
    // The last 0..=63 scores by whole vectors too, padded with −∞; then the 16 lanes halved
    // four times: a scalar chain over the tail and the lanes (up to 31 dependent maxima per
    // row) and the tail's exponentials one by one below took ~9 ms of a full-size pass's ~41
    // in the softmax (perf).
    for chunk in chunks.remainder().chunks(16) {
        let mut padded = [f32::NEG_INFINITY; 16];
        padded[..chunk.len()].copy_from_slice(chunk);
        for (p, &v) in lanes.iter_mut().zip(&padded) {
            *p = greater(*p, v);
        }
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        let (low, high) = lanes.split_at_mut(width);
        for (p, &v) in low.iter_mut().zip(high.iter()) {
            *p = greater(*p, v);
        }
    }
    let max = lanes[0] * scale;
    // Sixteen partial sums: one running f32 sum is a chain of dependent adds, and cannot be
    // vectorised without reordering it anyway.
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (v, s) in chunk.iter_mut().zip(&mut lanes) {
            *v = exp_nonpositive::<FUSED>(madd::<FUSED>(*v, scale, -max));
            *s += *v;
        }
    }
    // The last 0..=15 scores' exponentials by one padded vector (the same values as one by
    // one: each lane computes exactly what the scalar code did), summed one by one in order.
    let tail = chunks.into_remainder();
    let mut padded = [f32::NEG_INFINITY; 16];
    padded[..tail.len()].copy_from_slice(tail);
    for v in &mut padded {
        *v = exp_nonpositive::<FUSED>(madd::<FUSED>(*v, scale, -max));
    }
    tail.copy_from_slice(&padded[..tail.len()]);
    let sum = tail.iter().fold(0.0, |sum, &v| sum + v);
    lanes.iter().sum::<f32>() + sum
}

/// `v` where it is greater than `m`, else `m`: the larger of the two when `m` is not NaN (a
/// running maximum from −∞ never is), `m` when `v` is NaN. (`f32::max` is the same there, but
/// LLVM cannot turn its NaN rule into one vector instruction.)
#[inline(always)]
fn greater(m: f32, v: f32) -> f32 {
    if v > m {
        v
    } else {
        m
    }
}

/// `e^x` for x ≤ 0 (a softmax's shifted scores), within 1 ulp where the result is a normal
/// number (worst relative error 7.7e-8 on [−87, 0], the test below); below x = −87 it returns e^−87 ≈ 1.6e−38 rather than a subnormal or 0,
/// which no softmax sum (≥ 1) can tell apart. NaN stays NaN.
///
/// Written out rather than called from libm (scalar, not vectorisable) or `wide` (its SIMD width
/// is fixed when the crate is compiled, so it cannot use AVX2 on a baseline x86-64 build):
/// Cephes' `expf` — x = n·ln 2 + f with |f| ≤ ln2/2, e^f by its degree-7 polynomial, 2^n put
/// straight into the exponent bits — in operations that all have SIMD forms.
#[inline(always)]
fn exp_nonpositive<const FUSED: bool>(x: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    // ln 2 split in two (Cody–Waite), so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = if x < -87.0 { -87.0 } else { x };
    let t = madd::<FUSED>(x, std::f32::consts::LOG2_E, ROUND);
    let n = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32; // round(x·log₂e), in [−126, 0]
    let r = t - ROUND; // the same integer, as a float
                       // Cephes' polynomial for (e^f − 1 − f)/f², highest degree first; its last coefficient,
                       // 5.0000001201e-1, is 0.5 in f32.
    const P: [f32; 6] = [
        1.987_569_2e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let f = madd::<FUSED>(r, -LN2_LO, madd::<FUSED>(r, -LN2_HI, x)); // x − r·LN2_HI − r·LN2_LO
    let p = P[1..].iter().fold(P[0], |p, &c| madd::<FUSED>(p, f, c));
    let e = madd::<FUSED>(p * f, f, f) + 1.0;
    e * f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// `a·b + c`: one rounding (`mul_add`) in the copies built for CPUs with FMA (`FUSED`), two
/// elsewhere — `mul_add` without the instruction is a slow library call (wasm32, baseline
/// x86-64).
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `relu(x)²` in place (the reference MLP).
pub(super) fn relu_squared(x: &mut [f32]) {
    x.iter_mut().for_each(|v| {
        let r = relu(*v);
        *v = r * r;
    });
}

/// `max(x, 0)`, 0 for NaN as `f32::max` gives, by a comparison: in wasm `f32::max` is a call
/// to `fmaxf` per value (wasm's own `f32.max` has another NaN rule), 1.7% of a profiled wasm
/// run over the reference MLP's 2 M hidden values per layer; a comparison is one `f32x4`
/// select there and one `vmaxps` on x86-64.
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// `act(gate) · up` into `gate` (SwiGLU with `Silu`).
pub(super) fn gated(gate: &mut [f32], up: &[f32], act: Activation) {
    gate.iter_mut().zip(up).for_each(|(g, &u)| {
        *g = activate(*g, act) * u;
    });
}

/// `act(x)` in place (a plain MLP's hidden layer).
pub(super) fn activate_all(x: &mut [f32], act: Activation) {
    x.iter_mut().for_each(|v| *v = activate(*v, act));
}

fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Relu => relu(x),
        Activation::ReluSquared => {
            let r = relu(x);
            r * r
        }
        // transformers' NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        Activation::GeluTanh => {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044_715 * x * x * x)).tanh())
        }
        // Exact GELU, 0.5·x·(1 + erf(x/√2)); erf from statrs (f64).
        Activation::Gelu => {
            let x64 = f64::from(x);
            (0.5 * x64 * (1.0 + statrs::function::erf::erf(x64 / std::f64::consts::SQRT_2))) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        (0..m * n)
            .map(|ij| {
                (0..k)
                    .map(|p| a[(ij / n) * k + p] * b[p * n + ij % n])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn linear_matches_a_naive_product() {
        let (t, inp, out) = (5, 7, 3);
        let x: Vec<f32> = (0..t * inp).map(|i| (i as f32 * 0.37).sin()).collect();
        let data: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut wt = vec![0.0; inp * out];
        for o in 0..out {
            for i in 0..inp {
                wt[i * out + o] = data[o * inp + i];
            }
        }
        let w = Matrix {
            values: WeightValues::F32(data),
            rows: out,
            cols: inp,
            bias: None,
        };
        let want = naive(&x, &wt, t, inp, out);
        let mut y = vec![0.0; t * out];
        w.apply(&x, t, &mut y, false);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5);
        }
        w.apply(&x, t, &mut y, true);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - 2.0 * b).abs() < 1e-5);
        }
    }

    /// relu² by a comparison gives what `f32::max(x, 0)²` gave, bit for bit: NaN and −0 to
    /// +0 included.
    #[test]
    fn relu_squared_is_max_zero_squared() {
        let values = [
            f32::NAN,
            -f32::NAN,
            f32::NEG_INFINITY,
            -3.5,
            -f32::MIN_POSITIVE / 2.0,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 2.0,
            1.25,
            3.0e19,
            f32::INFINITY,
        ];
        let mut got = values;
        relu_squared(&mut got);
        for (&x, &g) in values.iter().zip(&got) {
            let r = x.max(0.0);
            assert_eq!(g.to_bits(), (r * r).to_bits(), "relu²({x})");
        }
    }

    #[test]
    fn causal_attention_matches_a_naive_softmax() {
        let (t, d) = (70, 4); // crosses a block boundary
        let q: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.3).sin()).collect();
        let k: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.7).cos()).collect();
        let v: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.13).sin()).collect();
        let mut scratch = AttentionScratch::new(1, t, d);
        let mut out = vec![0.0; t * d];
        causal_attention(&q, 1, &k, &v, (t, d), 0.5, None, &mut scratch, &mut out, d);
        for i in 0..t {
            let s: Vec<f64> = (0..=i)
                .map(|j| {
                    0.5 * (0..d)
                        .map(|c| f64::from(q[i * d + c] * k[j * d + c]))
                        .sum::<f64>()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for c in 0..d {
                let want: f64 = (0..=i)
                    .map(|j| (s[j] - m).exp() / z * f64::from(v[j * d + c]))
                    .sum();
                assert!(
                    (f64::from(out[i * d + c]) - want).abs() < 1e-5,
                    "row {i} col {c}"
                );
            }
        }
    }

    #[test]
    fn a_kv_group_at_once_equals_its_heads_one_by_one() {
        // Two query heads over one kv-head, 70 positions (two blocks), with and without a window.
        let (t, d, group) = (70, 8, 2);
        let q: Vec<f32> = (0..group * t * d)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let k: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.71).cos()).collect();
        let v: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.19).sin()).collect();
        let width = group * d;
        // `heads` query heads from `q`, written from column 0 of `out` (row stride `width`).
        let attend = |q: &[f32], heads: usize, window, out: &mut [f32]| {
            let mut scratch = AttentionScratch::new(heads, t, d);
            causal_attention(
                q,
                heads,
                &k,
                &v,
                (t, d),
                0.3,
                window,
                &mut scratch,
                out,
                width,
            );
        };
        for window in [None, Some(5)] {
            let mut together = vec![0.0; t * width];
            attend(&q, group, window, &mut together);
            let mut apart = vec![0.0; t * width];
            for j in 0..group {
                attend(
                    &q[j * t * d..(j + 1) * t * d],
                    1,
                    window,
                    &mut apart[j * d..],
                );
            }
            let worst = together
                .iter()
                .zip(&apart)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "window {window:?}: {worst}");
        }
    }

    #[test]
    #[allow(unsafe_code)] // calls the CPU-specific copies where the CPU has them
    fn softmax_matches_f64_on_every_path() {
        // Lengths around the 16-lane chunks, spreads wide enough that some terms underflow.
        for len in [1, 2, 7, 8, 9, 16, 17, 63, 64, 65, 1000] {
            for spread in [0.1f32, 10.0, 400.0] {
                let x: Vec<f32> = (0..len)
                    .map(|i| spread * ((i as f32 * 0.77).sin() - 0.3))
                    .collect();
                // The portable body, the dispatching entry, and each copy this CPU can run;
                // the fused copies give the same values as each other, to the bit.
                type Run = fn(&mut [f32], f32) -> f32;
                // (run, whether it is a fused copy)
                let mut runs: Vec<(Run, bool)> =
                    vec![(softmax_body::<false>, false), (softmax_numerators, false)];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY (both): each copy runs only where the CPU has its features.
                    if std::arch::is_x86_feature_detected!("avx2") {
                        runs.push((|x, s| unsafe { softmax_numerators_avx2(x, s) }, true));
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        runs.push((|x, s| unsafe { softmax_numerators_avx512(x, s) }, true));
                    }
                }
                let mut fused: Vec<(Vec<f32>, f32)> = Vec::new();
                for (run, is_fused) in runs {
                    let mut got = x.clone();
                    let sum = run(&mut got, 0.125);
                    if is_fused {
                        fused.push((got.clone(), sum));
                    }
                    got.iter_mut().for_each(|g| *g /= sum);
                    // The shifted scores as the kernel forms them in f32 (that rounding is the
                    // forward pass's, as before); from there on, exact in f64.
                    let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * 0.125;
                    let s: Vec<f64> = x.iter().map(|&v| f64::from(v * 0.125 - m)).collect();
                    let z: f64 = s.iter().map(|v| v.exp()).sum();
                    for (i, (&g, v)) in got.iter().zip(&s).enumerate() {
                        let want = v.exp() / z;
                        assert!(
                            (f64::from(g) - want).abs() <= 1e-6 * want.max(1e-30) + 1e-37,
                            "len {len} spread {spread} [{i}]: {g} vs {want}"
                        );
                    }
                    assert!((got.iter().map(|&g| f64::from(g)).sum::<f64>() - 1.0).abs() < 1e-6);
                }
                assert!(
                    fused.windows(2).all(|w| w[0] == w[1]),
                    "len {len} spread {spread}"
                );
            }
        }
    }

    #[test]
    fn exp_nonpositive_is_within_two_ulp_and_keeps_nan() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            for got in [exp_nonpositive::<false>(x), exp_nonpositive::<true>(x)] {
                worst = worst.max((f64::from(got) - want).abs() / want);
            }
        }
        // 2 ulp of an f32 is at most 2·2⁻²³ ≈ 2.4e-7 relative.
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
        for exp in [
            exp_nonpositive::<false> as fn(f32) -> f32,
            exp_nonpositive::<true>,
        ] {
            assert!(exp(f32::NAN).is_nan());
            assert_eq!(exp(0.0), 1.0);
        }
    }
}
