//! Figures of the loss-curve diagnostics (issue 6): pure functions from parsed
//! run logs to [`FigureSpec`]s, each with a caption that says what is drawn
//! (metric, x-axis, smoothing, points drawn of total, reference, window, S).
//!
//! | builder | figure |
//! | --- | --- |
//! | [`loss_curve_figure`] | any logged metric of many runs vs step / tokens / t̂ / ∫lr, debiased EMA over faint raw values, min/max-downsampled |
//! | [`residual_figure`] | collapse residual per run against a reference, the window and the four flagged patterns marked |
//! | [`consolidation_figure`] | C(t) per run on a log axis with its regimes shaded, or the missing fields named |
//! | [`health_figure`] | where each health rule fired, per run |
//! | [`rank_loss_figures`] | PR trajectory and loss on the same x range, sudden PR drops marked on both |

use super::axes::{ema_debiased, points_on, XAxis};
use super::consolidation::{
    consolidation_ratio, AlertKind, ConsolidationConfig, ConsolidationCurve, Regime, RegimeBounds,
};
use super::health::{evaluate, healthy_range_of, HealthReport, Rule};
use super::residual::{
    annotate_timescales, collapse_residual, progress_of, timescale, Pattern, Reference, Residual,
    ResidualConfig,
};
use super::transitions::{sudden_drops, Transition, TransitionConfig};
use crate::figures::downsample::min_max_downsample;
use crate::figures::spec::{Axis, FigureKind, FigureSpec, Scale, SeriesSpec, Style};
use crate::formats::logs::Series;
use crate::inventory::{Content, Inventory};

/// Default number of downsampling buckets per series (at most 4 points each).
pub const DEFAULT_BUCKETS: usize = 500;

/// One run's parsed log, with a display name and palette index.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRun {
    /// Unique display name (the run, or the file stem when runs share a name).
    pub name: String,
    /// Palette index, stable per run across figures.
    pub color: usize,
    /// The file it came from.
    pub source: String,
    /// The parsed log.
    pub series: Series,
}

/// Every run log of the inventory, one entry per parsed series, with unique
/// names (a file with several runs gets `file/run`; duplicates get `#2`, …)
/// and the run's palette index (its place in the inventory's runs).
pub fn log_runs(inv: &Inventory) -> Vec<LogRun> {
    let mut out: Vec<LogRun> = Vec::new();
    for f in &inv.files {
        let Content::RunLog(all) = &f.content else {
            continue;
        };
        let stem = crate::inventory::naming::file_stem(&f.path).to_string();
        let base = f.run.clone().unwrap_or_else(|| stem.clone());
        let color_base = inv
            .runs
            .iter()
            .position(|r| r.name == base)
            .unwrap_or(out.len());
        for (i, s) in all.iter().enumerate() {
            let mut name = match (&s.run, all.len() > 1) {
                (Some(r), true) => format!("{base}/{r}"),
                (None, true) => format!("{base}#{}", i + 1),
                _ => base.clone(),
            };
            if out.iter().any(|o| o.name == name) {
                name = format!("{name} ({stem})");
            }
            let mut k = 2;
            while out.iter().any(|o| o.name == name) {
                name = format!("{base}#{k}");
                k += 1;
            }
            out.push(LogRun {
                name,
                color: color_base + i,
                source: f.path.clone(),
                series: s.clone(),
            });
        }
    }
    out
}

/// Metric names logged by any of `runs`, sorted, each once.
pub fn metric_names(runs: &[LogRun]) -> Vec<String> {
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|r| r.series.metric_names())
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The metric a loss figure starts with: `val_loss`, `loss`, `train_loss`, or the first logged.
pub fn default_loss_metric(runs: &[LogRun]) -> Option<String> {
    let names = metric_names(runs);
    ["val_loss", "loss", "train_loss"]
        .iter()
        .find(|m| names.iter().any(|n| n == *m))
        .map(|m| m.to_string())
        .or_else(|| names.first().cloned())
}

fn sources(runs: &[&LogRun]) -> Vec<String> {
    let mut s: Vec<String> = runs.iter().map(|r| r.source.clone()).collect();
    s.dedup();
    s
}

fn to_pairs(points: &[(f64, f64)]) -> Vec<[f64; 2]> {
    points.iter().map(|&(x, y)| [x, y]).collect()
}

fn fmt_g(v: f64) -> String {
    crate::figures::draw::format_tick(v)
}

