//! The empirical spectral density (ESD) of a weight matrix with its fitted
//! power-law tail: the figure behind WeightWatcher's α ([`super::powerlaw`]).
//!
//! The eigenvalues λ_i = σ_i² of one matrix (one head's W_k or W_q) are
//! binned on a log scale and drawn as a density (count / (N · bin width)),
//! log-log. The fit p(λ) = (α − 1)/x_min · (λ/x_min)^(−α) describes only the
//! tail λ ≥ x_min, which holds n_tail of the N eigenvalues, so its line is
//! drawn scaled by n_tail / N: the whole-sample density it predicts there.

use super::powerlaw::{fit_power_law, PowerLawFit, MIN_EIGENVALUES};
use crate::figures::spec::{Axis, FigureKind, FigureSpec, SeriesSpec, Style};

/// Why there is no ESD to draw.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EsdError {
    /// No singular value is positive and finite.
    #[error("{what} has no positive, finite singular value: there is no spectrum to draw")]
    Empty { what: String },
}

/// Palette index of the fitted line (vermillion against the blue histogram).
const FIT_COLOR: usize = 1;
/// Palette index of the histogram.
const ESD_COLOR: usize = 0;
/// Points along the fitted line (it is straight on log-log axes; more only for the clip).
const FIT_POINTS: usize = 32;

/// Log-spaced bin edges and densities of `eigenvalues` (positive, finite,
/// at least one): `[centre, density]` per non-empty bin, centres geometric.
/// √N bins, between 8 and 40. Returns the points and the bin count.
pub fn log_density(eigenvalues: &[f64]) -> Vec<[f64; 2]> {
    let n = eigenvalues.len();
    let (lo, hi) = eigenvalues
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if n == 0 || !(lo > 0.0 && hi.is_finite()) {
        return Vec::new();
    }
    let bins = ((n as f64).sqrt().round() as usize).clamp(8, 40);
    // All equal: one bin a decade wide around the value.
    let (a, b) = if hi / lo < 1.0 + 1e-12 {
        (lo.log10() - 0.5, hi.log10() + 0.5)
    } else {
        (lo.log10(), hi.log10())
    };
    let step = (b - a) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in eigenvalues {
        let k = (((v.log10() - a) / step).floor().max(0.0) as usize).min(bins - 1);
        counts[k] += 1;
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(k, &c)| {
            let (e0, e1) = (
                10f64.powf(a + k as f64 * step),
                10f64.powf(a + (k + 1) as f64 * step),
            );
            [(e0 * e1).sqrt(), c as f64 / (n as f64 * (e1 - e0))]
        })
        .collect()
}

