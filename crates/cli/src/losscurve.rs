//! `rankscope residual` and `rankscope health`: the loss-curve diagnostics of
//! run logs (collapse residual against a reference, health rules), and the
//! helpers the other log commands share (reading logs, writing figures).

use crate::text::outln;
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::losscurve::figures::{default_reference, LogRun};
use rankscope_core::analysis::losscurve::health::{builtin_rules, evaluate, HealthReport, Rule};
use rankscope_core::analysis::losscurve::residual::{
    annotate_timescales, collapse_residual, progress_of, timescale, Reference, Residual,
    ResidualConfig, RunTimescale,
};
use rankscope_core::figures::FigureSpec;
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

/// Writes `spec` as SVG and/or PNG (900 × 560, PNG at 2×).
pub(crate) fn write_figure(spec: &FigureSpec, svg: Option<&str>, png: Option<&str>) -> Result<()> {
    let (w, h) = (900, 560);
    if let Some(path) = svg {
        std::fs::write(path, rankscope_core::figures::draw::to_svg(spec, w, h)?)
            .with_context(|| format!("writing {path}"))?;
    }
    if let Some(path) = png {
        std::fs::write(
            path,
            rankscope_core::figures::render::to_png(spec, w, h, 2.0)?,
        )
        .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// The value after a flag, parsed.
pub(crate) fn parse_value<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T> {
    let v = v.with_context(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| anyhow::anyhow!("{flag}: `{v}` is not a valid value"))
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

/// `rankscope residual [--reference REF[,REF…]] <logs…> [--metric M] [--window A,B] [threshold flags] [--json]`.
///
/// `--reference` takes one path per occurrence (repeat it, or separate paths
/// with commas); `--reference A B -- RUNS…` takes every path up to `--`.
/// Several references are averaged on a common t̂ grid. Without
/// `--reference` the reference is chosen among the given runs that have the
/// metric ([`default_reference`]: the first of the largest group of
/// comparable runs) and the others are compared with it. Every pattern
/// threshold has a flag: `--drift-slope`, `--drift-final`, `--spike-k`,
/// `--spike-min`, `--spike-window`, `--negative`, `--non-collapse-rms`,
/// `--window-rms`.
pub fn run_residual(args: &[String]) -> Result<()> {
    let mut refs: Vec<String> = Vec::new();
    let mut runs: Vec<String> = Vec::new();
    let mut metric = "val_loss".to_string();
    let mut config = ResidualConfig::default();
    let mut json = false;
    let greedy = args.iter().any(|a| a == "--");
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--" => {}
            "--metric" => metric = it.next().context("--metric needs a value")?.clone(),
            "--drift-slope" => config.thresholds.drift_slope = parse_value(a, it.next())?,
            "--drift-final" => config.thresholds.drift_final = parse_value(a, it.next())?,
            "--spike-k" => config.thresholds.spike_k = parse_value(a, it.next())?,
            "--spike-min" => config.thresholds.spike_min = parse_value(a, it.next())?,
            "--spike-window" => config.thresholds.spike_half_window = parse_value(a, it.next())?,
            "--negative" => config.thresholds.negative = parse_value(a, it.next())?,
            "--non-collapse-rms" => config.thresholds.non_collapse_rms = parse_value(a, it.next())?,
            "--window-rms" => config.thresholds.window_rms = parse_value(a, it.next())?,
            "--window" => {
                let v = it.next().context("--window needs a value like 0.1,0.3")?;
                let (a, b) = v
                    .split_once(',')
                    .with_context(|| format!("--window takes START,END, not `{v}`"))?;
                config.window = (
                    a.trim().parse().context("--window start")?,
                    b.trim().parse().context("--window end")?,
                );
            }
            "--reference" => {
                let v = it.next().context("--reference needs a log")?;
                refs.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from));
                if greedy {
                    while let Some(next) = it.next_if(|n| !n.starts_with("--")) {
                        refs.push(next.clone());
                    }
                }
            }
            s if s.starts_with("--") => bail!("unknown option `{s}` for residual"),
            _ => runs.push(a.clone()),
        }
    }
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

/// `rankscope health <logs…> [--rules FILE.json] [--json]`.
///
/// The rules file is a JSON array of rules (or `{"rules": [...]}`); without it
/// the built-in set is used.
pub fn run_health(args: &[String]) -> Result<()> {
    let mut paths = Vec::new();
    let mut rules_file: Option<String> = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--rules" => rules_file = Some(it.next().context("--rules needs a JSON file")?.clone()),
            s if s.starts_with("--") => bail!("unknown option `{s}` for health"),
            _ => paths.push(a.clone()),
        }
    }
    if paths.is_empty() {
        bail!("health needs at least one run log");
    }
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
