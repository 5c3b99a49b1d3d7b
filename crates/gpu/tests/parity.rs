//! GPU kernels against a straightforward f64 CPU reference, on whatever adapter wgpu finds
//! (lavapipe in CI: slow, so the shapes are small). A machine without an adapter FAILS
//! these tests: a silently skipped GPU suite would pass while testing nothing.
//!
//! Tolerances, per entry, relative to the scale of the sum that produced it:
//! - products (linear, attention scores): |gpu − ref| ≤ 1e-5 · (Σ_p |a_ip||b_jp| + |y₀|), a
//!   bound f32 summation of k ≤ 129 terms meets with room (worst case k·2⁻²⁴ ≈ 7.7e-6);
//! - compensated Gram: ≤ 1e-12 · Σ_r |x_ri||x_rj| (double-f32 holds ~48 bits per chunk);
//! - plain f32 Gram: ≤ 1e-5 · Σ_r |x_ri||x_rj|.
//!
//! `cargo test -p rankscope-gpu --test parity -- --nocapture` prints the measured errors.

#![cfg(not(target_arch = "wasm32"))]

use rankscope_gpu::GramAccumulation;

mod common;
use common::gpu;

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (2.0 * self.next_f64() - 1.0) as f32)
            .collect()
    }
    fn gaussian(&mut self) -> f64 {
        let u = self.next_f64().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.next_f64()).cos()
    }
}

/// Largest |got − want| / scale over all entries.
fn max_scaled_error(got: &[f32], want: &[f64], scale: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((&g, &w), &s)| (g as f64 - w).abs() / s.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// `y₀ + A Bᵀ` in f64 and its scale `|y₀| + Σ |a||b|`, for B row-major `[n, k]`.
fn reference_nt(
    a: &[f32],
    b: &[f32],
    y0: &[f32],
    (m, k, n): (usize, usize, usize),
) -> (Vec<f64>, Vec<f64>) {
    let mut want = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (y0[i * n + j] as f64, (y0[i * n + j] as f64).abs());
            for p in 0..k {
                let prod = a[i * k + p] as f64 * b[j * k + p] as f64;
                sum += prod;
                abs += prod.abs();
            }
            want[i * n + j] = sum;
            scale[i * n + j] = abs;
        }
    }
    (want, scale)
}

const PRODUCT_TOLERANCE: f64 = 1e-5;
const SHAPES: [(usize, usize, usize); 4] = [(1, 1, 1), (4, 8, 3), (128, 96, 40), (67, 129, 33)];

fn check_linear(accumulate: bool) {
    let gpu = gpu();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + accumulate as u64);
    for (m, k, n) in SHAPES {
        let a = rng.uniform(m * k);
        let b = rng.uniform(n * k);
        let y0 = if accumulate {
            rng.uniform(m * n)
        } else {
            vec![0.0; m * n]
        };
        let x = gpu.upload_tensor(&a, m, k);
        let w = gpu.upload_matrix(&b, n, k);
        // Not accumulating must overwrite, so start from garbage then.
        let start = if accumulate {
            y0.clone()
        } else {
            vec![f32::NAN; m * n]
        };
        let mut y = gpu.upload_tensor(&start, m, n);
        gpu.linear(&x, &w, &mut y, accumulate);
        let got = pollster::block_on(gpu.read(&y)).unwrap();
        let (want, scale) = reference_nt(&a, &b, &y0, (m, k, n));
        let err = max_scaled_error(&got, &want, &scale);
        println!("linear {m}×{k}×{n} accumulate={accumulate}: max error {err:.2e} of Σ|a||b|");
        assert!(
            err <= PRODUCT_TOLERANCE,
            "linear {m}×{k}×{n} accumulate={accumulate}: error {err:.2e}"
        );
    }
}

#[test]
fn linear_matches_f64_reference() {
    check_linear(false);
}

#[test]
fn linear_accumulate_matches_f64_reference() {
    check_linear(true);
}

