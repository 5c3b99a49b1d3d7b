//! [`MetricValues`] from the activation spectra every figure uses ([`ActivationRun`], from
//! [`crate::analysis::pipeline::collect_activation_spectra`]): a run's value at a checkpoint is
//! Figure 1's ([`checkpoint_value`], mean over layers of the mean over heads), per layer
//! [`layer_value`], and per unit each head's metric; or the held-out loss.

use super::{MetricInfo, MetricPoint, MetricValues, RunMetric};
use crate::analysis::activations::{ActivationRun, KeyVariant};
use crate::analysis::trajectory::{
    checkpoint_value, layer_value, LayerSel, Matrix, Metric, RunSpectra, SpectraSource,
};

/// What an activation metric is called in comparisons.
pub fn activation_metric_info(variant: KeyVariant, matrix: Matrix, metric: Metric) -> MetricInfo {
    metric_info(SpectraSource::Activations(variant), matrix, metric)
}

/// What a metric of Figure 1 (weights or activations) is called in comparisons.
pub fn metric_info(source: SpectraSource, matrix: Matrix, metric: Metric) -> MetricInfo {
    let name = match (source, matrix) {
        (SpectraSource::Activations(_), Matrix::K) => "K",
        (SpectraSource::Activations(_), Matrix::Q) => "Q",
        (SpectraSource::Weights, Matrix::K) => "W_k",
        (SpectraSource::Weights, Matrix::Q) => "W_q",
    };
    let short_metric = match metric {
        Metric::Pr => "PR",
        m => m.key(),
    };
    let variant = match source {
        SpectraSource::Activations(v) => v.key(),
        SpectraSource::Weights => "weights",
    };
    MetricInfo {
        key: format!(
            "{}_{}_{variant}",
            name.to_ascii_lowercase().replace('_', ""),
            metric.key(),
        ),
        label: format!(
            "{} of {}, mean over layers and heads",
            metric.label(),
            source.matrix_label(matrix)
        ),
        short: format!("{name} {short_metric}"),
        rank_like: metric.is_rank_like(),
        trajectory: true,
    }
}

/// A metric of the activation spectra of every run (checkpoints without `variant`, or where the
/// metric is undefined, are left out; a run left with none has no points).
pub fn activation_metric_values(
    runs: &[ActivationRun],
    variant: KeyVariant,
    matrix: Matrix,
    metric: Metric,
) -> MetricValues {
    let spectra: Vec<RunSpectra> = runs.iter().map(|r| r.run_spectra(variant)).collect();
    spectra_metric_values(
        &spectra,
        SpectraSource::Activations(variant),
        matrix,
        metric,
    )
}

/// A metric of Figure 1 from spectra of `source` (weights, or one activation variant), per run;
/// checkpoints where the metric is undefined are left out.
pub fn spectra_metric_values(
    runs: &[RunSpectra],
    source: SpectraSource,
    matrix: Matrix,
    metric: Metric,
) -> MetricValues {
    let runs = runs
        .iter()
        .map(|spectra| {
            let points = spectra
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let ws = &c.spectra;
                    let value = checkpoint_value(ws, LayerSel::Mean, matrix, metric)?;
                    let layers = (0..ws.layers.len())
                        .map(|l| layer_value(ws, l, matrix, metric))
                        .collect::<Option<Vec<_>>>()?;
                    let units = ws
                        .layers
                        .iter()
                        .flat_map(|l| match matrix {
                            Matrix::K => &l.k_heads,
                            Matrix::Q => &l.q_heads,
                        })
                        .map(|h| metric.of(&h.metrics))
                        .collect::<Option<Vec<_>>>()?;
                    Some(MetricPoint {
                        tokens: c.tokens,
                        step: c.step,
                        value,
                        layers,
                        units,
                        resamples: None,
                    })
                })
                .collect();
            RunMetric {
                run: spectra.run.clone(),
                points,
            }
        })
        .collect();
    MetricValues {
        metric: metric_info(source, matrix, metric),
        runs,
        resampling: None,
    }
}

/// The held-out loss of every checkpoint that has one.
pub fn heldout_loss_values(runs: &[ActivationRun]) -> MetricValues {
    let runs = runs
        .iter()
        .map(|r| RunMetric {
            run: r.run.clone(),
            points: r
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let value = c.spectra.heldout_loss?;
                    Some(MetricPoint {
                        tokens: c.tokens,
                        step: c.step,
                        value,
                        layers: Vec::new(),
                        units: Vec::new(),
                        resamples: None,
                    })
                })
                .collect(),
        })
        .collect();
    MetricValues {
        metric: MetricInfo {
            key: "heldout_loss".into(),
            label: "held-out loss (mean next-token cross-entropy, nats)".into(),
            short: "held-out loss".into(),
            rank_like: false,
            trajectory: false,
        },
        runs,
        resampling: None,
    }
}
