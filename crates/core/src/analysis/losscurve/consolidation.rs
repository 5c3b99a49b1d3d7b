//! Consolidation ratio C(t): how far the gradient signal stands above the
//! optimizer's noise, its regimes and its alerts.
//!
//! `shared/METRICS.md`: C(t) = ‖∇L‖² / (2·D·d) with D = α²·σ²/(2B), d the
//! parameter count, α the learning rate, B the batch size and σ² the
//! per-coordinate gradient variance **of one sample**. Logs rarely hold that
//! σ² directly: the fixtures' `grad_var` is the variance of the micro-batch
//! gradients (each the mean over `micro_batch_size` = 2 sequences), so the
//! per-sequence variance is micro_batch_size × grad_var (`fixtures/README.md`:
//! σ² = 2·grad_var, B = 8). [`VarianceConvention`] says which reading is used;
//! when the log has no micro-batch size the per-sample reading is an
//! assumption and the result says so ([`ConsolidationCurve::convention_assumed`]).
//!
//! D comes either from every row's own `grad_var` and `lr`
//! ([`NoiseSource::PerRow`]) or once, from the warm-up rows
//! ([`NoiseSource::Warmup`], as the seed's reference code estimates it).
//!
//! **Why the values are large.** Substituting D: C = B·(‖∇L‖²/d) / (α²·σ²),
//! i.e. the signal-to-noise ratio of the step gradient (mean squared gradient
//! coordinate over the variance of the batch-mean gradient) divided by α².
//! C is not dimensionless: with α ≈ 0.02 the factor 1/α² is ≈ 2500, so a run
//! whose step gradient has an SNR of 2–1000 sits at C ≈ 5·10³–2·10⁶ — the
//! fixtures' range. The seed's thresholds (20, 10, 1, 0.5) were written for
//! the SNR scale; [`ConsolidationCurve::scale_note`] puts both numbers in the
//! caption so that the regimes are read knowingly.
//!
//! Where a field is missing from the log the result is an error that names
//! it: no partial curve, no guess.

use super::axes::logged_total_steps;
use crate::formats::logs::Series;

/// What the logged `grad_var` is the variance of.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VarianceConvention {
    /// `grad_var` is the variance of micro-batch gradients: σ² =
    /// micro_batch_size × grad_var, with micro_batch_size from the log (a
    /// column or a header constant); when the log has none, `grad_var` is
    /// assumed per-sample (σ² = grad_var) and the result says it is assumed.
    #[default]
    Auto,
    /// `grad_var` already is the per-sample variance: σ² = grad_var.
    PerSample,
    /// `grad_var` is the variance of means over this many samples: σ² = n × grad_var.
    MicroBatch(f64),
}

/// Where the noise scale D comes from.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoiseSource {
    /// D per row from that row's `grad_var` and `lr` (rows without `grad_var` get no C).
    #[default]
    PerRow,
    /// D once: the mean of α²σ²/(2B) over the warm-up rows that log
    /// `grad_var` (with their own, warm-up, lr); every row with `grad_norm`
    /// then gets a C. The warm-up ends at `steps` when given, else at the
    /// log's `warmup_steps`, else at `schedule.warmup_ratio` (or
    /// `warmup_ratio`) × `total_steps`.
    Warmup {
        /// Last step of the warm-up (inclusive).
        steps: Option<f64>,
    },
}

/// Thresholds of the alerts (the seed's numbers by default).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AlertThresholds {
    /// Sharp drop: (C_prev − C) / C_prev above this (0.5).
    pub sharp_drop: f64,
    /// Grokking threshold: C crossing below this (1.5).
    pub grokking: f64,
    /// Stuck: C below this (0.5) …
    pub stuck_below: f64,
    /// … for more than this fraction of training (0.1).
    pub stuck_fraction: f64,
    /// Sharp minimum: C above this (100) and not decreasing over the window.
    pub sharp_minimum: f64,
    /// Plateau: the loss's relative range over the window below this (0.01).
    pub plateau_tolerance: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            sharp_drop: 0.5,
            grokking: 1.5,
            stuck_below: 0.5,
            stuck_fraction: 0.1,
            sharp_minimum: 100.0,
            plateau_tolerance: 0.01,
        }
    }
}

