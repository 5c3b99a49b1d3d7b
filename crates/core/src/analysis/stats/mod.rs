//! Statistics across runs (METRICS.md "Statistics across runs"): the tests the study's comparisons
//! use, as pure functions of plain numbers, each checked against SciPy
//! (`scripts/reference/make_stats_cases.py` → `tests/data/stats_cases.json`, and the fixtures'
//! `replicates/stats.json`).
//!
//! - [`welch`]: Welch's t-test (two-sided, Welch–Satterthwaite df), its confidence interval for the
//!   difference of means, and the equivalence test (two one-sided tests) at a margin.
//! - [`permutation`]: the exact permutation test over every relabeling of the pooled values,
//!   statistic |mean x − mean y|.
//! - [`wilcoxon`]: the exact Wilcoxon signed-rank test of paired values (zeros dropped, ties at
//!   average ranks, exact over every sign flip).
//! - [`holm`]: Holm's step-down correction of several p-values.
//!
//! The Student t distribution comes from `statrs` (pure Rust, so it builds for wasm32).

pub mod holm;
pub mod permutation;
pub mod welch;
pub mod wilcoxon;

pub use holm::holm;
pub use permutation::{exact_permutation, Permutation, MAX_RELABELINGS};
pub use welch::{mean_interval, welch, Tost, Welch};
pub use wilcoxon::{signed_rank, SignedRank};

/// Why a test could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("{test} needs at least {need} values in {side}, got {got}")]
    TooFew {
        test: &'static str,
        side: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{test}: {side} holds a value that is not a finite number ({value})")]
    NotFinite {
        test: &'static str,
        side: &'static str,
        value: f64,
    },
    #[error(
        "Welch's t-test is undefined: both samples are constant (zero variance), so the difference \
         has no spread to be compared with"
    )]
    ZeroVariance,
    #[error("exact permutation test: {count} relabelings are more than the {limit} it enumerates")]
    TooManyRelabelings { count: u64, limit: u64 },
    #[error("Wilcoxon signed-rank test: x has {x} values and y has {y}; the test needs pairs")]
    Unpaired { x: usize, y: usize },
    #[error(
        "Wilcoxon signed-rank test: every paired difference is zero, so there is nothing to rank"
    )]
    AllZero,
    #[error("{what} must lie strictly between 0 and 1, got {value}")]
    OutOfRange { what: &'static str, value: f64 },
    #[error("the equivalence margin must be a positive number, got {0}")]
    BadMargin(f64),
}

/// Checks that `values` has at least `need` entries, all finite.
pub(crate) fn check_sample(
    test: &'static str,
    side: &'static str,
    values: &[f64],
    need: usize,
) -> Result<(), StatsError> {
    if values.len() < need {
        return Err(StatsError::TooFew {
            test,
            side,
            need,
            got: values.len(),
        });
    }
    match values.iter().find(|v| !v.is_finite()) {
        Some(&value) => Err(StatsError::NotFinite { test, side, value }),
        None => Ok(()),
    }
}

/// The arithmetic mean (callers check that `values` is not empty).
pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The unbiased sample variance (ddof = 1; callers check n ≥ 2).
pub(crate) fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64
}
