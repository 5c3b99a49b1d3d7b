//! The study's comparisons of two conditions (METRICS.md "Statistics across runs"): for one metric,
//! the effect x − y at the final shared checkpoint, over the trajectory and per layer, with its
//! uncertainty — from the seeds (Welch's t-test and the exact permutation test) when both sides have
//! at least two, else from resampling the eval sequences when the caller supplies the resamples —
//! a paired signed-rank test across (layer, head) units when each side has one seed (descriptive:
//! units of one model are not independent), Holm's correction across every test shown, and a verdict
//! in the plan's words ([`verdict`]).
//!
//! Everything here is a pure function of [`MetricValues`] (per run, per checkpoint: the metric's
//! value, per layer and per unit) and the [`Condition`]s, so the page and the CLI give the same
//! answers from the same inputs; [`inputs`] builds those from activation spectra.

pub mod inputs;
pub mod verdict;

use super::conditions::Condition;
use super::stats::{
    exact_permutation, holm, signed_rank, welch, Permutation, SignedRank, Tost, Welch,
};
use serde::{Deserialize, Serialize};
pub use verdict::{plan_pairs, PlanQuestion, Verdict, VerdictKind};

/// What is compared: a metric's name and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricInfo {
    /// Short key (`k_pr`, `heldout_loss`).
    pub key: String,
    /// For sentences and captions: "K PR (after k_norm, before RoPE; mean over layers and kv-heads)".
    pub label: String,
    /// The short name in verdicts ("K PR", "held-out loss").
    pub short: String,
    /// Lower values mean more collapse (a rank metric), so the plan's implications apply.
    pub rank_like: bool,
    /// Whether the trajectory effect is compared too (not for the held-out loss, whose mean over
    /// checkpoints is dominated by the untrained start; the plan asks about its final value).
    pub trajectory: bool,
}

/// One checkpoint of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub tokens: Option<u64>,
    pub step: Option<u64>,
    /// The run's value (mean over layers, as Figure 1).
    pub value: f64,
    /// Per layer (mean over its heads); empty when the metric has no layers (held-out loss).
    pub layers: Vec<f64>,
    /// Per (layer, head), layer-major; empty when the metric has no units.
    pub units: Vec<f64>,
    /// `value` on resamples of the eval sequences ([`Resampling`]); the same resamples for every
    /// run, so differences are paired draw by draw.
    pub resamples: Option<Vec<f64>>,
}

/// One run's values, checkpoints in training order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetric {
    pub run: String,
    pub points: Vec<MetricPoint>,
}

/// How [`MetricPoint::resamples`] were drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resampling {
    pub n_boot: usize,
    pub n_sequences: usize,
    pub seed: u64,
}

/// One metric's values for every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValues {
    pub metric: MetricInfo,
    pub runs: Vec<RunMetric>,
    pub resampling: Option<Resampling>,
}

/// Two conditions to compare, x − y.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub x: String,
    pub y: String,
}

/// The equivalence margin δ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    /// δ = this fraction of |pooled mean| (the mean of both sides' run values).
    FractionOfPooledMean(f64),
    /// δ in the metric's units.
    Absolute(f64),
}

/// Levels and margins (defaults: 95% intervals, α = 0.05, δ = 5% of the pooled mean).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    pub level: f64,
    pub alpha: f64,
    pub margin: Margin,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            level: 0.95,
            alpha: 0.05,
            margin: Margin::FractionOfPooledMean(0.05),
        }
    }
}

/// A training point both conditions' runs have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    Tokens(u64),
    Step(u64),
}

impl std::fmt::Display for Milestone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Milestone::Tokens(t) => write!(f, "{t} tokens"),
            Milestone::Step(s) => write!(f, "step {s}"),
        }
    }
}

/// Where an effect's uncertainty comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Uncertainty {
    /// Seed replicates: Welch's t-test and the exact permutation test over seed labels.
    Seeds { n_x: usize, n_y: usize },
    /// Resampled eval sequences (measurement noise only; seed-to-seed variation unknown).
    Bootstrap {
        n_boot: usize,
        n_sequences: usize,
        seed: u64,
    },
    /// None could be computed, and why.
    None { reason: String },
}

