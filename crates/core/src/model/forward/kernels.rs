//! The numeric kernels of the forward pass, in f32 on row-major buffers:
//! linear layers and attention products through `matrixmultiply::sgemm`
//! (blocked, SIMD, builds for wasm32), RMSNorm, causal softmax (RoPE: `rope.rs`).
//!
//! Every function writes into a caller's buffer, so a forward pass allocates
//! its workspace once and nothing per token.

use crate::model::arch::{Activation, NormKind};

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
    w: &[f32],
    (out, inp): (usize, usize),
    y: &mut [f32],
    accumulate: bool,
) {
    gemm(
        (t, inp, out),
        x,
        Strides::rows(inp),
        w,
        Strides::transposed(inp),
        if accumulate { 1.0 } else { 0.0 },
        y,
        Strides::rows(out),
    );
}

/// A linear layer: a weight matrix, row-major `[rows (out), cols (in)]`, upcast to f32,
/// and its bias `[rows]` where the model has one.
#[derive(Debug, Clone)]
pub(super) struct Matrix {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    pub bias: Option<Vec<f32>>,
}

impl Matrix {
    /// `y [t, rows] = x [t, cols] · selfᵀ + bias` (+ `y` when `accumulate`).
    pub fn apply(&self, x: &[f32], t: usize, y: &mut [f32], accumulate: bool) {
        linear(x, t, &self.data, (self.rows, self.cols), y, accumulate);
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
    /// Normalises each `width`-long row of `x` in place.
    pub fn apply(&self, x: &mut [f32], width: usize, eps: f32) {
        match self.kind {
            NormKind::Rms => rms_norm_rows(x, width, &self.gamma, eps),
            NormKind::Layer => layer_norm_rows(x, width, &self.gamma, self.beta.as_deref(), eps),
        }
    }
}

/// LayerNorm of each `width`-long row of `x`, in place: `(x − mean) / √(var + eps) · γ + β`,
/// with the biased variance (as `torch.nn.LayerNorm`); mean and variance accumulated in f64.
pub(super) fn layer_norm_rows(
    x: &mut [f32],
    width: usize,
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
) {
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64;
        let var = row
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / width as f64;
        let inv = 1.0 / (var as f32 + eps).sqrt();
        let mean = mean as f32;
        for (i, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) * inv * gamma[i] + beta.map_or(0.0, |b| b[i]);
        }
    }
}

/// RMSNorm of each `width`-long row of `x`, in place: `x / √(mean(x²) + eps) · γ`.
/// The mean of squares is accumulated in f64 (the reference's f32 sum is
/// pairwise; either is far inside the tolerances).
pub(super) fn rms_norm_rows(x: &mut [f32], width: usize, gamma: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let ms = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / width as f64;
        let inv = 1.0 / (ms as f32 + eps).sqrt();
        row.iter_mut()
            .zip(gamma)
            .for_each(|(v, &g)| *v = *v * inv * g);
    }
}

/// Causal softmax attention of one query head over one kv-head.
///
/// `q`, `k`, `v` are `[t, d_k]` row-major (q and k after RoPE); the output
/// `[t, d_k]` goes to `out` with row stride `out_rs` (a column block of the
/// `[t, n_heads·d_k]` attention output). Rows are processed in blocks of
/// `BLOCK` so that each block only scores the keys it may see (0..end of
/// block): half the work of a full `t × t` product. `scores` holds at least
/// `BLOCK · t` values. With a sliding `window`, position i sees only keys
/// `i + 1 − window ..= i` (transformers: `kv_idx > q_idx − sliding_window`).
#[allow(clippy::too_many_arguments)]
pub(super) fn causal_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    d_k: usize,
    scale: f32,
    window: Option<usize>,
    scores: &mut [f32],
    out: &mut [f32],
    out_rs: usize,
) {
    const BLOCK: usize = 64;
    let mut start = 0;
    while start < t {
        let end = (start + BLOCK).min(t);
        let rows = end - start;
        let width = end; // keys 0..end
        let s = &mut scores[..rows * width];
        // S = Q_block · K[0..end]ᵀ
        gemm(
            (rows, d_k, width),
            &q[start * d_k..],
            Strides::rows(d_k),
            k,
            Strides::transposed(d_k),
            0.0,
            s,
            Strides::rows(width),
        );
        for (r, row) in s.chunks_exact_mut(width).enumerate() {
            let visible = start + r + 1;
            let first = window.map_or(0, |w| visible.saturating_sub(w));
            let (before, row) = row.split_at_mut(first);
            before.iter_mut().for_each(|x| *x = 0.0);
            let (seen, masked) = row.split_at_mut(visible - first);
            let max = seen
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| m.max(x * scale));
            let mut sum = 0.0f32;
            for x in seen.iter_mut() {
                *x = (*x * scale - max).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            seen.iter_mut().for_each(|x| *x *= inv);
            masked.iter_mut().for_each(|x| *x = 0.0);
        }
        // O_block = P · V[0..end]
        gemm(
            (rows, width, d_k),
            s,
            Strides::rows(width),
            v,
            Strides::rows(d_k),
            0.0,
            &mut out[start * out_rs..],
            Strides::rows(out_rs),
        );
        start = end;
    }
}

/// `relu(x)²` in place (the reference MLP).
pub(super) fn relu_squared(x: &mut [f32]) {
    x.iter_mut().for_each(|v| {
        let r = v.max(0.0);
        *v = r * r;
    });
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
        Activation::Relu => x.max(0.0),
        Activation::ReluSquared => {
            let r = x.max(0.0);
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
        let w = Matrix {
            data: (0..out * inp).map(|i| (i as f32 * 0.11).cos()).collect(),
            rows: out,
            cols: inp,
            bias: None,
        };
        let mut wt = vec![0.0; inp * out];
        for o in 0..out {
            for i in 0..inp {
                wt[i * out + o] = w.data[o * inp + i];
            }
        }
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

    #[test]
    fn causal_attention_matches_a_naive_softmax() {
        let (t, d) = (70, 4); // crosses a block boundary
        let q: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.3).sin()).collect();
        let k: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.7).cos()).collect();
        let v: Vec<f32> = (0..t * d).map(|i| (i as f32 * 0.13).sin()).collect();
        let mut scores = vec![0.0; 64 * t];
        let mut out = vec![0.0; t * d];
        causal_attention(&q, &k, &v, t, d, 0.5, None, &mut scores, &mut out, d);
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
}