/// Why `metric` cannot be drawn against `x` for this log.
fn missing_reason(series: &Series, metric: &str, x: XAxis) -> String {
    if series.metric(metric).is_none() {
        format!("no `{metric}`")
    } else {
        match x {
            XAxis::Tokens => "no `tokens`".into(),
            XAxis::CumulativeLr => "no `lr` (∫lr needs it)".into(),
            XAxis::Progress => "no total for t̂".into(),
            XAxis::WallTime => "no wall-clock time column (wall_time, _timestamp, …)".into(),
            XAxis::RelativeTime => "no time column (train_time, _runtime, wall_time, …)".into(),
            XAxis::Step => format!("no finite `{metric}`"),
        }
    }
}

// ------------------------------------------------------------------ loss curves

/// What [`loss_curve_figure`] draws.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossCurveOptions {
    /// The logged metric.
    pub metric: String,
    /// The x axis.
    pub x: XAxis,
    /// Log-scaled y.
    pub log_y: bool,
    /// β of the debiased EMA; 0 draws the raw values only.
    pub ema_beta: f64,
    /// Downsampling buckets per series (≤ 4 points each).
    pub buckets: usize,
}

impl Default for LossCurveOptions {
    fn default() -> Self {
        LossCurveOptions {
            metric: "loss".into(),
            x: XAxis::Step,
            log_y: false,
            ema_beta: 0.9,
            buckets: DEFAULT_BUCKETS,
        }
    }
}

/// `metric` vs the chosen x for every run: with smoothing (β > 0) a debiased
/// EMA line per run over its raw values drawn faint, otherwise the raw values
/// as a line; every series min/max-downsampled to ≤ 4·buckets points. The
/// caption names the metric, x, smoothing, points drawn of total and the runs
/// left out (and why). `Err` (a message) when no run can be drawn.
pub fn loss_curve_figure(runs: &[LogRun], opts: &LossCurveOptions) -> Result<FigureSpec, String> {
    let smooth = opts.ema_beta > 0.0 && opts.ema_beta.is_finite();
    let mut series = Vec::new();
    let mut skipped = Vec::new();
    let mut used = Vec::new();
    let (mut drawn, mut total, mut non_finite) = (0usize, 0usize, 0usize);
    for r in runs {
        let Some(mut pts) = points_on(&r.series, &opts.metric, opts.x).filter(|p| !p.is_empty())
        else {
            skipped.push(format!(
                "{} ({})",
                r.name,
                missing_reason(&r.series, &opts.metric, opts.x)
            ));
            continue;
        };
        // NaN/∞ values (and points whose x is not finite) are logged but never
        // drawn: counted apart, not among the points drawn or downsampled.
        let nan_values = r
            .series
            .metric(&opts.metric)
            .map_or(0, |c| c.iter().flatten().filter(|v| !v.is_finite()).count());
        let before = pts.len();
        pts.retain(|p| p.0.is_finite() && p.1.is_finite());
        non_finite += nan_values + (before - pts.len());
        if pts.is_empty() {
            skipped.push(format!("{} (no finite `{}`)", r.name, opts.metric));
            continue;
        }
        used.push(r);
        let raw = to_pairs(&pts);
        let raw_drawn = min_max_downsample(&raw, opts.buckets);
        drawn += raw_drawn.len();
        total += raw.len();
        if smooth {
            let ema = ema_debiased(
                &pts.iter().map(|p| Some(p.1)).collect::<Vec<_>>(),
                opts.ema_beta,
            );
            let line: Vec<[f64; 2]> = pts
                .iter()
                .zip(&ema)
                .filter_map(|(p, e)| Some([p.0, (*e)?]))
                .collect();
            let mut faint =
                SeriesSpec::new(format!("{} (raw)", r.name), raw_drawn, Style::Line, r.color);
            faint.faint = true;
            faint.points_total = Some(raw.len());
            let mut s = SeriesSpec::new(
                &r.name,
                min_max_downsample(&line, opts.buckets),
                Style::Line,
                r.color,
            );
            s.points_total = Some(line.len());
            series.push(faint);
            series.push(s);
        } else {
            let mut s = SeriesSpec::new(&r.name, raw_drawn, Style::Line, r.color);
            s.points_total = Some(raw.len());
            series.push(s);
        }
    }
    if used.is_empty() {
        return Err(match skipped.len() {
            0 => "no run logs to draw".to_string(),
            _ => format!(
                "`{}` vs {} cannot be drawn: {}",
                opts.metric,
                opts.x.label(),
                skipped.join("; ")
            ),
        });
    }
    let healthy = healthy_range_of(&opts.metric);
    if let Some(h) = healthy
        .as_ref()
        .filter(|h| h.lo.is_some() || h.hi.is_some())
    {
        // An open end reaches the plot's edge (see Style::HSpan).
        let band = [h.lo.unwrap_or(-1e300), h.hi.unwrap_or(1e300)];
        series.insert(0, SeriesSpec::new(&h.label, vec![band], Style::HSpan, 2));
    }
    let mut caption = format!(
        "{} vs {}, {} run(s). ",
        opts.metric,
        opts.x.label(),
        used.len()
    );
    if let Some(h) = &healthy {
        caption.push_str(&format!(
            "{} (the RLAN report's healthy range{}). ",
            h.label,
            if h.rising { "; not a band" } else { ", shaded" }
        ));
    }
    if smooth {
        caption.push_str(&format!(
            "Lines: debiased EMA (β = {}) of the logged values, drawn faint behind. ",
            opts.ema_beta
        ));
    } else {
        caption.push_str("Raw logged values, no smoothing. ");
    }
    caption.push_str(&format!("{drawn} of {total} logged points drawn"));
    if drawn < total {
        caption.push_str(&format!(
            " (min–max downsampled, {} buckets per run)",
            opts.buckets
        ));
    }
    if non_finite > 0 {
        caption.push_str(&format!(
            "; {non_finite} non-finite value(s) (NaN/∞) not drawn"
        ));
    }
    caption.push('.');
    if opts.log_y {
        caption.push_str(" Log y.");
    }
    if !skipped.is_empty() {
        caption.push_str(&format!(" Not drawn: {}.", skipped.join("; ")));
    }
    Ok(FigureSpec {
        kind: FigureKind::LossCurve,
        title: format!("{} vs {}", opts.metric, opts.x.label()),
        caption,
        x: if opts.x == XAxis::WallTime {
            Axis {
                scale: crate::figures::spec::Scale::UnixTime,
                ..Axis::linear(opts.x.label())
            }
        } else {
            Axis::linear(opts.x.label())
        },
        y: if opts.log_y {
            Axis::log(&opts.metric)
        } else {
            Axis::linear(&opts.metric)
        },
        series,
        sources: sources(&used),
    })
}

