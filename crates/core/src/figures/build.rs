//! Figure builders: plain analysis data in, a [`FigureSpec`] out. The analysis
//! supplies the caption (metric variant, aggregation, eval batch); builders add
//! what they know (points drawn, downsampling).

use super::downsample::min_max_downsample;
use super::spec::{Axis, FigureKind, FigureSpec, Scale, SeriesSpec, Style};

/// One run's `[x, y]` points (x = training tokens, step, …).
#[derive(Clone, Debug, PartialEq)]
pub struct RunPoints {
    pub run: String,
    /// Palette index, stable per run across figures.
    pub color: usize,
    pub points: Vec<[f64; 2]>,
}

/// One run's singular values, descending.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpectrum {
    pub run: String,
    pub color: usize,
    pub singular_values: Vec<f64>,
}

/// One run's per-layer values for grouped bars, with optional intervals.
#[derive(Clone, Debug, PartialEq)]
pub struct RunBars {
    pub run: String,
    pub color: usize,
    /// Value of layer `l` at index `l`.
    pub values: Vec<f64>,
    /// `(lo, hi)` per layer (min–max over heads, or a CI), same length as `values`.
    pub intervals: Option<Vec<(f64, f64)>>,
}

/// A curve with an optional band, e.g. a surgery strategy (random: mean with
/// a min–max band over seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct BandCurve {
    pub name: String,
    pub color: usize,
    pub points: Vec<[f64; 2]>,
    /// `[x, lo, hi]`.
    pub band: Option<Vec<[f64; 3]>>,
}

fn sorted_by_x(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]));
    p
}

/// Figure 1: `metric_label` vs `x_label` (e.g. "training tokens"), one line per
/// run with a marker at each checkpoint.
pub fn trajectory(
    metric_label: &str,
    x_label: &str,
    runs: &[RunPoints],
    caption: &str,
    sources: Vec<String>,
) -> FigureSpec {
    FigureSpec {
        kind: FigureKind::Trajectory,
        title: format!("{metric_label} vs {x_label}"),
        caption: caption.to_owned(),
        x: Axis::linear(x_label),
        y: Axis::linear(metric_label),
        series: runs
            .iter()
            .map(|r| SeriesSpec::new(&r.run, sorted_by_x(&r.points), Style::LineMarkers, r.color))
            .collect(),
        sources,
    }
}

/// Figure 2: σ_i/σ_1 vs i (1-based) per run; `log_y` for a log y axis.
/// A run whose σ_1 is 0 or not finite gives non-finite ratios, which the
/// drawing skips and the drawn caption counts.
pub fn waterfall(
    runs: &[RunSpectrum],
    log_y: bool,
    caption: &str,
    sources: Vec<String>,
) -> FigureSpec {
    let series = runs
        .iter()
        .map(|r| {
            let s1 = r.singular_values.first().copied().unwrap_or(f64::NAN);
            let points: Vec<[f64; 2]> = r
                .singular_values
                .iter()
                .enumerate()
                .map(|(i, s)| [(i + 1) as f64, if s1 > 0.0 { s / s1 } else { f64::NAN }])
                .collect();
            // Markers stay readable up to a few dozen values per run.
            let style = if points.len() <= 48 {
                Style::LineMarkers
            } else {
                Style::Line
            };
            SeriesSpec::new(&r.run, points, style, r.color)
        })
        .collect();
    FigureSpec {
        kind: FigureKind::Waterfall,
        title: "Singular-value waterfall".to_owned(),
        caption: caption.to_owned(),
        x: Axis::linear("index i (1 = largest)"),
        y: Axis {
            label: "σ_i / σ_1".to_owned(),
            scale: if log_y { Scale::Log } else { Scale::Linear },
            range: None,
        },
        series,
        sources,
    }
}

/// Figure 3: `metric_label` per layer, runs side by side, with interval bars.
pub fn layer_bars(
    metric_label: &str,
    runs: &[RunBars],
    caption: &str,
    sources: Vec<String>,
) -> FigureSpec {
    let series = runs
        .iter()
        .map(|r| {
            let points = r
                .values
                .iter()
                .enumerate()
                .map(|(l, v)| [l as f64, *v])
                .collect();
            let mut s = SeriesSpec::new(&r.run, points, Style::Bars, r.color);
            s.error_bars = r.intervals.as_ref().map(|iv| {
                iv.iter()
                    .enumerate()
                    .map(|(l, (lo, hi))| [l as f64, *lo, *hi])
                    .collect()
            });
            s
        })
        .collect();
    FigureSpec {
        kind: FigureKind::LayerBars,
        title: format!("{metric_label} per layer"),
        caption: caption.to_owned(),
        x: Axis::linear("layer"),
        y: Axis::linear(metric_label),
        series,
        sources,
    }
}

