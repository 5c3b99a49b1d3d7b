//! `rankscope curves <logs…>`: any loss-curve figure the page draws, from the
//! same core builders (`analysis::losscurve::figures` and `::geometry`), as
//! SVG, PNG, CSV (the drawn points) or the figure's JSON.

use crate::args::{Choice, FigureFiles};
use crate::losscurve::read_log_runs;
use crate::text::outln;
use anyhow::{bail, Context, Result};
use rankscope_core::analysis::losscurve::axes::XAxis;
use rankscope_core::analysis::losscurve::consolidation::ConsolidationConfig;
use rankscope_core::analysis::losscurve::figures::{
    consolidation_figure, default_loss_metric, default_reference, health_figure, loss_curve_figure,
    rank_loss_figures, residual_figure, LogRun, LossCurveOptions, RankLossOptions, ResidualOptions,
    DEFAULT_BUCKETS,
};
use rankscope_core::analysis::losscurve::geometry::geometry_figures;
use rankscope_core::analysis::losscurve::health::builtin_rules;
use rankscope_core::figures::FigureSpec;
use std::path::{Path, PathBuf};

/// Which figure: the page's loss-curve figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Loss,
    Residual,
    Consolidation,
    Health,
    Geometry,
    GeometryRatios,
    Rank,
    RankLoss,
}

fn figure() -> Choice<Which> {
    let names = [
        "loss",
        "residual",
        "consolidation",
        "health",
        "geometry",
        "geometry-ratios",
        "rank",
        "rank-loss",
    ];
    Choice::new("figure", names, |v| {
        Some(match v {
            "loss" => Which::Loss,
            "residual" => Which::Residual,
            "consolidation" => Which::Consolidation,
            "health" => Which::Health,
            "geometry" => Which::Geometry,
            "geometry-ratios" => Which::GeometryRatios,
            "rank" => Which::Rank,
            "rank-loss" => Which::RankLoss,
            _ => return None,
        })
    })
}

fn x_axis() -> Choice<XAxis> {
    let names = ["step", "tokens", "progress", "cumlr", "reltime", "wall"];
    Choice::new("x axis", names, |v| {
        Some(match v {
            "step" => XAxis::Step,
            "tokens" => XAxis::Tokens,
            "progress" => XAxis::Progress,
            "cumlr" => XAxis::CumulativeLr,
            "reltime" => XAxis::RelativeTime,
            "wall" => XAxis::WallTime,
            _ => return None,
        })
    })
}

fn smoothing(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(b) if (0.0..1.0).contains(&b) => Ok(b),
        _ => Err(format!("takes β in [0, 1) (0: raw values), not `{v}`")),
    }
}

/// Any loss-curve figure of the page as SVG, PNG, CSV or JSON
///
/// Any loss-curve figure of the page (loss vs step/tokens/t̂/∫lr with EMA, residual, C(t),
/// health timeline, gradient geometry, rank vs loss) as SVG, PNG, CSV (the drawn points) or JSON
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run logs
    #[arg(required = true, value_name = "LOG")]
    paths: Vec<String>,
    /// The figure
    #[arg(long, value_parser = figure(), default_value = "loss")]
    figure: Which,
    /// The metric drawn (default: the logs' loss)
    #[arg(long, value_name = "M")]
    metric: Option<String>,
    /// The x axis: step, tokens, progress t̂ or cumulative learning rate
    #[arg(long, value_parser = x_axis(), default_value = "step")]
    x: XAxis,
    /// EMA smoothing β in [0, 1) (0: raw values)
    #[arg(long, value_name = "β", default_value_t = 0.9, value_parser = smoothing)]
    smooth: f64,
    /// Logarithmic y axis
    #[arg(long)]
    log_y: bool,
    /// The residual figure's reference run(s) (repeatable; default: chosen as `residual` does)
    #[arg(long, value_name = "RUN")]
    reference: Vec<String>,
    #[command(flatten)]
    files: FigureFiles,
    /// Write the drawn points as CSV (series, x, y) to FILE
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Print the figure as JSON
    #[arg(long)]
    json: bool,
}