// ------------------------------------------------------------------ residual

/// The colour (palette index) of a flagged pattern's marks.
pub fn pattern_color(p: Pattern) -> usize {
    match p {
        Pattern::PositiveDrift => 1,
        Pattern::Spike => 3,
        Pattern::NegativeResidual => 2,
        Pattern::NonCollapse => 4,
    }
}

/// Short name of a pattern.
pub fn pattern_label(p: Pattern) -> &'static str {
    match p {
        Pattern::PositiveDrift => "positive drift",
        Pattern::Spike => "spike",
        Pattern::NegativeResidual => "negative residual",
        Pattern::NonCollapse => "non-collapse",
    }
}

const PATTERNS: [Pattern; 4] = [
    Pattern::PositiveDrift,
    Pattern::Spike,
    Pattern::NegativeResidual,
    Pattern::NonCollapse,
];

/// What [`residual_figure`] computes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResidualOptions {
    /// The logged metric (`val_loss` for the modded-nanogpt logs).
    pub metric: String,
    /// Names of the reference run(s); several are averaged on a common t̂ grid.
    pub reference: Vec<String>,
    /// Window and thresholds.
    pub config: ResidualConfig,
    /// Downsampling buckets per series.
    pub buckets: usize,
}

/// One run's residual.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResidual {
    /// The run.
    pub run: String,
    /// Its palette index.
    pub color: usize,
    /// The residual, with its flags (evidence and checks).
    pub residual: Residual,
}

/// The residual figure and the data behind its flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualFigure {
    /// The figure.
    pub spec: FigureSpec,
    /// Per run: S, the points, the flags.
    pub runs: Vec<RunResidual>,
    /// Runs that could not be compared, with the reason.
    pub errors: Vec<String>,
}

/// The reference a residual starts with: among the runs that have `metric`
/// on progress t̂ (at least two points — never a run without the metric),
/// the largest group of comparable runs (same x: steps or tokens, and the
/// same total within 1 %), and in it the first run. `None` when no run has
/// the metric.
pub fn default_reference(runs: &[LogRun], metric: &str) -> Option<String> {
    let mut groups: Vec<((super::axes::XAxis, f64), Vec<&LogRun>)> = Vec::new();
    for r in runs {
        let Ok(c) = progress_of(&r.series, metric) else {
            continue;
        };
        if c.points.len() < 2 {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(k, _)| k.0 == c.x_axis && (k.1 - c.total).abs() <= 0.01 * k.1.abs())
        {
            Some((_, members)) => members.push(r),
            None => groups.push(((c.x_axis, c.total), vec![r])),
        }
    }
    // The first of the largest groups (max_by_key keeps the last of equals, so compare reversed).
    let best = groups.iter().rev().max_by_key(|(_, m)| m.len())?;
    Some(best.1[0].name.clone())
}

