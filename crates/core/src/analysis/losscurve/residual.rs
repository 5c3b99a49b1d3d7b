//! Collapse residual (Early-Align) of a run against a reference curve.
//!
//! `shared/METRICS.md`, "Collapse residual": the reference ℓ_ref(t̂) is
//! normalised so its final value is 1; for a run L, ℓ_ref is interpolated
//! linearly onto the run's t̂, the scale S minimising Σ (L/S − ℓ_ref)² over the
//! alignment window t̂ ∈ [0.10, 0.30] is S = Σ L² / Σ L·ℓ_ref (put u = 1/S:
//! d/du Σ (uL − ℓ)² = 0 gives u = Σ Lℓ / Σ L²), and residual(t̂) = L/S − ℓ_ref.
//! Because ℓ_ref ends at 1, a residual of 0.01 is 1 % of the reference's final
//! loss.
//!
//! Four patterns are flagged, each with its evidence, the manual's root
//! causes and remediations, and suggested checks ([`Pattern`]); their
//! thresholds live in [`ResidualThresholds`]. Positive drift means what the
//! manual says: after the window the residual stays above 0 and grows.
//! [`timescale`] reads a run's AdamW timescale τ = 1/(lr·wd) and tokens per
//! parameter, so that the non-collapse check compares numbers.

use super::axes::{progress_points, ProgressCurve};
use crate::formats::logs::Series;

/// Why a residual could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResidualError {
    /// No reference curve was given.
    #[error("no reference run given")]
    NoReference,
    /// A curve has no finite point of the metric.
    #[error("{run}: no finite `{metric}` values")]
    NoPoints {
        /// Which run.
        run: String,
        /// The metric asked for.
        metric: String,
    },
    /// The reference runs do not overlap in t̂.
    #[error("the reference runs do not overlap in progress t̂")]
    NoOverlap,
    /// The reference's last value is not a positive number, so it cannot be normalised to 1.
    #[error("the reference's final value is {0}: cannot normalise it to 1")]
    BadFinal(f64),
    /// Fewer than two points of the run inside the alignment window.
    #[error("{found} point(s) of the run in the alignment window t̂ ∈ [{start}, {end}] (need at least 2)")]
    WindowTooSparse {
        /// Points found.
        found: usize,
        /// Window start.
        start: f64,
        /// Window end.
        end: f64,
    },
    /// The window is not 0 ≤ start < end.
    #[error("alignment window [{0}, {1}] is not an interval of t̂ ≥ 0")]
    BadWindow(f64, f64),
    /// Σ L·ℓ_ref over the window is not positive (losses of opposite signs or zero).
    #[error("Σ L·ℓ_ref over the window is {0}: no positive scale S")]
    NoScale(f64),
}

/// The reference curve ℓ_ref(t̂), normalised so that its final value is 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reference {
    /// t̂ grid, strictly increasing.
    pub t: Vec<f64>,
    /// ℓ_ref on the grid; the last value is exactly 1.
    pub value: Vec<f64>,
    /// The (mean) raw final value the curve was divided by.
    pub final_raw: f64,
    /// How many runs were averaged.
    pub n_runs: usize,
}

