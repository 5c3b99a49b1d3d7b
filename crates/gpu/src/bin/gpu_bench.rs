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
fn main() {
    use std::time::Instant;

    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let forward_t: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(256);
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
    forward_pass::compare(&gpu, reps, forward_t);
}

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

    const LAYERS: usize = 2;
    const D_MODEL: usize = 768;
    const HEADS: usize = 12;
    const D_K: usize = 64;
    const D_FF: usize = 3072;
    const VOCAB: usize = 4096;

    /// An F32 safetensors file of the reference layout (the names and config the core's
    /// `recognise` knows), values uniform in ±0.05 from a xorshift, norms' γ = 1.
    fn checkpoint() -> Vec<u8> {
        let qkvo = 4 * HEADS * D_K;
        let mut tensors: Vec<(String, Vec<usize>)> = vec![("token_embedding.weight".into(), vec![VOCAB, D_MODEL])];
        for l in 0..LAYERS {
            let p = format!("transformer_blocks.{l}");
            tensors.push((format!("{p}.attention.qkvo_proj"), vec![qkvo, D_MODEL]));
            tensors.push((format!("{p}.attention.q_norm.weight"), vec![D_K]));
            tensors.push((format!("{p}.attention.k_norm.weight"), vec![D_K]));
            tensors.push((format!("{p}.feed_forward.up_proj.weight"), vec![D_FF, D_MODEL]));
            tensors.push((format!("{p}.feed_forward.down_proj.weight"), vec![D_MODEL, D_FF]));
            tensors.push((format!("{p}.norm1.weight"), vec![D_MODEL]));
            tensors.push((format!("{p}.norm2.weight"), vec![D_MODEL]));
        }
        tensors.push(("norm.weight".into(), vec![D_MODEL]));
        let config = format!(
            r#"{{\"vocab_size\": {VOCAB}, \"d_model\": {D_MODEL}, \"n_heads\": {HEADS}, \"n_kv_heads\": {HEADS}, \"n_layers\": {LAYERS}, \"d_ff\": {D_FF}, \"use_qk_norm\": true}}"#
        );
        let mut json = format!(r#"{{"__metadata__":{{"run":"gpu_bench","config":"{config}"}}"#);
        let mut data: Vec<u8> = Vec::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for (name, shape) in &tensors {
            let n: usize = shape.iter().product();
            let start = data.len();
            let is_norm = shape.len() == 1;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let v = if is_norm { 1.0 } else { ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1 };
                data.extend_from_slice(&v.to_le_bytes());
            }
            json.push_str(&format!(
                r#","{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{start},{}]}}"#,
                data.len()
            ));
        }
        json.push('}');
        while json.len() % 8 != 0 {
            json.push(' ');
        }
        let mut file = (json.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(json.as_bytes());
        file.extend_from_slice(&data);
        file
    }

    /// Multiply-adds ×2 of one pass of `t` tokens: projections, attention (causal: t(t+1)/2
    /// scores per head, each a d_k dot product, and as many for P·V), MLP, output head.
    fn flops(t: usize) -> f64 {
        let (t, d, width) = (t as f64, D_MODEL as f64, (HEADS * D_K) as f64);
        let per_layer = 2.0 * t * (4.0 * d * width + 2.0 * d * D_FF as f64) + 2.0 * 2.0 * width * t * (t + 1.0) / 2.0;
        LAYERS as f64 * per_layer + 2.0 * t * d * VOCAB as f64
    }

    pub fn compare(gpu: &Gpu, reps: usize, t: usize) {
        let file = checkpoint();
        let header = read_header(&file).expect("generated header");
        let tensors: Vec<_> = header.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
            panic!("the generated checkpoint is not recognised")
        };
        let model = block_on(ModelWeights::load(&Shards::single(&header, &file), &arch, &mut |_| {})).expect("load");
        let ids: Vec<u32> = (0..t).map(|i| ((i * 7919) % VOCAB) as u32).collect();
        println!(
            "forward pass: reference family, {LAYERS} layers, d_model {D_MODEL}, {HEADS} heads × d_k {D_K}, \
             d_ff {D_FF}, vocab {VOCAB}, t = {t}, {reps} repetitions"
        );

        let cpu_logits = model.forward(&ids, &mut NoProbe, None).expect("CPU forward");
        let start = Instant::now();
        for _ in 0..reps {
            model.forward(&ids, &mut NoProbe, None).expect("CPU forward");
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
        let max_diff = gpu_logits.iter().zip(&cpu_logits.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let gflop = flops(t) / 1e9;
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