/// The collapse residual L/S − ℓ_ref of every run in `runs` against the
/// reference (one run, or the mean of several), on progress t̂: one line per
/// run (a single reference run is left out: its residual is 0), the alignment
/// window shaded, and each flagged pattern as a shaded t̂ range plus a marker
/// on the run's curve where it starts. `Err` when the reference cannot be
/// built or no run can be compared.
pub fn residual_figure(runs: &[LogRun], opts: &ResidualOptions) -> Result<ResidualFigure, String> {
    let metric = &opts.metric;
    let refs: Vec<&LogRun> = runs
        .iter()
        .filter(|r| opts.reference.contains(&r.name))
        .collect();
    if refs.is_empty() {
        return Err("choose a reference run for the collapse residual".into());
    }
    let mut curves = Vec::new();
    for r in &refs {
        match progress_of(&r.series, metric) {
            Ok(c) => curves.push(c.points),
            Err(_) => {
                return Err(format!(
                    "reference {} has no `{metric}` on progress t̂",
                    r.name
                ))
            }
        }
    }
    let reference = Reference::from_runs(&curves).map_err(|e| format!("reference curve: {e}"))?;
    let ref_scale = timescale(&refs[0].series);
    let buckets = if opts.buckets == 0 {
        DEFAULT_BUCKETS
    } else {
        opts.buckets
    };
    let (w0, w1) = opts.config.window;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for r in runs {
        if refs.len() == 1 && refs[0].name == r.name {
            continue;
        }
        match progress_of(&r.series, metric)
            .and_then(|c| collapse_residual(&reference, &c.points, &opts.config))
        {
            Ok(mut residual) => {
                annotate_timescales(&mut residual, &timescale(&r.series), &ref_scale);
                out.push(RunResidual {
                    run: r.name.clone(),
                    color: r.color,
                    residual,
                })
            }
            Err(e) => errors.push(format!("{}: {e}", r.name)),
        }
    }
    if out.is_empty() {
        return Err(if errors.is_empty() {
            "no run besides the reference to compare".into()
        } else {
            format!("no residual: {}", errors.join("; "))
        });
    }
    let mut series = vec![SeriesSpec::new(
        format!("alignment window t̂ ∈ [{}, {}]", fmt_g(w0), fmt_g(w1)),
        vec![[w0, w1]],
        Style::VSpan,
        5,
    )];
    let (mut drawn, mut total) = (0, 0);
    for r in &out {
        let pts = to_pairs(&r.residual.points);
        let d = min_max_downsample(&pts, buckets);
        drawn += d.len();
        total += pts.len();
        let mut s = SeriesSpec::new(&r.run, d, Style::Line, r.color);
        s.points_total = Some(pts.len());
        series.push(s);
    }
    for p in PATTERNS {
        let flagged: Vec<(&RunResidual, f64, f64)> = out
            .iter()
            .flat_map(|r| {
                r.residual
                    .flags
                    .iter()
                    .filter(|f| f.pattern == p)
                    .map(move |f| (r, f.from, f.to))
            })
            .collect();
        if flagged.is_empty() {
            continue;
        }
        // Shading stops at the window's edge so the window stays visible; a
        // flag inside the window keeps only its marker.
        let spans: Vec<[f64; 2]> = flagged
            .iter()
            .filter_map(|(_, a, b)| {
                let (a, b) = if *a < w1 && *b > w0 {
                    (w1, *b)
                } else {
                    (*a, *b)
                };
                (b > a || (b == a && (a > w1 || a < w0))).then_some([a, b])
            })
            .collect();
        if !spans.is_empty() {
            series.push(SeriesSpec::new(
                pattern_label(p),
                spans,
                Style::VSpan,
                pattern_color(p),
            ));
        }
        let marks = flagged
            .iter()
            .filter_map(|(r, a, _)| {
                r.residual
                    .points
                    .iter()
                    .find(|q| q.0 >= *a)
                    .map(|q| [q.0, q.1])
            })
            .collect();
        series.push(SeriesSpec::new(
            pattern_label(p),
            marks,
            Style::Markers,
            pattern_color(p),
        ));
    }
    // Before the window the curves are not aligned (warm-up): the y range fits
    // the residual from the window start on, so the flagged part is readable.
    let ys: Vec<f64> = out
        .iter()
        .flat_map(|r| r.residual.points.iter().filter(|p| p.0 >= w0).map(|p| p.1))
        .collect();
    let (lo, hi) = ys
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let early_outside = out
        .iter()
        .flat_map(|r| r.residual.points.iter())
        .any(|p| p.0 < w0 && (p.1 < lo || p.1 > hi));
    let y_range = (early_outside && hi > lo).then(|| {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    });
    let ref_names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let ref_label = if refs.len() == 1 {
        format!("reference {}", ref_names[0])
    } else {
        format!(
            "reference = mean of {} ({})",
            refs.len(),
            ref_names.join(", ")
        )
    };
    let s_list: Vec<String> = out
        .iter()
        .map(|r| format!("{} {}", r.run, fmt_g(r.residual.s)))
        .collect();
    let n_flags: usize = out.iter().map(|r| r.residual.flags.len()).sum();
    let mut caption = format!(
        "Collapse residual L/S − ℓ_ref of {metric} vs progress t̂, {ref_label} (final {metric} {} normalised to 1, so 0.01 = 1 %). \
         S fitted on the window t̂ ∈ [{}, {}]: S = {}. {n_flags} flagged pattern(s), shaded, with a marker where each starts. \
         {drawn} of {total} points drawn.",
        fmt_g(reference.final_raw),
        fmt_g(w0),
        fmt_g(w1),
        s_list.join(", "),
    );
    let scales: Vec<String> = std::iter::once(format!("reference {}", ref_scale.describe()))
        .chain(out.iter().filter_map(|r| {
            let t = timescale(&runs.iter().find(|x| x.name == r.run)?.series);
            (t.tau.is_some() || t.tpp.is_some()).then(|| format!("{} {}", r.run, t.describe()))
        }))
        .collect();
    if ref_scale.tau.is_some() || ref_scale.tpp.is_some() || scales.len() > 1 {
        caption.push_str(&format!(
            " AdamW timescale and tokens per parameter: {}.",
            scales.join("; ")
        ));
    }
    if y_range.is_some() {
        caption.push_str(&format!(" The y range fits t̂ ≥ {}: the warm-up before the window reaches beyond it and is clipped.", fmt_g(w0)));
    }
    if !errors.is_empty() {
        caption.push_str(&format!(" Not compared: {}.", errors.join("; ")));
    }
    let spec = FigureSpec {
        kind: FigureKind::LossCurve,
        title: format!("Collapse residual of {metric}"),
        caption,
        x: Axis::linear("progress t̂"),
        y: Axis {
            label: format!("residual (× reference final {metric})"),
            scale: Scale::Linear,
            range: y_range,
        },
        series,
        sources: sources(
            &runs
                .iter()
                .filter(|r| {
                    out.iter().any(|o| o.run == r.name) || refs.iter().any(|x| x.name == r.name)
                })
                .collect::<Vec<_>>(),
        ),
    };
    Ok(ResidualFigure {
        spec,
        runs: out,
        errors,
    })
}