impl Reference {
    /// Builds ℓ_ref from one or more runs' `(t̂, value)` points: the pointwise
    /// mean of the runs, each interpolated linearly onto a common grid (the
    /// union of their t̂ within the range they all cover), divided by its
    /// final value.
    pub fn from_runs(runs: &[Vec<(f64, f64)>]) -> Result<Reference, ResidualError> {
        if runs.is_empty() {
            return Err(ResidualError::NoReference);
        }
        let sorted: Vec<Vec<(f64, f64)>> = runs.iter().map(|r| sorted_unique(r)).collect();
        if let Some(i) = sorted.iter().position(Vec::is_empty) {
            return Err(ResidualError::NoPoints {
                run: format!("reference {}", i + 1),
                metric: "metric".into(),
            });
        }
        let lo = sorted
            .iter()
            .map(|r| r[0].0)
            .fold(f64::NEG_INFINITY, f64::max);
        let hi = sorted
            .iter()
            .map(|r| r[r.len() - 1].0)
            .fold(f64::INFINITY, f64::min);
        if lo > hi {
            return Err(ResidualError::NoOverlap);
        }
        let mut grid: Vec<f64> = sorted
            .iter()
            .flatten()
            .map(|p| p.0)
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        grid.sort_by(f64::total_cmp);
        grid.dedup();
        let mean: Vec<f64> = grid
            .iter()
            .map(|&t| {
                sorted
                    .iter()
                    .map(|r| interpolate(r, t).unwrap_or(f64::NAN))
                    .sum::<f64>()
                    / sorted.len() as f64
            })
            .collect();
        let final_raw = *mean.last().ok_or(ResidualError::NoOverlap)?;
        if !(final_raw.is_finite() && final_raw > 0.0) {
            return Err(ResidualError::BadFinal(final_raw));
        }
        let mut value: Vec<f64> = mean.iter().map(|v| v / final_raw).collect();
        if let Some(last) = value.last_mut() {
            *last = 1.0;
        }
        Ok(Reference {
            t: grid,
            value,
            final_raw,
            n_runs: runs.len(),
        })
    }

    /// ℓ_ref at `t` by linear interpolation; `None` outside the grid.
    pub fn at(&self, t: f64) -> Option<f64> {
        let (first, last) = (*self.t.first()?, *self.t.last()?);
        if t < first || t > last {
            return None;
        }
        let i = self.t.partition_point(|&x| x < t);
        let (t_hi, v_hi) = (*self.t.get(i)?, *self.value.get(i)?);
        if t_hi == t || i == 0 {
            return Some(v_hi);
        }
        let (t_lo, v_lo) = (self.t[i - 1], self.value[i - 1]);
        Some(v_lo + (t - t_lo) / (t_hi - t_lo) * (v_hi - v_lo))
    }
}

/// Thresholds of the four patterns. Residuals are in units of the
/// reference's final loss (0.01 = 1 %); slopes are per unit of t̂.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ResidualThresholds {
    /// Positive drift: after the window the residual stays above 0 (the
    /// stretch after its last point ≤ 0, at least 3 points) and grows: the
    /// least-squares slope over that stretch above this (default 0.02: 2 % of
    /// the final loss per unit t̂) …
    pub drift_slope: f64,
    /// … and the final residual above this (default 0.005).
    pub drift_final: f64,
    /// Spikes: |residual − rolling median| > `spike_k` · 1.4826 · MAD (the
    /// MAD scaled to σ of a normal; default 5) …
    pub spike_k: f64,
    /// … and > this absolute floor (default 0.005; a residual that is
    /// exactly smooth has MAD 0 and would flag rounding noise).
    pub spike_min: f64,
    /// Half-width, in points, of the rolling median / MAD (default 3: 7 points).
    pub spike_half_window: usize,
    /// Negative residual: final residual below −this, or the residual after
    /// the window averaging below −this with ≥ 80 % of its points negative
    /// (default 0.005).
    pub negative: f64,
    /// Non-collapse: RMS of the residual after the window above this (default 0.02) …
    pub non_collapse_rms: f64,
    /// … or RMS inside the window (the least-squares misfit) above this
    /// (default 0.015): the shapes do not align even where they are fitted.
    pub window_rms: f64,
}

impl Default for ResidualThresholds {
    fn default() -> Self {
        ResidualThresholds {
            drift_slope: 0.02,
            drift_final: 0.005,
            spike_k: 5.0,
            spike_min: 0.005,
            spike_half_window: 3,
            negative: 0.005,
            non_collapse_rms: 0.02,
            window_rms: 0.015,
        }
    }
}

/// Alignment window and thresholds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ResidualConfig {
    /// The alignment window [start, end] in t̂ (default [0.10, 0.30], METRICS.md).
    pub window: (f64, f64),
    /// Pattern thresholds.
    pub thresholds: ResidualThresholds,
}

