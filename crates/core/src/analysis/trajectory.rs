//! From per-checkpoint spectra to the study's Figures 1 and 2: which metric,
//! which matrix (W_k or W_q), which layer (or the mean over layers), and how
//! heads are aggregated (METRICS.md: "A layer's value is the mean over its
//! heads unless the figure says otherwise"). Also Figure 1 straight from the
//! user's imported `results.json` (activation PR from their RankProbe).

use super::results::KeyVariant;
use super::spectrum::WeightMetrics;
use super::weights::{HeadSpectrum, ModelSpectra};
use crate::figures::build::{trajectory, waterfall, RunPoints, RunSpectrum};
use crate::figures::spec::FigureSpec;
use crate::formats::logs::Series;
use serde::{Deserialize, Serialize};

/// A spectral metric (definitions in METRICS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Pr,
    PrEig,
    R90,
    Cond,
    Erank,
    StableRank,
    SpectralNorm,
    Log10Fro2,
    Alpha,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Pr,
        Metric::PrEig,
        Metric::R90,
        Metric::Cond,
        Metric::Erank,
        Metric::StableRank,
        Metric::SpectralNorm,
        Metric::Log10Fro2,
        Metric::Alpha,
    ];

    /// The name used on the command line and in share links.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Pr => "pr",
            Metric::PrEig => "pr_eig",
            Metric::R90 => "r90",
            Metric::Cond => "cond",
            Metric::Erank => "erank",
            Metric::StableRank => "stable_rank",
            Metric::SpectralNorm => "spectral_norm",
            Metric::Log10Fro2 => "log10_fro2",
            Metric::Alpha => "alpha",
        }
    }

    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }

    /// Axis label, naming the variant (PR and PR_eig differ).
    pub fn label(self) -> &'static str {
        match self {
            Metric::Pr => "PR = (Σσ)²/Σσ²",
            Metric::PrEig => "PR_eig = (Σσ²)²/Σσ⁴",
            Metric::R90 => "r90 (90% energy rank)",
            Metric::Cond => "condition number σ₁/σₙ",
            Metric::Erank => "entropy effective rank",
            Metric::StableRank => "stable rank Σσ²/σ₁²",
            Metric::SpectralNorm => "spectral norm σ₁",
            Metric::Log10Fro2 => "log10 ‖W‖²_F",
            Metric::Alpha => "power-law α of σ²",
        }
    }

    /// Whether lower values mean more collapse (a rank metric), so collapse timing and the plan's
    /// implications apply.
    pub fn is_rank_like(self) -> bool {
        matches!(
            self,
            Metric::Pr | Metric::PrEig | Metric::R90 | Metric::Erank | Metric::StableRank
        )
    }

    /// The metric of one weight block; `None` where undefined (α of too few σ).
    pub fn of(self, m: &WeightMetrics) -> Option<f64> {
        let s = &m.spectrum;
        Some(match self {
            Metric::Pr => s.pr,
            Metric::PrEig => s.pr_eig,
            Metric::R90 => s.r90 as f64,
            Metric::Cond => s.cond,
            Metric::Erank => s.erank,
            Metric::StableRank => s.stable_rank,
            Metric::SpectralNorm => m.spectral_norm,
            Metric::Log10Fro2 => m.log10_fro2,
            Metric::Alpha => return m.alpha.as_ref().map(|a| a.alpha),
        })
    }
}

/// Which weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matrix {
    /// W_k, one block per kv-head.
    K,
    /// W_q, one block per query head.
    Q,
}

impl Matrix {
    pub fn label(self) -> &'static str {
        match self {
            Matrix::K => "W_k (per kv-head)",
            Matrix::Q => "W_q (per query head)",
        }
    }
}

/// Where the spectra of a figure come from: the weights, or the activations
/// of a forward pass on the eval batch (see [`super::activations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpectraSource {
    /// W_k / W_q blocks (no forward pass).
    #[default]
    Weights,
    /// K = W_k·X / Q = W_q·X on the eval batch, in the given variant.
    Activations(KeyVariant),
}

