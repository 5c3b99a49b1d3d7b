//! The surgery verdict (METRICS.md "Surgery area"; the plan: "SVD ≈ γ ≫ random → γ is a reliable
//! proxy; SVD ≫ γ → γ misleads").
//!
//! - **Area** of a strategy: the trapezoid integral over the prune fraction p ∈ [0, p_max] (the
//!   sweep's fractions) of loss(p) − loss(0); for random, per seed, then the mean and range.
//! - **SVD's advantage** G = A_random − A_SVD (mean random area); the verdict needs G > 0.
//! - **γ's share** s = (A_random − A_γ) / G: the part of SVD's advantage over random that γ recovers.
//! - With margin m (default 0.25): **SVD ≈ γ ≫ random** when s ≥ 1 − m and the 95% interval of
//!   A_γ − A_random over the random seeds lies below 0 → "γ is a reliable proxy"; **SVD ≫ γ** when
//!   s ≤ m → "γ misleads"; otherwise inconclusive, saying why.
//!
//! SVD and γ are deterministic, so SVD − γ has no seed interval; resampling the held-out sequences
//! would need per-sequence losses, which the sweep does not keep, so that interval is not given.

use super::stats::mean_interval;
use super::surgery::SurgeryResult;
use serde::{Deserialize, Serialize};

/// Areas under the loss-increase curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurgeryAreas {
    pub p_max: f64,
    pub svd: Option<f64>,
    pub gamma: Option<f64>,
    /// Per random seed.
    pub random: Vec<f64>,
    pub random_mean: Option<f64>,
    pub random_min: Option<f64>,
    pub random_max: Option<f64>,
}

/// The plan's rule evaluated on one sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurgeryVerdict {
    pub areas: SurgeryAreas,
    /// A_SVD − A_γ (no interval: both deterministic).
    pub svd_minus_gamma: Option<f64>,
    /// A_γ − mean A_random, with the 95% t interval over the random seeds.
    pub gamma_minus_random: Option<f64>,
    pub gamma_minus_random_interval: Option<[f64; 2]>,
    /// s = (A_random − A_γ) / (A_random − A_SVD).
    pub gamma_share: Option<f64>,
    pub margin: f64,
    pub outcome: SurgeryOutcome,
    pub sentence: String,
    pub rule: String,
}

/// Which branch of the plan's rule holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurgeryOutcome {
    ReliableProxy,
    Misleads,
    Inconclusive,
}

/// Trapezoid area of loss(p) − baseline over the sweep's fractions.
fn area(fractions: &[f64], losses: &[f64], baseline: f64) -> f64 {
    fractions
        .windows(2)
        .zip(losses.windows(2))
        .map(|(p, l)| (p[1] - p[0]) * ((l[0] - baseline) + (l[1] - baseline)) / 2.0)
        .sum()
}

/// The areas of every strategy of `result`.
pub fn surgery_areas(result: &SurgeryResult) -> SurgeryAreas {
    let f = &result.fractions;
    let random: Vec<f64> = result.random.as_ref().map_or(Vec::new(), |r| {
        r.losses
            .iter()
            .map(|l| area(f, l, result.baseline))
            .collect()
    });
    let stat = |pick: fn(f64, f64) -> f64| random.iter().copied().reduce(pick);
    SurgeryAreas {
        p_max: f.last().copied().unwrap_or(0.0),
        svd: result.svd.as_ref().map(|l| area(f, l, result.baseline)),
        gamma: result.gamma.as_ref().map(|l| area(f, l, result.baseline)),
        random_mean: (!random.is_empty()).then(|| random.iter().sum::<f64>() / random.len() as f64),
        random_min: stat(f64::min),
        random_max: stat(f64::max),
        random,
    }
}

/// Evaluates the plan's rule on `result` with margin `margin` (0 < m < 0.5).
pub fn surgery_verdict(result: &SurgeryResult, margin: f64) -> SurgeryVerdict {
    let areas = surgery_areas(result);
    let rule = format!(
        "area = trapezoid integral of loss(p) − loss(0) over p ∈ [0, {}]; s = (A_random − A_γ)/(A_random − A_SVD); \
         SVD ≈ γ ≫ random when s ≥ {} and the 95% interval of A_γ − A_random over the random seeds lies below 0; \
         SVD ≫ γ when s ≤ {margin}",
        areas.p_max,
        1.0 - margin
    );
    let svd_minus_gamma = areas.svd.zip(areas.gamma).map(|(s, g)| s - g);
    let gamma_minus_random = areas.gamma.zip(areas.random_mean).map(|(g, r)| g - r);
    let diffs: Vec<f64> = areas
        .gamma
        .map_or(Vec::new(), |g| areas.random.iter().map(|r| g - r).collect());
    let gamma_minus_random_interval = mean_interval(&diffs, 0.95).ok();
    let gain = areas.random_mean.zip(areas.svd).map(|(r, s)| r - s);
    let gamma_share = gain
        .zip(areas.gamma)
        .zip(areas.random_mean)
        .filter(|((g, _), _)| *g > 0.0)
        .map(|((g, a), r)| (r - a) / g);
    let (outcome, sentence) = match (areas.gamma, gain, gamma_share) {
        (None, ..) => (SurgeryOutcome::Inconclusive, "no γ strategy (the model has no key norm)".to_string()),
        (_, None, _) => (SurgeryOutcome::Inconclusive, "no SVD or random curve to compare γ with".to_string()),
        (_, Some(g), _) if g <= 0.0 => (
            SurgeryOutcome::Inconclusive,
            format!("inconclusive: SVD pruning does not raise the loss less than random pruning (A_random − A_SVD = {g:.4})"),
        ),
        (_, _, Some(s)) if s >= 1.0 - margin && gamma_minus_random_interval.is_some_and(|[_, hi]| hi < 0.0) => (
            SurgeryOutcome::ReliableProxy,
            format!("SVD ≈ γ ≫ random → γ is a reliable proxy (γ recovers {:.0}% of SVD's advantage over random)", s * 100.0),
        ),
        (_, _, Some(s)) if s <= margin => (
            SurgeryOutcome::Misleads,
            format!("SVD ≫ γ → γ misleads (γ recovers {:.0}% of SVD's advantage over random)", s * 100.0),
        ),
        (_, _, s) => {
            let why = match (s, gamma_minus_random_interval) {
                (Some(s), Some([_, hi])) if s >= 1.0 - margin && hi >= 0.0 => {
                    format!("γ recovers {:.0}% of SVD's advantage, but its gain over random is within the random seeds' spread", s * 100.0)
                }
                (Some(s), None) if s >= 1.0 - margin => "fewer than 2 random seeds, so γ's gain over random has no interval".to_string(),
                (Some(s), _) => format!("γ recovers {:.0}% of SVD's advantage over random, between the margins {margin} and {}", s * 100.0, 1.0 - margin),
                (None, _) => "no share could be computed".to_string(),
            };
            (SurgeryOutcome::Inconclusive, format!("inconclusive: {why}"))
        }
    };
    SurgeryVerdict {
        areas,
        svd_minus_gamma,
        gamma_minus_random,
        gamma_minus_random_interval,
        gamma_share,
        margin,
        outcome,
        sentence,
        rule,
    }
}