impl Default for ResidualConfig {
    fn default() -> Self {
        ResidualConfig {
            window: (0.10, 0.30),
            thresholds: ResidualThresholds::default(),
        }
    }
}

/// The four residual patterns of the Collapse Residual seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// The residual grows steadily after the window: the run falls behind the reference.
    PositiveDrift,
    /// Isolated excursions of the residual.
    Spike,
    /// The residual ends (or stays) below 0: the run does better than the reference.
    NegativeResidual,
    /// The curves do not share a shape: no single S collapses them.
    NonCollapse,
}

impl Pattern {
    /// The manual's root causes of the pattern.
    pub fn causes(self) -> &'static [&'static str] {
        match self {
            Pattern::PositiveDrift => &[
                "precision loss in BF16 or in kernels (accumulations, fused ops)",
                "data-quality decay later in training",
            ],
            Pattern::Spike => &[
                "silent data corruption (a faulty host, memory or disk)",
                "gradient desynchronisation between data-parallel workers",
            ],
            Pattern::NegativeResidual => &[
                "a better setting than the reference's (the change helps)",
                "a different evaluation set or budget, or evaluation leakage",
            ],
            Pattern::NonCollapse => &[
                "the AdamW timescale τ = 1/(lr·wd) does not match the reference's",
                "a tokens-per-parameter (TPP) mismatch with the reference",
            ],
        }
    }

    /// The manual's remediations.
    pub fn remediations(self) -> &'static [&'static str] {
        match self {
            Pattern::PositiveDrift => &[
                "audit the kernels: rerun a stretch in FP32 or with reference kernels and compare",
                "audit the data: inspect the shards read after the onset",
            ],
            Pattern::Spike => &[
                "find the faulty node by the dispersion of per-node gradient norms at the spike",
                "replay the step's batch on other nodes",
            ],
            Pattern::NegativeResidual => &["confirm that both runs use the same data, evaluation set and budget before claiming the gain"],
            Pattern::NonCollapse => {
                &["recalibrate τ ∝ TPP: scale lr·wd so that τ (as a fraction of training) matches the reference's at this TPP"]
            }
        }
    }

    /// What to check when the pattern shows up, in short sentences.
    pub fn checks(self) -> &'static [&'static str] {
        match self {
            Pattern::PositiveDrift => &[
                "Compare the learning-rate schedule with the reference's: a later or shallower decay keeps the loss up.",
                "Look for a change in the data late in training (a new shard, repeated epochs, a different mix).",
                "Check weight decay and the rank metrics for a slow collapse of the representation.",
            ],
            Pattern::Spike => &[
                "Inspect the batches logged around the spike for bad or duplicated data.",
                "Check the gradient norm, clipping and loss scale at that step.",
                "Check the learning rate there (end of warm-up, a restart, a schedule jump).",
            ],
            Pattern::NegativeResidual => &[
                "The run is better than the reference at equal progress: make sure both use the same data, evaluation set and budget.",
                "If the change was meant to help, this is the improvement; if not, look for evaluation leakage.",
            ],
            Pattern::NonCollapse => &[
                "Check that both x-axes mean the same thing (steps vs tokens, the same total).",
                "Try another alignment window or reference: a different schedule or model size need not collapse.",
                "Look at the raw curves: an early divergence or a restart breaks the common shape.",
            ],
        }
    }
}

/// One flagged pattern with its evidence.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Flag {
    /// Which pattern.
    pub pattern: Pattern,
    /// Where it starts (t̂).
    pub from: f64,
    /// Where it ends (t̂; the last point for trends).
    pub to: f64,
    /// How big: the final residual (drift, negative), the peak excursion from
    /// the rolling median (spike), the RMS (non-collapse).
    pub magnitude: f64,
    /// One sentence with the numbers.
    pub evidence: String,
    /// Suggested checks ([`Pattern::checks`]).
    pub checks: Vec<String>,
    /// The manual's root causes ([`Pattern::causes`]).
    #[serde(default)]
    pub causes: Vec<String>,
    /// The manual's remediations ([`Pattern::remediations`]).
    #[serde(default)]
    pub remediations: Vec<String>,
}