/// Figure 4: held-out loss vs % of key dimensions pruned, one curve per strategy.
pub fn surgery(curves: &[BandCurve], caption: &str, sources: Vec<String>) -> FigureSpec {
    FigureSpec {
        kind: FigureKind::Surgery,
        title: "Held-out loss vs key dimensions pruned".to_owned(),
        caption: caption.to_owned(),
        x: Axis::linear("key dimensions removed, m/d_k (%)"),
        y: Axis::linear("held-out loss (nats/token)"),
        series: curves
            .iter()
            .map(|c| {
                let mut s =
                    SeriesSpec::new(&c.name, sorted_by_x(&c.points), Style::LineMarkers, c.color);
                s.band = c.band.clone();
                s
            })
            .collect(),
        sources,
    }
}

/// Figure 5: a scatter, one colour and marker per group (e.g. per layer).
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[RunPoints],
    caption: &str,
    sources: Vec<String>,
) -> FigureSpec {
    FigureSpec {
        kind: FigureKind::Scatter,
        title: title.to_owned(),
        caption: caption.to_owned(),
        x: Axis::linear(x_label),
        y: Axis::linear(y_label),
        series: groups
            .iter()
            .map(|g| SeriesSpec::new(&g.run, g.points.clone(), Style::Markers, g.color))
            .collect(),
        sources,
    }
}

/// Loss curves of many runs, each min/max-downsampled to at most
/// `4 · buckets` points; the caption gets "N of M points drawn" and the
/// number of non-finite values dropped.
pub fn loss_curves(
    y_label: &str,
    x_label: &str,
    runs: &[RunPoints],
    buckets: usize,
    log_y: bool,
    caption: &str,
    sources: Vec<String>,
) -> FigureSpec {
    let mut drawn = 0;
    let mut total = 0;
    let mut non_finite = 0;
    let series: Vec<SeriesSpec> = runs
        .iter()
        .map(|r| {
            non_finite += r
                .points
                .iter()
                .filter(|p| !(p[0].is_finite() && p[1].is_finite()))
                .count();
            let points = min_max_downsample(&r.points, buckets);
            drawn += points.len();
            total += r.points.len();
            let mut s = SeriesSpec::new(&r.run, points, Style::Line, r.color);
            s.points_total = Some(r.points.len());
            s
        })
        .collect();
    let mut caption = caption.trim().to_owned();
    if !caption.is_empty() && !caption.ends_with('.') {
        caption.push('.');
    }
    if !caption.is_empty() {
        caption.push(' ');
    }
    caption.push_str(&format!("{drawn} of {total} points drawn"));
    if drawn < total {
        caption.push_str(&format!(
            " (min–max downsampled, {buckets} buckets per run)"
        ));
    }
    if non_finite > 0 {
        caption.push_str(&format!("; {non_finite} non-finite values dropped"));
    }
    caption.push('.');
    FigureSpec {
        kind: FigureKind::LossCurve,
        title: format!("{y_label} vs {x_label}"),
        caption,
        x: Axis::linear(x_label),
        y: Axis {
            label: y_label.to_owned(),
            scale: if log_y { Scale::Log } else { Scale::Linear },
            range: None,
        },
        series,
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waterfall_normalises_by_sigma_1() {
        let f = waterfall(
            &[RunSpectrum {
                run: "A1".into(),
                color: 0,
                singular_values: vec![4.0, 2.0, 1.0],
            }],
            true,
            "",
            vec![],
        );
        assert_eq!(
            f.series[0].points,
            vec![[1.0, 1.0], [2.0, 0.5], [3.0, 0.25]]
        );
        assert_eq!(f.y.scale, Scale::Log);
    }

    #[test]
    fn loss_curves_say_how_many_points_were_drawn() {
        let pts: Vec<[f64; 2]> = (0..1000).map(|i| [i as f64, (i % 7) as f64]).collect();
        let f = loss_curves(
            "loss",
            "step",
            &[RunPoints {
                run: "A1".into(),
                color: 0,
                points: pts,
            }],
            10,
            false,
            "EMA off",
            vec![],
        );
        assert!(f.series[0].points.len() <= 40);
        assert_eq!(f.series[0].points_total, Some(1000));
        assert!(
            f.caption.contains(&format!(
                "{} of 1000 points drawn",
                f.series[0].points.len()
            )),
            "{}",
            f.caption
        );
    }
}
