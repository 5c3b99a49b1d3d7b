//! The forward pass's f32 matrix product against `matrixmultiply::sgemm`, shape by shape
//! (the forward's linear layers and attention products), alternating in one run on this
//! thread:
//!
//! `cargo run --release -p rankscope-core --example bench_matmul`
//!
//! On an x86-64 CPU with AVX-512 the forward's product is our own (`sgemm_avx512.rs`);
//! elsewhere it is the same `matrixmultiply` call, and the two columns agree. Clock: this
//! thread's CPU time where the platform has it, else wall time.

#[path = "../benches/forward_common.rs"]
#[allow(dead_code)] // each benchmark uses its own part
mod forward_common;

#[path = "../benches/cpu_clock.rs"]
#[allow(dead_code)]
mod cpu_clock;

use forward_common::{sgemm_gflops, Product};

fn main() {
    let (_, now) = cpu_clock::thread_clock();
    let now = &*now;
    println!("C = A·B, GFLOP/s, best of 3 blocks of ≈ 4 GFLOP each");
    println!(
        "{:<40} {:>16} {:>16}",
        "shape", "forward::matmul", "matrixmultiply"
    );
    for (m, k, n, transposed_b, what) in [
        (1024, 512, 2048, true, "Wᵀ, MLP up"),
        (1024, 2048, 512, true, "Wᵀ, MLP down"),
        (1024, 512, 512, true, "Wᵀ, Q/O"),
        (128, 64, 1024, true, "Kᵀ, attention scores"),
        (128, 1024, 64, false, "V, attention output"),
        (512, 512, 512, false, "row-major"),
    ] {
        let calls = (4e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
        let rate = |product| sgemm_gflops(now, (m, k, n), transposed_b, product, (calls, 3));
        let (ours, theirs) = (rate(Product::Forward), rate(Product::Matrixmultiply));
        println!(
            "{:<40} {ours:>16.1} {theirs:>16.1}",
            format!("{m}×{k} · {k}×{n} ({what})")
        );
    }
}