/// Options of [`consolidation_ratio`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ConsolidationConfig {
    /// How `grad_var` becomes σ².
    pub variance: VarianceConvention,
    /// B, overriding the log's `batch_size`.
    pub batch_size: Option<f64>,
    /// d, overriding the log's `n_params`.
    pub n_params: Option<f64>,
    /// Per-row D or D from the warm-up.
    pub noise: NoiseSource,
    /// Half-width w of the "C ≈ 1" band: [max(0.5, 1 − w), 1 + w] (default 0.5,
    /// so the band is [0.5, 1.5] and meets the stuck regime below 0.5).
    pub near_one: f64,
    /// Points of C looked at together by the sharp-minimum and plateau checks (default 3).
    pub window: usize,
    /// The loss the plateau check reads (default `loss`).
    pub loss_metric: String,
    /// Alert thresholds.
    pub alerts: AlertThresholds,
}

impl Default for ConsolidationConfig {
    fn default() -> Self {
        ConsolidationConfig {
            variance: VarianceConvention::Auto,
            batch_size: None,
            n_params: None,
            noise: NoiseSource::PerRow,
            near_one: 0.5,
            window: 3,
            loss_metric: "loss".into(),
            alerts: AlertThresholds::default(),
        }
    }
}

/// The C boundaries of the regimes, from [`ConsolidationConfig::near_one`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegimeBounds {
    /// Below this: stuck (0.5, the seed's number).
    pub stuck: f64,
    /// The ≈ 1 band, inclusive at both ends.
    pub near_one: (f64, f64),
    /// Exploring/exploiting up to here, exclusive (10).
    pub exploring_max: f64,
    /// Above this: converging fast (20).
    pub fast: f64,
}

impl RegimeBounds {
    /// The bounds for a ≈ 1 band of half-width `w` (0 < w < 9, so the band stays below 10).
    pub fn new(w: f64) -> Result<RegimeBounds, ConsolidationError> {
        if !(w.is_finite() && w > 0.0 && w < 9.0) {
            return Err(ConsolidationError::BadSetting(format!(
                "the C ≈ 1 band's half-width must lie in (0, 9), not {w}"
            )));
        }
        Ok(RegimeBounds {
            stuck: 0.5,
            near_one: ((1.0 - w).max(0.5), 1.0 + w),
            exploring_max: 10.0,
            fast: 20.0,
        })
    }
}

impl Default for RegimeBounds {
    fn default() -> Self {
        RegimeBounds::new(0.5).expect("0.5 is a valid half-width")
    }
}

/// The named regimes of C (issue 18, the seed's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// C > 20: converging fast (normal).
    SignalDominated,
    /// 10 ≤ C ≤ 20: between the seed's named regimes.
    Transitional,
    /// Above the ≈ 1 band and below 10 (the seed's "1–10"): exploring vs exploiting (optimal).
    Consolidating,
    /// The ≈ 1 band: phase transition imminent.
    Balanced,
    /// Between 0.5 and the ≈ 1 band (only when the band is narrower than [0.5, 1.5]).
    BelowBalanced,
    /// C < 0.5: stuck in a bad minimum.
    NoiseDominated,
}

impl Regime {
    /// Every regime, from high C to low.
    pub const ALL: [Regime; 6] = [
        Regime::SignalDominated,
        Regime::Transitional,
        Regime::Consolidating,
        Regime::Balanced,
        Regime::BelowBalanced,
        Regime::NoiseDominated,
    ];

    /// The regime of a value of C.
    pub fn of(c: f64, b: &RegimeBounds) -> Regime {
        if c > b.fast {
            Regime::SignalDominated
        } else if c >= b.exploring_max {
            Regime::Transitional
        } else if c > b.near_one.1 {
            Regime::Consolidating
        } else if c >= b.near_one.0 {
            Regime::Balanced
        } else if c >= b.stuck {
            Regime::BelowBalanced
        } else {
            Regime::NoiseDominated
        }
    }

