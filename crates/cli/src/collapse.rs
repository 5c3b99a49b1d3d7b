//! `rankscope collapse`: when each run's rank collapses (onset, steepest drop, sudden or gradual;
//! METRICS.md "Statistics across runs"), timed on the activation trajectory of Figure 1.

use crate::args;
use crate::compare::spectra;
use crate::inspect::inventory_of;
use crate::probe::read_tokens;
use crate::text::{errln, outln};
use anyhow::{bail, Result};
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::collapse::{
    collapse_timing, drop_vs_plateau, loss_plateaus, CollapseRule, CollapseTiming, DropVsPlateau,
    PlateauRule,
};
use rankscope_core::analysis::compare::inputs::activation_metric_values;
use rankscope_core::analysis::study::{Matrix, Metric};
use rankscope_core::inventory::{Content, Inventory};
use std::path::PathBuf;

/// When each run's rank collapses on its activation trajectory
///
/// When each run's rank collapses on its activation trajectory: onset (first checkpoint
/// ≤ (1 − f)·first value), steepest drop, sudden (≥ s of the total drop in one interval) or
/// gradual, and the recovery after the minimum
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The runs' checkpoints or folders
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The eval batch (collapse is timed on the activation trajectory)
    #[arg(long, value_name = "TOKENS")]
    eval: PathBuf,
    /// A rank metric (pr, pr_eig, r90, erank, stable_rank)
    #[arg(long, value_parser = args::metric(), default_value = "pr")]
    metric: Metric,
    #[arg(long, value_parser = args::matrix(), default_value = "k")]
    matrix: Matrix,
    /// Where K is taken
    #[arg(long, value_parser = args::variant(), default_value = "post_norm")]
    variant: KeyVariant,
    /// f: onset when the metric has lost this fraction of its first value
    #[arg(long, default_value_t = CollapseRule::default().fraction)]
    fraction: f64,
    /// s: sudden when one interval holds at least this share of the total drop
    #[arg(long, default_value_t = CollapseRule::default().sudden_share)]
    sudden: f64,
    /// Print the timings as JSON
    #[arg(long)]
    json: bool,
}

/// `rankscope collapse --eval E <checkpoints or folders…> [--metric pr] [--fraction 0.3] [--sudden 0.5] [--json]`
pub fn run(a: Args) -> Result<()> {
    let Args {
        paths,
        eval: eval_path,
        metric,
        matrix,
        variant,
        json,
        ..
    } = a;
    let rule = CollapseRule {
        fraction: a.fraction,
        sudden_share: a.sudden,
    };
    let eval = read_tokens(&eval_path)?;
    let (inv, real) = inventory_of(&paths)?;
    let (runs, failures) = spectra(&inv, &real, &eval, None, variant);
    let values = activation_metric_values(&runs, variant, matrix, metric);
    if !values.metric.rank_like {
        bail!("collapse timing reads a fall of a rank metric (pr, pr_eig, r90, erank, stable_rank); `{}` is not one", metric.key());
    }
    let timings: Vec<_> = values
        .runs
        .iter()
        .map(|r| (r.run.clone(), collapse_timing(r, rule)))
        .collect();
    let plateau_rule = PlateauRule::default();
    if json {
        let out: Vec<serde_json::Value> = timings
            .iter()
            .map(|(run, t)| match t {
                Ok(t) => {
                    let mut v = serde_json::to_value(t).unwrap_or_default();
                    v["loss_plateaus"] = plateaus_json(&inv, t, plateau_rule);
                    v
                }
                Err(e) => serde_json::json!({ "run": run, "error": e.to_string() }),
            })
            .collect();
        let doc = serde_json::json!({
            "metric": values.metric,
            "rule": rule.describe(),
            "plateau_rule": plateau_rule.describe(),
            "runs": out,
            "failures": failures,
        });
        crate::text::print_json(&doc)?;
    } else {
        outln!("{}", values.metric.label);
        outln!("rule: {}", rule.describe());
        outln!("plateaus: {}", plateau_rule.describe());
        for (run, t) in &timings {
            match t {
                Ok(t) => {
                    outln!("{}", t.summary);
                    outln!("  {}", plateaus_text(&inv, t, plateau_rule));
                }
                Err(e) => outln!("{run}: not timed: {e}"),
            }
        }
    }
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    if timings.iter().all(|(_, t)| t.is_err()) {
        bail!("no run could be timed");
    }
    Ok(())
}

/// The training loss `(tokens, loss)` of a run's first log that has one, and the log's path.
fn run_loss(inv: &Inventory, run: &str) -> Option<(String, Vec<(f64, f64)>)> {
    let group = inv.runs.iter().find(|r| r.name == run)?;
    inv.files
        .iter()
        .filter(|f| group.logs.contains(&f.path))
        .find_map(|f| match &f.content {
            Content::RunLog(series) => series
                .iter()
                .map(|s| s.points_vs_tokens("loss"))
                .find(|p| !p.is_empty())
                .map(|p| (f.path.clone(), p)),
            _ => None,
        })
}

/// The steepest rank drop as a token interval.
fn drop_tokens(t: &CollapseTiming) -> Option<(f64, f64)> {
    t.steepest
        .and_then(|d| Some((d.from.tokens? as f64, d.to.tokens? as f64)))
}

/// Loss plateaus of the run's log with where the steepest rank drop falls relative to each.
fn plateaus_json(inv: &Inventory, t: &CollapseTiming, rule: PlateauRule) -> serde_json::Value {
    let Some((log, points)) = run_loss(inv, &t.run) else {
        return serde_json::json!({ "error": "no run log with a `loss` column and token counts for this run" });
    };
    let drop = drop_tokens(t);
    let plateaus: Vec<serde_json::Value> = loss_plateaus(&points, rule)
        .iter()
        .map(|p| serde_json::json!({ "plateau": p, "steepest_drop": drop.map(|(a, b)| drop_vs_plateau(a, b, p)) }))
        .collect();
    serde_json::json!({ "log": log, "plateaus": plateaus })
}

fn plateaus_text(inv: &Inventory, t: &CollapseTiming, rule: PlateauRule) -> String {
    let Some((log, points)) = run_loss(inv, &t.run) else {
        return "no run log with a `loss` column and token counts: no loss plateaus".to_string();
    };
    let plateaus = loss_plateaus(&points, rule);
    if plateaus.is_empty() {
        return format!("loss plateaus ({log}): none");
    }
    let drop = drop_tokens(t);
    let parts: Vec<String> = plateaus
        .iter()
        .map(|p| {
            let when = match drop.map(|(a, b)| drop_vs_plateau(a, b, p)) {
                Some(DropVsPlateau::Overlaps { tokens }) => {
                    format!("the steepest rank drop overlaps it by {tokens:.0} tokens")
                }
                Some(DropVsPlateau::Before { lag }) => {
                    format!("the steepest rank drop ends {lag:.0} tokens before it")
                }
                Some(DropVsPlateau::After { lag }) => {
                    format!("the steepest rank drop starts {lag:.0} tokens after it")
                }
                None => "no rank drop to place".to_string(),
            };
            format!(
                "{:.0}–{:.0} tokens (loss {:.3} → {:.3}): {when}",
                p.start_tokens, p.end_tokens, p.start_loss, p.end_loss
            )
        })
        .collect();
    format!("loss plateaus ({log}): {}", parts.join("; "))
}
