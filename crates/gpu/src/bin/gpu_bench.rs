//! CPU `matrixmultiply::sgemm` (the core's forward-pass kernel) against the GPU linear kernel
//! on the full-size model's shapes (t = 1024 tokens, d_model = 768): QKV 768→2304, FFN
//! 768→3072 and 3072→768. Weights are uploaded once, outside the GPU timing; each GPU timing
//! covers `reps` queued kernels and one read-back at the end.
//!
//!   cargo run --release -p rankscope-gpu --bin gpu_bench [-- reps]

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::time::Instant;

    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let gpu = match pollster::block_on(rankscope_gpu::Gpu::new()) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("gpu_bench: {e}");
            std::process::exit(1);
        }
    };
    println!("adapter: {}", gpu.adapter_summary());
    println!("t = 1024 tokens, {reps} repetitions each (GPU: kernels queued back to back, one read-back)");
    let t = 1024;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut fill = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    };
    for (name, inp, out) in [("qkv 768→2304", 768, 2304), ("ffn up 768→3072", 768, 3072), ("ffn down 3072→768", 3072, 768)] {
        let x = fill(t * inp);
        let w = fill(out * inp);
        let flops = 2.0 * (t * inp * out) as f64 * reps as f64;

        let mut y = vec![0.0f32; t * out];
        let start = Instant::now();
        for _ in 0..reps {
            // SAFETY: x is t×inp, w is out×inp read as its transpose, y is t×out; all row-major.
            unsafe {
                matrixmultiply::sgemm(
                    t,
                    inp,
                    out,
                    1.0,
                    x.as_ptr(),
                    inp as isize,
                    1,
                    w.as_ptr(),
                    1,
                    inp as isize,
                    0.0,
                    y.as_mut_ptr(),
                    out as isize,
                    1,
                );
            }
        }
        let cpu = flops / start.elapsed().as_secs_f64() / 1e9;

        let xg = gpu.upload_tensor(&x, t, inp);
        let wg = gpu.upload_matrix(&w, out, inp);
        let mut yg = gpu.zeros(t, out);
        // One untimed run compiles the pipeline state and warms the driver's caches.
        gpu.linear(&xg, &wg, &mut yg, false);
        pollster::block_on(gpu.read(&yg)).expect("read-back");
        let start = Instant::now();
        for _ in 0..reps {
            gpu.linear(&xg, &wg, &mut yg, false);
        }
        let got = pollster::block_on(gpu.read(&yg)).expect("read-back");
        let gpu_rate = flops / start.elapsed().as_secs_f64() / 1e9;
        let max_diff = got.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!(
            "{name:<18} CPU sgemm {cpu:8.2} GFLOP/s   GPU {gpu_rate:8.2} GFLOP/s   GPU/CPU {:6.3}   (max |GPU−CPU| {max_diff:.1e})",
            gpu_rate / cpu
        );
    }
}
