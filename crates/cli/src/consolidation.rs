//! `rankscope consolidation <logs…>`: the consolidation ratio C(t) of run
//! logs with its regimes and alerts, as text, JSON or a figure.

use crate::losscurve::{parse_value, read_log_runs, write_figure};
use crate::text::{errln, outln};
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::losscurve::consolidation::{
    ConsolidationConfig, NoiseSource, Regime, VarianceConvention,
};
use rankscope_core::analysis::losscurve::figures::{consolidation_figure, DEFAULT_BUCKETS};

/// `--convention auto|per-sample|micro:N`.
fn convention(v: &str) -> Result<VarianceConvention> {
    Ok(match v {
        "auto" => VarianceConvention::Auto,
        "per-sample" | "per_sample" => VarianceConvention::PerSample,
        _ => {
            let n = v.strip_prefix("micro:").with_context(|| {
                format!("--convention takes auto, per-sample or micro:N, not `{v}`")
            })?;
            let n: f64 = n
                .parse()
                .with_context(|| format!("--convention micro:N: `{n}` is not a number"))?;
            if !(n.is_finite() && n > 0.0) {
                bail!("--convention micro:N needs N > 0, not {n}");
            }
            VarianceConvention::MicroBatch(n)
        }
    })
}

/// `--noise per-row|warmup|warmup:STEPS`.
fn noise(v: &str) -> Result<NoiseSource> {
    Ok(match v {
        "per-row" | "per_row" => NoiseSource::PerRow,
        "warmup" => NoiseSource::Warmup { steps: None },
        _ => {
            let s = v.strip_prefix("warmup:").with_context(|| {
                format!("--noise takes per-row, warmup or warmup:STEPS, not `{v}`")
            })?;
            NoiseSource::Warmup {
                steps: Some(
                    s.parse()
                        .with_context(|| format!("--noise warmup:STEPS: `{s}` is not a number"))?,
                ),
            }
        }
    })
}

/// `rankscope consolidation <logs…> [--batch-size B] [--n-params D]
/// [--convention auto|per-sample|micro:N] [--noise per-row|warmup[:STEPS]]
/// [--near-one W] [--window N] [--loss M] [--svg F] [--png F] [--json]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut paths = Vec::new();
    let mut config = ConsolidationConfig::default();
    let (mut json, mut svg, mut png) = (false, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--svg" => svg = Some(parse_value::<String>(a, it.next())?),
            "--png" => png = Some(parse_value::<String>(a, it.next())?),
            "--batch-size" => config.batch_size = Some(parse_value(a, it.next())?),
            "--n-params" => config.n_params = Some(parse_value(a, it.next())?),
            "--convention" => {
                config.variance = convention(it.next().context("--convention needs a value")?)?
            }
            "--noise" => config.noise = noise(it.next().context("--noise needs a value")?)?,
            "--near-one" => config.near_one = parse_value(a, it.next())?,
            "--window" => config.window = parse_value(a, it.next())?,
            "--loss" => config.loss_metric = parse_value(a, it.next())?,
            "--sharp-drop" => config.alerts.sharp_drop = parse_value(a, it.next())?,
            "--plateau-tolerance" => config.alerts.plateau_tolerance = parse_value(a, it.next())?,
            s if s.starts_with("--") => bail!("unknown option `{s}` for consolidation"),
            _ => paths.push(a.clone()),
        }
    }
    if paths.is_empty() {
        bail!("consolidation needs at least one run log");
    }
    let runs = read_log_runs(&paths)?;
    let fig = consolidation_figure(&runs, &config, DEFAULT_BUCKETS);
    if let Some(spec) = &fig.spec {
        write_figure(spec, svg.as_deref(), png.as_deref())?;
    } else if svg.is_some() || png.is_some() {
        errln!("no figure written: no run has C(t)");
    }
    if json {
        let curves: Vec<serde_json::Value> = fig
            .curves
            .iter()
            .map(|(run, c)| serde_json::json!({ "run": run, "curve": c }))
            .collect();
        let out = serde_json::json!({
            "config": config,
            "runs": curves,
            "errors": fig.messages,
            "caption": fig.spec.as_ref().map(|s| s.caption.clone()),
        });
        crate::text::print_json(&out)?;
    } else {
        for (run, c) in &fig.curves {
            outln!(
                "{run}: {} point(s); {}; {}",
                c.points.len(),
                c.convention,
                c.noise
            );
            for r in Regime::ALL {
                let n = c.points.iter().filter(|p| p.regime == r).count();
                if n > 0 {
                    outln!("  {n:>5} in {}", r.label(&c.bounds));
                }
            }
            if !c.scale_note.is_empty() {
                outln!("  {}", c.scale_note);
            }
            let opt: Vec<(f64, f64)> = c
                .points
                .iter()
                .filter_map(|p| Some((p.step, p.alpha_opt?)))
                .collect();
            if let (Some(a), Some(b)) = (opt.first(), opt.last()) {
                outln!(
                    "  α_opt = 2D/λ_max: {:.4e} at step {} … {:.4e} at step {}",
                    a.1,
                    a.0,
                    b.1,
                    b.0
                );
            }
            for a in &c.alerts {
                outln!("  alert at step {}: {}", a.step, a.message);
            }
            for n in &c.notes {
                outln!("  note: {n}");
            }
        }
        for m in &fig.messages {
            outln!("{m}");
        }
    }
    if fig.curves.is_empty() {
        bail!("no consolidation ratio could be computed");
    }
    Ok(())
}
