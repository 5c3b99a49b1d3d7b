//! Power-law exponent α of an eigenvalue spectrum's tail (WeightWatcher's α).
//!
//! Clauset, Shalizi & Newman, "Power-law distributions in empirical data",
//! SIAM Review 51 (2009), §3: the continuous maximum-likelihood estimator
//! α̂ = 1 + n / Σ_{x_i ≥ x_min} ln(x_i / x_min), with x_min chosen among the
//! observed values as the one whose fitted tail has the smallest
//! Kolmogorov–Smirnov distance to the empirical tail (their eq. 3.9).
//! METRICS.md applies it to the eigenvalues λ_i = σ_i² of a weight matrix.

/// Fewest positive, finite eigenvalues for which [`fit_power_law`] answers at all.
///
/// The fit picks x_min from the data and then estimates α from the points above
/// it, so it needs a spectrum long enough to hold both a bulk and a tail: with
/// N = 16 (the fixtures' 16×64 W_k blocks) the best tail has ~13 points and a KS
/// distance of ~0.2, i.e. no evidence of a power law, and the reference leaves α
/// out there ("16 eigenvalues are too few"). 50 keeps α for every real attention
/// head (d_k ≥ 64) and for full weight matrices.
pub const MIN_EIGENVALUES: usize = 50;

/// Fewest points a candidate tail may have: x_min is only tried where at least
/// this many values lie at or above it. Below ten points the MLE's standard
/// error (α − 1)/√n exceeds ~0.3 and the KS minimum is noise.
pub const MIN_TAIL: usize = 10;

/// A fitted power-law tail p(x) ∝ x^(−α) for x ≥ `x_min`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerLawFit {
    /// The MLE exponent α̂ = 1 + n / Σ ln(x_i / x_min).
    pub alpha: f64,
    /// Lower bound of the tail, one of the input values.
    pub x_min: f64,
    /// KS distance between the empirical tail CDF and the fitted CDF.
    pub ks_distance: f64,
    /// Number of values x_i ≥ x_min the fit used.
    pub n_tail: usize,
}

/// Fits a continuous power law to the tail of `eigenvalues` (any order).
///
/// Non-positive and non-finite values are ignored (a power law lives on
/// x > 0). Every distinct value that leaves at least [`MIN_TAIL`] points at
/// or above it is tried as x_min; the one with the smallest KS distance wins,
/// ties going to the smaller x_min (the longer tail). Returns `None` when
/// fewer than [`MIN_EIGENVALUES`] usable values exist or every candidate tail
/// is constant (α̂ would be infinite). Cost O(N²) for N values.
pub fn fit_power_law(eigenvalues: &[f64]) -> Option<PowerLawFit> {
    let mut x: Vec<f64> = eigenvalues
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if x.len() < MIN_EIGENVALUES {
        return None;
    }
    x.sort_by(f64::total_cmp);

    let mut best: Option<PowerLawFit> = None;
    let last_start = x.len() - MIN_TAIL;
    let mut logs = Vec::with_capacity(x.len());
    for start in 0..=last_start {
        // Distinct candidates only: a repeated value gives the same tail.
        if start > 0 && x[start] == x[start - 1] {
            continue;
        }
        let Some(fit) = fit_tail(&x[start..], &mut logs) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| fit.ks_distance < b.ks_distance)
        {
            best = Some(fit);
        }
    }
    best
}

