//! `rankscope`: the page's numbers from the command line.
//!
//! `rankscope inspect <files or folders…> [--json]` prints the inventory the
//! page shows after a drop: what each file is, its run, training point, dtype,
//! tensors, architecture and status.
//!
//! Every command takes `--threads N` (default: every core): checkpoints, bootstrap resamples,
//! layers and surgery passes are spread over a rayon pool of that size; the results are the
//! same, in the same order, for any N.

mod collapse;
mod compare;
mod consolidation;
mod curves;
mod inspect;
mod losscurve;
mod probe;
mod spectra;
mod surgery;
mod text;

use anyhow::{bail, Context, Result};
use std::process::ExitCode;
use text::{errln, outln};

const USAGE: &str = "\
rankscope — rank-collapse and loss-curve analysis of training runs

USAGE:
    rankscope inspect <files or folders…> [--json]
    rankscope spectra <checkpoints or folders…> [--json] [--metric M] [--matrix k|q]
    rankscope figure trajectory <paths…> [--svg F] [--png F] [--json] [--metric M]
                     [--layer mean|N] [--matrix k|q] [--x tokens|step]
    rankscope figure waterfall <paths…> [--svg F] [--png F] [--checkpoint final|N]
                     [--layer mean|N] [--head N] [--matrix k|q] [--log-y]
    rankscope figure layers --eval E <checkpoints…> [--svg F] [--png F] [--json] [--boot 1000]
    rankscope surgery --eval E --heldout H <checkpoint> [--fractions 0,0.1,…] [--seeds 5]
                     [--margin 0.25] [--json] [--svg F] [--png F]
    rankscope scatter --eval E <checkpoint> [--permutations 10000] [--json] [--svg F] [--png F]
    rankscope probe --eval <tokens> [--heldout <tokens>] <checkpoints or folders…> [--json]
                    [--variant post_norm|post_rope|raw|centered|all]… [--quiet]
    rankscope residual [--reference <logs…>] <logs…> [--metric val_loss] [--window 0.1,0.3] [--json]
                       [--drift-slope 0.02] [--drift-final 0.005] [--spike-k 5] [--spike-min 0.005]
                       [--spike-window 3] [--negative 0.005] [--non-collapse-rms 0.02] [--window-rms 0.015]
    rankscope health <logs…> [--rules FILE.json] [--json]
    rankscope consolidation <logs…> [--batch-size B] [--n-params D] [--convention auto|per-sample|micro:N]
                       [--noise per-row|warmup[:STEPS]] [--near-one 0.5] [--window 3] [--loss M]
                       [--sharp-drop 0.5] [--plateau-tolerance 0.01] [--svg F] [--png F] [--json]
    rankscope curves <logs…> [--figure loss|residual|consolidation|health|geometry|geometry-ratios|rank|rank-loss]
                       [--metric M] [--x step|tokens|progress|cumlr|reltime|wall] [--smooth 0.9] [--log-y]
                       [--reference RUN]… [--svg F] [--png F] [--csv F] [--json]
    rankscope compare --eval E [--heldout H] <checkpoints or folders…> [--pair X,Y]… [--group NAME=RUN,RUN…]…
                     [--metric pr] [--matrix k|q] [--variant post_norm] [--margin 5%|ABS] [--level 0.95]
                     [--boot 1000] [--json]
    rankscope collapse --eval E <checkpoints or folders…> [--metric pr] [--fraction 0.3] [--sudden 0.5] [--json]

