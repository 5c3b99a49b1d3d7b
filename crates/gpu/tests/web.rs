//! The GPU kernels in the browser, through WebGPU (SwiftShader in headless Chromium, flags in
//! ../webdriver.json): the small parity shapes of tests/parity.rs against an f64 reference.
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p rankscope-gpu --target wasm32-unknown-unknown --test web`
//! Like the native tests, a browser without WebGPU FAILS them.
#![cfg(target_arch = "wasm32")]

use rankscope_gpu::Gpu;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Gpu {
    match Gpu::new().await {
        Ok(gpu) => gpu,
        Err(e) => panic!("the GPU tests need WebGPU in the browser and found none: {e}"),
    }
}

fn inputs(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Largest |got − A Bᵀ| relative to Σ |a||b|, for B row-major `[n, k]`.
fn product_error(
    got: &[f32],
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    scale: f32,
) -> f64 {
    let scale = scale as f64;
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a[i * k + p] as f64 * b[j * k + p] as f64;
                sum += prod;
                abs += prod.abs();
            }
            worst = worst.max(
                (got[i * n + j] as f64 - sum * scale).abs() / (abs * scale).max(f64::MIN_POSITIVE),
            );
        }
    }
    worst
}

#[wasm_bindgen_test]
async fn linear_matches_f64_reference() {
    let gpu = gpu().await;
    for (m, k, n) in [(1, 1, 1), (4, 8, 3), (67, 129, 33)] {
        let (a, b) = (inputs(m * k, 1), inputs(n * k, 2));
        let got = gpu.matmul(&a, &b, (m, k, n)).await.unwrap();
        let err = product_error(&got, &a, &b, (m, k, n), 1.0);
        assert!(
            err <= 1e-5,
            "linear {m}×{k}×{n} on {}: error {err:.2e}",
            gpu.adapter_summary()
        );
    }
}

#[wasm_bindgen_test]
async fn attention_scores_match_f64_reference() {
    let gpu = gpu().await;
    let (t, d_k) = (70, 4);
    let (q, k) = (inputs(t * d_k, 3), inputs(t * d_k, 4));
    let scale = 1.0 / (d_k as f32).sqrt();
    let mut scores = gpu.zeros(t, t);
    gpu.attention_scores(
        &gpu.upload_tensor(&q, t, d_k),
        &gpu.upload_tensor(&k, t, d_k),
        scale,
        &mut scores,
    );
    let got = gpu.read(&scores).await.unwrap();
    let mut err = 0.0f64;
    for i in 0..t {
        for j in i + 1..t {
            assert_eq!(
                got[i * t + j],
                f32::NEG_INFINITY,
                "score ({i}, {j}) above the diagonal"
            );
        }
        // Row i against the keys it may see, 0..=i.
        let row = &got[i * t..i * t + i + 1];
        err = err.max(product_error(
            row,
            &q[i * d_k..(i + 1) * d_k],
            &k[..(i + 1) * d_k],
            (1, d_k, i + 1),
            scale,
        ));
    }
    assert!(err <= 1e-5, "attention scores: error {err:.2e}");
}

#[wasm_bindgen_test]
async fn gram_matches_f64_reference() {
    let gpu = gpu().await;
    let (rows, cols) = (300, 17);
    let x = inputs(rows * cols, 5);
    let got = gpu.gram(&gpu.upload_tensor(&x, rows, cols)).await.unwrap();
    let mut worst = 0.0f64;
    for i in 0..cols {
        for j in 0..cols {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for r in 0..rows {
                let prod = x[r * cols + i] as f64 * x[r * cols + j] as f64;
                sum += prod;
                abs += prod.abs();
            }
            worst = worst.max((got[i * cols + j] - sum).abs() / abs);
        }
    }
    // Looser than natively (1e-12): the browser's shader compiler is another one, and this
    // test is about the kernel running at all; the native suite pins the compensation down.
    assert!(
        worst <= 1e-9,
        "gram {rows}×{cols} on {}: error {worst:.2e}",
        gpu.adapter_summary()
    );
}