    /// The C range of the regime, `[lo, hi]` (∞ above the fast bound); `None`
    /// when it is empty (the gap below a ≈ 1 band that starts at 0.5).
    pub fn range(self, b: &RegimeBounds) -> Option<(f64, f64)> {
        let r = match self {
            Regime::SignalDominated => (b.fast, f64::INFINITY),
            Regime::Transitional => (b.exploring_max, b.fast),
            Regime::Consolidating => (b.near_one.1, b.exploring_max),
            Regime::Balanced => b.near_one,
            Regime::BelowBalanced => (b.stuck, b.near_one.0),
            Regime::NoiseDominated => (0.0, b.stuck),
        };
        (r.0 < r.1).then_some(r)
    }

    /// Label with its range, made from the same bounds as [`Regime::of`].
    pub fn label(self, b: &RegimeBounds) -> String {
        let g = crate::figures::draw::format_tick;
        let (lo, hi) = self.range(b).unwrap_or((b.stuck, b.stuck));
        match self {
            Regime::SignalDominated => format!("converging fast (C > {})", g(lo)),
            Regime::Transitional => format!("between regimes ({} ≤ C ≤ {})", g(lo), g(hi)),
            Regime::Consolidating => format!(
                "exploring vs exploiting, optimal ({} < C < {})",
                g(lo),
                g(hi)
            ),
            Regime::Balanced => format!(
                "C ≈ 1, phase transition imminent ({} ≤ C ≤ {})",
                g(lo),
                g(hi)
            ),
            Regime::BelowBalanced => format!("between regimes ({} ≤ C < {})", g(lo), g(hi)),
            Regime::NoiseDominated => format!("stuck in a bad minimum (C < {})", g(hi)),
        }
    }
}

/// C at one logged step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConsolidationPoint {
    /// The row's step (its row index when it has none).
    pub step: f64,
    /// C(t).
    pub c: f64,
    /// D = α²σ²/(2B) (per row, or the warm-up estimate).
    pub d_noise: f64,
    /// Its regime.
    pub regime: Regime,
    /// λ_max of the row when logged.
    pub lambda_max: Option<f64>,
    /// α_opt = 2D/λ_max when λ_max is logged and positive.
    pub alpha_opt: Option<f64>,
}

/// What an alert says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// |C − C_prev| / C_prev > 0.5 with C falling: a phase transition in the next 10–20 % of training.
    SharpDrop,
    /// C crosses below 1.5 (the grokking threshold).
    GrokkingThreshold,
    /// C < 0.5 for more than 10 % of training: raise the LR 2–5×.
    Stuck,
    /// C > 100 and not decreasing: a sharp minimum; regularise or lower the LR.
    SharpMinimum,
    /// C < 0.5 while the loss is on a plateau: the Kramers-escape case.
    KramersEscape,
}

impl AlertKind {
    /// Short name.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::SharpDrop => "sharp drop of C",
            AlertKind::GrokkingThreshold => "C below the grokking threshold",
            AlertKind::Stuck => "stuck (C low for long)",
            AlertKind::SharpMinimum => "sharp minimum (C high, not decreasing)",
            AlertKind::KramersEscape => "Kramers escape (C low on a plateau)",
        }
    }
}

/// One alert and where it fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Which alert.
    pub kind: AlertKind,
    /// The step where it fired.
    pub step: f64,
    /// The stretch of steps it covers (the two points of a drop, the stuck stretch, …).
    pub from: f64,
    /// End of that stretch.
    pub to: f64,
    /// The number behind it (the relative drop, C, the fraction of training).
    pub value: f64,
    /// One sentence with the numbers and the seed's advice.
    pub message: String,
}

/// C(t) of a log, with the conventions used and the alerts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConsolidationCurve {
    /// One point per row that has every field with D > 0 (a zero learning
    /// rate gives no noise and an infinite C: such rows are counted in `skipped_zero_noise`).
    pub points: Vec<ConsolidationPoint>,
    /// The factor σ² = factor × grad_var that was used.
    pub sigma2_factor: f64,
    /// In words: which convention, from where.
    pub convention: String,
    /// Whether the convention is an assumption (no micro-batch size in the log, none set).
    pub convention_assumed: bool,
    /// In words: how D was obtained.
    pub noise: String,
    /// Rows with all fields but D = 0.
    pub skipped_zero_noise: usize,
    /// The regime bounds used.
    pub bounds: RegimeBounds,
    /// Alerts in step order.
    pub alerts: Vec<Alert>,
    /// Why the values are where they are (median C, lr and the gradient SNR C·α²).
    pub scale_note: String,
    /// Checks that could not run (no loss for the plateau test, …).
    pub notes: Vec<String>,
}