/// The residual of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Residual {
    /// The scale S (closed form).
    pub s: f64,
    /// The window used.
    pub window: (f64, f64),
    /// Run points inside the window.
    pub window_points: usize,
    /// `(t̂, residual)` for every run point inside the reference's t̂ range.
    pub points: Vec<(f64, f64)>,
    /// Run points left out because the reference does not reach their t̂.
    pub outside_reference: usize,
    /// Mean |residual| over the window.
    pub window_mean_abs: f64,
    /// RMS of the residual over the window (the least-squares misfit).
    pub window_rms: f64,
    /// RMS of the residual after the window (`None` without such points).
    pub post_window_rms: Option<f64>,
    /// Least-squares slope of the residual over t̂ after the window (needs 3 points).
    pub post_window_slope: Option<f64>,
    /// t̂ of the last point: below 1 = online mode, the residual up to now.
    pub progress: f64,
    /// Whether the log stops before t̂ = 1 (a run still going).
    pub online: bool,
    /// Whether the run reached the end of the window (else S is provisional).
    pub window_complete: bool,
    /// The last residual.
    pub final_residual: f64,
    /// Flagged patterns.
    pub flags: Vec<Flag>,
}

/// The collapse residual of a run's `(t̂, value)` points against `reference`.
pub fn collapse_residual(
    reference: &Reference,
    run: &[(f64, f64)],
    config: &ResidualConfig,
) -> Result<Residual, ResidualError> {
    let (w0, w1) = config.window;
    if !(w0.is_finite() && w1.is_finite() && w0 >= 0.0 && w0 < w1) {
        return Err(ResidualError::BadWindow(w0, w1));
    }
    let run = sorted_unique(run);
    if run.is_empty() {
        return Err(ResidualError::NoPoints {
            run: "run".into(),
            metric: "metric".into(),
        });
    }
    // (t̂, L, ℓ_ref) where the reference reaches.
    let paired: Vec<(f64, f64, f64)> = run
        .iter()
        .filter_map(|&(t, l)| Some((t, l, reference.at(t)?)))
        .collect();
    let outside_reference = run.len() - paired.len();
    let in_window = |t: f64| t >= w0 && t <= w1;
    let window: Vec<&(f64, f64, f64)> = paired.iter().filter(|p| in_window(p.0)).collect();
    if window.len() < 2 {
        return Err(ResidualError::WindowTooSparse {
            found: window.len(),
            start: w0,
            end: w1,
        });
    }
    let sum_ll: f64 = window.iter().map(|p| p.1 * p.1).sum();
    let sum_lr: f64 = window.iter().map(|p| p.1 * p.2).sum();
    if !(sum_lr.is_finite() && sum_lr > 0.0) {
        return Err(ResidualError::NoScale(sum_lr));
    }
    let s = sum_ll / sum_lr;
    let points: Vec<(f64, f64)> = paired.iter().map(|&(t, l, r)| (t, l / s - r)).collect();
    let win_res: Vec<f64> = points
        .iter()
        .filter(|p| in_window(p.0))
        .map(|p| p.1)
        .collect();
    let post: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 > w1).collect();
    let &(progress, final_residual) = points.last().expect("the window holds at least two points");
    let mut out = Residual {
        s,
        window: (w0, w1),
        window_points: win_res.len(),
        window_mean_abs: win_res.iter().map(|r| r.abs()).sum::<f64>() / win_res.len() as f64,
        window_rms: rms(&win_res),
        post_window_rms: (!post.is_empty())
            .then(|| rms(&post.iter().map(|p| p.1).collect::<Vec<_>>())),
        post_window_slope: (post.len() >= 3).then(|| line_fit(&post).1),
        progress,
        online: progress < 1.0 - 1e-9,
        window_complete: progress >= w1,
        final_residual,
        outside_reference,
        points,
        flags: Vec::new(),
    };
    out.flags = find_patterns(&out, &config.thresholds);
    Ok(out)
}

