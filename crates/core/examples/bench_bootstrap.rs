//! Benchmark: Figure 3's bootstrap (K PR per layer with a 95% interval over the eval batch's
//! sequences, 1000 resamples unless asked) by per-sequence Gram matrices (`layer_pr_with_ci`)
//! against the brute force it replaced (`benches/bootstrap_oracle.rs`: every resample's
//! stacked K rows through the tall SVD), on the same collected keys, single thread (wall and
//! the thread's CPU time, which on a shared machine estimates an idle core better); with the
//! `parallel` feature the Gram route is timed again on every core. The intervals of the two
//! routes are compared too.
//!
//! `cargo run -p rankscope-core --example bench_bootstrap [--features parallel] -- [full|stories] [sequences seq_len [n_boot]]`
//! - `full` (default): the synthetic full-size reference checkpoint (22 layers, 4 kv-heads,
//!   d_k 64), 4 × 256 tokens by default.
//! - `stories`: `shared/fixtures/stories260K` (5 layers, 4 kv-heads, d_k 8), 8 × 128 tokens.

#[path = "../benches/weights_common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../benches/cpu_clock.rs"]
#[allow(dead_code)]
mod cpu_clock;
#[path = "../benches/bootstrap_oracle.rs"]
mod oracle;

use cpu_clock::thread_cpu_ms;
use rankscope_core::analysis::importance::{layer_pr_with_ci, LayerPr};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, ByteSource, FileSource};
use std::time::Instant;

fn load<S: ByteSource>(src: &S, config: Option<&serde_json::Value>) -> ModelWeights {
    let header = read_header(src).expect("header");
    let names: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&names, &header.metadata, config) else {
        panic!("not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, src),
        &arch,
        &mut |_| {},
    ))
    .expect("load")
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let which = if args.first().is_some_and(|a| a == "full" || a == "stories") {
        args.remove(0)
    } else {
        "full".into()
    };
    let numbers: Vec<usize> = args.iter().map(|a| a.parse().expect("a number")).collect();
    let (model, default_shape) = if which == "stories" {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/stories260K"
        );
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/config.json")).expect("config"),
        )
        .expect("json");
        (
            load(
                &FileSource::open(format!("{dir}/model.safetensors")).expect("open"),
                Some(&config),
            ),
            (8, 128),
        )
    } else {
        (load(&common::SyntheticCheckpoint::new(), None), (4, 256))
    };
    let (seqs, seq_len, n_boot) = match numbers[..] {
        [b, t, n] => (b, t, n),
        [b, t] => (b, t, 1000),
        _ => (default_shape.0, default_shape.1, 1000),
    };
    let arch = model.arch().clone();
    let vocab = arch.vocab;
    let eval = TokenBatch {
        batch: seqs,
        seq_len,
        ids: (0..seqs * seq_len)
            .map(|i| ((i * 7919 + 104_729) % vocab) as u32)
            .collect(),
    };
    println!(
        "{} ({which}); eval {seqs} × {seq_len} tokens; {n_boot} resamples per layer",
        arch.summary()
    );
    let t = Instant::now();
    let keys = model.collect_keys(&eval, None).expect("keys");
    println!(
        "forward pass collecting K: {:.2?} (once, either way)",
        t.elapsed()
    );

    let run = || {
        layer_pr_with_ci(&keys, arch.n_layers, arch.n_kv_heads, seq_len, n_boot, 0)
            .expect("gram route")
    };
    // (result, wall s, this thread's CPU s) of `f`, run on the calling thread.
    let timed = |f: &dyn Fn() -> Vec<LayerPr>| {
        let (wall, cpu) = (Instant::now(), thread_cpu_ms());
        let out = f();
        let cpu = thread_cpu_ms().zip(cpu).map(|(b, a)| (b - a) / 1e3);
        (out, wall.elapsed().as_secs_f64(), cpu)
    };
    // One thread: a pool of one (its resamples stay on that thread) with the `parallel` feature.
    #[cfg(feature = "parallel")]
    let (gram, gram_wall, gram_cpu) = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(|| timed(&run));
    #[cfg(not(feature = "parallel"))]
    let (gram, gram_wall, gram_cpu) = timed(&run);
    let (brute, brute_wall, brute_cpu) = timed(&|| {
        oracle::layer_pr_with_ci_brute_force(
            &keys,
            arch.n_layers,
            arch.n_kv_heads,
            seq_len,
            n_boot,
            0,
        )
    });
    let worst = gram
        .iter()
        .zip(&brute)
        .flat_map(|(g, b)| {
            [
                (g.pr.value, b.pr.value),
                (g.pr.lo, b.pr.lo),
                (g.pr.hi, b.pr.hi),
            ]
        })
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max);
    let show = |cpu: Option<f64>| cpu.map_or("–".to_owned(), |c| format!("{c:.2} s"));
    println!("1 thread                                         wall   thread CPU");
    println!(
        "brute force (tall SVD per head per resample)  {brute_wall:>7.2} s   {}",
        show(brute_cpu)
    );
    println!(
        "per-sequence Grams                            {gram_wall:>7.2} s   {}",
        show(gram_cpu)
    );
    let ratio = match (brute_cpu, gram_cpu) {
        (Some(b), Some(g)) => format!(
            "{:.1}× (CPU time), {:.1}× (wall)",
            b / g,
            brute_wall / gram_wall
        ),
        _ => format!("{:.1}× (wall)", brute_wall / gram_wall),
    };
    println!("speed-up {ratio}; largest relative difference of the intervals {worst:.1e}");
    #[cfg(feature = "parallel")]
    {
        use cpu_clock::process_cpu_ms;
        let n = rayon::current_num_threads();
        let (cpu, wall) = (process_cpu_ms(), Instant::now());
        let parallel = run();
        let wall = wall.elapsed().as_secs_f64();
        let cpu = process_cpu_ms().zip(cpu).map(|(b, a)| (b - a) / 1e3);
        assert_eq!(parallel, gram, "{n} threads gave other numbers than 1");
        println!(
            "per-sequence Grams, {n} threads: {wall:.2} s wall ({:.2}× one thread's wall), {} CPU in all; identical numbers",
            gram_wall / wall,
            show(cpu)
        );
    }
}