impl Uncertainty {
    /// Which test and why, in a sentence.
    pub fn describe(&self) -> String {
        match self {
            Uncertainty::Seeds { n_x, n_y } => format!(
                "across seeds ({n_x} and {n_y} runs): Welch's t-test (interval and p) and the exact permutation test \
                 over seed labels"
            ),
            Uncertainty::Bootstrap {
                n_boot,
                n_sequences,
                ..
            } => format!(
                "fewer than 2 seeds on a side, so the interval is a percentile bootstrap over the {n_sequences} eval \
                 sequences ({n_boot} resamples, the same for both sides): it measures the measurement's noise, not \
                 seed-to-seed variation, and gives no p-value"
            ),
            Uncertainty::None { reason } => format!("no uncertainty: {reason}"),
        }
    }
}

/// The equivalence test of an effect at margin δ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Equivalence {
    pub margin: f64,
    /// Welch's two one-sided tests (seeds), else `None`.
    pub tost: Option<Tost>,
    /// The (1 − 2α) interval used (Welch or bootstrap); equivalence when it lies inside (−δ, δ).
    pub interval: [f64; 2],
    pub passed: bool,
}

/// An effect x − y with its uncertainty, tests and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// "at the final checkpoint (327680 tokens)", "over the trajectory (mean over 6 shared checkpoints)".
    pub what: String,
    /// One value per run of x and of y (the runs' order in the comparison).
    pub values_x: Vec<f64>,
    pub values_y: Vec<f64>,
    pub mean_x: f64,
    pub mean_y: f64,
    pub difference: f64,
    pub uncertainty: Uncertainty,
    /// The `level` interval of the difference, when there is an uncertainty.
    pub interval: Option<[f64; 2]>,
    pub level: f64,
    pub welch: Option<Welch>,
    pub permutation: Option<Permutation>,
    /// The p-value that enters Holm's family (Welch's), when a test applies.
    pub p: Option<f64>,
    /// Holm-corrected `p` over every test of the comparisons shown together.
    pub p_holm: Option<f64>,
    pub equivalence: Option<Equivalence>,
    pub verdict: Verdict,
}

/// The final-checkpoint difference in one layer (descriptive; not in Holm's family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerEffect {
    pub layer: usize,
    pub mean_x: f64,
    pub mean_y: f64,
    pub difference: f64,
    /// Welch's interval when both sides have ≥ 2 seeds.
    pub interval: Option<[f64; 2]>,
    /// Welch's p, uncorrected.
    pub p: Option<f64>,
}

/// The paired signed-rank test across (layer, head) units when each side has one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitsTest {
    pub run_x: String,
    pub run_y: String,
    pub at: Milestone,
    pub test: SignedRank,
    /// Says what the test does and does not show.
    pub caveat: String,
}

/// One comparison of two conditions on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub x: String,
    pub y: String,
    pub question: Option<PlanQuestion>,
    pub metric: MetricInfo,
    pub runs_x: Vec<String>,
    pub runs_y: Vec<String>,
    /// Training points every run of both sides has (the trajectory's points; the last is "final").
    pub shared: Vec<Milestone>,
    pub final_effect: Effect,
    /// `None` for metrics compared at the final checkpoint only ([`MetricInfo::trajectory`]).
    pub trajectory: Option<Effect>,
    pub layers: Vec<LayerEffect>,
    pub units: Option<UnitsTest>,
    /// What was left out and why (checkpoints not shared, layers that differ, …).
    pub notes: Vec<String>,
}

/// A comparison that could not be made, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedComparison {
    pub x: String,
    pub y: String,
    pub metric: String,
    pub message: String,
}

/// Every comparison shown together, Holm-corrected as one family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSet {
    pub comparisons: Vec<Comparison>,
    pub failed: Vec<FailedComparison>,
    /// The tests in Holm's family ("A1 vs A2, K PR, final"), in order.
    pub holm_family: Vec<String>,
    pub options: CompareOptions,
}

