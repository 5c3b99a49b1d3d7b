//! Welch's t-test for the difference of two means with unequal variances, its confidence interval,
//! and the equivalence test built from it (two one-sided tests, "TOST"). Same definitions as
//! `scipy.stats.ttest_ind(x, y, equal_var=False)` and its `confidence_interval`.

use super::{check_sample, mean, variance, StatsError};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Welch's t-test of mean(x) − mean(y) = 0, two-sided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    pub n_x: usize,
    pub n_y: usize,
    pub mean_x: f64,
    pub mean_y: f64,
    /// mean(x) − mean(y).
    pub difference: f64,
    /// Standard error of the difference, √(s²ₓ/nₓ + s²ᵧ/nᵧ) (unbiased variances).
    pub se: f64,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value from the Student t distribution with `df` degrees of freedom.
    pub p: f64,
}

/// The equivalence test at margin δ: two one-sided Welch tests, H₀⁻: diff ≤ −δ and H₀⁺: diff ≥ δ.
/// Equivalence (|diff| < δ) is shown at level α when `p` = max(p_lower, p_upper) < α, which is the
/// same as the (1 − 2α) interval lying inside (−δ, δ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tost {
    pub margin: f64,
    /// p of H₀⁻ (diff ≤ −δ) against diff > −δ.
    pub p_lower: f64,
    /// p of H₀⁺ (diff ≥ δ) against diff < δ.
    pub p_upper: f64,
    pub p: f64,
}

/// Welch's t-test of x against y. Each side needs two finite values; when both sides are constant
/// the test is undefined ([`StatsError::ZeroVariance`]; SciPy answers t = ±∞, p = 0 there, which
/// claims a certainty that two constant samples cannot give).
pub fn welch(x: &[f64], y: &[f64]) -> Result<Welch, StatsError> {
    check_sample("Welch's t-test", "x", x, 2)?;
    check_sample("Welch's t-test", "y", y, 2)?;
    let (n_x, n_y) = (x.len(), y.len());
    let (vx, vy) = (variance(x) / n_x as f64, variance(y) / n_y as f64);
    if vx + vy == 0.0 {
        return Err(StatsError::ZeroVariance);
    }
    let (mean_x, mean_y) = (mean(x), mean(y));
    let difference = mean_x - mean_y;
    let se = (vx + vy).sqrt();
    let t = difference / se;
    let df = (vx + vy).powi(2) / (vx * vx / (n_x - 1) as f64 + vy * vy / (n_y - 1) as f64);
    let p = (2.0 * student(df).sf(t.abs())).min(1.0);
    Ok(Welch {
        n_x,
        n_y,
        mean_x,
        mean_y,
        difference,
        se,
        t,
        df,
        p,
    })
}

/// The standard Student t distribution; `df` > 0 and finite by construction in [`welch`].
fn student(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("Welch's df is positive and finite when the variance is")
}

impl Welch {
    /// The two-sided `level` confidence interval of the difference: diff ± t_{(1+level)/2, df}·se.
    pub fn interval(&self, level: f64) -> Result<[f64; 2], StatsError> {
        if !(level > 0.0 && level < 1.0) {
            return Err(StatsError::OutOfRange {
                what: "the confidence level",
                value: level,
            });
        }
        let q = student(self.df).inverse_cdf((1.0 + level) / 2.0);
        Ok([self.difference - q * self.se, self.difference + q * self.se])
    }

    /// The equivalence test at margin δ > 0 (see [`Tost`]).
    pub fn tost(&self, margin: f64) -> Result<Tost, StatsError> {
        if !(margin > 0.0 && margin.is_finite()) {
            return Err(StatsError::BadMargin(margin));
        }
        let t = student(self.df);
        let p_lower = t.sf((self.difference + margin) / self.se);
        let p_upper = t.cdf((self.difference - margin) / self.se);
        Ok(Tost {
            margin,
            p_lower,
            p_upper,
            p: p_lower.max(p_upper),
        })
    }
}

/// The two-sided `level` interval of a mean from its sample, mean ± t_{(1+level)/2, n−1}·s/√n
/// (`scipy.stats.t.interval(level, n − 1, loc=mean, scale=sem)`); n ≥ 2, and a constant sample
/// gives the zero-width interval at its value.
pub fn mean_interval(values: &[f64], level: f64) -> Result<[f64; 2], StatsError> {
    check_sample("interval of a mean", "the sample", values, 2)?;
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::OutOfRange {
            what: "the confidence level",
            value: level,
        });
    }
    let (m, n) = (mean(values), values.len() as f64);
    let half = student(n - 1.0).inverse_cdf((1.0 + level) / 2.0) * (variance(values) / n).sqrt();
    Ok([m - half, m + half])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_cannot_test() {
        assert!(matches!(
            welch(&[1.0], &[1.0, 2.0]),
            Err(StatsError::TooFew { side: "x", .. })
        ));
        assert!(matches!(
            welch(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(StatsError::NotFinite { .. })
        ));
        assert_eq!(
            welch(&[1.0, 1.0], &[2.0, 2.0]),
            Err(StatsError::ZeroVariance)
        );
        let w = welch(&[1.0, 2.0], &[2.0, 4.0]).expect("valid");
        assert!(w.interval(1.0).is_err() && w.tost(0.0).is_err() && w.tost(f64::NAN).is_err());
    }
}
