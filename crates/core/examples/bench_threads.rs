//! Benchmark: throughput on 1 thread and on every core (`--threads`'s rayon pool) for a folder
//! of checkpoints (default: the 36 fixture checkpoints, `shared/fixtures/runs`) — the weight
//! spectra (`rankscope spectra`), the activation spectra with the held-out loss (`rankscope
//! probe`) and Figure 3's K PR with 1000 bootstrap resamples per layer (`rankscope figure
//! layers`). Each is run at 1 thread and then at N, the results compared for equality; wall
//! time and the process's CPU time (all threads) are printed: on a shared machine the wall
//! time at N threads says what the other sessions left over, the CPU time what the work cost.
//!
//! `cargo run -p rankscope-core --features parallel --example bench_threads [-- FOLDER [N]]`

#[path = "../benches/cpu_clock.rs"]
#[allow(dead_code)]
mod cpu_clock;

use cpu_clock::process_cpu_ms;
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::importance::layer_pr_with_ci;
use rankscope_core::analysis::pipeline::{run_blocking, Plan, RunTokens};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::inventory::{inspect_file, Inventory};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};
use std::path::{Path, PathBuf};
use std::time::Instant;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

/// Every file under `root`, sorted.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(root).expect("read folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
    out.sort();
}

fn tokens(name: &str) -> TokenBatch {
    parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens"))
        .expect("tokens")
}

/// Figure 3's numbers of one single-file checkpoint.
fn layer_prs(path: &Path, eval: &TokenBatch) -> Vec<rankscope_core::analysis::importance::LayerPr> {
    let src = FileSource::open(path).expect("open");
    let header = read_header(&src).expect("header");
    let names: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&names, &header.metadata, None) else {
        panic!("not recognised")
    };
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    let keys = model.collect_keys(eval, None).expect("keys");
    layer_pr_with_ci(&keys, arch.n_layers, arch.n_kv_heads, eval.seq_len, 1000, 0)
        .expect("layer PR")
}

/// Runs `work` on a pool of 1 and of `n` threads; prints checkpoints per second; the results must match.
fn compare<R: PartialEq + Send>(
    what: &str,
    checkpoints: usize,
    n: usize,
    work: &(dyn Fn() -> R + Sync),
) {
    // (result, wall s, CPU s of every thread of the process) on a pool of `threads`.
    let time = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        let (t, cpu) = (Instant::now(), process_cpu_ms());
        let r = pool.install(work);
        let cpu = process_cpu_ms()
            .zip(cpu)
            .map_or(f64::NAN, |(b, a)| (b - a) / 1e3);
        (r, t.elapsed().as_secs_f64(), cpu)
    };
    let (one, t1, c1) = time(1);
    let (many, tn, cn) = time(n);
    assert!(one == many, "{what}: {n} threads gave other results than 1");
    let rate = |t: f64| checkpoints as f64 / t;
    println!(
        "{what:<34} 1 thread {t1:>6.2} s wall, {c1:>6.2} s CPU ({:>5.2} ckpt/s)   {n} threads {tn:>6.2} s wall, \
         {cn:>6.2} s CPU ({:>5.2} ckpt/s)   ×{:.2} wall   identical",
        rate(t1),
        rate(tn),
        t1 / tn
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let folder = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| format!("{FIXTURES}/runs")),
    );
    let n: usize = args.get(1).map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |a| a.parse().expect("N"),
    );
    let mut paths = Vec::new();
    walk(&folder, &mut paths);
    let base = folder.parent().unwrap_or(Path::new(""));
    let files = paths
        .iter()
        .map(|p| {
            let shown = p
                .strip_prefix(base)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            block_on(inspect_file(
                &shown,
                &FileSource::open(p).expect("open"),
                &mut |_| {},
            ))
        })
        .collect();
    let inv = Inventory::link(files);
    let checkpoints: Vec<&Path> = inv
        .runs
        .iter()
        .flat_map(|r| &r.checkpoints)
        .map(|c| paths[c.file].as_path())
        .collect();
    let open = |path: &str| {
        let i = inv.files.iter().position(|f| f.path == path)?;
        FileSource::open(&paths[i]).ok()
    };
    let name = |run: usize| inv.runs[run].name.clone();
    let (eval, heldout) = (
        tokens("eval_tokens.safetensors"),
        tokens("heldout_tokens.safetensors"),
    );
    println!(
        "{} checkpoints in {} runs under {}; 1 vs {n} threads ({} cores seen)",
        checkpoints.len(),
        inv.runs.len(),
        folder.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The CLI's plans: `spectra` (weights alone) and `probe` (its default K variant, the
    // held-out loss).
    let weights = Plan::spectra(&inv, &|_| RunTokens::default(), &[]);
    let tokens = RunTokens {
        eval: Some(("eval_tokens.safetensors".into(), eval.clone())),
        heldout: Some(("heldout_tokens.safetensors".into(), heldout)),
    };
    let probe = Plan::spectra(&inv, &|_| tokens.clone(), &[KeyVariant::default()]);
    compare("weight spectra (spectra)", checkpoints.len(), n, &|| {
        let r = run_blocking(&weights, &open, &|_, _| {});
        (r.weight_runs(&name), r.failures)
    });
    compare(
        "activation spectra + loss (probe)",
        checkpoints.len(),
        n,
        &|| {
            let r = run_blocking(&probe, &open, &|_, _| {});
            (r.activation_runs(&name), r.failures)
        },
    );
    compare(
        "K PR + 1000-resample CI (layers)",
        checkpoints.len(),
        n,
        &|| rankscope_core::parallel::map(&checkpoints, |p| layer_prs(p, &eval)),
    );
}
