//! `rankscope residual` and `rankscope health`: the loss-curve diagnostics of
//! run logs (collapse residual against a reference, health rules).

use crate::text::outln;
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::losscurve::health::{builtin_rules, evaluate, HealthReport, Rule};
use rankscope_core::analysis::losscurve::residual::{
    collapse_residual, progress_of, Reference, Residual, ResidualConfig,
};
use rankscope_core::formats::logs::{self, Series};
use std::path::Path;

/// The runs of one log file, each with a display name.
fn read_runs(path: &str) -> Result<Vec<(String, Series)>> {
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
            let name = match &s.run {
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
    #[serde(flatten)]
    residual: Residual,
}

#[derive(serde::Serialize)]
struct RunError {
    file: String,
    error: String,
}

/// `rankscope residual --reference REF[,REF…] [--reference REF…] <logs…> [--metric M] [--window A,B] [--json]`.
///
/// `--reference` takes one path per occurrence (repeat it, or separate paths
/// with commas); `--reference A B -- RUNS…` takes every path up to `--`.
/// Several references are averaged on a common t̂ grid.
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
    if refs.is_empty() {
        bail!("residual needs --reference <log>");
    }
    if runs.is_empty() {
        bail!("residual needs at least one run log besides the reference");
    }

    let mut ref_curves = Vec::new();
    for path in &refs {
        for (name, s) in read_runs(path)? {
            let curve =
                progress_of(&s, &metric).with_context(|| format!("reference {path} ({name})"))?;
            ref_curves.push(curve.points);
        }
    }
    let reference = Reference::from_runs(&ref_curves).context("reference curve")?;

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
                Ok(residual) => results.push(RunResidual {
                    file: path.clone(),
                    run: name,
                    residual,
                }),
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
            "reference: {} ({} run(s), final {metric} {:.5}); window t̂ ∈ [{}, {}]",
            refs.join(", "),
            reference.n_runs,
            reference.final_raw,
            config.window.0,
            config.window.1
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
            for f in &res.flags {
                outln!(
                    "  {:?} [{:.3}, {:.3}]: {}",
                    f.pattern,
                    f.from,
                    f.to,
                    f.evidence
                );
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
                "  {:?} {}: first at {x} {} (value {}), worst {}, at {x} {}",
                e.level,
                e.rule,
                e.first_step,
                e.first_value,
                e.value,
                ranges.join(", "),
                x = rep.x
            );
        }
        for n in &rep.not_applicable {
            outln!("  {}: {}", n.rule, n.reason);
        }
    }
    Ok(())
}
