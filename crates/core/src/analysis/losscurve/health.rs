//! Health rules: thresholds over logged metrics, and where each one fires.
//!
//! A [`Rule`] is plain data (serde, JSON) so that users can edit the list.
//! [`builtin_rules`] holds the RLAN collapse report's rules under the names
//! that report gives its metrics (`lora_norm`, `lora_norm_ema`, NaN batches
//! per epoch, accuracy, entropy, attention sharpness; issue 18), each with
//! the action it names, plus a rank-collapse rule and the gradient-geometry
//! rules of [`super::geometry`]. A rule reads its metric or, when the log
//! lacks it, the first of its aliases the log has (`adapter_norm` for
//! `lora_norm`). A rule whose metric (or grouping column) is absent from a
//! log is reported as not applicable, never skipped in silence.
//! [`healthy_ranges`] are the report's healthy ranges, as data a figure draws
//! as bands.

use super::axes::{ema_debiased, progress_points};
use crate::formats::logs::Series;

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Comparison {
    /// value > threshold
    #[serde(rename = ">")]
    Gt,
    /// value ≥ threshold
    #[serde(rename = ">=")]
    Ge,
    /// value < threshold
    #[serde(rename = "<")]
    Lt,
    /// value ≤ threshold
    #[serde(rename = "<=")]
    Le,
}

impl Comparison {
    /// Whether `value` fires against `threshold` (NaN never fires).
    pub fn fires(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    /// The symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }

    /// Whether larger values are worse (for picking the worst value).
    fn upward(self) -> bool {
        matches!(self, Comparison::Gt | Comparison::Ge)
    }
}

/// How bad a firing is, in the seed's words.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Look at it.
    Warn,
    /// Intervene soon.
    Critical,
    /// Stop the run.
    Kill,
    /// Abort the run (numerical failure).
    Abort,
    /// The model has collapsed.
    Collapse,
    /// Stop early and keep the last checkpoint before the firing.
    EarlyStop,
}

/// What the rule compares: the metric itself or a quantity derived from it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Aggregation {
    /// Every logged value of the metric.
    #[default]
    Value,
    /// Per group of rows with the same value of the column `per` (e.g.
    /// `epoch`), the number of rows whose metric is NaN or ±inf ("NaN batches
    /// per epoch").
    NonFiniteCount {
        /// The grouping column.
        per: String,
    },
    /// The relative drop from the running maximum, (max so far − value) / |max so far|
    /// ("accuracy drop > 5 %" = 0.05).
    DropFromMax,
    /// The relative fall over the last `span` of progress t̂:
    /// (v(t̂ − span) − v(t̂)) / |v(t̂ − span)|, v interpolated linearly
    /// ("PR falling faster than X per 10 % progress": span 0.1).
    FallPerProgress {
        /// Progress span (0.1 = 10 % of training).
        span: f64,
    },
    /// The debiased exponential moving average of the metric
    /// ([`ema_debiased`]), so that one noisy value does not fire the rule.
    Ema {
        /// β of the average (0.9: about the last 10 values).
        beta: f64,
    },
}

/// One health rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// Name shown in the timeline.
    pub name: String,
    /// The logged metric it reads.
    pub metric: String,
    /// How the (aggregated) value is compared.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// How bad a firing is.
    pub level: Level,
    /// What is compared (default: the value itself).
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Other names of the metric, tried in order when the log lacks `metric`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// What to do when it fires, in the source's words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
}

impl Rule {
    fn simple(
        name: &str,
        metric: &str,
        comparison: Comparison,
        threshold: f64,
        level: Level,
    ) -> Rule {
        Rule {
            name: name.into(),
            metric: metric.into(),
            comparison,
            threshold,
            level,
            aggregation: Aggregation::Value,
            aliases: Vec::new(),
            action: String::new(),
        }
    }

    pub(crate) fn with(mut self, aliases: &[&str], action: &str) -> Rule {
        self.aliases = aliases.iter().map(|a| a.to_string()).collect();
        self.action = action.into();
        self
    }

