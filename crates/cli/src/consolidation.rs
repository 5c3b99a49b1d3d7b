//! `rankscope consolidation <logs…>`: the consolidation ratio C(t) of run
//! logs with its regimes and alerts, as text, JSON or a figure.

use crate::args::FigureFiles;
use crate::losscurve::read_log_runs;
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

/// Consolidation ratio C(t) of run logs: regimes, alerts, α_opt
///
/// Consolidation ratio C(t) = ‖∇L‖²/(2·D·d): regimes, alerts (sharp drop, grokking threshold,
/// stuck, sharp minimum, Kramers escape), α_opt = 2D/λ_max
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run logs
    #[arg(required = true, value_name = "LOG")]
    paths: Vec<String>,
    /// Batch size B, overriding the log's `batch_size`
    #[arg(long, value_name = "B")]
    batch_size: Option<f64>,
    /// Parameter count d, overriding the log's `n_params`
    #[arg(long, value_name = "d")]
    n_params: Option<f64>,
    /// What the logged `grad_var` is the variance of: auto, per-sample or micro:N [default: auto]
    #[arg(long, value_parser = convention)]
    convention: Option<VarianceConvention>,
    /// Where the noise scale D comes from: per-row, warmup or warmup:STEPS [default: per-row]
    #[arg(long, value_parser = noise)]
    noise: Option<NoiseSource>,
    /// Half-width w of the "C ≈ 1" band [max(0.5, 1 − w), 1 + w] [default: 0.5]
    #[arg(long, value_name = "W")]
    near_one: Option<f64>,
    /// Points of C looked at together by the sharp-minimum and plateau checks [default: 3]
    #[arg(long, value_name = "N")]
    window: Option<usize>,
    /// The loss the plateau check reads [default: loss]
    #[arg(long, value_name = "M")]
    loss: Option<String>,
    /// Sharp drop: (C_prev − C)/C_prev above this [default: 0.5]
    #[arg(long)]
    sharp_drop: Option<f64>,
    /// Plateau: the loss's relative range over the window below this [default: 0.01]
    #[arg(long)]
    plateau_tolerance: Option<f64>,
    #[command(flatten)]
    files: FigureFiles,
    /// Print every run's C(t), regimes and alerts as JSON
    #[arg(long)]
    json: bool,
}

impl Args {
    /// The core's defaults with what was given.
    fn config(&self) -> ConsolidationConfig {
        let mut c = ConsolidationConfig::default();
        c.batch_size = self.batch_size.or(c.batch_size);
        c.n_params = self.n_params.or(c.n_params);
        if let Some(v) = self.convention {
            c.variance = v;
        }
        if let Some(n) = self.noise {
            c.noise = n;
        }
        c.near_one = self.near_one.unwrap_or(c.near_one);
        c.window = self.window.unwrap_or(c.window);
        if let Some(l) = &self.loss {
            c.loss_metric = l.clone();
        }
        c.alerts.sharp_drop = self.sharp_drop.unwrap_or(c.alerts.sharp_drop);
        c.alerts.plateau_tolerance = self.plateau_tolerance.unwrap_or(c.alerts.plateau_tolerance);
        c
    }
}

/// `rankscope consolidation <logs…> [--batch-size B] [--n-params D]
/// [--convention auto|per-sample|micro:N] [--noise per-row|warmup[:STEPS]]
/// [--near-one W] [--window N] [--loss M] [--svg F] [--png F] [--json]`.
pub fn run(a: Args) -> Result<()> {
    let config = a.config();
    let (paths, json) = (&a.paths, a.json);
    let runs = read_log_runs(paths)?;
    let fig = consolidation_figure(&runs, &config, DEFAULT_BUCKETS);
    if let Some(spec) = &fig.spec {
        a.files.write(spec)?;
    } else if a.files.any() {
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