#[test]
fn matmul_convenience_matches_f64_reference() {
    let gpu = gpu();
    let mut rng = Rng(7);
    let (m, k, n) = (67, 129, 33);
    let (a, b) = (rng.uniform(m * k), rng.uniform(n * k));
    let got = pollster::block_on(gpu.matmul(&a, &b, (m, k, n))).unwrap();
    let (want, scale) = reference_nt(&a, &b, &vec![0.0; m * n], (m, k, n));
    assert!(max_scaled_error(&got, &want, &scale) <= PRODUCT_TOLERANCE);
}

/// Two layers chained on the GPU, read back once: y = (x W1ᵀ) W2ᵀ + y₀.
#[test]
fn chained_linears_stay_on_the_gpu() {
    let gpu = gpu();
    let mut rng = Rng(11);
    let (t, d, f) = (37, 24, 50);
    let (xs, w1, w2, y0) = (
        rng.uniform(t * d),
        rng.uniform(f * d),
        rng.uniform(d * f),
        rng.uniform(t * d),
    );
    let x = gpu.upload_tensor(&xs, t, d);
    let (g1, g2) = (gpu.upload_matrix(&w1, f, d), gpu.upload_matrix(&w2, d, f));
    let mut hidden = gpu.zeros(t, f);
    let mut y = gpu.upload_tensor(&y0, t, d);
    gpu.linear(&x, &g1, &mut hidden, false);
    gpu.linear(&hidden, &g2, &mut y, true);
    let got = pollster::block_on(gpu.read(&y)).unwrap();
    // The reference rounds the hidden layer to f32 as the GPU stores it.
    let (h, _) = reference_nt(&xs, &w1, &vec![0.0; t * f], (t, d, f));
    let h: Vec<f32> = h.iter().map(|&v| v as f32).collect();
    let (want, scale) = reference_nt(&h, &w2, &y0, (t, f, d));
    let err = max_scaled_error(&got, &want, &scale);
    println!("chained linears: max error {err:.2e}");
    // 1e-4: the hidden layer's own f32 error propagates through the second product.
    assert!(err <= 1e-4, "chained linears: error {err:.2e}");
}

fn check_attention(t: usize, d_k: usize) {
    let gpu = gpu();
    let mut rng = Rng(0xa77e_0000 + t as u64);
    let (q, k) = (rng.uniform(t * d_k), rng.uniform(t * d_k));
    let scale = 1.0 / (d_k as f32).sqrt();
    let (qg, kg) = (gpu.upload_tensor(&q, t, d_k), gpu.upload_tensor(&k, t, d_k));
    let mut scores = gpu.upload_tensor(&vec![f32::NAN; t * t], t, t);
    gpu.attention_scores(&qg, &kg, scale, &mut scores);
    let got = pollster::block_on(gpu.read(&scores)).unwrap();
    let (dots, abs) = reference_nt(&q, &k, &vec![0.0; t * t], (t, d_k, t));
    let (mut want, mut bound, mut visible) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..t {
        for j in 0..t {
            let at = i * t + j;
            if j > i {
                assert!(
                    got[at] == f32::NEG_INFINITY,
                    "score ({i}, {j}) above the diagonal is {} not -inf",
                    got[at]
                );
            } else {
                visible.push(got[at]);
                want.push(dots[at] * scale as f64);
                bound.push(abs[at] * scale as f64);
            }
        }
    }
    let err = max_scaled_error(&visible, &want, &bound);
    println!("attention scores t={t} d_k={d_k}: max error {err:.2e} of scale·Σ|q||k|");
    assert!(
        err <= PRODUCT_TOLERANCE,
        "attention t={t} d_k={d_k}: error {err:.2e}"
    );
}

#[test]
fn attention_scores_match_f64_reference() {
    check_attention(70, 4);
    check_attention(1, 4);
    check_attention(33, 64);
}

/// `XᵀX` in f64 and its scale Σ_r |x_ri||x_rj|.
fn reference_gram(x: &[f32], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut gram = vec![0.0; cols * cols];
    let mut scale = vec![0.0; cols * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        for i in 0..cols {
            for j in 0..cols {
                let prod = row[i] as f64 * row[j] as f64;
                gram[i * cols + j] += prod;
                scale[i * cols + j] += prod.abs();
            }
        }
    }
    (gram, scale)
}

