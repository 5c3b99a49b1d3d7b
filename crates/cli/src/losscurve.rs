//! `rankscope residual` and `rankscope health`: the loss-curve diagnostics of
//! run logs (collapse residual against a reference, health rules), and the
//! helpers the other log commands share (reading logs, writing figures).

use crate::text::outln;
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::losscurve::figures::{default_reference, LogRun};
use rankscope_core::analysis::losscurve::health::{builtin_rules, evaluate, HealthReport, Rule};
use rankscope_core::analysis::losscurve::residual::{
    annotate_timescales, collapse_residual, progress_of, timescale, Reference, Residual,
    ResidualConfig, ResidualThresholds, RunTimescale,
};
use rankscope_core::formats::logs::{self, Series};
use std::path::Path;

/// Every run of every log file as a [`LogRun`] (colour = its place).
pub(crate) fn read_log_runs(paths: &[String]) -> Result<Vec<LogRun>> {
    let mut out: Vec<LogRun> = Vec::new();
    for path in paths {
        for (mut name, series) in read_runs(path)? {
            if out.iter().any(|r| r.name == name) {
                name = format!("{name} ({path})");
            }
            out.push(LogRun {
                name,
                color: out.len(),
                source: path.clone(),
                series,
            });
        }
    }
    Ok(out)
}

/// The runs of one log file, each with a display name.
pub(crate) fn read_runs(path: &str) -> Result<Vec<(String, Series)>> {
    let bytes = std::fs::read(path).with_context(|| format!("{path}: cannot read"))?;
    let all = logs::parse(path, &bytes).with_context(|| format!("{path}: not a run log"))?;
    let stem = Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(path)
        .to_string();
    let several = all.len() > 1;
    Ok(all
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            // A JSONL header's `run` names a single-run file (runs/A1/metrics.jsonl is "A1").
            let header_run = s
                .constants
                .get("run")
                .and_then(|v| v.as_str())
                .map(String::from);
            let name = match s.run.as_ref().or(header_run.as_ref()) {
                Some(r) if several => format!("{stem}/{r}"),
                Some(r) => r.clone(),
                None if several => format!("{stem}#{}", i + 1),
                None => stem.clone(),
            };
            (name, s)
        })
        .collect())
}

#[derive(serde::Serialize)]
struct RunResidual {
    file: String,
    run: String,
    timescale: RunTimescale,
    #[serde(flatten)]
    residual: Residual,
}

#[derive(serde::Serialize)]
struct RunError {
    file: String,
    error: String,
}

/// Collapse residual of runs against a reference, and its patterns
///
/// Collapse residual of runs against a reference (Early-Align, closed-form S) and its patterns;
/// without --reference the first of the largest group of comparable runs with the metric is the
/// reference; every pattern threshold is a flag
#[derive(clap::Args, Debug)]
pub struct ResidualArgs {
    /// Run logs
    #[arg(value_name = "LOG")]
    pub runs: Vec<String>,
    /// Reference log(s): one per use or a comma list; `--reference A B -- RUNS…` takes every log
    /// up to `--`; several are averaged on a common t̂ grid
    #[arg(long, value_name = "LOG", value_delimiter = ',')]
    pub reference: Vec<String>,
    /// The metric compared
    #[arg(long, default_value = "val_loss")]
    metric: String,
    /// The alignment window on t̂, START,END [default: 0.1,0.3]
    #[arg(long, value_name = "START,END", value_parser = window)]
    window: Option<(f64, f64)>,
    #[command(flatten)]
    thresholds: ThresholdArgs,
    /// Print the reference and every run's residual as JSON
    #[arg(long)]
    pub json: bool,
}

/// The residual's pattern thresholds (defaults: the core's).
#[derive(clap::Args, Debug)]
struct ThresholdArgs {
    /// Drift: slope of the residual over t̂ above this
    #[arg(long, default_value_t = ResidualThresholds::default().drift_slope)]
    drift_slope: f64,
    /// Drift: final residual above this
    #[arg(long, default_value_t = ResidualThresholds::default().drift_final)]
    drift_final: f64,
    /// Spike: a jump of k robust σ …
    #[arg(long, default_value_t = ResidualThresholds::default().spike_k)]
    spike_k: f64,
    /// … and at least this much
    #[arg(long, default_value_t = ResidualThresholds::default().spike_min)]
    spike_min: f64,
    /// Spike: half-window in points
    #[arg(long, default_value_t = ResidualThresholds::default().spike_half_window)]
    spike_window: usize,
    /// Negative residual: below minus this
    #[arg(long, default_value_t = ResidualThresholds::default().negative)]
    negative: f64,
    /// Non-collapse: RMS residual above this
    #[arg(long, default_value_t = ResidualThresholds::default().non_collapse_rms)]
    non_collapse_rms: f64,
    /// Non-collapse: RMS on the alignment window above this
    #[arg(long, default_value_t = ResidualThresholds::default().window_rms)]
    window_rms: f64,
}

