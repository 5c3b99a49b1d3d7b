//! Gradient-geometry diagnostics of the DEQ/EP campaign notes (issue 18):
//! the metric names those logs use, a built-in rule set, and figures —
//! cosines on a shared [−1, 1] axis with zero marked, ratios on their own.
//!
//! | metric | what | kind |
//! | --- | --- | --- |
//! | `cos_ep_bptt` | cos(EP gradient, BPTT gradient) | cosine |
//! | `self_cos` | cosine of successive gradients | cosine |
//! | `cos_ce_jac` | cos(g_CE, g_jac) | cosine |
//! | `penalty_share` | ‖jr·g_jac‖ / ‖g_CE‖: the Jacobian penalty's share of the update | ratio |
//! | `cos_ce_total` | cos(g_CE, total update) | cosine |
//! | `non_normality` | ‖Jv − Jᵀv‖ / ‖Jv‖: how far J is from symmetric | ratio |

use super::axes::{points_on, XAxis};
use super::figures::LogRun;
use super::health::{Comparison, Level, Rule};
use crate::figures::downsample::min_max_downsample;
use crate::figures::spec::{Axis, FigureKind, FigureSpec, Scale, SeriesSpec, Style};
use crate::formats::logs::Series;

/// Whether a metric is a cosine (drawn on [−1, 1]) or a ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeometryKind {
    /// A cosine in [−1, 1].
    Cosine,
    /// A non-negative ratio.
    Ratio,
}

/// One known gradient-geometry metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeometryMetric {
    /// The canonical name.
    pub name: &'static str,
    /// Other names logs use for it.
    pub aliases: &'static [&'static str],
    /// The label on figures.
    pub label: &'static str,
    /// Cosine or ratio.
    pub kind: GeometryKind,
}

/// The known metrics, in the order figures draw them.
pub const GEOMETRY_METRICS: [GeometryMetric; 6] = [
    GeometryMetric {
        name: "cos_ep_bptt",
        aliases: &["cos_ep_vs_bptt", "cos(EP,BPTT)", "cos_EP_BPTT"],
        label: "cos(EP, BPTT)",
        kind: GeometryKind::Cosine,
    },
    GeometryMetric {
        name: "self_cos",
        aliases: &["grad_self_cos", "self-cos"],
        label: "self-cos",
        kind: GeometryKind::Cosine,
    },
    GeometryMetric {
        name: "cos_ce_jac",
        aliases: &["cos(g_CE,g_jac)", "cos_gce_gjac"],
        label: "cos(g_CE, g_jac)",
        kind: GeometryKind::Cosine,
    },
    GeometryMetric {
        name: "penalty_share",
        aliases: &["jac_ratio", "jr_gjac_over_gce", "|jr*g_jac|/|g_CE|"],
        label: "|jr·g_jac|/|g_CE|",
        kind: GeometryKind::Ratio,
    },
    GeometryMetric {
        name: "cos_ce_total",
        aliases: &["cos(g_CE,total)", "cos_gce_total"],
        label: "cos(g_CE, total)",
        kind: GeometryKind::Cosine,
    },
    GeometryMetric {
        name: "non_normality",
        aliases: &["non_normality_ratio", "nonnormality"],
        label: "|Jv − Jᵀv|/|Jv|",
        kind: GeometryKind::Ratio,
    },
];

impl GeometryMetric {
    /// The name this metric has in `series` (its name or an alias), if logged.
    pub fn resolve(&self, series: &Series) -> Option<&'static str> {
        std::iter::once(&self.name)
            .chain(self.aliases.iter())
            .find(|n| series.metric(n).is_some())
            .copied()
    }
}

/// The built-in gradient-geometry rules (our defaults, each with its reason):
/// cos(EP, BPTT) < 0 (critical), self-cos < 0, cos(g_CE, g_jac) < 0,
/// penalty share > 1 (most of the update is the penalty), cos(g_CE, total) < 0
/// (critical), non-normality > 0.5.
pub fn geometry_rules() -> Vec<Rule> {
    use Comparison::{Gt, Lt};
    let rule = |name: &str,
                m: &GeometryMetric,
                cmp: Comparison,
                threshold: f64,
                level: Level,
                action: &str| {
        Rule {
            name: name.into(),
            metric: m.name.into(),
            comparison: cmp,
            threshold,
            level,
            aggregation: Default::default(),
            aliases: Vec::new(),
            action: String::new(),
        }
        .with(m.aliases, action)
    };
    let [ep, selfc, jac, share, total, nn] = &GEOMETRY_METRICS;
    vec![
        rule(
            "EP against BPTT",
            ep,
            Lt,
            0.0,
            Level::Critical,
            "the EP gradient points against BPTT's: check the fixed point's convergence and β",
        ),
        rule(
            "gradient flips",
            selfc,
            Lt,
            0.0,
            Level::Warn,
            "successive gradients point against each other: the step oscillates; lower the LR",
        ),
        rule("penalty against CE", jac, Lt, 0.0, Level::Warn, "the Jacobian penalty's gradient fights the CE gradient"),
        rule(
            "penalty dominates",
            share,
            Gt,
            1.0,
            Level::Warn,
            "most of the update is the penalty (|jr·g_jac| > |g_CE|): lower the penalty weight jr",
        ),
        rule("update against CE", total, Lt, 0.0, Level::Critical, "the total update goes against the CE gradient: the loss cannot fall"),
        rule(
            "J far from symmetric",
            nn,
            Gt,
            0.5,
            Level::Warn,
            "J is far from symmetric: EP's symmetric-Jacobian assumption fails and its gradient is biased",
        ),
    ]
}