impl SpectraSource {
    /// The matrix as the caption names it, e.g. "K = W_k·X on the eval batch
    /// (per kv-head, after k_norm, before RoPE)".
    pub fn matrix_label(self, matrix: Matrix) -> String {
        match (self, matrix) {
            (SpectraSource::Weights, m) => m.label().to_string(),
            (SpectraSource::Activations(v), Matrix::K) => {
                format!("K = W_k·X on the eval batch (per kv-head, {})", v.k_where())
            }
            (SpectraSource::Activations(v), Matrix::Q) => {
                format!(
                    "Q = W_q·X on the eval batch (per query head, {})",
                    v.q_where()
                )
            }
        }
    }

    /// How the caption opens.
    fn caption_prefix(self) -> &'static str {
        match self {
            SpectraSource::Weights => "Weight spectra (no forward pass)",
            SpectraSource::Activations(_) => {
                "Activation spectra (f32 forward pass, not centred unless stated)"
            }
        }
    }
}

/// One layer, or the mean over layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerSel {
    Mean,
    Layer(usize),
}

impl LayerSel {
    /// The caption's words for this choice, from each run's own depth (`(run, layers)`), so a
    /// 4-layer run drawn beside a 30-layer model is never captioned "mean over 30 layers".
    pub fn label(self, depths: &[(String, usize)]) -> String {
        let groups = depth_groups(depths);
        match self {
            LayerSel::Mean => match groups.as_slice() {
                [] => "mean over layers".to_string(),
                [(n, _)] => format!("mean over {n} layers"),
                _ => format!(
                    "mean over each run's own layers ({}; depths differ, so a value is a mean over \
                     a different number of layers per run)",
                    groups_text(&groups)
                ),
            },
            LayerSel::Layer(l) => {
                let missing: Vec<&(String, usize)> =
                    depths.iter().filter(|(_, n)| *n <= l).collect();
                if missing.is_empty() {
                    format!("layer {l}")
                } else {
                    let missing: Vec<(String, usize)> = missing.into_iter().cloned().collect();
                    let runs_first: Vec<String> = depth_groups(&missing)
                        .iter()
                        .map(|(n, runs)| format!("{}: {n} layers", runs.join(", ")))
                        .collect();
                    format!("layer {l} (not drawn for {})", runs_first.join("; "))
                }
            }
        }
    }
}

/// Runs grouped by depth, shallowest first: `[(layers, [runs…])]`.
fn depth_groups(depths: &[(String, usize)]) -> Vec<(usize, Vec<&str>)> {
    let mut groups: Vec<(usize, Vec<&str>)> = Vec::new();
    for (run, n) in depths {
        match groups.iter_mut().find(|(m, _)| m == n) {
            Some((_, runs)) => runs.push(run),
            None => groups.push((*n, vec![run])),
        }
    }
    groups.sort_by_key(|(n, _)| *n);
    groups
}

/// "4 layers: A1, A2; 30 layers: smollm".
fn groups_text(groups: &[(usize, Vec<&str>)]) -> String {
    groups
        .iter()
        .map(|(n, runs)| {
            format!(
                "{n} layer{}: {}",
                if *n == 1 { "" } else { "s" },
                runs.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Figure 1–2's layer menu from each run's own depth: "mean over layers", then every layer of the
/// deepest run, each saying which runs lack it ("layer 7 (smollm only)", "layer 5 (not in A1, A2)").
pub fn layer_menu(depths: &[(String, usize)]) -> Vec<(LayerSel, String)> {
    let deepest = depths.iter().map(|(_, n)| *n).max().unwrap_or(0);
    std::iter::once((LayerSel::Mean, "mean over layers".to_string()))
        .chain((0..deepest).map(|l| {
            let have: Vec<&str> = depths
                .iter()
                .filter(|(_, n)| *n > l)
                .map(|(r, _)| r.as_str())
                .collect();
            let lack: Vec<&str> = depths
                .iter()
                .filter(|(_, n)| *n <= l)
                .map(|(r, _)| r.as_str())
                .collect();
            let label = if lack.is_empty() {
                format!("layer {l}")
            } else if have.len() <= lack.len() {
                format!("layer {l} ({} only)", have.join(", "))
            } else {
                format!("layer {l} (not in {})", lack.join(", "))
            };
            (LayerSel::Layer(l), label)
        }))
        .collect()
}

/// The x-axis of a trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingAxis {
    Tokens,
    Step,
}

impl TrainingAxis {
    /// The axis label: "training tokens", "training step".
    pub fn label(self) -> &'static str {
        match self {
            TrainingAxis::Tokens => "training tokens",
            TrainingAxis::Step => "training step",
        }
    }

    /// Where a checkpoint sits on this axis, when it says.
    pub fn of(self, tokens: Option<u64>, step: Option<u64>) -> Option<f64> {
        match self {
            TrainingAxis::Tokens => tokens.map(|t| t as f64),
            TrainingAxis::Step => step.map(|s| s as f64),
        }
    }
}

/// A checkpoint's spectra and where it sits in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSpectra {
    pub path: String,
    pub step: Option<u64>,
    pub tokens: Option<u64>,
    pub spectra: ModelSpectra,
}

/// A run's checkpoints in training order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpectra {
    pub run: String,
    /// Palette index, stable per run across figures.
    pub color: usize,
    pub checkpoints: Vec<CheckpointSpectra>,
}