// ------------------------------------------------------------------ consolidation

/// The regimes shaded on the C(t) figure for these bounds: (label, [lo, hi],
/// palette index), labels made from the same bounds as the regimes. An open
/// end is 0 (below) or 1e300 (above): both reach the plot's edge. The
/// 10–20 gap (and the gap below a narrow ≈ 1 band) is left white.
pub fn regime_shades(bounds: &RegimeBounds) -> Vec<(String, [f64; 2], usize)> {
    [
        (Regime::SignalDominated, 1),
        (Regime::Consolidating, 2),
        (Regime::Balanced, 4),
        (Regime::NoiseDominated, 5),
    ]
    .iter()
    .filter_map(|&(r, color)| {
        let (lo, hi) = r.range(bounds)?;
        Some((
            r.label(bounds),
            [lo, if hi.is_finite() { hi } else { 1e300 }],
            color,
        ))
    })
    .collect()
}

/// The colour (palette index) of an alert's markers on the C(t) figure.
pub fn alert_color(kind: AlertKind) -> usize {
    match kind {
        AlertKind::SharpDrop => 6,
        AlertKind::GrokkingThreshold => 3,
        AlertKind::Stuck => 5,
        AlertKind::SharpMinimum => 1,
        AlertKind::KramersEscape => 0,
    }
}

const ALERT_KINDS: [AlertKind; 5] = [
    AlertKind::SharpDrop,
    AlertKind::GrokkingThreshold,
    AlertKind::Stuck,
    AlertKind::SharpMinimum,
    AlertKind::KramersEscape,
];

/// The C(t) figure, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsolidationFigure {
    /// `None` when no run has every field.
    pub spec: Option<FigureSpec>,
    /// One line per run that has no C(t), naming the missing field(s).
    pub messages: Vec<String>,
    /// Per run: its curve (points, alerts, conventions).
    pub curves: Vec<(String, ConsolidationCurve)>,
}