/// The residual of `metric` of a parsed log against `reference`, on t̂ from
/// [`progress_points`] (a log with a stated total that stops early is in
/// online mode).
pub fn series_residual(
    reference: &Reference,
    series: &Series,
    metric: &str,
    config: &ResidualConfig,
) -> Result<Residual, ResidualError> {
    let curve = progress_of(series, metric)?;
    collapse_residual(reference, &curve.points, config)
}

/// `metric` of a parsed log against t̂, or [`ResidualError::NoPoints`].
pub fn progress_of(series: &Series, metric: &str) -> Result<ProgressCurve, ResidualError> {
    progress_points(series, metric).ok_or_else(|| ResidualError::NoPoints {
        run: series.run.clone().unwrap_or_else(|| "run".into()),
        metric: metric.into(),
    })
}

/// A run's AdamW timescale and tokens per parameter, read from its log.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RunTimescale {
    /// Peak learning rate (the largest logged `lr`, else a logged constant).
    pub lr: Option<f64>,
    /// Weight decay (`weight_decay` or `wd`, a column or a constant).
    pub weight_decay: Option<f64>,
    /// Training tokens (the logged total, else the last `tokens`, else total_steps × tokens_per_step).
    pub tokens: Option<f64>,
    /// Parameter count (`n_params`).
    pub n_params: Option<f64>,
    /// τ = 1/(lr·wd), in steps.
    pub tau: Option<f64>,
    /// τ as a fraction of the run's steps (the logged total, else the last step).
    pub tau_fraction: Option<f64>,
    /// Tokens per parameter.
    pub tpp: Option<f64>,
    /// Fields the log lacks for τ or TPP.
    pub missing: Vec<String>,
}

impl RunTimescale {
    /// "τ = 1/(lr·wd) = 2000 steps (0.5 of training), TPP = 20", or what is missing.
    pub fn describe(&self) -> String {
        let g = crate::figures::draw::format_tick;
        let tau = match (self.tau, self.tau_fraction) {
            (Some(t), Some(f)) => format!("τ = 1/(lr·wd) = {} steps ({} of training)", g(t), g(f)),
            (Some(t), None) => format!("τ = 1/(lr·wd) = {} steps", g(t)),
            _ => "τ unknown".to_string(),
        };
        let tpp = self
            .tpp
            .map_or("TPP unknown".to_string(), |t| format!("TPP = {}", g(t)));
        let missing = if self.missing.is_empty() {
            String::new()
        } else {
            format!(" (no {})", self.missing.join(", "))
        };
        format!("{tau}, {tpp}{missing}")
    }
}

fn first_number(series: &Series, names: &[&str], peak: bool) -> Option<f64> {
    for n in names {
        if let Some(col) = series.metric(n) {
            let vals = col.iter().flatten().copied().filter(|v| v.is_finite());
            let v = if peak {
                vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
            } else {
                vals.into_iter().next()
            };
            if v.is_some() {
                return v;
            }
        }
        if let Some(v) = series
            .constants
            .get(*n)
            .and_then(serde_json::Value::as_f64)
            .filter(|v| v.is_finite())
        {
            return Some(v);
        }
    }
    None
}