/// Why one comparison could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("no condition `{name}` (conditions: {known})")]
    UnknownCondition { name: String, known: String },
    #[error("x and y are both `{0}`")]
    SameCondition(String),
    #[error("run `{run}` has no {metric} values{hint}")]
    NoValues {
        run: String,
        metric: String,
        hint: String,
    },
    #[error(
        "checkpoint {index} of run `{run}` has neither a token count nor a step, so it cannot be matched"
    )]
    NoTrainingPoint { run: String, index: usize },
    #[error("{x} and {y} share no checkpoint: {detail}")]
    NoSharedCheckpoints {
        x: String,
        y: String,
        detail: String,
    },
}

/// Compares every pair on every metric table and applies Holm's correction across all their
/// final and trajectory tests. Pairs that cannot be compared are listed in `failed` with the reason.
pub fn compare_all(
    conditions: &[Condition],
    tables: &[MetricValues],
    pairs: &[Pair],
    options: CompareOptions,
) -> ComparisonSet {
    let mut comparisons = Vec::new();
    let mut failed = Vec::new();
    for values in tables {
        for pair in pairs {
            match compare_pair(conditions, values, pair, &options) {
                Ok(c) => comparisons.push(c),
                Err(e) => failed.push(FailedComparison {
                    x: pair.x.clone(),
                    y: pair.y.clone(),
                    metric: values.metric.short.clone(),
                    message: e.to_string(),
                }),
            }
        }
    }
    let mut holm_family = Vec::new();
    let mut family_p = Vec::new();
    for c in &comparisons {
        for (name, e) in [
            ("final", Some(&c.final_effect)),
            ("trajectory", c.trajectory.as_ref()),
        ] {
            if let Some(p) = e.and_then(|e| e.p) {
                holm_family.push(format!("{} vs {}, {}, {name}", c.x, c.y, c.metric.short));
                family_p.push(p);
            }
        }
    }
    // Welch p-values lie in [0, 1] by construction, so Holm cannot refuse them.
    let mut adjusted = holm(&family_p).unwrap_or_default().into_iter();
    for c in &mut comparisons {
        for e in std::iter::once(&mut c.final_effect).chain(c.trajectory.as_mut()) {
            if e.p.is_some() {
                e.p_holm = adjusted.next();
            }
        }
        let (x, y) = (c.x.clone(), c.y.clone());
        for e in std::iter::once(&mut c.final_effect).chain(c.trajectory.as_mut()) {
            e.verdict = verdict::verdict(
                e,
                &x,
                &y,
                &c.metric,
                c.question.as_ref(),
                &options,
                holm_family.len(),
            );
        }
    }
    ComparisonSet {
        comparisons,
        failed,
        holm_family,
        options,
    }
}

fn milestone(
    run: &str,
    index: usize,
    p: &MetricPoint,
    by_tokens: bool,
) -> Result<Milestone, CompareError> {
    let found = if by_tokens {
        p.tokens.map(Milestone::Tokens)
    } else {
        p.step.map(Milestone::Step)
    };
    found.ok_or(CompareError::NoTrainingPoint {
        run: run.to_string(),
        index,
    })
}

/// The runs of a condition with their values.
fn side<'a>(
    conditions: &'a [Condition],
    values: &'a MetricValues,
    name: &str,
) -> Result<Vec<&'a RunMetric>, CompareError> {
    let Some(c) = conditions.iter().find(|c| c.name == name) else {
        let known = conditions
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CompareError::UnknownCondition {
            name: name.to_string(),
            known,
        });
    };
    c.runs
        .iter()
        .map(|r| {
            values
                .runs
                .iter()
                .find(|v| v.run == r.run && !v.points.is_empty())
                .ok_or_else(|| CompareError::NoValues {
                    run: r.run.clone(),
                    metric: values.metric.short.clone(),
                    hint: missing_hint(&values.metric),
                })
        })
        .collect()
}

fn missing_hint(metric: &MetricInfo) -> String {
    match metric.key.as_str() {
        "heldout_loss" => {
            " (no held-out batch was given, or its checkpoints could not be run)".to_string()
        }
        _ => {
            " (no readable checkpoint with this metric; an activation metric needs the eval batch)"
                .to_string()
        }
    }
}