    /// The name this rule reads in `series`: its metric, else the first alias the log has.
    pub fn resolve<'a>(&'a self, series: &Series) -> Option<&'a str> {
        std::iter::once(&self.metric)
            .chain(&self.aliases)
            .find(|m| series.metric(m).is_some())
            .map(String::as_str)
    }

    /// The metric and its aliases, for messages: "`lora_norm` (or `adapter_norm`)".
    fn names(&self) -> String {
        let mut s = format!("`{}`", self.metric);
        if !self.aliases.is_empty() {
            s.push_str(&format!(
                " (or {})",
                self.aliases
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s
    }
}

/// The lora_norm aliases: older logs call the adapter's norm `adapter_norm`.
const LORA_NORM_ALIASES: [&str; 2] = ["adapter_norm", "lora_weight_norm"];

/// The built-in rules: the RLAN collapse report's thresholds and actions
/// under its metric names — `lora_norm` warn > 1.0, critical > 1.5, kill >
/// 2.0; early stop on `lora_norm_ema` > 1.5; NaN batches per epoch > 50 →
/// abort (a logged `nan_batches` count, or the NaN losses counted per
/// `epoch`); accuracy drop > 5 % → warning; entropy > 2.0 → collapse;
/// attention sharpness < 0.1 → collapse — plus rank collapse (mean PR falling
/// by more than 25 % of its value within 10 % of training) and the
/// gradient-geometry rules ([`super::geometry::geometry_rules`]).
pub fn builtin_rules() -> Vec<Rule> {
    use Comparison::{Gt, Lt};
    let mut rules = vec![
        Rule::simple("lora_norm warn", "lora_norm", Gt, 1.0, Level::Warn)
            .with(&LORA_NORM_ALIASES, "warn: watch the adapter norm; if it keeps growing lower the LR or raise the adapter's weight decay"),
        Rule::simple("lora_norm critical", "lora_norm", Gt, 1.5, Level::Critical)
            .with(&LORA_NORM_ALIASES, "critical: intervene now (lower the LR, clip or rescale the adapter)"),
        Rule::simple("lora_norm kill", "lora_norm", Gt, 2.0, Level::Kill)
            .with(&LORA_NORM_ALIASES, "kill the run; restart from the last healthy checkpoint"),
        Rule::simple("lora_norm_ema early stop", "lora_norm_ema", Gt, 1.5, Level::EarlyStop)
            .with(&["adapter_norm_ema"], "early stop: keep the last checkpoint before the EMA passed 1.5"),
        Rule::simple("NaN batches per epoch", "nan_batches", Gt, 50.0, Level::Abort).with(
            &["nan_batches_per_epoch", "num_nan_batches", "nan_count"],
            "abort: numerical failure (check the LR, the loss scale and the data)",
        ),
        Rule {
            aggregation: Aggregation::NonFiniteCount { per: "epoch".into() },
            ..Rule::simple("NaN losses per epoch", "loss", Gt, 50.0, Level::Abort)
                .with(&["train_loss"], "abort: numerical failure (check the LR, the loss scale and the data)")
        },
        Rule {
            aggregation: Aggregation::DropFromMax,
            ..Rule::simple("accuracy drop", "accuracy", Gt, 0.05, Level::Warn)
                .with(&["acc", "val_accuracy", "val_acc", "eval_accuracy"], "warning: accuracy fell more than 5 % below its best")
        },
        Rule::simple("entropy collapse", "entropy", Gt, 2.0, Level::Collapse)
            .with(&["attention_entropy", "attn_entropy"], "collapse: attention has spread out; roll back and lower the LR"),
        Rule::simple("attention sharpness collapse", "attention_sharpness", Lt, 0.1, Level::Collapse)
            .with(&["attn_sharpness"], "collapse: attention has gone flat; roll back and lower the LR"),
        Rule {
            aggregation: Aggregation::FallPerProgress { span: 0.1 },
            ..Rule::simple("rank collapse (PR falls > 25 % per 10 % progress)", "mean_pr", Gt, 0.25, Level::Collapse)
                .with(&[], "the representation is losing rank: look at the rank figures of the checkpoints")
        },
    ];
    rules.extend(super::geometry::geometry_rules());
    rules
}

/// A healthy range of a metric (the RLAN report's), drawn as a band on the
/// metric's figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthyRange {
    /// The metric.
    pub metric: String,
    /// Its other names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Lowest healthy value (`None`: no lower bound).
    pub lo: Option<f64>,
    /// Highest healthy value (`None`: no upper bound).
    pub hi: Option<f64>,
    /// Healthy when rising rather than within bounds (accuracy).
    #[serde(default)]
    pub rising: bool,
    /// "NaN batches 0–10".
    pub label: String,
}

/// The report's healthy ranges: NaN batches 0–10, entropy < 0.5, attention
/// sharpness > 0.5, accuracy rising.
pub fn healthy_ranges() -> Vec<HealthyRange> {
    let range = |metric: &str,
                 aliases: &[&str],
                 lo: Option<f64>,
                 hi: Option<f64>,
                 rising: bool,
                 label: &str| HealthyRange {
        metric: metric.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        lo,
        hi,
        rising,
        label: label.into(),
    };
    vec![
        range(
            "nan_batches",
            &["nan_batches_per_epoch", "num_nan_batches", "nan_count"],
            Some(0.0),
            Some(10.0),
            false,
            "healthy: NaN batches 0–10",
        ),
        range(
            "entropy",
            &["attention_entropy", "attn_entropy"],
            None,
            Some(0.5),
            false,
            "healthy: entropy < 0.5",
        ),
        range(
            "attention_sharpness",
            &["attn_sharpness"],
            Some(0.5),
            None,
            false,
            "healthy: sharpness > 0.5",
        ),
        range(
            "accuracy",
            &["acc", "val_accuracy", "val_acc", "eval_accuracy"],
            None,
            None,
            true,
            "healthy: accuracy rising",
        ),
    ]
}

/// The healthy range of `metric` (by its name or an alias).
pub fn healthy_range_of(metric: &str) -> Option<HealthyRange> {
    healthy_ranges()
        .into_iter()
        .find(|r| r.metric == metric || r.aliases.iter().any(|a| a == metric))
}

/// Where a rule fired in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// The rule's name.
    pub rule: String,
    /// Its level.
    pub level: Level,
    /// The run.
    pub run: String,
    /// The metric read (the rule's metric or the alias the log has).
    pub metric: String,
    /// The first step where it fired (in the unit of the report's `x`).
    pub first_step: f64,
    /// The end of the last range where it fired.
    pub last_step: f64,
    /// How long it stayed: the summed length of its ranges, in x units
    /// (0 for firings at single points; `count` says how many).
    pub duration: f64,
    /// What the rule says to do.
    #[serde(default)]
    pub action: String,
    /// `[from, to]` step ranges of consecutive firings (a group's first and
    /// last step for per-group rules).
    pub ranges: Vec<[f64; 2]>,
    /// How many evaluated values fired.
    pub count: usize,
    /// The value at the first firing.
    pub first_value: f64,
    /// The worst value among the firings (largest for `>`, smallest for `<`).
    pub value: f64,
}