impl From<&ThresholdArgs> for ResidualThresholds {
    fn from(t: &ThresholdArgs) -> Self {
        ResidualThresholds {
            drift_slope: t.drift_slope,
            drift_final: t.drift_final,
            spike_k: t.spike_k,
            spike_min: t.spike_min,
            spike_half_window: t.spike_window,
            negative: t.negative,
            non_collapse_rms: t.non_collapse_rms,
            window_rms: t.window_rms,
        }
    }
}

/// `--window START,END`.
fn window(v: &str) -> Result<(f64, f64), String> {
    let (a, b) = v
        .split_once(',')
        .ok_or_else(|| format!("takes START,END, not `{v}`"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{x}` is not a number"))
    };
    Ok((num(a)?, num(b)?))
}

/// `rankscope residual [--reference REF[,REF…]] <logs…> [--metric M] [--window A,B] [threshold flags] [--json]`.
///
/// Several references are averaged on a common t̂ grid. Without `--reference` the reference is
/// chosen among the given runs that have the metric ([`default_reference`]: the first of the
/// largest group of comparable runs) and the others are compared with it.
pub fn run_residual(a: ResidualArgs) -> Result<()> {
    let mut refs: Vec<String> = a
        .reference
        .iter()
        .filter(|r| !r.is_empty())
        .cloned()
        .collect();
    let mut runs = a.runs.clone();
    let metric = a.metric.clone();
    let mut config = ResidualConfig {
        thresholds: (&a.thresholds).into(),
        ..ResidualConfig::default()
    };
    if let Some(w) = a.window {
        config.window = w;
    }
    let json = a.json;
    // Without --reference: the default among the given runs; that run's file is the reference.
    let mut chosen: Option<String> = None;
    if refs.is_empty() {
        let all = read_log_runs(&runs)?;
        let name = default_reference(&all, &metric).with_context(|| {
            format!("none of the logs has `{metric}` on progress t̂: no reference")
        })?;
        let r = all
            .iter()
            .find(|r| r.name == name)
            .expect("the default is one of the runs");
        refs.push(r.source.clone());
        runs.retain(|p| *p != r.source);
        chosen = Some(name);
    }
    if runs.is_empty() {
        bail!("residual needs at least one run log besides the reference (give more logs, or the reference with --reference)");
    }

    let mut ref_curves = Vec::new();
    let mut ref_scale: Option<RunTimescale> = None;
    for path in &refs {
        for (name, s) in read_runs(path)? {
            let curve =
                progress_of(&s, &metric).with_context(|| format!("reference {path} ({name})"))?;
            ref_curves.push(curve.points);
            ref_scale.get_or_insert_with(|| timescale(&s));
        }
    }
    let reference = Reference::from_runs(&ref_curves).context("reference curve")?;
    let ref_scale = ref_scale.unwrap_or_default();

    let mut results = Vec::new();
    let mut errors = Vec::new();
    for path in &runs {
        let runs_of_file = match read_runs(path) {
            Ok(r) => r,
            Err(e) => {
                errors.push(RunError {
                    file: path.clone(),
                    error: format!("{e:#}"),
                });
                continue;
            }
        };
        for (name, s) in runs_of_file {
            match progress_of(&s, &metric)
                .and_then(|c| collapse_residual(&reference, &c.points, &config))
            {
                Ok(mut residual) => {
                    let scale = timescale(&s);
                    annotate_timescales(&mut residual, &scale, &ref_scale);
                    results.push(RunResidual {
                        file: path.clone(),
                        run: name,
                        timescale: scale,
                        residual,
                    })
                }
                Err(e) => errors.push(RunError {
                    file: path.clone(),
                    error: format!("{name}: {e}"),
                }),
            }
        }
    }

    if json {
        let out = serde_json::json!({
            "metric": metric,
            "window": [config.window.0, config.window.1],
            "thresholds": config.thresholds,
            "reference": {
                "files": refs,
                "chosen": chosen,
                "timescale": ref_scale,
                "n_runs": reference.n_runs,
                "final_raw": reference.final_raw,
                "points": reference.t.iter().zip(&reference.value).map(|(t, v)| [*t, *v]).collect::<Vec<_>>(),
            },
            "runs": results,
            "errors": errors,
        });
        crate::text::print_json(&out)?;
    } else {
        outln!(
            "reference: {}{} ({} run(s), final {metric} {:.5}; {}); window t̂ ∈ [{}, {}]",
            refs.join(", "),
            chosen.as_ref().map_or(String::new(), |c| format!(
                " (chosen: {c}, the first of the largest group of comparable runs with `{metric}`)"
            )),
            reference.n_runs,
            reference.final_raw,
            ref_scale.describe(),
            config.window.0,
            config.window.1
        );
        let t = &config.thresholds;
        outln!(
            "thresholds: drift slope {} and final {}, spike {}·σ and {} (half-window {}), negative {}, non-collapse RMS {} (window RMS {})",
            t.drift_slope, t.drift_final, t.spike_k, t.spike_min, t.spike_half_window, t.negative, t.non_collapse_rms, t.window_rms
        );
        for r in &results {
            let res = &r.residual;
            outln!(
                "{}: S = {:.5}, final residual {:+.5} at t̂ = {:.3}{}, mean |residual| on the window {:.5}",
                r.run,
                res.s,
                res.final_residual,
                res.progress,
                if res.online { " (online: partial log)" } else { "" },
                res.window_mean_abs
            );
            outln!("  {}", r.timescale.describe());
            for f in &res.flags {
                outln!(
                    "  {:?} [{:.3}, {:.3}]: {}",
                    f.pattern,
                    f.from,
                    f.to,
                    f.evidence
                );
                outln!("    root causes: {}", f.causes.join("; "));
                outln!("    remediations: {}", f.remediations.join("; "));
                for c in &f.checks {
                    outln!("    - {c}");
                }
            }
        }
        for e in &errors {
            outln!("{}: {}", e.file, e.error);
        }
    }
    if results.is_empty() {
        bail!("no residual could be computed");
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct RunHealth {
    file: String,
    #[serde(flatten)]
    report: HealthReport,
}

/// Health rules over run logs: when each fired and the action it names
///
/// Health rules (built-in RLAN set by its metric names, rank collapse and gradient geometry, or
/// --rules FILE.json): when each first fired, how long it stayed, and the action it names
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Run logs
    #[arg(required = true, value_name = "LOG")]
    paths: Vec<String>,
    /// A JSON array of rules (or `{"rules": [...]}`) instead of the built-in set
    #[arg(long, value_name = "FILE.json")]
    rules: Option<String>,
    /// Print the rules and every event as JSON
    #[arg(long)]
    json: bool,
}

/// `rankscope health <logs…> [--rules FILE.json] [--json]`.
pub fn run_health(a: HealthArgs) -> Result<()> {
    let HealthArgs {
        paths,
        rules: rules_file,
        json,
    } = a;
    let rules: Vec<Rule> = match &rules_file {
        None => builtin_rules(),
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("{f}: cannot read"))?;
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum RulesFile {
                List(Vec<Rule>),
                Object { rules: Vec<Rule> },
            }
            match serde_json::from_str::<RulesFile>(&text)
                .with_context(|| format!("{f}: not a list of rules"))?
            {
                RulesFile::List(r) | RulesFile::Object { rules: r } => r,
            }
        }
    };
    let mut reports = Vec::new();
    for path in &paths {
        for (name, s) in read_runs(path)? {
            reports.push(RunHealth {
                file: path.clone(),
                report: evaluate(&rules, &s, &name),
            });
        }
    }
    if reports.is_empty() {
        bail!("nothing to analyse: no run in {}", paths.join(", "));
    }
    if json {
        let out = serde_json::json!({ "rules": rules, "runs": reports });
        crate::text::print_json(&out)?;
        return Ok(());
    }
    for r in &reports {
        let rep = &r.report;
        outln!(
            "{} ({}): {} rule(s) fired",
            rep.run,
            r.file,
            rep.events.len()
        );
        for e in &rep.events {
            let ranges: Vec<String> = e
                .ranges
                .iter()
                .map(|[a, b]| {
                    if a == b {
                        format!("{a}")
                    } else {
                        format!("{a}–{b}")
                    }
                })
                .collect();
            outln!(
                "  {:?} {} [{}]: first at {x} {} (value {}), until {x} {} ({} firing(s), {} {x}s in all), worst {}, at {x} {}",
                e.level,
                e.rule,
                e.metric,
                e.first_step,
                e.first_value,
                e.last_step,
                e.count,
                e.duration,
                e.value,
                ranges.join(", "),
                x = rep.x
            );
            if !e.action.is_empty() {
                outln!("    action: {}", e.action);
            }
        }
        for n in &rep.not_applicable {
            outln!("  {}: {}", n.rule, n.reason);
        }
    }
    Ok(())
}