/// The gradient-geometry figures.
#[derive(Debug, Clone, PartialEq)]
pub struct GeometryFigures {
    /// Cosines on [−1, 1], zero marked; `None` when no run logs one.
    pub cosines: Option<FigureSpec>,
    /// Ratios with 1 marked; `None` when no run logs one.
    pub ratios: Option<FigureSpec>,
    /// Runs that log none of the metrics (or cannot be drawn on this x).
    pub messages: Vec<String>,
}

/// Every known gradient-geometry metric of every run against `x` (step or
/// cumulative lr): one figure of the cosines on a fixed [−1, 1] axis with a
/// thin band at 0, one of the ratios with a thin band at 1. A series per
/// (run, metric), named "run: label".
pub fn geometry_figures(runs: &[LogRun], x: XAxis) -> GeometryFigures {
    let mut cos = Vec::new();
    let mut ratio = Vec::new();
    let mut messages = Vec::new();
    let mut used: Vec<&LogRun> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let mut any = false;
        for (k, m) in GEOMETRY_METRICS.iter().enumerate() {
            let Some(name) = m.resolve(&r.series) else {
                continue;
            };
            let Some(pts) = points_on(&r.series, name, x).filter(|p| !p.is_empty()) else {
                continue;
            };
            any = true;
            let pairs: Vec<[f64; 2]> = pts.iter().map(|&(a, b)| [a, b]).collect();
            let mut s = SeriesSpec::new(
                format!("{}: {}", r.name, m.label),
                min_max_downsample(&pairs, super::figures::DEFAULT_BUCKETS),
                Style::Line,
                k + 6 * i,
            );
            s.points_total = Some(pairs.len());
            match m.kind {
                GeometryKind::Cosine => cos.push(s),
                GeometryKind::Ratio => ratio.push(s),
            }
        }
        if any {
            used.push(r);
        } else {
            messages.push(format!(
                "{}: no gradient-geometry metric (cos_ep_bptt, self_cos, cos_ce_jac, penalty_share, cos_ce_total, non_normality) on {}",
                r.name,
                x.label()
            ));
        }
    }
    let sources: Vec<String> = {
        let mut s: Vec<String> = used.iter().map(|r| r.source.clone()).collect();
        s.dedup();
        s
    };
    let figure =
        |title: &str, caption: String, y: Axis, band: SeriesSpec, lines: Vec<SeriesSpec>| {
            FigureSpec {
                kind: FigureKind::LossCurve,
                title: title.into(),
                caption,
                x: Axis::linear(x.label()),
                y,
                series: std::iter::once(band).chain(lines).collect(),
                sources: sources.clone(),
            }
        };
    let cosines = (!cos.is_empty()).then(|| {
        figure(
            "Gradient geometry: cosines",
            format!(
                "Cosines of the DEQ/EP gradients vs {} on a shared [−1, 1] axis; the thin band marks 0 (orthogonal): below it the two directions disagree. {} series.",
                x.label(),
                cos.len()
            ),
            Axis { label: "cosine".into(), scale: Scale::Linear, range: Some((-1.05, 1.05)) },
            SeriesSpec::new("zero", vec![[-0.01, 0.01]], Style::HSpan, 7),
            cos,
        )
    });
    let ratios = (!ratio.is_empty()).then(|| {
        figure(
            "Gradient geometry: ratios",
            format!(
                "Penalty share |jr·g_jac|/|g_CE| and non-normality |Jv − Jᵀv|/|Jv| vs {}; the thin band marks 1 (a penalty share above it means most of the update is the penalty). {} series.",
                x.label(),
                ratio.len()
            ),
            Axis::linear("ratio"),
            SeriesSpec::new("one", vec![[0.99, 1.01]], Style::HSpan, 7),
            ratio,
        )
    });
    GeometryFigures {
        cosines,
        ratios,
        messages,
    }
}