/// A rule that could not be evaluated on a log, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NotApplicable {
    /// The rule's name.
    pub rule: String,
    /// "not applicable (no `x` in this log)".
    pub reason: String,
}

/// The rules evaluated on one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    /// The run.
    pub run: String,
    /// What the steps of the events are: `"step"`, or `"tokens"` for a log
    /// without steps, or `"row"` (the row index) for a log with neither.
    pub x: String,
    /// Rules that fired, in rule order.
    pub events: Vec<Event>,
    /// Rules that applied and never fired.
    pub quiet: Vec<String>,
    /// Rules that could not be evaluated.
    pub not_applicable: Vec<NotApplicable>,
}

fn not_applicable(rule: &Rule, what: &str) -> NotApplicable {
    NotApplicable {
        rule: rule.name.clone(),
        reason: format!("not applicable (no {what} in this log)"),
    }
}

/// One evaluated value: the step range it covers and the value.
type Sample = (f64, f64, f64);

/// Evaluates every rule on `series`, calling the run `run`.
pub fn evaluate(rules: &[Rule], series: &Series, run: &str) -> HealthReport {
    let x = if series.has_steps() {
        "step"
    } else if series.has_tokens() {
        "tokens"
    } else {
        "row"
    };
    let mut report = HealthReport {
        run: run.into(),
        x: x.into(),
        events: Vec::new(),
        quiet: Vec::new(),
        not_applicable: Vec::new(),
    };
    for rule in rules {
        match samples(rule, series) {
            Err(na) => report.not_applicable.push(na),
            Ok((metric, samples)) => match event(rule, run, metric, &samples) {
                Some(e) => report.events.push(e),
                None => report.quiet.push(rule.name.clone()),
            },
        }
    }
    report
}

/// The x of row `i`: its step; for a log without steps its token count (the
/// same choice as [`progress_points`]); the row index where that is missing.
fn step_of(series: &Series, i: usize) -> f64 {
    let col = if series.has_steps() || !series.has_tokens() {
        &series.step
    } else {
        &series.tokens
    };
    col.get(i).copied().flatten().unwrap_or(i as f64)
}