/// Why C(t) cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsolidationError {
    /// Fields the formula needs and the log lacks (neither a column nor a constant).
    #[error("cannot compute the consolidation ratio: the log has no {}", names(.0))]
    MissingFields(Vec<String>),
    /// All fields are there but no single row holds all of them.
    #[error("no row holds grad_norm, grad_var and lr together")]
    NoCompleteRow,
    /// D from the warm-up was asked for but the warm-up's end is unknown.
    #[error(
        "D from the warm-up needs the warm-up's last step: the log has no `warmup_steps`, no warm-up ratio with `total_steps`; set it"
    )]
    NoWarmupEnd,
    /// No warm-up row logs `grad_var` (with lr > 0).
    #[error("no row up to step {0} (the warm-up) logs `grad_var` with lr > 0, so D cannot be estimated from the warm-up; set a later warm-up end or use per-row D")]
    NoWarmupVariance(f64),
    /// A setting out of range.
    #[error("{0}")]
    BadSetting(String),
}

fn names(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names under which logs write the Hessian's top eigenvalue λ_max.
pub const LAMBDA_MAX_NAMES: [&str; 4] = [
    "lambda_max",
    "hessian_lambda_max",
    "top_hessian_eigenvalue",
    "lambda_max_hessian",
];

/// A per-row value of `name`, falling back to a header constant.
fn field<'a>(series: &'a Series, name: &str) -> Option<Field<'a>> {
    if let Some(col) = series
        .metric(name)
        .filter(|c| c.iter().any(|v| v.is_some_and(f64::is_finite)))
    {
        return Some(Field::Column(col));
    }
    series
        .constants
        .get(name)
        .and_then(serde_json::Value::as_f64)
        .filter(|v| v.is_finite())
        .map(Field::Constant)
}

enum Field<'a> {
    Column(&'a [Option<f64>]),
    Constant(f64),
}

impl Field<'_> {
    fn at(&self, i: usize) -> Option<f64> {
        match self {
            Field::Column(c) => c.get(i).copied().flatten().filter(|v| v.is_finite()),
            Field::Constant(v) => Some(*v),
        }
    }
}

/// The last step of the warm-up the log states: `warmup_steps`, else a
/// warm-up ratio (`schedule.warmup_ratio` or `warmup_ratio`) × `total_steps`.
pub fn logged_warmup_end(series: &Series) -> Option<f64> {
    let num = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    if let Some(s) = num(series.constants.get("warmup_steps")) {
        return Some(s);
    }
    let ratio = num(series
        .constants
        .get("schedule")
        .and_then(|s| s.get("warmup_ratio")))
    .or_else(|| num(series.constants.get("warmup_ratio")))?;
    Some(ratio * logged_total_steps(series)?)
}

/// Whether the values of a window are a plateau: their range (max − min)
/// relative to their mean magnitude is below `tolerance`. Needs two finite
/// values; fewer is not a plateau.
pub fn is_plateau(values: &[f64], tolerance: f64) -> bool {
    let v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if v.len() < 2 {
        return false;
    }
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let scale = v.iter().map(|x| x.abs()).sum::<f64>() / v.len() as f64;
    scale > 0.0 && (hi - lo) / scale < tolerance
}

/// The rows' fields C needs.
struct Inputs<'a> {
    grad_norm: Field<'a>,
    grad_var: Field<'a>,
    lr: Field<'a>,
    batch: Field<'a>,
    params: Field<'a>,
    micro: Option<Field<'a>>,
}

fn inputs<'a>(
    series: &'a Series,
    config: &ConsolidationConfig,
) -> Result<Inputs<'a>, ConsolidationError> {
    let get = |name: &str| field(series, name);
    let grad_norm = get("grad_norm");
    let grad_var = get("grad_var");
    let lr = get("lr");
    let batch = config
        .batch_size
        .map(Field::Constant)
        .or_else(|| get("batch_size"));
    let params = config
        .n_params
        .map(Field::Constant)
        .or_else(|| get("n_params"));
    let missing: Vec<String> = [
        ("grad_norm", grad_norm.is_none()),
        ("grad_var", grad_var.is_none()),
        ("lr", lr.is_none()),
        ("batch_size", batch.is_none()),
        ("n_params", params.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(n, _)| n.to_string())
    .collect();
    match (grad_norm, grad_var, lr, batch, params) {
        (Some(grad_norm), Some(grad_var), Some(lr), Some(batch), Some(params)) => Ok(Inputs {
            grad_norm,
            grad_var,
            lr,
            batch,
            params,
            micro: get("micro_batch_size"),
        }),
        _ => Err(ConsolidationError::MissingFields(missing)),
    }
}

