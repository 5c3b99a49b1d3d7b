//! `rankscope`: the page's numbers from the command line.
//!
//! `rankscope inspect <files or folders…> [--json]` prints the inventory the
//! page shows after a drop: what each file is, its run, training point, dtype,
//! tensors, architecture and status.

mod inspect;
mod losscurve;
mod probe;
mod spectra;
mod surgery;
mod text;

use anyhow::{bail, Result};
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
                     [--json] [--svg F] [--png F]
    rankscope scatter --eval E <checkpoint> [--permutations 10000] [--json] [--svg F] [--png F]
    rankscope probe --eval <tokens> [--heldout <tokens>] <checkpoints or folders…> [--json]
                    [--variant post_norm|post_rope|raw|centered|all]… [--quiet]
    rankscope residual --reference <logs…> <logs…> [--metric val_loss] [--window 0.1,0.3] [--json]
    rankscope health <logs…> [--rules FILE.json] [--json]

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
    surgery    held-out loss after pruning key dimensions (SVD, γ, random; Figure 4)
    scatter    |γ| vs leverage in the top-r90 subspace of K, Spearman ρ (Figure 5)
    residual   collapse residual of runs against a reference (Early-Align, closed-form S)
               and its patterns; --reference takes one log per use or a comma list
               (`--reference A B -- RUNS…` takes all up to `--`); several are averaged
    health     health rules (built-in RLAN + rank-collapse set, or --rules FILE.json)
               and the steps where each fired

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

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