/// The ESD figure of one matrix from its singular values. `what` names it
/// (run, checkpoint, layer, matrix, head) for the title and caption; `source`
/// is the file it came from. Without a fit (fewer than
/// [`MIN_EIGENVALUES`] eigenvalues, or a constant tail) the density is still
/// drawn and the caption says why there is no line.
pub fn esd_figure(
    what: &str,
    singular_values: &[f64],
    source: &str,
) -> Result<(FigureSpec, Option<PowerLawFit>), EsdError> {
    let eig: Vec<f64> = singular_values
        .iter()
        .map(|s| s * s)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if eig.is_empty() {
        return Err(EsdError::Empty { what: what.into() });
    }
    let n = eig.len();
    let density = log_density(&eig);
    let fit = fit_power_law(&eig);
    let mut series = vec![SeriesSpec::new(
        "ESD (histogram, log bins)",
        density,
        Style::LineMarkers,
        ESD_COLOR,
    )];
    let caption = match &fit {
        Some(f) => {
            let max = eig.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let scale = f.n_tail as f64 / n as f64 * (f.alpha - 1.0) / f.x_min;
            let (a, b) = (f.x_min.log10(), max.log10().max(f.x_min.log10()));
            let line = (0..FIT_POINTS)
                .map(|i| {
                    let x = 10f64.powf(a + (b - a) * i as f64 / (FIT_POINTS - 1) as f64);
                    [x, scale * (x / f.x_min).powf(-f.alpha)]
                })
                .collect();
            series.push(SeriesSpec::new(format!("power law, α = {:.2}", f.alpha), line, Style::Line, FIT_COLOR));
            series.push(SeriesSpec::new("x_min", vec![[f.x_min, f.x_min]], Style::VSpan, FIT_COLOR));
            format!(
                "Eigenvalues λ = σ² of {what} ({n} values), density on log-spaced bins. Power-law tail fit (Clauset–Shalizi–Newman): α = {:.3}, x_min = {:.4e}, KS distance = {:.3}, {} of {n} eigenvalues in the tail; the line is the fitted density × {}/{n}.",
                f.alpha, f.x_min, f.ks_distance, f.n_tail, f.n_tail
            )
        }
        None if n < MIN_EIGENVALUES => format!(
            "Eigenvalues λ = σ² of {what} ({n} values), density on log-spaced bins. No power-law fit: {n} eigenvalues are too few (the fit needs at least {MIN_EIGENVALUES})."
        ),
        None => format!(
            "Eigenvalues λ = σ² of {what} ({n} values), density on log-spaced bins. No power-law fit: every candidate tail is constant."
        ),
    };
    let spec = FigureSpec {
        kind: FigureKind::Esd,
        title: format!("Empirical spectral density — {what}"),
        caption,
        x: Axis::log("eigenvalue λ = σ²"),
        y: Axis::log("density"),
        series,
        sources: vec![source.to_owned()],
    };
    Ok((spec, fit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Singular values whose squares follow a Pareto law (α = 2.5) above 1,
    /// by inverse CDF on an even grid of quantiles.
    fn pareto_singular_values(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = (i as f64 + 0.5) / n as f64;
                u.powf(-1.0 / 1.5).sqrt()
            })
            .collect()
    }

    #[test]
    fn density_integrates_to_one() {
        let eig: Vec<f64> = pareto_singular_values(400).iter().map(|s| s * s).collect();
        let d = log_density(&eig);
        // Rebuild the bin widths from the geometric centres: every bin has the same log width.
        let (lo, hi) = (
            eig.iter().copied().fold(f64::INFINITY, f64::min),
            eig.iter().copied().fold(0.0, f64::max),
        );
        let bins = 20;
        let step = (hi.log10() - lo.log10()) / bins as f64;
        let total: f64 = d
            .iter()
            .map(|p| p[1] * p[0] * (10f64.powf(step / 2.0) - 10f64.powf(-step / 2.0)))
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn figure_draws_the_fit_from_x_min_with_its_numbers() {
        let (spec, fit) = esd_figure(
            "run A1, layer 0, W_k head 0",
            &pareto_singular_values(400),
            "a.safetensors",
        )
        .unwrap();
        let fit = fit.expect("400 Pareto eigenvalues are enough for a fit");
        assert!((fit.alpha - 2.5).abs() < 0.15, "α = {}", fit.alpha);
        let line = &spec.series[1];
        assert_eq!(line.points[0][0], fit.x_min);
        let expected = fit.n_tail as f64 / 400.0 * (fit.alpha - 1.0) / fit.x_min;
        assert!((line.points[0][1] / expected - 1.0).abs() < 1e-12);
        assert!(spec.caption.contains(&format!("α = {:.3}", fit.alpha)));
        assert!(spec
            .caption
            .contains(&format!("KS distance = {:.3}", fit.ks_distance)));
        assert!(spec.caption.contains("x_min = "));
        assert!(spec.has_data());
    }

    #[test]
    fn too_few_eigenvalues_draw_the_density_and_say_why_there_is_no_fit() {
        let (spec, fit) = esd_figure("a 16-value head", &pareto_singular_values(16), "f").unwrap();
        assert!(fit.is_none());
        assert_eq!(spec.series.len(), 1);
        assert!(
            spec.caption.contains("16 eigenvalues are too few"),
            "{}",
            spec.caption
        );
        assert_eq!(
            esd_figure("zeros", &[0.0, f64::NAN], "f").unwrap_err(),
            EsdError::Empty {
                what: "zeros".into()
            }
        );
    }
}