fn max_gram_error(got: &[f64], want: &[f64], scale: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((g, w), s)| (g - w).abs() / s.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

fn gram_errors(x: &[f32], rows: usize, cols: usize) -> (f64, f64) {
    let gpu = gpu();
    let tensor = gpu.upload_tensor(x, rows, cols);
    let (want, scale) = reference_gram(x, rows, cols);
    let compensated = pollster::block_on(gpu.gram(&tensor)).unwrap();
    let plain = pollster::block_on(gpu.gram_with(&tensor, GramAccumulation::Plain)).unwrap();
    (
        max_gram_error(&compensated, &want, &scale),
        max_gram_error(&plain, &want, &scale),
    )
}

#[test]
fn gram_matches_f64_reference() {
    let mut rng = Rng(0x6a3);
    // 300 rows: one full chunk of 256 and a partial one; 64 columns: 4×4 tiles.
    for (rows, cols) in [(1, 1), (300, 64), (5, 17)] {
        let x = rng.uniform(rows * cols);
        let (compensated, plain) = gram_errors(&x, rows, cols);
        println!("gram {rows}×{cols}: max error compensated {compensated:.2e}, plain {plain:.2e} of Σ|x||x|");
        assert!(
            compensated <= 1e-12,
            "gram {rows}×{cols}: compensated error {compensated:.2e}"
        );
        assert!(plain <= 1e-5, "gram {rows}×{cols}: plain error {plain:.2e}");
    }
}

/// Per-head Grams and column sums of token-major `[t, heads·cols]` activations, accumulated
/// over several passes on the GPU (what the activation spectra do with each eval sequence's K
/// and Q), against f64 sums of each head's stacked rows. Awkward shapes: 20 columns per head
/// (tiles of 16 straddle nothing, but the second tile is partial), 300 rows per pass (one
/// full and one partial chunk), 3 heads, 3 passes; and 1 row × 1 column.
#[test]
fn head_grams_accumulate_over_passes() {
    let gpu = gpu();
    let mut rng = Rng(0x51ce);
    for (t, heads, cols, passes) in [(300, 3, 20, 3), (1, 1, 1, 2), (40, 2, 64, 1)] {
        // Columns with a large common mean, as keys often have: the centring test's hard case.
        let xs: Vec<Vec<f32>> = (0..passes)
            .map(|_| {
                rng.uniform(t * heads * cols)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| v + (i % 7) as f32)
                    .collect()
            })
            .collect();
        let mut accumulator = gpu.gram_accumulator(t, heads, cols, GramAccumulation::Compensated);
        for x in &xs {
            gpu.accumulate_gram(&gpu.upload_tensor(x, t, heads * cols), &mut accumulator);
        }
        assert_eq!(accumulator.rows(), passes * t);
        let got = pollster::block_on(gpu.read_grams(&[&accumulator]))
            .unwrap()
            .pop()
            .unwrap();
        for (h, head) in got.iter().enumerate() {
            // Head h's rows of every pass, stacked: [passes·t, cols].
            let stacked: Vec<f32> = xs
                .iter()
                .flat_map(|x| {
                    (0..t).flat_map(move |r| x[(r * heads + h) * cols..][..cols].iter().copied())
                })
                .collect();
            let (want, scale) = reference_gram(&stacked, passes * t, cols);
            let gram_error = max_gram_error(&head.gram, &want, &scale);
            let sum_error = (0..cols)
                .map(|c| {
                    let column = (0..passes * t).map(|r| stacked[r * cols + c] as f64);
                    let (sum, abs) = column.fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
                    (head.sums[c] - sum).abs() / abs.max(f64::MIN_POSITIVE)
                })
                .fold(0.0, f64::max);
            println!(
                "head grams {passes}×{t}×({heads}·{cols}), head {h}: max error {gram_error:.2e} of Σ|x||x|, sums {sum_error:.2e} of Σ|x|"
            );
            assert_eq!(head.rows, passes * t);
            assert!(gram_error <= 1e-12, "head {h}: Gram error {gram_error:.2e}");
            assert!(
                sum_error <= 1e-12,
                "head {h}: column-sum error {sum_error:.2e}"
            );
        }
    }
}

