//! The x-axes a loss curve can be drawn against, and the debiased EMA.
//!
//! `shared/METRICS.md`, "Loss-curve diagnostics": progress t̂ = step / total
//! steps (or tokens / total tokens); cumulative learning rate ∫lr = Σ lr over
//! steps; smoothing by a debiased exponential moving average, the raw points
//! staying visible.

use crate::formats::logs::Series;

/// What a curve's x means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XAxis {
    /// The logged step (the row index where a row has no step).
    Step,
    /// Tokens seen.
    Tokens,
    /// Progress t̂ = x / total, see [`progress_points`].
    Progress,
    /// Cumulative learning rate Σ lr, see [`cumulative_lr`].
    CumulativeLr,
    /// Wall-clock time (Unix seconds, drawn as UTC dates), see [`wall_times`].
    WallTime,
    /// Minutes since the run's first timed row, see [`relative_minutes`].
    RelativeTime,
}

impl XAxis {
    /// Axis label for figures and tables.
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Tokens => "tokens",
            XAxis::Progress => "progress t̂",
            XAxis::CumulativeLr => "cumulative lr Σlr",
            XAxis::WallTime => "wall time (UTC)",
            XAxis::RelativeTime => "time since start (min)",
        }
    }
}

/// Where the total behind t̂ came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalSource {
    /// The log states it (`constants["total_steps"]`, from `step:S/TOTAL` or a JSONL header).
    Logged,
    /// Not stated: the last x of the curve is taken as the total, so the last point has t̂ = 1.
    LastPoint,
}

/// A metric against progress t̂.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressCurve {
    /// `(t̂, value)` for every finite value, in log order.
    pub points: Vec<(f64, f64)>,
    /// The x each point came from (step, or tokens when the log has no steps).
    pub x: Vec<f64>,
    /// The total x divides by.
    pub total: f64,
    /// Where `total` came from.
    pub total_source: TotalSource,
    /// Which x was divided: [`XAxis::Step`] or [`XAxis::Tokens`].
    pub x_axis: XAxis,
}

impl ProgressCurve {
    /// Whether the log stops before its stated end (online mode): the total is
    /// logged and the last point's t̂ is below 1.
    pub fn is_partial(&self) -> bool {
        self.total_source == TotalSource::Logged && self.points.last().is_some_and(|p| p.0 < 1.0)
    }
}

/// The total number of steps the log states (`constants["total_steps"]`), if positive.
pub fn logged_total_steps(series: &Series) -> Option<f64> {
    series
        .constants
        .get("total_steps")
        .and_then(serde_json::Value::as_f64)
        .filter(|t| t.is_finite() && *t > 0.0)
}

/// The total number of tokens the log states (`total_tokens` or `tokens_total`), if positive.
pub fn logged_total_tokens(series: &Series) -> Option<f64> {
    ["total_tokens", "tokens_total"]
        .iter()
        .find_map(|k| series.constants.get(*k).and_then(serde_json::Value::as_f64))
        .filter(|t| t.is_finite() && *t > 0.0)
}

/// `metric` against progress t̂ = x / total. x is the step when the log has
/// steps (total = the logged `total_steps`), else tokens (total = the logged
/// total tokens), else the row index; without a logged total the largest x
/// is the total. `None` when the metric has no finite value or the total is
/// not positive.
pub fn progress_points(series: &Series, metric: &str) -> Option<ProgressCurve> {
    let (raw, logged, x_axis) = if series.has_steps() || !series.has_tokens() {
        (
            series.points(metric),
            logged_total_steps(series),
            XAxis::Step,
        )
    } else {
        (
            series.points_vs_tokens(metric),
            logged_total_tokens(series),
            XAxis::Tokens,
        )
    };
    if raw.is_empty() {
        return None;
    }
    let (total, total_source) = match logged {
        Some(t) => (t, TotalSource::Logged),
        None => (
            raw.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
            TotalSource::LastPoint,
        ),
    };
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    Some(ProgressCurve {
        points: raw.iter().map(|&(x, y)| (x / total, y)).collect(),
        x: raw.iter().map(|p| p.0).collect(),
        total,
        total_source,
        x_axis,
    })
}

/// Cumulative learning rate per row: ∫lr = Σ lr over steps, up to and
/// including this row. Each logged lr counts for the steps since the previous
/// row that logged one (Δstep; 1 for the first, and 1 per row where the log
/// has no steps), so a log that writes lr every step gives the plain sum and
/// a log that writes it every 10 steps is not undercounted. Rows before the
/// first logged lr are `None`; rows without lr carry the sum so far. `None`
/// when the log has no `lr` column (or no finite lr).
pub fn cumulative_lr(series: &Series) -> Option<Vec<Option<f64>>> {
    let lr = series.metric("lr")?;
    let mut out = Vec::with_capacity(lr.len());
    let mut sum: Option<f64> = None;
    let mut prev_step: Option<f64> = None;
    for (i, v) in lr.iter().enumerate() {
        let step = series.step.get(i).copied().flatten();
        if let Some(v) = v.filter(|v| v.is_finite()) {
            let weight = match (step, prev_step) {
                (Some(s), Some(p)) if s > p => s - p,
                _ => 1.0,
            };
            sum = Some(sum.unwrap_or(0.0) + v * weight);
            if step.is_some() {
                prev_step = step;
            }
        }
        out.push(sum);
    }
    out.iter().any(Option::is_some).then_some(out)
}