/// C(t) per run on a log y axis with the regimes shaded (labels from the
/// same bounds as the regimes; the ≈ 1 band's width is
/// [`ConsolidationConfig::near_one`]), the grokking threshold as a thin band
/// of its own, and a marker per alert where it fired; x = step. Runs without
/// `grad_norm`, `grad_var`, `lr`, `batch_size` or `n_params` get a message
/// naming the field. The caption names the variance convention (and says
/// when it is assumed), how D was obtained, α_opt = 2D/λ_max where λ_max is
/// logged, and why the values are where they are.
pub fn consolidation_figure(
    runs: &[LogRun],
    config: &ConsolidationConfig,
    buckets: usize,
) -> ConsolidationFigure {
    let buckets = if buckets == 0 {
        DEFAULT_BUCKETS
    } else {
        buckets
    };
    let mut messages = Vec::new();
    let mut lines = Vec::new();
    let mut used = Vec::new();
    let mut curves = Vec::new();
    let mut conventions: Vec<String> = Vec::new();
    let (mut drawn, mut total, mut skipped_rows) = (0, 0, 0);
    for r in runs {
        match consolidation_ratio(&r.series, config) {
            Ok(c) if !c.points.is_empty() => {
                let pts: Vec<[f64; 2]> = c.points.iter().map(|p| [p.step, p.c]).collect();
                let d = min_max_downsample(&pts, buckets);
                drawn += d.len();
                total += pts.len();
                skipped_rows += c.skipped_zero_noise;
                let style = if d.len() <= 60 {
                    Style::LineMarkers
                } else {
                    Style::Line
                };
                let mut s = SeriesSpec::new(&r.name, d, style, r.color);
                s.points_total = Some(pts.len());
                lines.push(s);
                used.push(r);
                for text in [&c.convention, &c.noise] {
                    if !conventions.contains(text) {
                        conventions.push(text.clone());
                    }
                }
                curves.push((r.name.clone(), c));
            }
            Ok(_) => messages.push(format!(
                "{}: no row with D > 0 (the learning rate is 0 wherever grad_var is logged)",
                r.name
            )),
            Err(e) => messages.push(format!("{}: {e}", r.name)),
        }
    }
    if lines.is_empty() {
        return ConsolidationFigure {
            spec: None,
            messages,
            curves,
        };
    }
    let bounds = curves[0].1.bounds;
    let g = config.alerts.grokking;
    let mut series: Vec<SeriesSpec> = regime_shades(&bounds)
        .into_iter()
        .map(|(name, range, color)| SeriesSpec::new(name, vec![range], Style::HSpan, color))
        .collect();
    series.push(SeriesSpec::new(
        format!("grokking threshold C = {}", fmt_g(g)),
        vec![[g / 1.03, g * 1.03]],
        Style::HSpan,
        3,
    ));
    series.extend(lines);
    for kind in ALERT_KINDS {
        let marks: Vec<[f64; 2]> = curves
            .iter()
            .flat_map(|(_, c)| {
                c.alerts
                    .iter()
                    .filter(move |a| a.kind == kind)
                    .filter_map(|a| {
                        c.points
                            .iter()
                            .find(|p| p.step == a.step)
                            .map(|p| [p.step, p.c])
                    })
            })
            .collect();
        if !marks.is_empty() {
            series.push(SeriesSpec::new(
                kind.label(),
                marks,
                Style::Markers,
                alert_color(kind),
            ));
        }
    }
    let labels: Vec<String> = regime_shades(&bounds)
        .into_iter()
        .map(|(l, ..)| l)
        .collect();
    let mut caption = format!(
        "Consolidation ratio C(t) = ‖∇L‖² / (2·D·d), D = α²σ²/(2B), from grad_norm, grad_var, lr, batch_size and n_params, vs step, {} run(s); {}. \
         Regimes shaded: {} (the ≈ 1 band's half-width is {}); the grokking threshold C = {} is the thin band. {drawn} of {total} points drawn.",
        used.len(),
        conventions.join("; "),
        labels.join(", "),
        fmt_g(config.near_one),
        fmt_g(g),
    );
    let n_alerts: usize = curves.iter().map(|(_, c)| c.alerts.len()).sum();
    caption.push_str(&format!(" {n_alerts} alert(s), marked where they fired."));
    for (name, c) in &curves {
        if !c.scale_note.is_empty() {
            caption.push_str(&format!(" {name}: {}", c.scale_note));
        }
        let opt: Vec<f64> = c.points.iter().filter_map(|p| p.alpha_opt).collect();
        if let (Some(first), Some(last)) = (opt.first(), opt.last()) {
            caption.push_str(&format!(
                " {name}: α_opt = 2D/λ_max from {} (first) to {} (last).",
                fmt_g(*first),
                fmt_g(*last)
            ));
        }
        for n in &c.notes {
            caption.push_str(&format!(" {name}: {n}."));
        }
    }
    if skipped_rows > 0 {
        caption.push_str(&format!(
            " {skipped_rows} row(s) with lr = 0 (D = 0, C infinite) left out."
        ));
    }
    if !messages.is_empty() {
        caption.push_str(&format!(" Not drawn: {}.", messages.join("; ")));
    }
    ConsolidationFigure {
        spec: Some(FigureSpec {
            kind: FigureKind::LossCurve,
            title: "Consolidation ratio C(t)".into(),
            caption,
            x: Axis::linear("step"),
            y: Axis::log("C(t)"),
            series,
            sources: sources(&used),
        }),
        messages,
        curves,
    }
}