/// MLE and KS distance for a sorted (ascending) tail whose first value is x_min; `logs` is
/// scratch for the tail's ln(x/x_min).
fn fit_tail(tail: &[f64], logs: &mut Vec<f64>) -> Option<PowerLawFit> {
    let x_min = *tail.first()?;
    let n = tail.len();
    logs.clear();
    logs.extend(tail.iter().map(|&v| (v / x_min).ln()));
    let log_sum: f64 = logs.iter().sum();
    if log_sum <= 0.0 {
        return None;
    }
    let alpha = 1.0 + n as f64 / log_sum;
    // Fitted CDF P(x) = 1 − (x/x_min)^(1−α), as e^((1−α)·ln(x/x_min)) from the logarithms the
    // MLE took (one `exp` where `powf` took its own logarithm again; the fits had been ~27 ms
    // of the full-size benchmark's 704 activation spectra); the empirical CDF jumps from i/n
    // to (i+1)/n at the i-th point, so both sides are checked.
    let nf = n as f64;
    let ks_distance = logs
        .iter()
        .enumerate()
        .map(|(i, &log)| {
            let p = 1.0 - ((1.0 - alpha) * log).exp();
            let below = (p - i as f64 / nf).abs();
            let above = (p - (i + 1) as f64 / nf).abs();
            below.max(above)
        })
        .fold(0.0, f64::max);
    Some(PowerLawFit {
        alpha,
        x_min,
        ks_distance,
        n_tail: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic uniforms in (0, 1] from a 64-bit LCG (Knuth's MMIX constants).
    fn uniforms(seed: u64, n: usize) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 11) as f64 + 1.0) / (1u64 << 53) as f64
            })
            .collect()
    }

    /// Inverse-CDF samples of a Pareto law with exponent `alpha` above `x_min`.
    fn pareto(alpha: f64, x_min: f64, n: usize, seed: u64) -> Vec<f64> {
        uniforms(seed, n)
            .into_iter()
            .map(|u| x_min * u.powf(-1.0 / (alpha - 1.0)))
            .collect()
    }

    #[test]
    fn recovers_pareto_exponent() {
        for seed in [1, 2, 3] {
            let sample = pareto(2.5, 1.0, 5000, seed);
            let fit = fit_power_law(&sample).expect("5000 points are enough");
            assert!(
                (fit.alpha - 2.5).abs() < 0.1,
                "seed {seed}: alpha {} (x_min {}, n_tail {})",
                fit.alpha,
                fit.x_min,
                fit.n_tail
            );
            assert!(fit.n_tail >= MIN_TAIL && fit.n_tail <= 5000);
            assert!(fit.x_min >= 1.0);
            assert!(fit.ks_distance > 0.0 && fit.ks_distance < 0.05);
        }
    }

    #[test]
    fn finds_tail_above_a_uniform_bulk() {
        // 2000 bulk points uniform on [0.1, 1) below a Pareto(α = 3) tail from x = 1.
        let mut data: Vec<f64> = uniforms(7, 2000)
            .iter()
            .map(|u| 0.1 + 0.9 * (1.0 - u))
            .collect();
        data.extend(pareto(3.0, 1.0, 3000, 8));
        let fit = fit_power_law(&data).expect("enough points");
        assert!((fit.alpha - 3.0).abs() < 0.2, "alpha {}", fit.alpha);
        assert!(fit.x_min > 0.8, "x_min {}", fit.x_min);
    }

    #[test]
    fn too_few_values_give_none() {
        let short = pareto(2.5, 1.0, MIN_EIGENVALUES - 1, 4);
        assert_eq!(fit_power_law(&short), None);
        // Zeros, negatives and NaN do not count towards the threshold.
        let mut padded = short.clone();
        padded.extend([0.0, -1.0, f64::NAN, f64::INFINITY]);
        assert_eq!(fit_power_law(&padded), None);
        assert_eq!(
            fit_power_law(&pareto(2.5, 1.0, 16, 4)),
            None,
            "a 16-eigenvalue W_k block"
        );
        let enough = pareto(2.5, 1.0, MIN_EIGENVALUES, 4);
        let fit = fit_power_law(&enough).expect("exactly MIN_EIGENVALUES values");
        assert!(fit.n_tail >= MIN_TAIL && fit.n_tail <= MIN_EIGENVALUES);
    }

    #[test]
    fn constant_values_give_none() {
        assert_eq!(fit_power_law(&[2.0; 50]), None);
    }

    #[test]
    fn order_does_not_matter() {
        let sample = pareto(2.0, 0.5, 300, 9);
        let mut reversed = sample.clone();
        reversed.reverse();
        assert_eq!(fit_power_law(&sample), fit_power_law(&reversed));
    }
}