/// Modified Gram–Schmidt on the columns of a row-major `[rows, cols]` matrix.
fn orthonormal_columns(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f64> {
    let mut a: Vec<f64> = (0..rows * cols).map(|_| rng.gaussian()).collect();
    for j in 0..cols {
        for p in 0..j {
            let dot: f64 = (0..rows).map(|r| a[r * cols + j] * a[r * cols + p]).sum();
            (0..rows).for_each(|r| a[r * cols + j] -= dot * a[r * cols + p]);
        }
        let norm = (0..rows)
            .map(|r| a[r * cols + j].powi(2))
            .sum::<f64>()
            .sqrt();
        (0..rows).for_each(|r| a[r * cols + j] /= norm);
    }
    a
}

/// Eigenvalues of a symmetric matrix, ascending, by cyclic Jacobi (accurate to high
/// relative precision for the small eigenvalues of a positive definite matrix).
fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..50 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    eig.sort_by(f64::total_cmp);
    eig
}

/// X = U Σ Vᵀ with singular values log-spaced from 1 to 1e-4 (κ = 1e4), so XᵀX has
/// κ = 1e8: plain f32 sums (relative error ~1e-7) cannot resolve its smallest eigenvalue.
#[test]
fn gram_keeps_small_eigenvalues_at_condition_1e4() {
    let (rows, cols) = (512, 64);
    let mut rng = Rng(0x1e4);
    let u = orthonormal_columns(&mut rng, rows, cols);
    let v = orthonormal_columns(&mut rng, cols, cols);
    let sigma: Vec<f64> = (0..cols)
        .map(|i| 10f64.powf(-4.0 * i as f64 / (cols - 1) as f64))
        .collect();
    let x: Vec<f32> = (0..rows * cols)
        .map(|at| {
            let (r, c) = (at / cols, at % cols);
            (0..cols)
                .map(|p| u[r * cols + p] * sigma[p] * v[c * cols + p])
                .sum::<f64>() as f32
        })
        .collect();
    let gpu = gpu();
    let tensor = gpu.upload_tensor(&x, rows, cols);
    // The reference is the Gram of the f32-rounded X, the matrix the GPU sees.
    let (want, scale) = reference_gram(&x, rows, cols);
    let compensated = pollster::block_on(gpu.gram(&tensor)).unwrap();
    let plain = pollster::block_on(gpu.gram_with(&tensor, GramAccumulation::Plain)).unwrap();
    let max_abs = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let entry_error = |g: &[f64]| {
        g.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / max_abs
    };
    let lambda_ref = symmetric_eigenvalues(want.clone(), cols);
    let lambda_min_error = |g: &[f64]| {
        let lambda = symmetric_eigenvalues(g.to_vec(), cols);
        (lambda[0] - lambda_ref[0]).abs() / lambda_ref[0]
    };
    let (comp_entry, plain_entry) = (entry_error(&compensated), entry_error(&plain));
    let (comp_lambda, plain_lambda) = (lambda_min_error(&compensated), lambda_min_error(&plain));
    println!(
        "gram κ=1e4 ({rows}×{cols}): λ_min/λ_max = {:.2e}; max entry error / max|G|: compensated {comp_entry:.2e}, plain {plain_entry:.2e}; \
         λ_min relative error: compensated {comp_lambda:.2e}, plain {plain_lambda:.2e}; scaled entry error compensated {:.2e}",
        lambda_ref[0] / lambda_ref[cols - 1],
        max_gram_error(&compensated, &want, &scale),
    );
    assert!(max_gram_error(&compensated, &want, &scale) <= 1e-12);
    assert!(
        comp_lambda <= 1e-4,
        "compensated Gram lost λ_min: relative error {comp_lambda:.2e}"
    );
}