// ------------------------------------------------------------------ health

/// The health timeline and the reports behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthFigure {
    /// `None` when no rule fired anywhere.
    pub spec: Option<FigureSpec>,
    /// Per run: events, quiet and not-applicable rules.
    pub reports: Vec<HealthReport>,
}

/// Evaluates `rules` on every run and draws where they fired: y = the run's
/// row (0, 1, … in `runs` order), x = step; one marker series per rule (its
/// colour = its place in `rules`), a marker at the start and the end of each
/// range where it fired.
pub fn health_figure(runs: &[LogRun], rules: &[Rule]) -> HealthFigure {
    let reports: Vec<HealthReport> = runs
        .iter()
        .map(|r| evaluate(rules, &r.series, &r.name))
        .collect();
    let mut series = Vec::new();
    for (k, rule) in rules.iter().enumerate() {
        let mut pts = Vec::new();
        for (row, rep) in reports.iter().enumerate() {
            for e in rep.events.iter().filter(|e| e.rule == rule.name) {
                for r in &e.ranges {
                    pts.push([r[0], row as f64]);
                    if r[1] != r[0] {
                        pts.push([r[1], row as f64]);
                    }
                }
            }
        }
        if !pts.is_empty() {
            series.push(SeriesSpec::new(
                format!("{} ({:?})", rule.name, rule.level).to_lowercase(),
                pts,
                Style::Markers,
                k,
            ));
        }
    }
    if series.is_empty() {
        return HealthFigure {
            spec: None,
            reports,
        };
    }
    let rows: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} = {}", r.name))
        .collect();
    let xs: Vec<&str> = reports.iter().map(|r| r.x.as_str()).collect();
    let x_label = if xs.iter().all(|x| *x == "step") {
        "step".to_string()
    } else {
        "step (tokens or row where a log has no step)".into()
    };
    let fired: usize = reports.iter().map(|r| r.events.len()).sum();
    let na: usize = reports.iter().map(|r| r.not_applicable.len()).sum();
    let n = runs.len() as f64;
    let caption = format!(
        "Health rules: where each fired, one row per run ({}). A marker at the start and end of every range of consecutive firings. \
         {fired} rule firing(s) over {} run(s); {na} rule×run pair(s) not applicable (metric not logged).",
        rows.join(", "),
        runs.len(),
    );
    HealthFigure {
        spec: Some(FigureSpec {
            kind: FigureKind::LossCurve,
            title: "Health timeline".into(),
            caption,
            x: Axis::linear(x_label),
            y: Axis {
                label: "run (row)".into(),
                scale: Scale::Linear,
                range: Some((-0.5, n - 0.5)),
            },
            series,
            sources: sources(&runs.iter().collect::<Vec<_>>()),
        }),
        reports,
    }
}

// ------------------------------------------------------------------ rank vs loss

/// What [`rank_loss_figures`] draws.
#[derive(Debug, Clone, PartialEq)]
pub struct RankLossOptions {
    /// The PR metric (`mean_pr` in the study's results.json).
    pub pr_metric: String,
    /// The loss metric.
    pub loss_metric: String,
    /// Shared x.
    pub x: XAxis,
    /// What counts as a sudden drop.
    pub transitions: TransitionConfig,
}

impl Default for RankLossOptions {
    fn default() -> Self {
        RankLossOptions {
            pr_metric: "mean_pr".into(),
            loss_metric: "loss".into(),
            x: XAxis::Tokens,
            transitions: TransitionConfig::default(),
        }
    }
}

/// Two figures sharing x (same range): PR and loss, with the PR phase transitions.
#[derive(Debug, Clone, PartialEq)]
pub struct RankLossFigures {
    /// PR trajectory per run, drops shaded.
    pub rank: FigureSpec,
    /// Loss per run on the same x range, the same drops shaded.
    pub loss: FigureSpec,
    /// (run, drop) for every sudden drop.
    pub transitions: Vec<(String, Transition)>,
}

