//! Consolidation ratio C(t): how far the gradient signal stands above the
//! optimizer's noise.
//!
//! `shared/METRICS.md`: C(t) = ‖∇L‖² / (2·D·d) with D = α²·σ²/(2B), d the
//! parameter count, α the learning rate, B the batch size and σ² the
//! per-coordinate gradient variance **of one sample**. Logs rarely hold that
//! σ² directly: the fixtures' `grad_var` is the variance of the micro-batch
//! gradients (each the mean over `micro_batch_size` = 2 sequences), so the
//! per-sequence variance is micro_batch_size × grad_var (`fixtures/README.md`:
//! σ² = 2·grad_var, B = 8). [`VarianceConvention`] says which reading is used.
//!
//! Where a field is missing from the log the result is an error that names
//! it: no partial curve, no guess.

use crate::formats::logs::Series;

/// What the logged `grad_var` is the variance of.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VarianceConvention {
    /// `grad_var` is the variance of micro-batch gradients: σ² =
    /// micro_batch_size × grad_var, with micro_batch_size from the log (a
    /// column or a header constant); when the log has none, `grad_var` is
    /// taken as per-sample (σ² = grad_var) and the result says so.
    #[default]
    Auto,
    /// `grad_var` already is the per-sample variance: σ² = grad_var.
    PerSample,
    /// `grad_var` is the variance of means over this many samples: σ² = n × grad_var.
    MicroBatch(f64),
}

/// Options of [`consolidation_ratio`].
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ConsolidationConfig {
    /// How `grad_var` becomes σ².
    pub variance: VarianceConvention,
    /// B, overriding the log's `batch_size`.
    pub batch_size: Option<f64>,
    /// d, overriding the log's `n_params`.
    pub n_params: Option<f64>,
}

/// The named regimes of C (issue 6, seed "Consolidation Ratio").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// C > 20: the gradient signal dominates; the run is still drifting downhill.
    SignalDominated,
    /// 10 ≤ C ≤ 20: between the named regimes.
    Transitional,
    /// 1.5 ≤ C < 10 (the seed's "1–10"): consolidating; signal and noise both matter.
    Consolidating,
    /// 0.5 ≤ C < 1.5 (the seed's "≈ 1"): balanced; noise as large as the signal.
    Balanced,
    /// C < 0.5: noise-dominated; the parameters diffuse around a minimum.
    NoiseDominated,
}

impl Regime {
    /// The regime of a value of C. Boundaries: 0.5, 1.5, 10, 20 (the seed
    /// names C > 20, 1–10, ≈ 1 and < 0.5; ≈ 1 is taken as [0.5, 1.5)).
    pub fn of(c: f64) -> Regime {
        if c > 20.0 {
            Regime::SignalDominated
        } else if c >= 10.0 {
            Regime::Transitional
        } else if c >= 1.5 {
            Regime::Consolidating
        } else if c >= 0.5 {
            Regime::Balanced
        } else {
            Regime::NoiseDominated
        }
    }

    /// Short label with its range.
    pub fn label(self) -> &'static str {
        match self {
            Regime::SignalDominated => "signal-dominated (C > 20)",
            Regime::Transitional => "transitional (10–20)",
            Regime::Consolidating => "consolidating (1–10)",
            Regime::Balanced => "balanced (C ≈ 1)",
            Regime::NoiseDominated => "noise-dominated (C < 0.5)",
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
    /// D = α²σ²/(2B).
    pub d_noise: f64,
    /// Its regime.
    pub regime: Regime,
}

/// C(t) of a log, with the conventions used.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConsolidationCurve {
    /// One point per row that has every field with D > 0 (a zero learning
    /// rate gives no noise and an infinite C: such rows are counted in `skipped_zero_noise`).
    pub points: Vec<ConsolidationPoint>,
    /// The factor σ² = factor × grad_var that was used.
    pub sigma2_factor: f64,
    /// In words: which convention, from where.
    pub convention: String,
    /// Rows with all fields but D = 0.
    pub skipped_zero_noise: usize,
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
}

fn names(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

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

/// C(t) = ‖∇L‖² / (2·D·d), D = α²σ²/(2B), from the log's `grad_norm`,
/// `grad_var`, `lr`, `batch_size` and `n_params` (columns, or header
/// constants for the last two; `config` may override B and d).
pub fn consolidation_ratio(
    series: &Series,
    config: &ConsolidationConfig,
) -> Result<ConsolidationCurve, ConsolidationError> {
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
    let (Some(grad_norm), Some(grad_var), Some(lr), Some(batch), Some(params)) =
        (grad_norm, grad_var, lr, batch, params)
    else {
        return Err(ConsolidationError::MissingFields(missing));
    };
    let micro = get("micro_batch_size");
    let mut points = Vec::new();
    let mut skipped_zero_noise = 0;
    let mut factor_used = None;
    for i in 0..series.len() {
        let (Some(g), Some(v), Some(a), Some(b), Some(d)) = (
            grad_norm.at(i),
            grad_var.at(i),
            lr.at(i),
            batch.at(i),
            params.at(i),
        ) else {
            continue;
        };
        let factor = match config.variance {
            VarianceConvention::PerSample => 1.0,
            VarianceConvention::MicroBatch(n) => n,
            VarianceConvention::Auto => micro.as_ref().and_then(|m| m.at(i)).unwrap_or(1.0),
        };
        factor_used.get_or_insert(factor);
        let sigma2 = factor * v;
        let d_noise = a * a * sigma2 / (2.0 * b);
        let c = g * g / (2.0 * d_noise * d);
        if !(d_noise > 0.0 && c.is_finite()) {
            skipped_zero_noise += 1;
            continue;
        }
        let step = series.step.get(i).copied().flatten().unwrap_or(i as f64);
        points.push(ConsolidationPoint {
            step,
            c,
            d_noise,
            regime: Regime::of(c),
        });
    }
    let Some(sigma2_factor) = factor_used else {
        return Err(ConsolidationError::NoCompleteRow);
    };
    let convention = match config.variance {
        VarianceConvention::PerSample => "σ² = grad_var (per-sample variance, as set)".to_string(),
        VarianceConvention::MicroBatch(n) => {
            format!("σ² = {n}·grad_var (variance of micro-batch means over {n} samples, as set)")
        }
        VarianceConvention::Auto if micro.is_some() => {
            format!("σ² = micro_batch_size·grad_var = {sigma2_factor}·grad_var (grad_var = variance of micro-batch gradients, per the log's micro_batch_size)")
        }
        VarianceConvention::Auto => {
            "σ² = grad_var (the log has no micro_batch_size: grad_var taken as per-sample)"
                .to_string()
        }
    };
    Ok(ConsolidationCurve {
        points,
        sigma2_factor,
        convention,
        skipped_zero_noise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regimes_at_their_boundaries() {
        assert_eq!(Regime::of(25.0), Regime::SignalDominated);
        assert_eq!(Regime::of(20.0), Regime::Transitional);
        assert_eq!(Regime::of(5.0), Regime::Consolidating);
        assert_eq!(Regime::of(1.0), Regime::Balanced);
        assert_eq!(Regime::of(0.4), Regime::NoiseDominated);
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