/// τ = 1/(lr·wd) and TPP of a run, from what its log carries.
pub fn timescale(series: &Series) -> RunTimescale {
    let lr = first_number(series, &["lr", "learning_rate"], true).filter(|v| *v > 0.0);
    let weight_decay = first_number(series, &["weight_decay", "wd"], false).filter(|v| *v > 0.0);
    let n_params = first_number(series, &["n_params", "num_params"], false).filter(|v| *v > 0.0);
    let total_steps = super::axes::logged_total_steps(series)
        .or_else(|| series.step.iter().flatten().copied().reduce(f64::max));
    let tokens = super::axes::logged_total_tokens(series)
        .or_else(|| series.tokens.iter().flatten().copied().reduce(f64::max))
        .or_else(|| {
            Some(
                super::axes::logged_total_steps(series)?
                    * first_number(series, &["tokens_per_step"], false)?,
            )
        });
    let tau = lr.zip(weight_decay).map(|(a, w)| 1.0 / (a * w));
    let mut missing = Vec::new();
    for (name, v) in [
        ("`lr`", lr),
        ("`weight_decay`", weight_decay),
        ("tokens", tokens),
        ("`n_params`", n_params),
    ] {
        if v.is_none() {
            missing.push(name.to_string());
        }
    }
    RunTimescale {
        lr,
        weight_decay,
        tokens,
        n_params,
        tau,
        tau_fraction: tau
            .zip(total_steps.filter(|t| *t > 0.0))
            .map(|(t, n)| t / n),
        tpp: tokens.zip(n_params).map(|(t, d)| t / d),
        missing,
    }
}

/// Adds the run's and the reference's τ and TPP to a non-collapse flag's
/// evidence, so the check is a number ("τ/T 0.5 vs the reference's 0.25").
pub fn annotate_timescales(residual: &mut Residual, run: &RunTimescale, reference: &RunTimescale) {
    for f in residual
        .flags
        .iter_mut()
        .filter(|f| f.pattern == Pattern::NonCollapse)
    {
        f.evidence.push_str(&format!(
            "; this run {}; the reference {}",
            run.describe(),
            reference.describe()
        ));
    }
}