/// Compares conditions `pair.x` and `pair.y` on one metric (verdicts are filled by [`compare_all`]
/// once Holm's correction is known).
pub fn compare_pair(
    conditions: &[Condition],
    values: &MetricValues,
    pair: &Pair,
    options: &CompareOptions,
) -> Result<Comparison, CompareError> {
    if pair.x == pair.y {
        return Err(CompareError::SameCondition(pair.x.clone()));
    }
    let xs = side(conditions, values, &pair.x)?;
    let ys = side(conditions, values, &pair.y)?;
    let all: Vec<&RunMetric> = xs.iter().chain(&ys).copied().collect();
    // Match checkpoints by tokens when every checkpoint has them, else by step.
    let by_tokens = all
        .iter()
        .all(|r| r.points.iter().all(|p| p.tokens.is_some()));
    let mut per_run: Vec<Vec<Milestone>> = Vec::new();
    for r in &all {
        per_run.push(
            r.points
                .iter()
                .enumerate()
                .map(|(i, p)| milestone(&r.run, i, p, by_tokens))
                .collect::<Result<_, _>>()?,
        );
    }
    let shared: Vec<Milestone> = {
        let mut s = per_run[0].clone();
        s.retain(|m| per_run.iter().all(|ms| ms.contains(m)));
        s.sort();
        s.dedup();
        s
    };
    let Some(&last) = shared.last() else {
        let detail = all
            .iter()
            .zip(&per_run)
            .map(|(r, ms)| {
                format!(
                    "{} has {}",
                    r.run,
                    ms.iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CompareError::NoSharedCheckpoints {
            x: pair.x.clone(),
            y: pair.y.clone(),
            detail,
        });
    };
    let mut notes = Vec::new();
    for (r, ms) in all.iter().zip(&per_run) {
        let left: Vec<String> = ms
            .iter()
            .filter(|m| !shared.contains(m))
            .map(|m| m.to_string())
            .collect();
        if !left.is_empty() {
            notes.push(format!(
                "{}: {} not shared by every run, left out",
                r.run,
                left.join(", ")
            ));
        }
    }
    fn point_at(r: &RunMetric, m: Milestone, by_tokens: bool) -> &MetricPoint {
        let i = r
            .points
            .iter()
            .position(|p| milestone(&r.run, 0, p, by_tokens).ok() == Some(m));
        &r.points[i.expect("every shared milestone is in every run")]
    }
    let finals_x: Vec<&MetricPoint> = xs.iter().map(|r| point_at(r, last, by_tokens)).collect();
    let finals_y: Vec<&MetricPoint> = ys.iter().map(|r| point_at(r, last, by_tokens)).collect();
    let final_input = EffectInput {
        what: format!("at the final shared checkpoint ({last})"),
        x: finals_x.iter().map(|p| p.value).collect(),
        y: finals_y.iter().map(|p| p.value).collect(),
        resamples_x: finals_x.iter().map(|p| p.resamples.clone()).collect(),
        resamples_y: finals_y.iter().map(|p| p.resamples.clone()).collect(),
    };
    let trajectory_of = |r: &RunMetric| -> (f64, Option<Vec<f64>>) {
        let points: Vec<&MetricPoint> = shared.iter().map(|&m| point_at(r, m, by_tokens)).collect();
        let value = points.iter().map(|p| p.value).sum::<f64>() / points.len() as f64;
        let resamples = points
            .iter()
            .map(|p| p.resamples.as_deref())
            .collect::<Option<Vec<_>>>()
            .and_then(|rs| {
                let n = rs[0].len();
                rs.iter().all(|r| r.len() == n).then(|| {
                    (0..n)
                        .map(|b| rs.iter().map(|r| r[b]).sum::<f64>() / rs.len() as f64)
                        .collect()
                })
            });
        (value, resamples)
    };
    let (tx, ty): (Vec<_>, Vec<_>) = (
        xs.iter().map(|r| trajectory_of(r)).collect(),
        ys.iter().map(|r| trajectory_of(r)).collect(),
    );
    let trajectory_input = EffectInput {
        what: format!(
            "over the trajectory (per run, the mean over {} shared checkpoints)",
            shared.len()
        ),
        x: tx.iter().map(|t| t.0).collect(),
        y: ty.iter().map(|t| t.0).collect(),
        resamples_x: tx.into_iter().map(|t| t.1).collect(),
        resamples_y: ty.into_iter().map(|t| t.1).collect(),
    };
    let resampling = values.resampling;
    let final_effect = effect(final_input, resampling, options);
    let trajectory = values
        .metric
        .trajectory
        .then(|| effect(trajectory_input, resampling, options));
    let layers = layer_effects(&finals_x, &finals_y, options, &mut notes);
    let units = units_test(&xs, &ys, &finals_x, &finals_y, last, &mut notes);
    Ok(Comparison {
        x: pair.x.clone(),
        y: pair.y.clone(),
        question: verdict::plan_question(&pair.x, &pair.y),
        metric: values.metric.clone(),
        runs_x: xs.iter().map(|r| r.run.clone()).collect(),
        runs_y: ys.iter().map(|r| r.run.clone()).collect(),
        shared,
        final_effect,
        trajectory,
        layers,
        units,
        notes,
    })
}

/// One value per run on each side, and each run's resampled values when it has them.
struct EffectInput {
    what: String,
    x: Vec<f64>,
    y: Vec<f64>,
    resamples_x: Vec<Option<Vec<f64>>>,
    resamples_y: Vec<Option<Vec<f64>>>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The equivalence margin for these values.
fn margin_of(options: &CompareOptions, x: &[f64], y: &[f64]) -> f64 {
    match options.margin {
        Margin::Absolute(d) => d,
        Margin::FractionOfPooledMean(f) => {
            let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
            f * mean(&pooled).abs()
        }
    }
}

/// Per draw b: mean over x runs − mean over y runs of the resampled values, when every run has
/// resamples of one length.
fn paired_draws(rx: &[Option<Vec<f64>>], ry: &[Option<Vec<f64>>]) -> Option<Vec<f64>> {
    let (xs, ys): (Vec<&Vec<f64>>, Vec<&Vec<f64>>) = (
        rx.iter().map(Option::as_ref).collect::<Option<_>>()?,
        ry.iter().map(Option::as_ref).collect::<Option<_>>()?,
    );
    let n = xs.first()?.len();
    if n == 0 || xs.iter().chain(&ys).any(|r| r.len() != n) {
        return None;
    }
    let side_mean =
        |rs: &[&Vec<f64>], b: usize| rs.iter().map(|r| r[b]).sum::<f64>() / rs.len() as f64;
    Some(
        (0..n)
            .map(|b| side_mean(&xs, b) - side_mean(&ys, b))
            .collect(),
    )
}

fn effect(input: EffectInput, resampling: Option<Resampling>, options: &CompareOptions) -> Effect {
    let (mean_x, mean_y) = (mean(&input.x), mean(&input.y));
    let difference = mean_x - mean_y;
    let margin = margin_of(options, &input.x, &input.y);
    let mut e = Effect {
        what: input.what,
        values_x: input.x.clone(),
        values_y: input.y.clone(),
        mean_x,
        mean_y,
        difference,
        uncertainty: Uncertainty::None {
            reason: String::new(),
        },
        interval: None,
        level: options.level,
        welch: None,
        permutation: None,
        p: None,
        p_holm: None,
        equivalence: None,
        verdict: Verdict::pending(),
    };
    let (n_x, n_y) = (input.x.len(), input.y.len());
    if n_x >= 2 && n_y >= 2 {
        e.uncertainty = Uncertainty::Seeds { n_x, n_y };
        e.permutation = exact_permutation(&input.x, &input.y).ok();
        match welch(&input.x, &input.y) {
            Ok(w) => {
                e.welch = Some(w);
                e.p = Some(w.p);
                e.interval = w.interval(options.level).ok();
                let tost = w.tost(margin).ok();
                if let (Some(t), Ok(i)) = (tost, w.interval(1.0 - 2.0 * options.alpha)) {
                    e.equivalence = Some(Equivalence {
                        margin,
                        tost: Some(t),
                        interval: i,
                        passed: t.p < options.alpha,
                    });
                }
            }
            Err(err) => {
                e.uncertainty = Uncertainty::None {
                    reason: err.to_string(),
                }
            }
        }
        return e;
    }
    let draws = paired_draws(&input.resamples_x, &input.resamples_y);
    match (draws, resampling) {
        (Some(draws), Some(r)) => {
            let n_finite = draws.iter().filter(|v| v.is_finite()).count();
            let ci =
                super::importance::percentile_interval(difference, draws.clone(), options.level);
            let eq = super::importance::percentile_interval(
                difference,
                draws,
                1.0 - 2.0 * options.alpha,
            );
            if ci.lo.is_finite() {
                e.uncertainty = Uncertainty::Bootstrap {
                    n_boot: n_finite,
                    n_sequences: r.n_sequences,
                    seed: r.seed,
                };
                e.interval = Some([ci.lo, ci.hi]);
                e.equivalence = Some(Equivalence {
                    margin,
                    tost: None,
                    interval: [eq.lo, eq.hi],
                    passed: margin > 0.0 && -margin < eq.lo && eq.hi < margin,
                });
            } else {
                e.uncertainty = Uncertainty::None {
                    reason: "no resample of the eval sequences gave a finite value".into(),
                };
            }
        }
        _ => {
            e.uncertainty = Uncertainty::None {
                reason: format!(
                    "fewer than 2 seeds on a side ({n_x} and {n_y} runs), so no test across seeds, and no resampled eval \
                     sequences for this metric"
                ),
            }
        }
    }
    e
}

fn layer_effects(
    xs: &[&MetricPoint],
    ys: &[&MetricPoint],
    options: &CompareOptions,
    notes: &mut Vec<String>,
) -> Vec<LayerEffect> {
    let counts: Vec<usize> = xs.iter().chain(ys).map(|p| p.layers.len()).collect();
    let n = counts[0];
    if n == 0 {
        return Vec::new();
    }
    if counts.iter().any(|&c| c != n) {
        notes.push(format!(
            "no per-layer effects: the runs have different numbers of layers ({counts:?})"
        ));
        return Vec::new();
    }
    (0..n)
        .map(|l| {
            let (x, y): (Vec<f64>, Vec<f64>) = (
                xs.iter().map(|p| p.layers[l]).collect(),
                ys.iter().map(|p| p.layers[l]).collect(),
            );
            let w = welch(&x, &y).ok();
            LayerEffect {
                layer: l,
                mean_x: mean(&x),
                mean_y: mean(&y),
                difference: mean(&x) - mean(&y),
                interval: w.and_then(|w| w.interval(options.level).ok()),
                p: w.map(|w| w.p),
            }
        })
        .collect()
}

/// What the units test shows.
pub const UNITS_CAVEAT: &str =
    "paired across (layer, head) units of one run per side: the units of one model are not \
     independent, so this describes where the difference lies; it is not a test of the conditions";

fn units_test(
    xs: &[&RunMetric],
    ys: &[&RunMetric],
    fx: &[&MetricPoint],
    fy: &[&MetricPoint],
    at: Milestone,
    notes: &mut Vec<String>,
) -> Option<UnitsTest> {
    let ([rx], [ry], [px], [py]) = (xs, ys, fx, fy) else {
        return None;
    };
    if px.units.is_empty() {
        return None;
    }
    if px.units.len() != py.units.len() {
        notes.push(format!(
            "no units test: {} has {} (layer, head) units and {} has {}",
            rx.run,
            px.units.len(),
            ry.run,
            py.units.len()
        ));
        return None;
    }
    match signed_rank(&px.units, &py.units) {
        Ok(test) => Some(UnitsTest {
            run_x: rx.run.clone(),
            run_y: ry.run.clone(),
            at,
            test,
            caveat: UNITS_CAVEAT.to_string(),
        }),
        Err(e) => {
            notes.push(format!("no units test: {e}"));
            None
        }
    }
}
