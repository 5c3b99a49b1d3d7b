//! CPU `matrixmultiply::sgemm` (the core's forward-pass kernel) against the GPU linear kernel
//! on the full-size model's shapes (t = 1024 tokens, d_model = 768): QKV 768→2304, FFN
//! 768→3072 and 3072→768. Weights are uploaded once, outside the GPU timing; each GPU timing
//! covers `reps` queued kernels and one read-back at the end.
//!
//! Then the whole forward pass, CPU (`ModelWeights::forward`) against GPU (`GpuModel::logits`,
//! logits read back), on a generated reference-family model: d_model 768, 12 heads (d_k 64,
//! no GQA), QK-norm, d_ff 3072, 2 layers, vocab 4096, one sequence of `forward_t` tokens.
//!
//!   cargo run --release -p rankscope-gpu --bin gpu_bench [-- reps [forward_t]]

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
// matrixmultiply's gemm takes raw pointers; the SAFETY comment below says why the call is sound.
#[allow(unsafe_code)]
fn main() {
    use std::time::Instant;

    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let forward_t: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
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
    for (name, inp, out) in [
        ("qkv 768→2304", 768, 2304),
        ("ffn up 768→3072", 768, 3072),
        ("ffn down 3072→768", 3072, 768),
    ] {
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
        let max_diff = got
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{name:<18} CPU sgemm {cpu:8.2} GFLOP/s   GPU {gpu_rate:8.2} GFLOP/s   GPU/CPU {:6.3}   (max |GPU−CPU| {max_diff:.1e})",
            gpu_rate / cpu
        );
    }
    forward_pass::compare(&gpu, reps, forward_t);
}

/// The core benchmarks' synthetic reference checkpoint (BF16, bytes made on demand).
#[cfg(not(target_arch = "wasm32"))]
#[path = "../../../core/benches/synthetic_checkpoint.rs"]
#[allow(dead_code)]
mod synthetic_checkpoint;

/// The forward-pass comparison on a generated checkpoint.
#[cfg(not(target_arch = "wasm32"))]
mod forward_pass {
    use std::time::Instant;

    use rankscope_core::analysis::weights::Shards;
    use rankscope_core::formats::safetensors::read_header;
    use rankscope_core::model::arch::{recognise, Recognition};
    use rankscope_core::model::forward::{ModelWeights, NoProbe};
    use rankscope_core::source::block_on;
    use rankscope_gpu::{Gpu, GpuModel};

    use super::synthetic_checkpoint::{ReferenceShape, SyntheticCheckpoint};

    /// Small enough for lavapipe to finish: 2 layers of d_model 768, 12 heads (no GQA).
    const SHAPE: ReferenceShape = ReferenceShape {
        layers: 2,
        d_model: 768,
        heads: 12,
        kv_heads: 12,
        d_k: 64,
        d_ff: 3072,
        vocab: 4096,
    };

    pub fn compare(gpu: &Gpu, reps: usize, t: usize) {
        let file = SyntheticCheckpoint::with_shape(SHAPE);
        let header = read_header(&file).expect("generated header");
        let tensors: Vec<_> = header
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
            panic!("the generated checkpoint is not recognised")
        };
        let model = block_on(ModelWeights::load(
            &Shards::single(&header, &file),
            &arch,
            &mut |_| {},
        ))
        .expect("load");
        let ids: Vec<u32> = (0..t).map(|i| ((i * 7919) % SHAPE.vocab) as u32).collect();
        println!(
            "forward pass: reference family, {} layers, d_model {}, {} heads × d_k {}, d_ff {}, vocab {}, t = {t}, \
             {reps} repetitions",
            SHAPE.layers, SHAPE.d_model, SHAPE.heads, SHAPE.d_k, SHAPE.d_ff, SHAPE.vocab
        );

        let cpu_logits = model
            .forward(&ids, &mut NoProbe, None)
            .expect("CPU forward");
        let start = Instant::now();
        for _ in 0..reps {
            model
                .forward(&ids, &mut NoProbe, None)
                .expect("CPU forward");
        }
        let cpu_s = start.elapsed().as_secs_f64() / reps as f64;

        let upload = Instant::now();
        let gpu_model = GpuModel::upload(gpu, &model).expect("upload");
        let upload_s = upload.elapsed().as_secs_f64();
        // One untimed pass compiles the pipeline state and uploads the RoPE table.
        let gpu_logits = pollster::block_on(gpu_model.logits(&ids)).expect("GPU forward");
        let start = Instant::now();
        for _ in 0..reps {
            pollster::block_on(gpu_model.logits(&ids)).expect("GPU forward");
        }
        let gpu_s = start.elapsed().as_secs_f64() / reps as f64;

        let scale = cpu_logits.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let max_diff = gpu_logits
            .iter()
            .zip(&cpu_logits.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let gflop = SHAPE.forward_flops(t) / 1e9;
        println!(
            "CPU forward {:8.1} ms {:8.2} GFLOP/s   GPU forward {:8.1} ms {:8.2} GFLOP/s   GPU/CPU {:6.3}   \
             (upload {:.1} ms; max |Δlogit| {max_diff:.1e} of max |logit| {scale:.2})",
            cpu_s * 1e3,
            gflop / cpu_s,
            gpu_s * 1e3,
            gflop / gpu_s,
            cpu_s / gpu_s,
            upload_s * 1e3
        );
    }
}