/// `(x, value)` of every finite value of `metric` on the chosen axis; rows
/// without an x on that axis are left out. `None` when the axis cannot be
/// built from this log (no tokens, no lr, no total) or the metric is absent.
pub fn points_on(series: &Series, metric: &str, axis: XAxis) -> Option<Vec<(f64, f64)>> {
    series.metric(metric)?;
    match axis {
        XAxis::Step => Some(series.points(metric)),
        XAxis::Tokens => series.has_tokens().then(|| series.points_vs_tokens(metric)),
        XAxis::Progress => progress_points(series, metric).map(|c| c.points),
        XAxis::WallTime | XAxis::RelativeTime => {
            let xs = if axis == XAxis::WallTime {
                wall_times(series)?
            } else {
                relative_minutes(series)?
            };
            let col = series.metric(metric)?;
            Some(
                col.iter()
                    .zip(&xs)
                    .filter_map(|(v, x)| Some(((*x)?, (*v).filter(|v| v.is_finite())?)))
                    .collect(),
            )
        }
        XAxis::CumulativeLr => {
            let cum = cumulative_lr(series)?;
            let col = series.metric(metric)?;
            Some(
                col.iter()
                    .zip(&cum)
                    .filter_map(|(v, x)| Some(((*x)?, (*v).filter(|v| v.is_finite())?)))
                    .collect(),
            )
        }
    }
}

/// Columns that hold wall-clock time, as the formats name them: TensorBoard
/// events (`wall_time`), W&B JSONL (`_timestamp`), CSV exports (`Wall time`).
const WALL_COLUMNS: [&str; 4] = ["wall_time", "_timestamp", "Wall time", "timestamp"];

/// Columns that hold time since the start, with their unit in seconds: W&B's
/// `_runtime`, modded-nanogpt's `train_time:…s` / `…ms` (the text reader
/// puts the unit in the name), the study's `elapsed_time`, TensorBoard CSV's
/// `Relative Time (Process)`.
const ELAPSED_COLUMNS: [(&str, f64); 7] = [
    ("_runtime", 1.0),
    ("train_time_s", 1.0),
    ("train_time_ms", 1e-3),
    ("elapsed_time", 1.0),
    ("elapsed_time_s", 1.0),
    ("Relative Time (Process)", 1.0),
    ("runtime", 1.0),
];

/// Unix seconds of 1990-01-01 and 2200-01-01: a wall-clock column outside
/// these (read as seconds, or as milliseconds) is not a wall clock.
const PLAUSIBLE_UNIX_S: (f64, f64) = (631_152_000.0, 7_258_118_400.0);

/// Wall-clock time of every row in Unix seconds, from the first column of
/// [`WALL_COLUMNS`] whose values are plausible dates (seconds, or
/// milliseconds, which are divided by 1000); rows without one are `None`.
/// `None` when the log has no such column.
pub fn wall_times(series: &Series) -> Option<Vec<Option<f64>>> {
    WALL_COLUMNS.iter().find_map(|name| {
        let col = series.metric(name)?;
        let first = col.iter().flatten().copied().find(|v| v.is_finite())?;
        let unit = [1.0, 1e-3]
            .into_iter()
            .find(|u| (PLAUSIBLE_UNIX_S.0..PLAUSIBLE_UNIX_S.1).contains(&(first * u)))?;
        let plausible = |v: f64| (PLAUSIBLE_UNIX_S.0..PLAUSIBLE_UNIX_S.1).contains(&v);
        Some(
            col.iter()
                .map(|v| v.map(|v| v * unit).filter(|v| plausible(*v)))
                .collect(),
        )
    })
}

/// Minutes since the start of every row: from an elapsed-time column of
/// [`ELAPSED_COLUMNS`] (in its unit), else wall time minus the first
/// wall time of the log. `None` when the log has neither.
pub fn relative_minutes(series: &Series) -> Option<Vec<Option<f64>>> {
    let elapsed = ELAPSED_COLUMNS.iter().find_map(|(name, unit)| {
        let col = series.metric(name)?;
        col.iter().flatten().any(|v| v.is_finite()).then(|| {
            col.iter()
                .map(|v| v.filter(|v| v.is_finite()).map(|v| v * unit / 60.0))
                .collect()
        })
    });
    elapsed.or_else(|| {
        let wall = wall_times(series)?;
        let start = wall.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        start
            .is_finite()
            .then(|| wall.iter().map(|v| v.map(|v| (v - start) / 60.0)).collect())
    })
}