impl Inputs<'_> {
    /// σ² / grad_var at row `i`.
    fn factor(&self, config: &ConsolidationConfig, i: usize) -> f64 {
        match config.variance {
            VarianceConvention::PerSample => 1.0,
            VarianceConvention::MicroBatch(n) => n,
            VarianceConvention::Auto => self.micro.as_ref().and_then(|m| m.at(i)).unwrap_or(1.0),
        }
    }

    /// D = α²σ²/(2B) at row `i` and the factor used, when the row has grad_var, lr and B.
    fn noise_at(&self, config: &ConsolidationConfig, i: usize) -> Option<(f64, f64)> {
        let (v, a, b) = (self.grad_var.at(i)?, self.lr.at(i)?, self.batch.at(i)?);
        let factor = self.factor(config, i);
        Some((a * a * factor * v / (2.0 * b), factor))
    }
}

fn step_of(series: &Series, i: usize) -> f64 {
    series.step.get(i).copied().flatten().unwrap_or(i as f64)
}

/// C(t) = ‖∇L‖² / (2·D·d), D = α²σ²/(2B), from the log's `grad_norm`,
/// `grad_var`, `lr`, `batch_size` and `n_params` (columns, or header
/// constants for the last two; `config` may override B and d), with the
/// regimes and alerts of the seed.
pub fn consolidation_ratio(
    series: &Series,
    config: &ConsolidationConfig,
) -> Result<ConsolidationCurve, ConsolidationError> {
    let bounds = RegimeBounds::new(config.near_one)?;
    if config.window < 2 {
        return Err(ConsolidationError::BadSetting(format!(
            "the window must hold at least 2 points, not {}",
            config.window
        )));
    }
    let inp = inputs(series, config)?;
    let lambda = LAMBDA_MAX_NAMES.iter().find_map(|n| field(series, n));
    let warmup = match config.noise {
        NoiseSource::PerRow => None,
        NoiseSource::Warmup { steps } => Some(warmup_noise(series, &inp, config, steps)?),
    };
    let mut points = Vec::new();
    let mut lrs = Vec::new();
    let mut skipped_zero_noise = 0;
    let mut factor_used = warmup.map(|w| w.factor);
    for i in 0..series.len() {
        let (Some(g), Some(d)) = (inp.grad_norm.at(i), inp.params.at(i)) else {
            continue;
        };
        let (d_noise, lr) = match warmup {
            Some(w) => (w.d, w.lr),
            None => {
                let Some((dn, factor)) = inp.noise_at(config, i) else {
                    continue;
                };
                factor_used.get_or_insert(factor);
                (dn, inp.lr.at(i).unwrap_or(f64::NAN))
            }
        };
        let c = g * g / (2.0 * d_noise * d);
        if !(d_noise > 0.0 && c.is_finite()) {
            skipped_zero_noise += 1;
            continue;
        }
        let lambda_max = lambda.as_ref().and_then(|l| l.at(i));
        let alpha_opt = lambda_max.filter(|l| *l > 0.0).map(|l| 2.0 * d_noise / l);
        lrs.push(lr);
        points.push(ConsolidationPoint {
            step: step_of(series, i),
            c,
            d_noise,
            regime: Regime::of(c, &bounds),
            lambda_max,
            alpha_opt,
        });
    }
    let Some(sigma2_factor) = factor_used else {
        return Err(ConsolidationError::NoCompleteRow);
    };
    let convention_assumed = config.variance == VarianceConvention::Auto && inp.micro.is_none();
    let convention = match config.variance {
        VarianceConvention::PerSample => "σ² = grad_var (per-sample variance, as set)".to_string(),
        VarianceConvention::MicroBatch(n) => format!("σ² = {n}·grad_var (variance of micro-batch means over {n} samples, as set)"),
        VarianceConvention::Auto if !convention_assumed => {
            format!("σ² = micro_batch_size·grad_var = {sigma2_factor}·grad_var (grad_var = variance of micro-batch gradients, per the log's micro_batch_size)")
        }
        VarianceConvention::Auto => {
            "σ² = grad_var ASSUMED per-sample: the log has no micro_batch_size (if grad_var is the variance of micro-batch means, set the micro-batch size)".to_string()
        }
    };
    let noise = match warmup {
        None => "D per row from its own grad_var and lr".to_string(),
        Some(w) => format!(
            "D estimated once from the warm-up (steps ≤ {}, {} row(s) with grad_var, mean lr {}): D = {}",
            fmt(w.end),
            w.rows,
            fmt(w.lr),
            fmt(w.d)
        ),
    };
    let mut notes = Vec::new();
    let loss = series.points(&config.loss_metric);
    if loss.is_empty() {
        notes.push(format!(
            "no `{}` in this log: the plateau (Kramers-escape) check did not run",
            config.loss_metric
        ));
    }
    let total = logged_total_steps(series).or_else(|| {
        series
            .step
            .iter()
            .flatten()
            .copied()
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))))
    });
    let alerts = find_alerts(&points, &loss, total, config);
    let scale_note = scale_note(&points, &lrs, &bounds);
    Ok(ConsolidationCurve {
        points,
        sigma2_factor,
        convention,
        convention_assumed,
        noise,
        skipped_zero_noise,
        bounds,
        alerts,
        scale_note,
        notes,
    })
}