/// PR trajectory and loss of every run that logs `pr_metric`, as two figures
/// with the same x range; each sudden PR drop ([`sudden_drops`]) is shaded
/// from the point before it to the point after it on both. `Err` when no run
/// logs the PR metric on this x.
pub fn rank_loss_figures(
    runs: &[LogRun],
    opts: &RankLossOptions,
) -> Result<RankLossFigures, String> {
    let mut pr_series = Vec::new();
    let mut loss_series = Vec::new();
    let mut transitions = Vec::new();
    let mut used = Vec::new();
    let mut xs = Vec::new();
    for r in runs {
        let Some(pr) = points_on(&r.series, &opts.pr_metric, opts.x).filter(|p| !p.is_empty())
        else {
            continue;
        };
        used.push(r);
        xs.extend(pr.iter().map(|p| p.0));
        for t in sudden_drops(&pr, &opts.transitions) {
            transitions.push((r.name.clone(), t));
        }
        pr_series.push(SeriesSpec::new(
            &r.name,
            to_pairs(&pr),
            Style::LineMarkers,
            r.color,
        ));
        if let Some(loss) =
            points_on(&r.series, &opts.loss_metric, opts.x).filter(|p| !p.is_empty())
        {
            xs.extend(loss.iter().map(|p| p.0));
            let style = if loss.len() <= 60 {
                Style::LineMarkers
            } else {
                Style::Line
            };
            let mut s = SeriesSpec::new(
                &r.name,
                min_max_downsample(&to_pairs(&loss), DEFAULT_BUCKETS),
                style,
                r.color,
            );
            s.points_total = Some(loss.len());
            loss_series.push(s);
        }
    }
    if used.is_empty() {
        return Err(format!("no run log has `{}` against {}: rank vs loss needs a PR trajectory (e.g. the study's results.json)", opts.pr_metric, opts.x.label()));
    }
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = (lo.is_finite() && hi > lo).then(|| {
        let pad = (hi - lo) * 0.03;
        (lo - pad, hi + pad)
    });
    if !transitions.is_empty() {
        let spans: Vec<[f64; 2]> = transitions.iter().map(|(_, t)| [t.x_before, t.x]).collect();
        for list in [&mut pr_series, &mut loss_series] {
            list.insert(
                0,
                SeriesSpec::new("sudden PR drop", spans.clone(), Style::VSpan, 6),
            );
        }
    }
    let drops: Vec<String> = transitions
        .iter()
        .map(|(r, t)| {
            format!(
                "{r}: {} → {} between {} and {}",
                fmt_g(t.y_before),
                fmt_g(t.y_after),
                fmt_g(t.x_before),
                fmt_g(t.x)
            )
        })
        .collect();
    let drop_text = if drops.is_empty() {
        "No sudden PR drop".to_string()
    } else {
        format!("Sudden PR drops (shaded on both): {}", drops.join("; "))
    };
    let rule = format!(
        "a drop > {} × the median |ΔPR| between consecutive points",
        fmt_g(opts.transitions.k)
    );
    let x_axis = |label: &str| Axis {
        label: label.to_string(),
        scale: Scale::Linear,
        range,
    };
    let rank = FigureSpec {
        kind: FigureKind::Trajectory,
        title: format!("{} vs {}", opts.pr_metric, opts.x.label()),
        caption: format!(
            "{} per run vs {}, same x range as the loss below. {drop_text} ({rule}).",
            opts.pr_metric,
            opts.x.label()
        ),
        x: x_axis(opts.x.label()),
        y: Axis::linear(&opts.pr_metric),
        series: pr_series,
        sources: sources(&used),
    };
    let loss = FigureSpec {
        kind: FigureKind::LossCurve,
        title: format!("{} vs {}", opts.loss_metric, opts.x.label()),
        caption: format!(
            "{} per run vs {}, same x range as the PR above. {drop_text}.",
            opts.loss_metric,
            opts.x.label()
        ),
        x: x_axis(opts.x.label()),
        y: Axis::linear(&opts.loss_metric),
        series: loss_series,
        sources: sources(&used),
    };
    Ok(RankLossFigures {
        rank,
        loss,
        transitions,
    })
}

// ------------------------------------------------------------------ hover readout

fn fmt_exact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.4e}")
    } else {
        format!("{v:.5}")
    }
}

/// x values are mostly steps or token counts: print whole numbers whole
/// ("81920", not "81920.00000"), anything else as `fmt_exact`.
fn fmt_x(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        fmt_exact(v)
    }
}

/// The hover readout at data x = `x`: for every drawn data series (no spans,
/// no faint raw points) its point with the x nearest to `x`, as
/// "name: y at x-label x". `None` when no series has a point.
pub fn readout(spec: &FigureSpec, x: f64) -> Option<String> {
    let parts: Vec<String> = spec
        .series
        .iter()
        .filter(|s| !s.style.is_span() && !s.faint)
        .filter_map(|s| {
            let p = s
                .points
                .iter()
                .filter(|p| p[0].is_finite() && p[1].is_finite())
                .min_by(|a, b| (a[0] - x).abs().total_cmp(&(b[0] - x).abs()))?;
            Some(format!(
                "{}: {} at {} {}",
                s.name,
                fmt_exact(p[1]),
                spec.x.label,
                fmt_x(p[0])
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}
