//! `rankscope collapse`: when each run's rank collapses (onset, steepest drop, sudden or gradual;
//! METRICS.md "Statistics across runs"), timed on the activation trajectory of Figure 1.

use crate::args;
use crate::compare::spectra;
use crate::inspect::inventory_of;
use crate::probe::read_tokens;
use crate::text::{errln, outln};
use anyhow::{bail, Result};
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::collapse::{CollapseRule, PlateauRule, RunPlateaus};
use rankscope_core::analysis::compare::inputs::activation_metric_values;
use rankscope_core::analysis::trajectory::{Matrix, Metric};
use rankscope_core::report::{collapse_section, Part};
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
    let (runs, failures) = spectra(&inv, &real, (&eval_path, &eval), None, variant);
    let values = activation_metric_values(&runs, variant, matrix, metric);
    if !values.metric.rank_like {
        bail!("collapse timing reads a fall of a rank metric (pr, pr_eig, r90, erank, stable_rank); `{}` is not one", metric.key());
    }
    let plateau_rule = PlateauRule::default();
    let runs = collapse_section(&inv, &values, rule, plateau_rule).runs;
    if json {
        let out: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| match &r.timing {
                Part::Computed(t) => {
                    let mut v = serde_json::to_value(t).unwrap_or_default();
                    v["loss_plateaus"] = match &r.plateaus {
                        Part::Computed(p) => serde_json::to_value(p).unwrap_or_default(),
                        Part::NotComputed(why) => serde_json::json!({ "error": why }),
                    };
                    v
                }
                Part::NotComputed(e) => serde_json::json!({ "run": r.run, "error": e }),
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
        for r in &runs {
            match &r.timing {
                Part::Computed(t) => {
                    outln!("{}", t.summary);
                    outln!("  {}", plateaus_text(&r.plateaus));
                }
                Part::NotComputed(e) => outln!("{}: not timed: {e}", r.run),
            }
        }
    }
    for f in &failures {
        errln!("{}: {}", f.path, f.message);
    }
    if runs.iter().all(|r| r.timing.computed().is_none()) {
        bail!("no run could be timed");
    }
    Ok(())
}

fn plateaus_text(plateaus: &Part<RunPlateaus>) -> String {
    match plateaus {
        Part::NotComputed(why) => format!("no loss plateaus: {why}"),
        Part::Computed(p) if p.plateaus.is_empty() => format!("loss plateaus ({}): none", p.log),
        Part::Computed(p) => format!(
            "loss plateaus ({}): {}",
            p.log,
            p.plateaus
                .iter()
                .map(|p| p.describe())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