fn fmt(v: f64) -> String {
    crate::figures::draw::format_tick(v)
}

#[derive(Clone, Copy)]
struct WarmupNoise {
    d: f64,
    lr: f64,
    factor: f64,
    end: f64,
    rows: usize,
}

/// D = the mean of α²σ²/(2B) over the warm-up rows (step ≤ end) that log
/// grad_var with lr > 0.
fn warmup_noise(
    series: &Series,
    inp: &Inputs,
    config: &ConsolidationConfig,
    steps: Option<f64>,
) -> Result<WarmupNoise, ConsolidationError> {
    let end = steps
        .or_else(|| logged_warmup_end(series))
        .ok_or(ConsolidationError::NoWarmupEnd)?;
    let mut ds = Vec::new();
    let mut lrs = Vec::new();
    let mut factor = None;
    for i in 0..series.len() {
        if step_of(series, i) > end {
            continue;
        }
        let Some((d, f)) = inp.noise_at(config, i).filter(|(d, _)| *d > 0.0) else {
            continue;
        };
        factor.get_or_insert(f);
        ds.push(d);
        lrs.push(inp.lr.at(i).unwrap_or(f64::NAN));
    }
    let (Some(factor), false) = (factor, ds.is_empty()) else {
        return Err(ConsolidationError::NoWarmupVariance(end));
    };
    let n = ds.len() as f64;
    Ok(WarmupNoise {
        d: ds.iter().sum::<f64>() / n,
        lr: lrs.iter().sum::<f64>() / n,
        factor,
        end,
        rows: ds.len(),
    })
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// C = B·(‖∇L‖²/d)/(α²σ²): the step gradient's SNR over α². Says so with the
/// medians, and which regimes the points fall in.
fn scale_note(points: &[ConsolidationPoint], lrs: &[f64], b: &RegimeBounds) -> String {
    let cs: Vec<f64> = points.iter().map(|p| p.c).collect();
    let snr: Vec<f64> = points.iter().zip(lrs).map(|(p, a)| p.c * a * a).collect();
    let (Some(mc), Some(ma), Some(ms)) = (median(&cs), median(lrs), median(&snr)) else {
        return String::new();
    };
    let (lo, hi) = cs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, z), &c| {
            (a.min(c), z.max(c))
        });
    let one_band = Regime::ALL
        .iter()
        .filter(|r| points.iter().any(|p| p.regime == **r))
        .count()
        == 1;
    format!(
        "Why C is where it is: C = B·(‖∇L‖²/d)/(α²σ²) is the step gradient's signal-to-noise ratio divided by α². \
         Here C runs from {} to {} (median {}); the median lr {} makes 1/α² ≈ {}, so the gradient SNR itself is only ≈ {} (median C·α²).{}",
        fmt(lo),
        fmt(hi),
        fmt(mc),
        fmt(ma),
        fmt(1.0 / (ma * ma)),
        fmt(ms),
        if one_band {
            format!(" Every point lies in one regime ({}): the regimes do not separate these runs.", points[0].regime.label(b))
        } else {
            String::new()
        }
    )
}

