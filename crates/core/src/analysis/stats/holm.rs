//! Holm's step-down correction for a family of p-values (Holm 1979): sorted ascending,
//! p₍ᵢ₎ becomes max over j ≤ i of min(1, (m − j + 1)·p₍ⱼ₎); results come back in the input order.
//! Same as `statsmodels.stats.multitest.multipletests(p, method='holm')`.

use super::StatsError;

/// Holm-adjusted p-values, in the order of `p`. Every p must lie in [0, 1].
pub fn holm(p: &[f64]) -> Result<Vec<f64>, StatsError> {
    if let Some(&value) = p.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(StatsError::OutOfRange {
            what: "a p-value",
            value,
        });
    }
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    // Stable: equal p-values keep their input order, as statsmodels' argsort does.
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    Ok(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_values_outside_zero_one() {
        assert!(holm(&[0.1, 1.5]).is_err());
        assert!(holm(&[f64::NAN]).is_err());
        assert_eq!(holm(&[]).expect("empty family"), Vec::<f64>::new());
    }
}