fn samples<'r>(rule: &'r Rule, series: &Series) -> Result<(&'r str, Vec<Sample>), NotApplicable> {
    let metric = rule
        .resolve(series)
        .ok_or_else(|| not_applicable(rule, &rule.names()))?;
    let col = series
        .metric(metric)
        .ok_or_else(|| not_applicable(rule, &rule.names()))?;
    let samples = match &rule.aggregation {
        Aggregation::Value => col
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (step_of(series, i), step_of(series, i), v)))
            .collect(),
        Aggregation::DropFromMax => {
            let mut max = f64::NEG_INFINITY;
            col.iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let v = v.filter(|v| v.is_finite())?;
                    max = max.max(v);
                    let drop = if max != 0.0 {
                        (max - v) / max.abs()
                    } else {
                        0.0
                    };
                    Some((step_of(series, i), step_of(series, i), drop))
                })
                .collect()
        }
        Aggregation::NonFiniteCount { per } => {
            let groups = series
                .metric(per)
                .ok_or_else(|| not_applicable(rule, &format!("`{per}`")))?;
            let mut out: Vec<Sample> = Vec::new();
            let mut current: Option<f64> = None;
            for (i, v) in col.iter().enumerate() {
                let x = step_of(series, i);
                let g = groups.get(i).copied().flatten().or(current);
                let bad = usize::from(v.is_some_and(|v| !v.is_finite())) as f64;
                match out.last_mut() {
                    Some(last) if g == current => {
                        last.1 = x;
                        last.2 += bad;
                    }
                    _ => out.push((x, x, bad)),
                }
                current = g;
            }
            out
        }
        Aggregation::FallPerProgress { span } => {
            let curve = progress_points(series, metric)
                .ok_or_else(|| not_applicable(rule, &rule.names()))?;
            let pts = &curve.points;
            let mut out = Vec::new();
            for (k, &(t, v)) in pts.iter().enumerate() {
                let t0 = t - span;
                if pts.first().is_none_or(|p| t0 < p.0) {
                    continue;
                }
                let j = pts.partition_point(|p| p.0 <= t0);
                let (a, b) = (pts[j - 1], pts.get(j).copied().unwrap_or(pts[j - 1]));
                let before = if b.0 > a.0 {
                    a.1 + (t0 - a.0) / (b.0 - a.0) * (b.1 - a.1)
                } else {
                    a.1
                };
                if before != 0.0 {
                    out.push((curve.x[k], curve.x[k], (before - v) / before.abs()));
                }
            }
            out
        }
        Aggregation::Ema { beta } => ema_debiased(col, *beta)
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (step_of(series, i), step_of(series, i), v)))
            .collect(),
    };
    Ok((metric, samples))
}

fn event(rule: &Rule, run: &str, metric: &str, samples: &[Sample]) -> Option<Event> {
    let mut ranges: Vec<[f64; 2]> = Vec::new();
    let mut open = false;
    let mut first: Option<(f64, f64)> = None;
    let mut worst: Option<f64> = None;
    let mut count = 0;
    for &(from, to, v) in samples {
        if rule.comparison.fires(v, rule.threshold) {
            count += 1;
            first.get_or_insert((from, v));
            worst = Some(match worst {
                Some(w) if rule.comparison.upward() => w.max(v),
                Some(w) => w.min(v),
                None => v,
            });
            match ranges.last_mut() {
                Some(r) if open => r[1] = to,
                _ => ranges.push([from, to]),
            }
            open = true;
        } else {
            open = false;
        }
    }
    let (first_step, first_value) = first?;
    Some(Event {
        rule: rule.name.clone(),
        level: rule.level,
        run: run.into(),
        metric: metric.into(),
        first_step,
        last_step: ranges.last().map_or(first_step, |r| r[1]),
        duration: ranges.iter().map(|r| r[1] - r[0]).sum(),
        action: rule.action.clone(),
        ranges,
        count,
        first_value,
        value: worst.unwrap_or(first_value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_json() {
        let rules = builtin_rules();
        let json = serde_json::to_string(&rules).unwrap();
        assert!(
            json.contains("\">\"") && json.contains("\"non_finite_count\""),
            "{json}"
        );
        let back: Vec<Rule> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rules);
        // A hand-written rule without an aggregation reads as a plain value rule.
        let r: Rule = serde_json::from_str(
            r#"{"name":"x","metric":"loss","comparison":"<=","threshold":1,"level":"warn"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.comparison, r.aggregation),
            (Comparison::Le, Aggregation::Value)
        );
    }
}
