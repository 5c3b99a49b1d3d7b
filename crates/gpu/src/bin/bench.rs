//! The forward + activation-spectra benchmark of the full-size reference checkpoint on every
//! engine, in one table: native CPU and WebGPU (wgpu's native backend: Vulkan, Metal or DX12)
//! measured here, and wasm CPU from the line `web_bench` printed in the same run of
//! `scripts/bench.sh`, which runs it first and passes it with `--wasm FILE`.
//!
//!   scripts/bench.sh [tokens]            (everything; t = 1024 by default)
//!   cargo run --release -p rankscope-gpu --bin bench -- [--tokens N] [--wasm FILE] [--torch FILE]
//!
//! `--torch FILE` takes the lines `scripts/reference/bench_torch.py` printed (PyTorch on the CPU,
//! one thread, the same model written from the same definition): two rows, one with rankscope's
//! 704 spectra and one with the 88 K spectra the user's RankProbe takes, and the goal's ratio.
//!
//! Every engine computes the same thing (one sequence of t tokens: load, the eval forward pass
//! without the output head, every activation spectrum: K in four variants and Q plain and
//! centred, per head and layer) from the same synthetic BF16 checkpoint, timed by the wall
//! clock. On the GPU, "forward" includes summing each head's Gram matrix and reading them back;
//! "spectra" is the CPU's eigen-solves of them (and the SVDs of any head whose Gram it does not
//! trust). Speed ratios are native time / engine time, so above 1 is faster than native.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[path = "../../../core/benches/forward_common.rs"]
#[allow(dead_code)] // the bench uses its own part
mod forward_common;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use forward_common::{synthetic_checkpoint as shape, ForwardBench};
    use std::time::Instant;

    let mut args = std::env::args().skip(1);
    let (mut tokens, mut wasm_file, mut torch_file) = (
        forward_common::tokens_from(std::env::var("RANKSCOPE_BENCH_TOKENS").ok()),
        None,
        None,
    );
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tokens" => tokens = forward_common::tokens_from(args.next()),
            "--wasm" => wasm_file = args.next(),
            "--torch" => torch_file = args.next(),
            other => {
                eprintln!("bench: unknown argument {other:?} (expected --tokens N, --wasm FILE, --torch FILE)");
                std::process::exit(2);
            }
        }
    }
    let start = Instant::now();
    let now = move || start.elapsed().as_secs_f64() * 1e3;

    let native = forward_common::measure(&now, tokens);
    // Another process's result line for `engine` at this length, from `file`.
    let result_of = |file: &str, engine: &str| match std::fs::read_to_string(file) {
        Ok(text) => text
            .lines()
            .filter_map(ForwardBench::parse)
            .find(|(e, bench)| e == engine && bench.tokens == tokens)
            .map(|(_, bench)| bench)
            .ok_or_else(|| format!("no {engine} result for {tokens} tokens in {file}")),
        Err(e) => Err(format!("{file}: {e}")),
    };
    let wasm = wasm_file.as_deref().map(|file| result_of(file, "wasm"));
    let torch = torch_file.as_deref().map(|file| {
        Ok::<_, String>((
            result_of(file, "pytorch")?,
            result_of(file, "pytorch-rankprobe")?,
        ))
    });
    let gpu = gpu::measure(&now, tokens);

    let params = shape::SyntheticCheckpoint::new().params();
    println!(
        "rankscope bench: full-size reference checkpoint ({} layers, d_model {}, {}/{} heads, d_ff {}, vocab {}, {:.1}M params, BF16), \
         one sequence of {tokens} tokens, {:.1} GFLOP per forward pass (no output head; the last block up to Q and K); wall clock, best of 2",
        shape::LAYERS,
        shape::D_MODEL,
        shape::HEADS,
        shape::KV_HEADS,
        shape::D_FF,
        shape::VOCAB,
        params as f64 / 1e6,
        forward_common::forward_flops(tokens) / 1e9,
    );
    let header = format!(
        "{:<44} {:>9} {:>9} {:>20} {:>10} {:>10} {:>9} {:>9}",
        "engine", "load", "upload", "forward (GFLOP/s)", "spectra", "total", "fwd ×", "total ×"
    );
    println!("{header}\n{}", "-".repeat(header.chars().count()));
    let native_total = native.load_ms + native.forward_ms + native.spectra_ms;
    let row = |name: &str, b: &ForwardBench, upload_ms: Option<f64>| {
        let total = b.load_ms + upload_ms.unwrap_or(0.0) + b.forward_ms + b.spectra_ms;
        println!(
            "{name:<44} {:>6.0} ms {:>9} {:>9.0} ms ({:>6.1}) {:>7.0} ms {:>7.0} ms {:>9.3} {:>9.3}",
            b.load_ms,
            upload_ms.map_or("—".to_string(), |u| format!("{u:.0} ms")),
            b.forward_ms,
            b.forward_gflops(),
            b.spectra_ms,
            total,
            native.forward_ms / b.forward_ms,
            native_total / total,
        );
    };
    row("native CPU (1 thread)", &native, None);
    match &wasm {
        Some(Ok(b)) => row("wasm CPU (Node, simd128, 1 thread)", b, None),
        Some(Err(why)) => println!("wasm CPU: not measured ({why})"),
        None => println!("wasm CPU: not measured (run scripts/bench.sh, which passes --wasm)"),
    }
    match &gpu {
        Ok(g) => row(
            "WebGPU (wgpu, native backend; adapter below)",
            &g.bench,
            Some(g.upload_ms),
        ),
        Err(why) => println!("WebGPU: not measured ({why})"),
    }
    match &torch {
        Some(Ok((all, probe))) => {
            row("PyTorch CPU (1 thread), the same 704 spectra", all, None);
            row("PyTorch CPU (1 thread) + RankProbe (88 K)", probe, None);
        }
        Some(Err(why)) => println!("PyTorch: not measured ({why})"),
        None => println!(
            "PyTorch: not measured (no torch here; scripts/bench.sh adds it when torch imports)"
        ),
    }
    println!();
    println!(
        "yardstick, best single-thread f32 sgemm: native {:.1} GFLOP/s",
        native.sgemm_gflops
    );
    if let Some(Ok(b)) = &wasm {
        println!(
            "                                          wasm   {:.1} GFLOP/s",
            b.sgemm_gflops
        );
    }
    // The same model must give the same numbers everywhere.
    let mut prs = vec![("native", native.mean_pr)];
    if let Some(Ok(b)) = &wasm {
        prs.push(("wasm", b.mean_pr));
    }
    if let Some(Ok((all, probe))) = &torch {
        prs.push(("PyTorch", all.mean_pr));
        prs.push(("RankProbe (f32)", probe.mean_pr));
        let total = |b: &ForwardBench| b.load_ms + b.forward_ms + b.spectra_ms;
        println!(
            "rankscope native (load, forward, 704 spectra) / PyTorch with RankProbe (load, forward, 88 spectra): {:.2} (issue 16's goal: ≤ 0.8)",
            native_total / total(probe)
        );
        println!(
            "PyTorch's own f32 matmul (1024×2048·2048², 1 thread): {:.1} GFLOP/s",
            all.sgemm_gflops
        );
    }
    if let Ok(g) = &gpu {
        prs.push(("WebGPU", g.bench.mean_pr));
        println!("WebGPU adapter: {}", g.adapter);
        println!(
            "WebGPU spectra: {} from the GPU's Gram matrices, {} from their blocks (Gram not trusted)",
            g.routes.from_gram, g.routes.from_block
        );
    }
    let worst = prs
        .iter()
        .map(|(_, pr)| (pr - native.mean_pr).abs() / native.mean_pr)
        .fold(0.0, f64::max);
    let listed: Vec<String> = prs
        .iter()
        .map(|(engine, pr)| format!("{engine} {pr:.6}"))
        .collect();
    println!(
        "mean K PR (same model, same numbers): {} — worst relative difference {worst:.1e}",
        listed.join(", ")
    );
}

