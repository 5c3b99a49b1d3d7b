//! `rankscope curves <logs…>`: any loss-curve figure the page draws, from the
//! same core builders (`analysis::losscurve::figures` and `::geometry`), as
//! SVG, PNG, CSV (the drawn points) or the figure's JSON.

use crate::losscurve::{parse_value, read_log_runs, write_figure};
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

const FIGURES: &str =
    "loss, residual, consolidation, health, geometry, geometry-ratios, rank, rank-loss";

fn x_axis(v: &str) -> Result<XAxis> {
    Ok(match v {
        "step" => XAxis::Step,
        "tokens" => XAxis::Tokens,
        "progress" => XAxis::Progress,
        "cumlr" => XAxis::CumulativeLr,
        "reltime" => XAxis::RelativeTime,
        "wall" => XAxis::WallTime,
        _ => bail!("--x takes step, tokens, progress, cumlr, reltime or wall, not `{v}`"),
    })
}

struct Options {
    figure: String,
    metric: Option<String>,
    x: XAxis,
    smooth: f64,
    log_y: bool,
    reference: Vec<String>,
    svg: Option<String>,
    png: Option<String>,
    csv: Option<String>,
    json: bool,
}

/// The figure asked for, built by the page's builder.
fn build(runs: &[LogRun], o: &Options) -> Result<FigureSpec> {
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
    match o.figure.as_str() {
        "loss" => loss_curve_figure(
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
        "residual" => {
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
        "consolidation" => {
            let f = consolidation_figure(runs, &ConsolidationConfig::default(), DEFAULT_BUCKETS);
            f.spec.ok_or_else(|| none("C(t)", f.messages))
        }
        "health" => health_figure(runs, &builtin_rules())
            .spec
            .context("no health rule fired in these logs"),
        "geometry" | "geometry-ratios" => {
            let f = geometry_figures(runs, o.x);
            let spec = if o.figure == "geometry" {
                f.cosines
            } else {
                f.ratios
            };
            spec.ok_or_else(|| none("gradient-geometry", f.messages))
        }
        "rank" | "rank-loss" => {
            let mut opts = RankLossOptions {
                x: o.x,
                ..RankLossOptions::default()
            };
            if let Some(m) = &o.metric {
                opts.loss_metric = m.clone();
            }
            let f = rank_loss_figures(runs, &opts).map_err(anyhow::Error::msg)?;
            Ok(if o.figure == "rank" { f.rank } else { f.loss })
        }
        other => bail!("--figure takes one of {FIGURES}, not `{other}`"),
    }
}

/// The drawn points of every data series (no shaded ranges) as CSV: series, x, y.
fn write_csv(spec: &FigureSpec, path: &str) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {path}"))?;
    w.write_record(["series", spec.x.label.as_str(), spec.y.label.as_str()])?;
    for s in spec.series.iter().filter(|s| !s.style.is_span()) {
        for p in &s.points {
            w.write_record([s.name.clone(), p[0].to_string(), p[1].to_string()])?;
        }
    }
    w.flush().with_context(|| format!("writing {path}"))?;
    Ok(())
}

/// `rankscope curves <logs…> [--figure F] [--metric M] [--x step|tokens|progress|cumlr|reltime|wall]
/// [--smooth β] [--log-y] [--reference RUN]… [--svg F] [--png F] [--csv F] [--json]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut o = Options {
        figure: "loss".into(),
        metric: None,
        x: XAxis::Step,
        smooth: 0.9,
        log_y: false,
        reference: Vec::new(),
        svg: None,
        png: None,
        csv: None,
        json: false,
    };
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--figure" => o.figure = parse_value(a, it.next())?,
            "--metric" => o.metric = Some(parse_value(a, it.next())?),
            "--x" => o.x = x_axis(it.next().context("--x needs a value")?)?,
            "--smooth" => {
                o.smooth = parse_value(a, it.next())?;
                if !(0.0..1.0).contains(&o.smooth) {
                    bail!(
                        "--smooth takes β in [0, 1) (0: raw values), not {}",
                        o.smooth
                    );
                }
            }
            "--log-y" => o.log_y = true,
            "--reference" => o.reference.push(parse_value(a, it.next())?),
            "--svg" => o.svg = Some(parse_value(a, it.next())?),
            "--png" => o.png = Some(parse_value(a, it.next())?),
            "--csv" => o.csv = Some(parse_value(a, it.next())?),
            "--json" => o.json = true,
            s if s.starts_with("--") => bail!("unknown option `{s}` for curves"),
            _ => paths.push(a.clone()),
        }
    }
    if paths.is_empty() {
        bail!("curves needs at least one run log");
    }
    if o.svg.is_none() && o.png.is_none() && o.csv.is_none() && !o.json {
        bail!("say where the figure goes: --svg FILE, --png FILE, --csv FILE or --json");
    }
    let runs = read_log_runs(&paths)?;
    let spec = build(&runs, &o)?;
    write_figure(&spec, o.svg.as_deref(), o.png.as_deref())?;
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