/// The seed's alerts on the C curve (and the loss for the plateau test).
fn find_alerts(
    points: &[ConsolidationPoint],
    loss: &[(f64, f64)],
    total: Option<f64>,
    config: &ConsolidationConfig,
) -> Vec<Alert> {
    let th = &config.alerts;
    let w = config.window;
    let mut alerts = Vec::new();
    let alert = |kind, step, from, to, value, message| Alert {
        kind,
        step,
        from,
        to,
        value,
        message,
    };
    for pair in points.windows(2) {
        let (p, q) = (&pair[0], &pair[1]);
        let drop = (p.c - q.c) / p.c;
        if p.c > 0.0 && q.c < p.c && drop > th.sharp_drop {
            let ahead = total.map_or(String::new(), |t| {
                format!(
                    " (steps {}–{})",
                    fmt(q.step + 0.1 * t),
                    fmt(q.step + 0.2 * t)
                )
            });
            alerts.push(alert(
                AlertKind::SharpDrop,
                q.step,
                p.step,
                q.step,
                drop,
                format!(
                    "C fell {:.0} % (from {} to {}) between steps {} and {}: a phase transition in the next 10–20 % of training{ahead}",
                    drop * 100.0,
                    fmt(p.c),
                    fmt(q.c),
                    fmt(p.step),
                    fmt(q.step)
                ),
            ));
        }
        if p.c >= th.grokking && q.c < th.grokking {
            alerts.push(alert(
                AlertKind::GrokkingThreshold,
                q.step,
                p.step,
                q.step,
                q.c,
                format!(
                    "C crossed below the grokking threshold {} at step {} ({} → {})",
                    fmt(th.grokking),
                    fmt(q.step),
                    fmt(p.c),
                    fmt(q.c)
                ),
            ));
        }
    }
    // Stuck: a stretch of consecutive points below the threshold lasting > stuck_fraction of training.
    if let Some(total) = total.filter(|t| *t > 0.0) {
        let mut i = 0;
        while i < points.len() {
            if points[i].c >= th.stuck_below {
                i += 1;
                continue;
            }
            let start = i;
            while i < points.len() && points[i].c < th.stuck_below {
                i += 1;
            }
            let (from, to) = (points[start].step, points[i - 1].step);
            let fired = points[start..i]
                .iter()
                .find(|p| p.step - from > th.stuck_fraction * total);
            if let Some(f) = fired {
                let frac = (to - from) / total;
                alerts.push(alert(
                    AlertKind::Stuck,
                    f.step,
                    from,
                    to,
                    frac,
                    format!(
                        "C < {} from step {} to {} ({:.0} % of training, > {:.0} % from step {} on): stuck in a bad minimum — raise the learning rate 2–5×",
                        fmt(th.stuck_below),
                        fmt(from),
                        fmt(to),
                        frac * 100.0,
                        th.stuck_fraction * 100.0,
                        fmt(f.step)
                    ),
                ));
            }
        }
    }
    // Window checks: C > sharp_minimum and not decreasing; C < stuck on a loss plateau.
    let mut sharp: Vec<(usize, usize)> = Vec::new();
    let mut kramers: Vec<(usize, usize)> = Vec::new();
    for end in w - 1..points.len() {
        let win = &points[end + 1 - w..=end];
        if win.iter().all(|p| p.c > th.sharp_minimum) && win[w - 1].c >= win[0].c {
            extend(&mut sharp, end);
        }
        let (a, b) = (win[0].step, win[w - 1].step);
        let in_win: Vec<f64> = loss
            .iter()
            .filter(|p| p.0 >= a && p.0 <= b)
            .map(|p| p.1)
            .collect();
        if points[end].c < th.stuck_below && is_plateau(&in_win, th.plateau_tolerance) {
            extend(&mut kramers, end);
        }
    }
    for (s, e) in sharp {
        let (from, to) = (points[s + 1 - w].step, points[e].step);
        alerts.push(alert(
            AlertKind::SharpMinimum,
            points[s].step,
            from,
            to,
            points[s].c,
            format!(
                "C > {} and not decreasing over {w} points from step {} to {}: converging to a sharp minimum — regularise or lower the LR",
                fmt(th.sharp_minimum),
                fmt(points[s].step),
                fmt(to)
            ),
        ));
    }
    for (s, e) in kramers {
        let (from, to) = (points[s + 1 - w].step, points[e].step);
        alerts.push(alert(
            AlertKind::KramersEscape,
            points[s].step,
            from,
            to,
            points[s].c,
            format!(
                "C < {} at step {} while `{}` is on a plateau (relative range < {} over steps {}–{}): the Kramers-escape case — only the noise can carry the run over the barrier (raise the LR or the noise, or wait)",
                fmt(th.stuck_below),
                fmt(points[s].step),
                config.loss_metric,
                fmt(th.plateau_tolerance),
                fmt(from),
                fmt(to)
            ),
        ));
    }
    alerts.sort_by(|a, b| a.step.total_cmp(&b.step));
    alerts
}