/// The figure asked for, built by the page's builder.
fn build(runs: &[LogRun], o: &Args) -> Result<FigureSpec> {
    let metric = || {
        o.metric
            .clone()
            .or_else(|| default_loss_metric(runs))
            .context("the logs hold no metric")
    };
    let none = |what: &str, why: Vec<String>| {
        anyhow::anyhow!(
            "no {what} figure: {}",
            if why.is_empty() {
                "nothing to draw".into()
            } else {
                why.join("; ")
            }
        )
    };
    match o.figure {
        Which::Loss => loss_curve_figure(
            runs,
            &LossCurveOptions {
                metric: metric()?,
                x: o.x,
                log_y: o.log_y,
                ema_beta: o.smooth,
                buckets: DEFAULT_BUCKETS,
            },
        )
        .map_err(anyhow::Error::msg),
        Which::Residual => {
            let metric = metric()?;
            let reference = if o.reference.is_empty() {
                vec![default_reference(runs, &metric).with_context(|| {
                    format!("no run has `{metric}` on progress t̂: no reference")
                })?]
            } else {
                o.reference.clone()
            };
            let opts = ResidualOptions {
                metric,
                reference,
                config: Default::default(),
                buckets: DEFAULT_BUCKETS,
            };
            residual_figure(runs, &opts)
                .map(|f| f.spec)
                .map_err(anyhow::Error::msg)
        }
        Which::Consolidation => {
            let f = consolidation_figure(runs, &ConsolidationConfig::default(), DEFAULT_BUCKETS);
            f.spec.ok_or_else(|| none("C(t)", f.messages))
        }
        Which::Health => health_figure(runs, &builtin_rules())
            .spec
            .context("no health rule fired in these logs"),
        Which::Geometry | Which::GeometryRatios => {
            let f = geometry_figures(runs, o.x);
            let spec = if o.figure == Which::Geometry {
                f.cosines
            } else {
                f.ratios
            };
            spec.ok_or_else(|| none("gradient-geometry", f.messages))
        }
        Which::Rank | Which::RankLoss => {
            let mut opts = RankLossOptions {
                x: o.x,
                ..RankLossOptions::default()
            };
            if let Some(m) = &o.metric {
                opts.loss_metric = m.clone();
            }
            let f = rank_loss_figures(runs, &opts).map_err(anyhow::Error::msg)?;
            Ok(if o.figure == Which::Rank {
                f.rank
            } else {
                f.loss
            })
        }
    }
}

/// The drawn points of every data series (no shaded ranges) as CSV: series, x, y.
fn write_csv(spec: &FigureSpec, path: &Path) -> Result<()> {
    let shown = path.display();
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {shown}"))?;
    w.write_record(["series", spec.x.label.as_str(), spec.y.label.as_str()])?;
    for s in spec.series.iter().filter(|s| !s.style.is_span()) {
        for p in &s.points {
            w.write_record([s.name.clone(), p[0].to_string(), p[1].to_string()])?;
        }
    }
    w.flush().with_context(|| format!("writing {shown}"))?;
    Ok(())
}

/// `rankscope curves <logs…> [--figure F] [--metric M] [--x step|tokens|progress|cumlr|reltime|wall]
/// [--smooth β] [--log-y] [--reference RUN]… [--svg F] [--png F] [--csv F] [--json]`.
pub fn run(o: Args) -> Result<()> {
    if !o.files.any() && o.csv.is_none() && !o.json {
        bail!("say where the figure goes: --svg FILE, --png FILE, --csv FILE or --json");
    }
    let runs = read_log_runs(&o.paths)?;
    let spec = build(&runs, &o)?;
    o.files.write(&spec)?;
    if let Some(path) = &o.csv {
        write_csv(&spec, path)?;
    }
    if o.json {
        crate::text::print_json(&spec)?;
    } else {
        outln!("{}", spec.caption);
    }
    Ok(())
}