/// The WebGPU row: the same load, then the upload, the forward passes and the spectra through
/// the core's `activation_spectra_on` over the uploaded model, as the page's workers run them.
#[cfg(not(target_arch = "wasm32"))]
mod gpu {
    use rankscope_core::analysis::activations::{
        activation_spectra_on, KeyVariant, BLOCK_BUDGET_BYTES,
    };
    use rankscope_gpu::{Gpu, GpuModel, SpectraRoutes};

    use super::forward_common::{self, ForwardBench};

    pub struct GpuBench {
        pub adapter: String,
        pub upload_ms: f64,
        pub bench: ForwardBench,
        pub routes: SpectraRoutes,
    }

    pub fn measure(now_ms: &dyn Fn() -> f64, tokens: usize) -> Result<GpuBench, String> {
        let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
        let (model, eval, load_ms) = forward_common::load_model(now_ms, tokens);
        let t = now_ms();
        let gpu_model = GpuModel::upload(&gpu, &model).map_err(|e| e.to_string())?;
        let upload_ms = now_ms() - t;
        let mut routes = SpectraRoutes::default();
        let (forward_ms, spectra_ms, mean_pr) =
            forward_common::time_activation_spectra(now_ms, &mut |progress| {
                let run = activation_spectra_on(
                    &gpu_model,
                    &eval,
                    None,
                    &KeyVariant::ALL,
                    BLOCK_BUDGET_BYTES,
                    progress,
                    &|| false,
                );
                let (spectra, r) = pollster::block_on(run).map_err(|e| e.to_string())?;
                routes = r;
                Ok(spectra)
            })?;
        let sgemm_gflops = f64::NAN; // not a CPU engine
        Ok(GpuBench {
            adapter: gpu.adapter_summary(),
            upload_ms,
            bench: ForwardBench {
                tokens,
                load_ms,
                forward_ms,
                spectra_ms,
                sgemm_gflops,
                mean_pr,
            },
            routes,
        })
    }
}