fn find_patterns(r: &Residual, th: &ResidualThresholds) -> Vec<Flag> {
    let (w0, w1) = r.window;
    let mut flags = Vec::new();
    let flag = |pattern: Pattern, from: f64, to: f64, magnitude: f64, evidence: String| Flag {
        pattern,
        from,
        to,
        magnitude,
        evidence,
        checks: pattern.checks().iter().map(|s| s.to_string()).collect(),
        causes: pattern.causes().iter().map(|s| s.to_string()).collect(),
        remediations: pattern
            .remediations()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let so_far = if r.online {
        format!(" (so far: the log stops at t̂ = {:.3})", r.progress)
    } else {
        String::new()
    };
    let post: Vec<(f64, f64)> = r.points.iter().copied().filter(|p| p.0 > w1).collect();

    // Positive drift: after the window the residual stays above 0 and grows.
    // The stretch is what follows the last post-window point ≤ 0; its onset
    // is located by a hinge fit with the knot no earlier than that point.
    let tail_start = post.iter().rposition(|p| p.1 <= 0.0).map_or(0, |i| i + 1);
    let tail = &post[tail_start..];
    if tail.len() >= 3 {
        let slope = line_fit(tail).1;
        if slope > th.drift_slope && r.final_residual > th.drift_final {
            let min_knot = if tail_start > 0 {
                post[tail_start - 1].0
            } else {
                w1
            };
            let fitted: Vec<(f64, f64)> = r.points.iter().copied().filter(|p| p.0 >= w0).collect();
            let (onset, rate) = hinge_onset(&fitted, min_knot)
                .filter(|h| h.1 > 0.0)
                .unwrap_or((tail[0].0, slope));
            flags.push(flag(
                Pattern::PositiveDrift,
                onset,
                r.progress,
                r.final_residual,
                format!(
                    "the residual stays above 0 from t̂ ≈ {:.3} and grows from t̂ ≈ {onset:.3} at {rate:.4} per unit t̂ (least-squares slope over the positive stretch {slope:.4} > {}), reaching {:+.4} at t̂ = {:.3}{so_far}",
                    tail[0].0, th.drift_slope, r.final_residual, r.progress
                ),
            ));
        }
    }

    // Spikes: a Hampel filter from the window start on (before it the curves
    // are not aligned and the residual measures the warm-up, not the run).
    let from_window: Vec<(f64, f64)> = r.points.iter().copied().filter(|p| p.0 >= w0).collect();
    let mut spike: Option<(f64, f64, f64, f64)> = None; // from, to, peak t, peak excursion
    let h = th.spike_half_window.max(1);
    for i in 0..from_window.len() {
        let lo = i.saturating_sub(h);
        let hi = (i + h + 1).min(from_window.len());
        let vals: Vec<f64> = from_window[lo..hi].iter().map(|p| p.1).collect();
        let med = median(&vals);
        let mad = median(&vals.iter().map(|v| (v - med).abs()).collect::<Vec<_>>());
        let (t, v) = from_window[i];
        let dev = v - med;
        if dev.abs() > th.spike_k * 1.4826 * mad && dev.abs() > th.spike_min {
            spike = Some(match spike {
                Some((from, _, pt, pd)) if pd.abs() >= dev.abs() => (from, t, pt, pd),
                Some((from, ..)) => (from, t, t, dev),
                None => (t, t, t, dev),
            });
        } else if let Some((from, to, pt, pd)) = spike.take() {
            flags.push(flag(
                Pattern::Spike,
                from,
                to,
                pd,
                spike_evidence(from, to, pt, pd),
            ));
        }
    }
    if let Some((from, to, pt, pd)) = spike {
        flags.push(flag(
            Pattern::Spike,
            from,
            to,
            pd,
            spike_evidence(from, to, pt, pd),
        ));
    }

    // Negative residual: ends or stays below −threshold.
    if !post.is_empty() {
        let mean_post = post.iter().map(|p| p.1).sum::<f64>() / post.len() as f64;
        let frac_neg = post.iter().filter(|p| p.1 < 0.0).count() as f64 / post.len() as f64;
        let sustained = mean_post < -th.negative && frac_neg >= 0.8;
        if r.final_residual < -th.negative || sustained {
            // From where it stays negative to the end (else the first negative point).
            let stays = post.iter().rposition(|p| p.1 >= 0.0).map_or(0, |i| i + 1);
            let from = post
                .get(stays)
                .or_else(|| post.iter().find(|p| p.1 < 0.0))
                .map_or(post[0].0, |p| p.0);
            let min = post.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            flags.push(flag(
                Pattern::NegativeResidual,
                from,
                r.progress,
                r.final_residual,
                format!(
                    "the residual is below 0 from t̂ ≈ {from:.3} on ({:.0} % of the points after the window, mean {mean_post:+.4}, lowest {min:+.4}) and ends at {:+.4}{so_far}: the run does better than the reference",
                    frac_neg * 100.0,
                    r.final_residual
                ),
            ));
        }
    }

    // Non-collapse: too large a misfit in or after the window.
    let post_rms = r.post_window_rms.unwrap_or(0.0);
    if post_rms > th.non_collapse_rms || r.window_rms > th.window_rms {
        let (from, to, m, where_) = if r.window_rms > th.window_rms {
            (w0, w1, r.window_rms, "inside the alignment window")
        } else {
            (
                post[0].0,
                r.progress,
                post_rms,
                "after the alignment window",
            )
        };
        flags.push(flag(
            Pattern::NonCollapse,
            from,
            to,
            m,
            format!(
                "RMS residual {m:.4} {where_} (window {:.4}, after it {post_rms:.4}; thresholds {} / {}): no single scale S makes the curves coincide",
                r.window_rms, th.window_rms, th.non_collapse_rms
            ),
        ));
    }
    flags
}

fn spike_evidence(from: f64, to: f64, peak_t: f64, peak: f64) -> String {
    if from == to {
        format!("the residual jumps {peak:+.4} from its rolling median at t̂ = {peak_t:.3}")
    } else {
        format!("the residual leaves its rolling median between t̂ = {from:.3} and {to:.3}, by up to {peak:+.4} at t̂ = {peak_t:.3}")
    }
}

/// Onset of a trend: the knot c (a point of `pts`, sorted by t, at or after
/// `min_knot`, with at least two points after it) of the least-squares fit
/// r = b + a·max(0, t − c) with the smallest squared error; returns (c, a).
/// O(n) with suffix sums: for the points after c, with z = t − c,
/// Σz = Σt − c·m, Σz² = Σt² − 2cΣt + c²m, Σzr = Σtr − cΣr (z = 0 before c).
fn hinge_onset(pts: &[(f64, f64)], min_knot: f64) -> Option<(f64, f64)> {
    let n = pts.len() as f64;
    let sum_r: f64 = pts.iter().map(|p| p.1).sum();
    let syy = pts.iter().map(|p| p.1 * p.1).sum::<f64>() - sum_r * sum_r / n;
    // Suffix sums over the points strictly after index k.
    let (mut m, mut st, mut stt, mut str_, mut sr) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut best: Option<(f64, f64, f64)> = None; // sse, c, a
    for k in (0..pts.len()).rev() {
        let (c, _) = pts[k];
        if c >= min_knot && m >= 2.0 {
            let sz = st - c * m;
            let szz = stt - 2.0 * c * st + c * c * m - sz * sz / n;
            let szy = str_ - c * sr - sz * sum_r / n;
            if szz > 0.0 {
                let sse = syy - szy * szy / szz;
                // `<=` walking backwards keeps the earliest knot of equal fits (rounding tolerance).
                if best.is_none_or(|(s, ..)| sse <= s + 1e-12 * (1.0 + s.abs())) {
                    best = Some((sse, c, szy / szz));
                }
            }
        }
        let (t, r) = pts[k];
        m += 1.0;
        st += t;
        stt += t * t;
        str_ += t * r;
        sr += r;
    }
    best.map(|(_, c, a)| (c, a))
}

/// Least-squares line y = b + a·x; returns (b, a). a = 0 when x is constant.
fn line_fit(pts: &[(f64, f64)]) -> (f64, f64) {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let a = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - a * mx, a)
}