/// Debiased exponential moving average (Adam's bias correction):
/// m_n = β·m_{n−1} + (1−β)·v_n with m_0 = 0, shown as m_n / (1 − βⁿ), where
/// n counts the values seen so far. Missing and non-finite values give `None`
/// and leave the state untouched, so a gap neither drags the average towards
/// 0 nor restarts it. A constant input gives that constant from the first
/// point on (the point of the debiasing). `beta` is clamped to [0, 1).
pub fn ema_debiased(values: &[Option<f64>], beta: f64) -> Vec<Option<f64>> {
    let beta = if beta.is_finite() {
        beta.clamp(0.0, 1.0 - f64::EPSILON)
    } else {
        0.0
    };
    let mut m = 0.0;
    let mut beta_n = 1.0;
    values
        .iter()
        .map(|v| {
            let v = v.filter(|v| v.is_finite())?;
            m = beta * m + (1.0 - beta) * v;
            beta_n *= beta;
            Some(m / (1.0 - beta_n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::logs::LogFormat;

    #[test]
    fn time_axes_read_the_formats_time_columns() {
        // modded-nanogpt's `train_time:5.418s` (text reader: train_time_s), no wall clock.
        let log = crate::formats::logs::text_kv::parse(
            b"step:0/10 val_loss:10.8 train_time:0.000s\nstep:1/10 train_time:90.0s\nstep:2/10 val_loss:9.5 train_time:180.0s\n",
        )
        .unwrap();
        let s = &log;
        assert_eq!(
            relative_minutes(s).unwrap(),
            vec![Some(0.0), Some(1.5), Some(3.0)]
        );
        assert_eq!(wall_times(s), None);
        assert_eq!(
            points_on(s, "val_loss", XAxis::RelativeTime).unwrap(),
            vec![(0.0, 10.8), (3.0, 9.5)]
        );
        assert_eq!(points_on(s, "val_loss", XAxis::WallTime), None);
        // W&B's `_timestamp` in milliseconds: read as seconds; relative time from it.
        let mut w = Series::new(LogFormat::Jsonl);
        w.step = vec![Some(0.0), Some(1.0)];
        w.tokens = vec![None, None];
        w.metrics.insert(
            "_timestamp".into(),
            vec![Some(1_728_569_000_000.0), Some(1_728_569_120_000.0)],
        );
        w.metrics.insert("loss".into(), vec![Some(3.0), Some(2.0)]);
        assert_eq!(
            wall_times(&w).unwrap(),
            vec![Some(1_728_569_000.0), Some(1_728_569_120.0)]
        );
        assert_eq!(relative_minutes(&w).unwrap(), vec![Some(0.0), Some(2.0)]);
        // A "timestamp" that is a step counter is no wall clock.
        let mut c = Series::new(LogFormat::Csv);
        c.step = vec![Some(0.0)];
        c.tokens = vec![None];
        c.metrics.insert("timestamp".into(), vec![Some(12.0)]);
        assert_eq!(wall_times(&c), None);
    }

    fn series(steps: &[f64], lr: &[Option<f64>]) -> Series {
        let mut s = Series::new(LogFormat::Jsonl);
        s.step = steps.iter().map(|&x| Some(x)).collect();
        s.tokens = vec![None; steps.len()];
        s.metrics.insert("lr".into(), lr.to_vec());
        s.metrics.insert(
            "loss".into(),
            steps.iter().map(|&x| Some(10.0 - x)).collect(),
        );
        s
    }

    #[test]
    fn cumulative_lr_weights_by_step_gaps() {
        // lr logged at steps 1, 2 and 12: 0.1·1 + 0.2·1 + 0.3·10 = 3.3; the row without lr carries 0.3.
        let s = series(
            &[1.0, 2.0, 5.0, 12.0],
            &[Some(0.1), Some(0.2), None, Some(0.3)],
        );
        let c = cumulative_lr(&s).unwrap();
        let want = [0.1, 0.1 + 0.2, 0.1 + 0.2, 0.1 + 0.2 + 3.0];
        for (got, want) in c.iter().zip(want) {
            assert!((got.unwrap() - want).abs() < 1e-12);
        }
        assert_eq!(points_on(&s, "loss", XAxis::CumulativeLr).unwrap().len(), 4);
        assert!(points_on(&s, "loss", XAxis::Tokens).is_none());
    }

    #[test]
    fn progress_uses_logged_total_or_last_point() {
        let mut s = series(&[0.0, 50.0, 100.0], &[None, None, None]);
        let c = progress_points(&s, "loss").unwrap();
        assert_eq!(c.total_source, TotalSource::LastPoint);
        assert_eq!(c.points[1].0, 0.5);
        assert!(!c.is_partial());
        s.constants.insert("total_steps".into(), 400.into());
        let c = progress_points(&s, "loss").unwrap();
        assert_eq!((c.total, c.total_source), (400.0, TotalSource::Logged));
        assert_eq!(c.points[2].0, 0.25);
        assert!(c.is_partial());
    }

    #[test]
    fn ema_skips_gaps_and_debiases() {
        let e = ema_debiased(&[Some(1.0), None, Some(3.0)], 0.5);
        assert_eq!(e[0], Some(1.0));
        assert_eq!(e[1], None);
        // m = 0.5·0.5 + 0.5·3 = 1.75 over 1 − 0.25 = 0.75.
        assert!((e[2].unwrap() - 1.75 / 0.75).abs() < 1e-15);
    }
}
