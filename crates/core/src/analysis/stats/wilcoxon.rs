//! The exact Wilcoxon signed-rank test of paired values, two-sided, as
//! `scipy.stats.wilcoxon(x, y, zero_method='wilcox')` with `method='exact'` (no ties) or
//! `method=PermutationMethod(n_resamples=inf)` (ties):
//! - pairs with a zero difference are dropped (Wilcoxon's original rule);
//! - |d| is ranked with ties at their average rank;
//! - the null distribution is exact: every one of the 2ⁿ sign flips of the ranks is equally likely,
//!   so with ties it is the exact conditional distribution given those average ranks (no normal
//!   approximation, no tie correction needed);
//! - statistic T = min(R⁺, R⁻); p = min(1, 2·P(R⁺ ≤ T)) (the distribution is symmetric).
//!
//! Doubled average ranks are integers, so the distribution of 2R⁺ is counted exactly by a
//! dynamic programme over sums (n·(n+1)+1 states), for any n.

use super::{check_sample, StatsError};
use crate::analysis::importance::average_ranks;
use serde::{Deserialize, Serialize};

/// The signed-rank test's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignedRank {
    /// Pairs ranked (non-zero differences).
    pub n: usize,
    /// Pairs dropped because x = y.
    pub zeros: usize,
    /// Whether some |d| were tied (ranked at their average).
    pub ties: bool,
    /// Sum of the ranks of positive differences (x > y).
    pub r_plus: f64,
    pub r_minus: f64,
    /// min(R⁺, R⁻).
    pub statistic: f64,
    /// Two-sided exact p.
    pub p: f64,
}

/// The exact two-sided signed-rank test of x − y (same length, at least one non-zero difference).
pub fn signed_rank(x: &[f64], y: &[f64]) -> Result<SignedRank, StatsError> {
    if x.len() != y.len() {
        return Err(StatsError::Unpaired {
            x: x.len(),
            y: y.len(),
        });
    }
    check_sample("Wilcoxon signed-rank test", "x", x, 1)?;
    check_sample("Wilcoxon signed-rank test", "y", y, 1)?;
    let d: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(a, b)| a - b)
        .filter(|d| *d != 0.0)
        .collect();
    if d.is_empty() {
        return Err(StatsError::AllZero);
    }
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    // Average ranks are whole or half numbers; doubled, they are exact integers.
    let doubled: Vec<usize> = average_ranks(&abs)
        .iter()
        .map(|r| (2.0 * r).round() as usize)
        .collect();
    let plus2: usize = doubled
        .iter()
        .zip(&d)
        .filter(|(_, d)| **d > 0.0)
        .map(|(r, _)| r)
        .sum();
    let total2: usize = doubled.iter().sum();
    let stat2 = plus2.min(total2 - plus2);
    // P(2R⁺ = s) under random signs, built one rank at a time (each halves the mass).
    let mut dist = vec![0.0f64; total2 + 1];
    dist[0] = 1.0;
    let mut reach = 0;
    for &r in &doubled {
        reach += r;
        for s in (0..=reach).rev() {
            let with = if s >= r { dist[s - r] } else { 0.0 };
            dist[s] = 0.5 * (dist[s] + with);
        }
    }
    let cdf: f64 = dist[..=stat2].iter().sum();
    let mut sorted = abs.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(SignedRank {
        n: d.len(),
        zeros: x.len() - d.len(),
        ties: sorted.windows(2).any(|w| w[0] == w[1]),
        r_plus: plus2 as f64 / 2.0,
        r_minus: (total2 - plus2) as f64 / 2.0,
        statistic: stat2 as f64 / 2.0,
        p: (2.0 * cdf).min(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_positive_differences_of_five_give_one_sixteenth() {
        // 2 of 32 sign patterns are as extreme (all + or all −).
        let r = signed_rank(&[2.0, 3.0, 4.0, 5.0, 6.0], &[1.0, 1.5, 1.8, 1.0, 0.0]).expect("valid");
        assert_eq!((r.statistic, r.p), (0.0, 0.0625));
    }

    #[test]
    fn refuses_unpaired_or_all_zero() {
        assert_eq!(
            signed_rank(&[1.0], &[1.0, 2.0]),
            Err(StatsError::Unpaired { x: 1, y: 2 })
        );
        assert_eq!(
            signed_rank(&[1.0, 2.0], &[1.0, 2.0]),
            Err(StatsError::AllZero)
        );
    }
}
