//! `rankscope`: the page's numbers from the command line.
//!
//! `rankscope inspect <files or folders…> [--json]` prints the inventory the
//! page shows after a drop: what each file is, its run, training point, dtype,
//! tensors, architecture and status.

mod collapse;
mod compare;
mod inspect;
mod losscurve;
mod probe;
mod spectra;
mod surgery;

use anyhow::{bail, Result};

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
    rankscope residual --reference <logs…> <logs…> [--metric val_loss] [--window 0.1,0.3] [--json]
    rankscope health <logs…> [--rules FILE.json] [--json]
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
               (`--reference A B -- RUNS…` takes all up to `--`); several are averaged
    compare    the plan's comparisons of conditions (A1/A2, A1/B1, C1/C2, A2/B2, or --pair):
               runs grouped by name (A1, A1_seed43, A1-s2, A1/seed3), metadata/log seed or --group;
               effect at the final shared checkpoint, over the trajectory and per layer; Welch and
               exact permutation tests across seeds, else the eval-sequence bootstrap; Wilcoxon
               across (layer, head) units with one seed; Holm; verdicts (METRICS.md)
    collapse   when each run's rank collapses on its activation trajectory: onset (first checkpoint
               ≤ (1 − f)·first value), steepest drop, sudden (≥ s of the total drop in one
               interval) or gradual, and the recovery after the minimum
    health     health rules (built-in RLAN + rank-collapse set, or --rules FILE.json)
               and the steps where each fired

METRICS: pr, pr_eig, r90, cond, erank, stable_rank, spectral_norm, log10_fro2, alpha
";

fn main() -> Result<()> {
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
        Some("compare") => compare::run(&args[1..]),
        Some("collapse") => collapse::run(&args[1..]),
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version") | Some("-V") => {
            println!("rankscope {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