/// Adds index `i` to the last range when it follows it, else opens a new one.
fn extend(ranges: &mut Vec<(usize, usize)>, i: usize) {
    match ranges.last_mut() {
        Some(r) if r.1 + 1 == i => r.1 = i,
        _ => ranges.push((i, i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regimes_and_labels_share_their_boundaries() {
        let b = RegimeBounds::default();
        let cases = [
            (25.0, Regime::SignalDominated),
            (20.0, Regime::Transitional),
            (10.0, Regime::Transitional),
            (9.99, Regime::Consolidating),
            (1.5001, Regime::Consolidating),
            (1.5, Regime::Balanced),
            (1.2, Regime::Balanced),
            (0.5, Regime::Balanced),
            (0.4999, Regime::NoiseDominated),
        ];
        for (c, want) in cases {
            let got = Regime::of(c, &b);
            assert_eq!(got, want, "C = {c}");
            // The label's range holds the value.
            let (lo, hi) = got.range(&b).unwrap();
            assert!(c >= lo && c <= hi, "{c} outside {}", got.label(&b));
        }
        assert_eq!(
            Regime::Consolidating.label(&b),
            "exploring vs exploiting, optimal (1.5 < C < 10)"
        );
        assert_eq!(
            Regime::Balanced.label(&b),
            "C ≈ 1, phase transition imminent (0.5 ≤ C ≤ 1.5)"
        );
        assert!(Regime::BelowBalanced.range(&b).is_none());
        // A narrower band (w = 0.2): [0.8, 1.2]; 0.6 lies between it and the stuck regime.
        let n = RegimeBounds::new(0.2).unwrap();
        assert_eq!(
            (
                Regime::of(1.3, &n),
                Regime::of(1.2, &n),
                Regime::of(0.6, &n)
            ),
            (
                Regime::Consolidating,
                Regime::Balanced,
                Regime::BelowBalanced
            )
        );
        assert_eq!(
            Regime::BelowBalanced.label(&n),
            "between regimes (0.5 ≤ C < 0.8)"
        );
        assert!(RegimeBounds::new(0.0).is_err() && RegimeBounds::new(f64::NAN).is_err());
    }

    #[test]
    fn plateau_is_a_small_relative_range() {
        assert!(is_plateau(&[2.0, 2.01, 2.005], 0.01));
        assert!(!is_plateau(&[2.0, 2.05], 0.01));
        assert!(!is_plateau(&[2.0], 0.01));
    }

    #[test]
    fn missing_fields_are_all_named() {
        let mut s = Series::new(crate::formats::logs::LogFormat::Jsonl);
        s.step = vec![Some(1.0)];
        s.tokens = vec![None];
        s.metrics.insert("grad_norm".into(), vec![Some(1.0)]);
        let err = consolidation_ratio(&s, &ConsolidationConfig::default()).unwrap_err();
        assert_eq!(err.to_string(), "cannot compute the consolidation ratio: the log has no `grad_var`, `lr`, `batch_size`, `n_params`");
    }
}