fn rms(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Finite points sorted by t; of equal t the last one in log order is kept (a restart overrides).
fn sorted_unique(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(usize, (f64, f64))> = pts
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, p)| p.0.is_finite() && p.1.is_finite())
        .collect();
    v.sort_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(&b.0)));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(v.len());
    for (_, p) in v {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    out
}

/// Linear interpolation in sorted, unique points; `None` outside their range.
fn interpolate(pts: &[(f64, f64)], t: f64) -> Option<f64> {
    let first = pts.first()?;
    let last = pts.last()?;
    if t < first.0 || t > last.0 {
        return None;
    }
    let i = pts.partition_point(|p| p.0 < t);
    let hi = pts.get(i)?;
    if hi.0 == t || i == 0 {
        return Some(hi.1);
    }
    let lo = pts[i - 1];
    Some(lo.1 + (t - lo.0) / (hi.0 - lo.0) * (hi.1 - lo.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_and_reference_mean() {
        let a = vec![(0.0, 4.0), (1.0, 2.0)];
        let b = vec![(0.0, 8.0), (0.5, 5.0), (1.0, 2.0)];
        let r = Reference::from_runs(&[a, b]).unwrap();
        // Grid {0, 0.5, 1}; mean raw = (6, (3 + 5)/2 = 4, 2); final 2 → (3, 2, 1).
        assert_eq!(r.t, vec![0.0, 0.5, 1.0]);
        assert_eq!(r.value, vec![3.0, 2.0, 1.0]);
        assert_eq!(r.at(0.25), Some(2.5));
        assert_eq!(r.at(1.5), None);
    }

    #[test]
    fn hinge_finds_the_knot() {
        let pts: Vec<(f64, f64)> = (0..=10)
            .map(|i| i as f64 / 10.0)
            .map(|t| (t, 0.3 * (t - 0.6).max(0.0)))
            .collect();
        let (c, a) = hinge_onset(&pts, 0.3).unwrap();
        assert!((c - 0.6).abs() < 1e-12 && (a - 0.3).abs() < 1e-9, "{c} {a}");
    }
}
