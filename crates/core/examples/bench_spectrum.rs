//! Timing of the singular-value routes (plain `Instant`, no harness).
//!
//! `cargo run --release -p rankscope-core --example bench_spectrum`
//!
//! Cases: a 32768×64 key-like matrix (Gram route vs direct SVD, ratio from the
//! same run), then 512×2048 and 2048×512 by the direct SVD. Each time is the
//! best of a few repetitions.

use std::time::{Duration, Instant};

use nalgebra::DMatrix;
use rankscope_core::analysis::spectrum::{singular_values, singular_values_with, SvdRoute};

/// Deterministic uniforms in [−1, 1) from a 64-bit LCG.
fn random_matrix(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut state = seed;
    DMatrix::from_fn(rows, cols, |_, _| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    })
}

/// Best wall time of `reps` runs, and the last result.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        out = Some(value);
    }
    (best, out.expect("reps > 0"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let tall = random_matrix(32768, 64, 1);
    let (t_gram, gram) = time(5, || {
        singular_values_with(&tall, SvdRoute::Gram).expect("finite input")
    });
    let (t_auto, auto) = time(5, || singular_values(&tall).expect("finite input"));
    let (t_direct, direct) = time(2, || {
        singular_values_with(&tall, SvdRoute::Direct).expect("finite input")
    });
    // For comparison: the Gram matrix as `transpose()` + `*` (copy, then gemm).
    let (t_copy_gemm, _) = time(5, || tall.transpose() * &tall);
    let max_rel = gram
        .iter()
        .zip(&direct)
        .map(|(g, d)| ((g - d) / d).abs())
        .fold(0.0, f64::max);
    assert_eq!(
        auto, gram,
        "a random 32768×64 matrix is well conditioned: auto takes the Gram route"
    );
    println!("32768×64  gram   {:9.2} ms", ms(t_gram));
    println!(
        "32768×64    (MᵀM alone as transpose() + gemm: {:.2} ms; strided gemm + eigen is the route)",
        ms(t_copy_gemm)
    );
    println!("32768×64  auto   {:9.2} ms (Gram route kept)", ms(t_auto));
    println!("32768×64  direct {:9.2} ms", ms(t_direct));
    println!(
        "32768×64  gram/direct time ratio {:.4}  (max rel σ difference {max_rel:.1e})",
        t_gram.as_secs_f64() / t_direct.as_secs_f64()
    );

    for (rows, cols) in [(512, 2048), (2048, 512)] {
        let m = random_matrix(rows, cols, 2);
        let (t, sv) = time(2, || {
            singular_values_with(&m, SvdRoute::Direct).expect("finite input")
        });
        println!(
            "{rows}×{cols} direct {:9.2} ms  (σ_1 {:.3}, {} values)",
            ms(t),
            sv[0],
            sv.len()
        );
    }
}
