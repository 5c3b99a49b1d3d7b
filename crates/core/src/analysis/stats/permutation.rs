//! The exact permutation test of two independent samples: every way of splitting the pooled values
//! into groups of nₓ and nᵧ ("relabeling" the runs' condition labels) is enumerated, the identity
//! included; the statistic is |mean x − mean y| and p is the share of relabelings whose statistic
//! is at least the observed one. Same as `scipy.stats.permutation_test(..., n_resamples=inf,
//! alternative='greater')` with that statistic.

use super::{check_sample, StatsError};
use serde::{Deserialize, Serialize};

/// Most relabelings enumerated (C(20, 10) = 184,756 fits; seeds per condition are few).
pub const MAX_RELABELINGS: u64 = 1_000_000;

/// The exact permutation test's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Permutation {
    /// |mean x − mean y| of the observed labels.
    pub statistic: f64,
    /// C(nₓ + nᵧ, nₓ).
    pub relabelings: u64,
    /// Relabelings (identity included) with a statistic ≥ the observed one.
    pub at_least_as_extreme: u64,
    /// at_least_as_extreme / relabelings; never below 1 / relabelings.
    pub p: f64,
}

/// C(n, k), or `None` past u64.
fn binomial(n: usize, k: usize) -> Option<u64> {
    let k = k.min(n - k);
    (0..k).try_fold(1u64, |c, i| {
        c.checked_mul((n - i) as u64).map(|v| v / (i as u64 + 1))
    })
}

/// The exact permutation test of x against y (one value per run; each side needs one).
pub fn exact_permutation(x: &[f64], y: &[f64]) -> Result<Permutation, StatsError> {
    check_sample("exact permutation test", "x", x, 1)?;
    check_sample("exact permutation test", "y", y, 1)?;
    let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let (n, k) = (pooled.len(), x.len());
    let relabelings =
        binomial(n, k)
            .filter(|&c| c <= MAX_RELABELINGS)
            .ok_or(StatsError::TooManyRelabelings {
                count: binomial(n, k).unwrap_or(u64::MAX),
                limit: MAX_RELABELINGS,
            })?;
    let total: f64 = pooled.iter().sum();
    let statistic_of = |sum_x: f64| (sum_x / k as f64 - (total - sum_x) / (n - k) as f64).abs();
    let statistic = statistic_of(x.iter().sum());
    // Equal statistics reached by another summation order count as "at least as extreme": the
    // same relative slack as SciPy (100 machine epsilons).
    let threshold = statistic - statistic.abs() * 100.0 * f64::EPSILON;
    let mut at_least_as_extreme = 0u64;
    // Every k-subset of 0..n in lexicographic order.
    let mut chosen: Vec<usize> = (0..k).collect();
    loop {
        if statistic_of(chosen.iter().map(|&i| pooled[i]).sum()) >= threshold {
            at_least_as_extreme += 1;
        }
        let Some(i) = (0..k).rev().find(|&i| chosen[i] < n - k + i) else {
            break;
        };
        chosen[i] += 1;
        for j in i + 1..k {
            chosen[j] = chosen[j - 1] + 1;
        }
    }
    Ok(Permutation {
        statistic,
        relabelings,
        at_least_as_extreme,
        p: at_least_as_extreme as f64 / relabelings as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_relabeling() {
        assert_eq!(binomial(6, 3), Some(20));
        assert_eq!(binomial(20, 10), Some(184_756));
        let p = exact_permutation(&[1.0, 2.0, 3.0], &[10.0, 11.0, 12.0]).expect("valid");
        // Only the identity and the swap of the two groups reach the observed split.
        assert_eq!((p.relabelings, p.at_least_as_extreme), (20, 2));
    }

    #[test]
    fn refuses_huge_enumerations() {
        let x = vec![0.0; 20];
        assert!(matches!(
            exact_permutation(&x, &x),
            Err(StatsError::TooManyRelabelings { .. })
        ));
        assert!(matches!(
            exact_permutation(&[], &[1.0]),
            Err(StatsError::TooFew { .. })
        ));
    }
}