fn heads(ws: &ModelSpectra, layer: usize, matrix: Matrix) -> &[HeadSpectrum] {
    ws.layers.get(layer).map_or(&[], |l| match matrix {
        Matrix::K => &l.k_heads,
        Matrix::Q => &l.q_heads,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// A layer's value: the mean over its heads (∞ if any head's is ∞, as for cond).
pub fn layer_value(ws: &ModelSpectra, layer: usize, matrix: Matrix, metric: Metric) -> Option<f64> {
    mean(
        heads(ws, layer, matrix)
            .iter()
            .filter_map(|h| metric.of(&h.metrics)),
    )
}

/// A checkpoint's value for one layer or the mean over layers.
pub fn checkpoint_value(
    ws: &ModelSpectra,
    sel: LayerSel,
    matrix: Matrix,
    metric: Metric,
) -> Option<f64> {
    match sel {
        LayerSel::Layer(l) => layer_value(ws, l, matrix, metric),
        LayerSel::Mean => {
            mean((0..ws.layers.len()).filter_map(|l| layer_value(ws, l, matrix, metric)))
        }
    }
}

fn x_of(c: &CheckpointSpectra, x: TrainingAxis) -> Option<f64> {
    x.of(c.tokens, c.step)
}

/// Each run's own depth (its first checkpoint's layers), for captions and layer menus.
pub fn run_depths(runs: &[RunSpectra]) -> Vec<(String, usize)> {
    runs.iter()
        .filter_map(|r| {
            r.checkpoints
                .first()
                .map(|c| (r.run.clone(), c.spectra.layers.len()))
        })
        .collect()
}

fn run_names(runs: &[RunSpectra]) -> String {
    runs.iter()
        .map(|r| r.run.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Figure 1 from weights: metric vs training tokens (or step), one line per run.
pub fn trajectory_figure(
    runs: &[RunSpectra],
    sel: LayerSel,
    matrix: Matrix,
    metric: Metric,
    x: TrainingAxis,
) -> FigureSpec {
    trajectory_figure_from(SpectraSource::Weights, runs, sel, matrix, metric, x)
}

/// Figure 1 from spectra of the given `source` (weights or activations, named in the caption).
pub fn trajectory_figure_from(
    source: SpectraSource,
    runs: &[RunSpectra],
    sel: LayerSel,
    matrix: Matrix,
    metric: Metric,
    x: TrainingAxis,
) -> FigureSpec {
    let mut skipped = 0;
    let lines: Vec<RunPoints> = runs
        .iter()
        .map(|r| RunPoints {
            run: r.run.clone(),
            color: r.color,
            points: r
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let point = x_of(c, x)
                        .zip(checkpoint_value(&c.spectra, sel, matrix, metric))
                        .map(|(x, y)| [x, y]);
                    if point.is_none() {
                        skipped += 1;
                    }
                    point
                })
                .collect(),
        })
        .collect();
    let n_ckpt: usize = runs.iter().map(|r| r.checkpoints.len()).sum();
    let x_label = x.label();
    let mut caption = format!(
        "{}: {} of {}, mean over heads, {}; runs {}; {} checkpoints{}. SVD in f64.",
        source.caption_prefix(),
        metric.label(),
        source.matrix_label(matrix),
        sel.label(&run_depths(runs)),
        run_names(runs),
        n_ckpt,
        if skipped > 0 {
            format!(" ({skipped} without a {x_label} value or metric not shown)")
        } else {
            String::new()
        }
    );
    let sources = runs
        .iter()
        .flat_map(|r| r.checkpoints.iter().map(|c| c.path.clone()))
        .collect();
    // Nothing can be placed on the axis (a lone model has no training point): draw each
    // run's last checkpoint as its per-layer profile instead of an empty plot, and say so.
    if n_ckpt > 0
        && lines.iter().all(|l| l.points.is_empty())
        && runs
            .iter()
            .flat_map(|r| &r.checkpoints)
            .all(|c| x_of(c, x).is_none())
    {
        let profiles: Vec<RunPoints> = runs
            .iter()
            .filter_map(|r| {
                let last = r.checkpoints.last()?;
                let points = (0..last.spectra.layers.len())
                    .filter_map(|l| {
                        layer_value(&last.spectra, l, matrix, metric).map(|v| [l as f64, v])
                    })
                    .collect();
                Some(RunPoints {
                    run: r.run.clone(),
                    color: r.color,
                    points,
                })
            })
            .collect();
        caption = format!(
            "No checkpoint has a {x_label} value, so none can be placed on this axis: a checkpoint with no training point \
             is a one-checkpoint run. Drawn instead: each run's last checkpoint as its per-layer profile, the metric \
             per layer (layer 0 first; the layer menu does not apply). {caption}"
        );
        return trajectory(metric.label(), "layer", &profiles, &caption, sources);
    }
    trajectory(metric.label(), x_label, &lines, &caption, sources)
}

/// Which checkpoint of each run a waterfall shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointSel {
    Final,
    /// The i-th checkpoint in training order (clamped to the run's last).
    Index(usize),
}

/// The mean over heads (and layers, for [`LayerSel::Mean`]) of σ_i/σ_1, or one head's.
pub fn normalized_spectrum(
    ws: &ModelSpectra,
    sel: LayerSel,
    matrix: Matrix,
    head: Option<usize>,
) -> Vec<f64> {
    let layers: Vec<usize> = match sel {
        LayerSel::Mean => (0..ws.layers.len()).collect(),
        LayerSel::Layer(l) => vec![l],
    };
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0usize;
    for l in layers {
        for (h, spec) in heads(ws, l, matrix).iter().enumerate() {
            if head.is_some_and(|want| want != h) {
                continue;
            }
            let Some(&s1) = spec.singular_values.first().filter(|s| **s > 0.0) else {
                continue;
            };
            if sum.len() < spec.singular_values.len() {
                sum.resize(spec.singular_values.len(), 0.0);
            }
            for (acc, s) in sum.iter_mut().zip(&spec.singular_values) {
                *acc += s / s1;
            }
            n += 1;
        }
    }
    sum.into_iter().map(|s| s / n.max(1) as f64).collect()
}

/// Figure 2: σ_i/σ_1 vs i at the chosen checkpoint of each run.
pub fn waterfall_figure(
    runs: &[RunSpectra],
    at: CheckpointSel,
    sel: LayerSel,
    matrix: Matrix,
    head: Option<usize>,
    log_y: bool,
) -> FigureSpec {
    waterfall_figure_from(SpectraSource::Weights, runs, at, sel, matrix, head, log_y)
}

/// Figure 2 from spectra of the given `source` (weights or activations, named in the caption).
pub fn waterfall_figure_from(
    source: SpectraSource,
    runs: &[RunSpectra],
    at: CheckpointSel,
    sel: LayerSel,
    matrix: Matrix,
    head: Option<usize>,
    log_y: bool,
) -> FigureSpec {
    let mut chosen = Vec::new();
    let spectra: Vec<RunSpectrum> = runs
        .iter()
        .filter_map(|r| {
            let c = match at {
                CheckpointSel::Final => r.checkpoints.last()?,
                CheckpointSel::Index(i) => r.checkpoints.get(i).or(r.checkpoints.last())?,
            };
            let point = c
                .tokens
                .map(|t| format!("{t} tokens"))
                .or(c.step.map(|s| format!("step {s}")));
            chosen.push(format!(
                "{} at {}",
                r.run,
                point.unwrap_or_else(|| c.path.clone())
            ));
            Some(RunSpectrum {
                run: r.run.clone(),
                color: r.color,
                singular_values: normalized_spectrum(&c.spectra, sel, matrix, head),
            })
        })
        .collect();
    let heads_label = match head {
        Some(h) => format!("head {h}"),
        None => "mean over heads of σ_i/σ_1".to_string(),
    };
    let caption = format!(
        "{}: {}, {}, {}; {}. SVD in f64.",
        source.caption_prefix(),
        source.matrix_label(matrix),
        heads_label,
        sel.label(&run_depths(runs)),
        chosen.join(", ")
    );
    let sources = runs
        .iter()
        .flat_map(|r| r.checkpoints.last().map(|c| c.path.clone()))
        .collect();
    waterfall(&spectra, log_y, &caption, sources)
}

/// Each imported run's depth: how many `layer_pr/<l>` series its `results.json` has.
pub fn results_depths(runs: &[(String, usize, &Series)]) -> Vec<(String, usize)> {
    runs.iter()
        .map(|(run, _, s)| {
            let n = s
                .metric_names()
                .iter()
                .filter(|m| m.starts_with("layer_pr/"))
                .count();
            (run.clone(), n)
        })
        .collect()
}

/// Figure 1 from the user's `results.json` files: `mean_pr` (or `layer_pr/<l>`)
/// vs tokens, as their RankProbe measured it on K activations.
pub fn results_trajectory_figure(
    runs: &[(String, usize, &Series)],
    sel: LayerSel,
    sources: Vec<String>,
) -> FigureSpec {
    let metric = match sel {
        LayerSel::Mean => "mean_pr".to_string(),
        LayerSel::Layer(l) => format!("layer_pr/{l}"),
    };
    let lines: Vec<RunPoints> = runs
        .iter()
        .map(|(run, color, s)| RunPoints {
            run: run.clone(),
            color: *color,
            points: s
                .points_vs_tokens(&metric)
                .into_iter()
                .map(|(x, y)| [x, y])
                .collect(),
        })
        .collect();
    let layers = results_depths(runs);
    let caption = format!(
        "Imported results.json (the user's RankProbe, float32 SVD): PR = (Σσ)²/Σσ² of K activations \
         after the key norm on the eval batch, mean over kv-heads, {}; runs {}.",
        sel.label(&layers),
        runs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(", ")
    );
    trajectory(
        "PR = (Σσ)²/Σσ²",
        "training tokens",
        &lines,
        &caption,
        sources,
    )
}

#[cfg(test)]
mod layer_label_tests {
    use super::*;

    fn depths(list: &[(&str, usize)]) -> Vec<(String, usize)> {
        list.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn captions_name_each_runs_own_depth() {
        let same = depths(&[("A1", 4), ("A2", 4)]);
        assert_eq!(LayerSel::Mean.label(&same), "mean over 4 layers");
        assert_eq!(LayerSel::Layer(3).label(&same), "layer 3");
        let mixed = depths(&[("A1", 4), ("smollm", 30), ("A2", 4)]);
        let mean = LayerSel::Mean.label(&mixed);
        assert!(
            mean.contains("4 layers: A1, A2; 30 layers: smollm"),
            "{mean}"
        );
        assert!(!mean.contains("mean over 30 layers"), "{mean}");
        let deep = LayerSel::Layer(12).label(&mixed);
        assert_eq!(deep, "layer 12 (not drawn for A1, A2: 4 layers)");
    }

    #[test]
    fn the_menu_says_which_runs_lack_a_layer() {
        let mixed = depths(&[("A1", 4), ("smollm", 30), ("A2", 3)]);
        let menu = layer_menu(&mixed);
        assert_eq!(menu.len(), 31);
        assert_eq!(menu[0], (LayerSel::Mean, "mean over layers".to_string()));
        assert_eq!(menu[1].1, "layer 0");
        assert_eq!(menu[4].1, "layer 3 (not in A2)");
        assert_eq!(menu[5].1, "layer 4 (smollm only)");
        assert!(layer_menu(&[]).len() == 1);
    }
}
