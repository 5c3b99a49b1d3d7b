//! `rankscope collapse`: when each run's rank collapses (onset, steepest drop, sudden or gradual;
//! METRICS.md "Statistics across runs"), timed on the activation trajectory of Figure 1.

use crate::compare::spectra;
use crate::inspect::inventory_of;
use crate::probe::read_tokens;
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::collapse::{collapse_timing, CollapseRule};
use rankscope_core::analysis::compare::inputs::activation_metric_values;
use rankscope_core::analysis::study::{Matrix, Metric};
use std::path::PathBuf;

/// `rankscope collapse --eval E <checkpoints or folders…> [--metric pr] [--fraction 0.3] [--sudden 0.5] [--json]`
pub fn run(args: &[String]) -> Result<()> {
    let (mut paths, mut eval, mut json) = (Vec::new(), None, false);
    let (mut metric, mut matrix, mut variant, mut rule) = (
        Metric::Pr,
        Matrix::K,
        KeyVariant::PostNorm,
        CollapseRule::default(),
    );
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--json" => json = true,
            "--eval" => eval = Some(PathBuf::from(value("--eval")?)),
            "--metric" => {
                let v = value("--metric")?;
                metric = Metric::from_key(&v).with_context(|| format!("unknown metric `{v}`"))?;
            }
            "--matrix" => {
                matrix = match value("--matrix")?.as_str() {
                    "k" => Matrix::K,
                    "q" => Matrix::Q,
                    v => bail!("--matrix is k or q, not `{v}`"),
                }
            }
            "--variant" => {
                let v = value("--variant")?;
                variant =
                    KeyVariant::from_key(&v).with_context(|| format!("unknown variant `{v}`"))?;
            }
            "--fraction" => {
                rule.fraction = value("--fraction")?
                    .parse()
                    .context("--fraction takes a number like 0.3")?
            }
            "--sudden" => {
                rule.sudden_share = value("--sudden")?
                    .parse()
                    .context("--sudden takes a number like 0.5")?
            }
            s if s.starts_with("--") => bail!("unknown option `{s}` for collapse"),
            s => paths.push(PathBuf::from(s)),
        }
    }
    let Some(eval_path) = eval else {
        bail!("collapse needs the eval batch (--eval <tokens file>): it times the activation trajectory")
    };
    if paths.is_empty() {
        bail!("collapse needs the runs' checkpoints or folders");
    }
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
    if json {
        let out: Vec<serde_json::Value> = timings
            .iter()
            .map(|(run, t)| match t {
                Ok(t) => serde_json::to_value(t).unwrap_or_default(),
                Err(e) => serde_json::json!({ "run": run, "error": e.to_string() }),
            })
            .collect();
        let doc = serde_json::json!({ "metric": values.metric, "rule": rule.describe(), "runs": out, "failures": failures });
        crate::text::print_json(&doc)?;
    } else {
        outln!("{}", values.metric.label);
        outln!("rule: {}", rule.describe());
        for (run, t) in &timings {
            match t {
                Ok(t) => outln!("{}", t.summary),
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