COMMANDS:
    inspect    recognise every file (checkpoints, run logs, token batches,
               configs) and print the inventory; folders are walked recursively
    spectra    singular values and rank metrics of every W_k / W_q head of
               every checkpoint (f64 SVD), γ of the key/query norms
    figure     Figure 1 (metric vs training tokens, one line per run; from
               checkpoints, or from results.json files alone) or Figure 2
               (σ_i/σ_1 waterfall at a checkpoint); `figure layers` is Figure 3
               (K PR per layer, runs side by side, head range and bootstrap CI)
    probe      forward pass on the eval batch: singular values (f64) and rank metrics of
               K per kv-head (after k_norm, before RoPE by default; --variant for
               post_rope, raw, centered) and Q per query head, every layer; with
               --heldout, the mean next-token cross-entropy on the held-out set
    surgery    held-out loss after pruning key dimensions (SVD, γ, random; Figure 4), the area
               under each loss-increase curve and the plan's verdict (γ a reliable proxy / misleads)
    scatter    |γ| vs leverage in the top-r90 subspace of K, Spearman ρ (Figure 5)
    residual   collapse residual of runs against a reference (Early-Align, closed-form S)
               and its patterns; --reference takes one log per use or a comma list
               (`--reference A B -- RUNS…` takes all up to `--`); several are averaged;
               without it the first of the largest group of comparable runs with the
               metric is the reference; every pattern threshold is a flag
    health     health rules (built-in RLAN set by its metric names, rank collapse and
               gradient geometry, or --rules FILE.json): when each first fired, how long
               it stayed, and the action it names
    consolidation
               consolidation ratio C(t) = ‖∇L‖²/(2·D·d): regimes, alerts (sharp drop,
               grokking threshold, stuck, sharp minimum, Kramers escape), α_opt = 2D/λ_max
    curves     any loss-curve figure of the page (loss vs step/tokens/t̂/∫lr with EMA,
               residual, C(t), health timeline, gradient geometry, rank vs loss)
    compare    the plan's comparisons of conditions (A1/A2, A1/B1, C1/C2, A2/B2, or --pair):
               runs grouped by name (A1, A1_seed43, A1-s2, A1/seed3), metadata/log seed or --group;
               effect at the final shared checkpoint, over the trajectory and per layer; Welch and
               exact permutation tests across seeds, else the eval-sequence bootstrap; Wilcoxon
               across (layer, head) units with one seed; Holm; verdicts (METRICS.md)
    collapse   when each run's rank collapses on its activation trajectory: onset (first checkpoint
               ≤ (1 − f)·first value), steepest drop, sudden (≥ s of the total drop in one
               interval) or gradual, and the recovery after the minimum

OPTIONS (every command):
    --threads N    analyse on N threads (default: every core); results do not depend on N

METRICS: pr, pr_eig, r90, cond, erank, stable_rank, spectral_norm, log10_fro2, alpha
";

/// Runs the command; an error is printed (escaped, like all output) with its causes.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

/// Takes `--threads`, then runs the command on a rayon pool of that size.
fn run() -> Result<()> {
    let (threads, args) = take_threads(std::env::args().skip(1).collect())?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        pool = pool.num_threads(n);
    }
    pool.build()
        .context("cannot start the worker threads")?
        .install(|| dispatch(&args))
}

/// Removes `--threads N` (anywhere on the line) from `args`: `None` when not given.
fn take_threads(mut args: Vec<String>) -> Result<(Option<usize>, Vec<String>)> {
    let Some(at) = args.iter().position(|a| a == "--threads") else {
        return Ok((None, args));
    };
    let Some(value) = args.get(at + 1) else {
        bail!("--threads needs a value")
    };
    let n: usize = value
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .with_context(|| format!("--threads takes a count ≥ 1, not `{value}`"))?;
    args.drain(at..at + 2);
    if args.iter().any(|a| a == "--threads") {
        bail!("--threads is given twice");
    }
    Ok((Some(n), args))
}

fn dispatch(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("inspect") => inspect::run(&args[1..]),
        Some("spectra") => spectra::run_spectra(&args[1..]),
        Some("figure") if args.get(1).is_some_and(|a| a == "layers") => {
            surgery::run_layers(&args[2..])
        }
        Some("figure") => spectra::run_figure(&args[1..]),
        Some("probe") => probe::run(&args[1..]),
        Some("surgery") => surgery::run_surgery(&args[1..]),
        Some("scatter") => surgery::run_scatter(&args[1..]),
        Some("residual") => losscurve::run_residual(&args[1..]),
        Some("health") => losscurve::run_health(&args[1..]),
        Some("consolidation") => consolidation::run(&args[1..]),
        Some("curves") => curves::run(&args[1..]),
        Some("compare") => compare::run(&args[1..]),
        Some("collapse") => collapse::run(&args[1..]),
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version") | Some("-V") => {
            outln!("rankscope {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
