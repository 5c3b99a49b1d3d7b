//! Figures 3–5 of the study from the analysis results: per-layer K PR bars
//! (runs side by side), the surgery curves and the γ-vs-SVD scatter. Pure:
//! results in, [`FigureSpec`] out (built with [`crate::figures::build`]).

use super::activations::ActivationRun;
use super::importance::{Importance, LayerPr};
use super::surgery::SurgeryResult;
use super::trajectory::TrainingAxis;
use crate::figures::build::{self, BandCurve, RunBars, RunPoints};
use crate::figures::spec::FigureSpec;

/// One run's per-layer K PR at the chosen checkpoint (Figure 3).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPrRun {
    pub run: String,
    /// Palette index, stable per run across figures.
    pub color: usize,
    /// E.g. "final checkpoint (327,680 tokens)".
    pub checkpoint: String,
    pub layers: Vec<LayerPr>,
}

/// Figure 3: K PR per layer (mean over kv-heads), runs side by side; a hollow
/// box per bar spans min–max over heads, the whisker is the bootstrap CI.
pub fn layer_pr_figure(runs: &[LayerPrRun], n_boot: usize, sources: Vec<String>) -> FigureSpec {
    let bars: Vec<RunBars> = runs
        .iter()
        .map(|r| RunBars {
            run: r.run.clone(),
            color: r.color,
            values: r.layers.iter().map(|l| l.pr.value).collect(),
            intervals: Some(r.layers.iter().map(|l| (l.pr.lo, l.pr.hi)).collect()),
        })
        .collect();
    let at: Vec<String> = runs
        .iter()
        .map(|r| format!("{} at {}", r.run, r.checkpoint))
        .collect();
    let caption = format!(
        "K participation ratio (Σσ)²/Σσ² per layer, after the key norm, before RoPE, on the eval batch; \
         bar = mean over kv-heads, box = min–max over kv-heads, whisker = 95% bootstrap CI over eval \
         sequences ({n_boot} resamples, seeded). Runs: {}.",
        at.join("; ")
    );
    let mut spec = build::layer_bars("K PR", &bars, &caption, sources);
    for (s, r) in spec.series.iter_mut().zip(runs) {
        s.band = Some(
            r.layers
                .iter()
                .enumerate()
                .map(|(l, p)| [l as f64, p.head_min, p.head_max])
                .collect(),
        );
    }
    spec
}

/// Figure 1 with the held-out loss as its metric: the mean next-token cross-entropy of each
/// checkpoint on the held-out batch (computed with the activation spectra), vs training tokens
/// or step. Says which checkpoints have no value and why.
pub fn heldout_loss_figure(runs: &[ActivationRun], x: TrainingAxis, heldout: &str) -> FigureSpec {
    let x_label = x.label();
    let mut no_loss = 0;
    let mut no_x = 0;
    let lines: Vec<RunPoints> = runs
        .iter()
        .map(|r| RunPoints {
            run: r.run.clone(),
            color: r.color,
            points: r
                .checkpoints
                .iter()
                .filter_map(|c| {
                    let Some(loss) = c.spectra.heldout_loss else {
                        no_loss += 1;
                        return None;
                    };
                    let Some(at) = x.of(c.tokens, c.step) else {
                        no_x += 1;
                        return None;
                    };
                    Some([at, loss])
                })
                .collect(),
        })
        .collect();
    let n_ckpt: usize = runs.iter().map(|r| r.checkpoints.len()).sum();
    let mut caption = format!(
        "Held-out loss: mean next-token cross-entropy (nats/token) of each checkpoint on the \
         held-out batch {heldout}, from the same forward pass as the activation spectra; runs {}; \
         {n_ckpt} checkpoints.",
        runs.iter()
            .map(|r| r.run.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if no_loss > 0 {
        caption.push_str(&format!(
            " {no_loss} checkpoint(s) have no held-out loss (no held-out batch matched their \
             model, or it was not computed)."
        ));
    }
    if no_x > 0 {
        caption.push_str(&format!(" {no_x} checkpoint(s) have no {x_label} value."));
    }
    let sources = runs
        .iter()
        .flat_map(|r| r.checkpoints.iter().map(|c| c.path.clone()))
        .collect();
    build::trajectory(
        "held-out loss (nats/token)",
        x_label,
        &lines,
        &caption,
        sources,
    )
}

/// Figure 4: held-out loss vs % of key dimensions pruned: SVD, γ, random
/// (mean over seeds, min–max band). Says when γ is missing.
pub fn surgery_figure(run: &str, result: &SurgeryResult, sources: Vec<String>) -> FigureSpec {
    // x is the share actually removed, m/d_k (m rounds p·d_k half up), not the nominal p: with
    // d_k = 8, p = 0.1 removes 1 of 8 = 12.5 %, and the curve must sit there.
    let pct = |i: usize| result.removed[i] as f64 / result.d_k.max(1) as f64 * 100.0;
    let line =
        |v: &[f64]| -> Vec<[f64; 2]> { v.iter().enumerate().map(|(i, y)| [pct(i), *y]).collect() };
    let mut curves = Vec::new();
    if let Some(v) = &result.svd {
        curves.push(BandCurve {
            name: "SVD (top-r of K)".into(),
            color: 0,
            points: line(v),
            band: None,
        });
    }
    if let Some(v) = &result.gamma {
        curves.push(BandCurve {
            name: "γ (smallest |γ|)".into(),
            color: 1,
            points: line(v),
            band: None,
        });
    }
    let mut seeds = 0;
    if let Some(r) = &result.random {
        seeds = r.losses.len();
        curves.push(BandCurve {
            name: format!("random ({seeds} seeds)"),
            color: 2,
            points: line(&r.mean),
            band: Some(
                (0..r.mean.len())
                    .map(|i| [pct(i), r.min[i], r.max[i]])
                    .collect(),
            ),
        });
    }
    let removed: Vec<String> = result.removed.iter().map(usize::to_string).collect();
    let mut caption = format!(
        "{run}: mean next-token cross-entropy on the held-out set after removing m of d_k = {} key \
         dimensions per kv-head in all {} layers at once (m = {}; x is m/d_k), applied after the key norm, before \
         RoPE; SVD basis from the eval batch. Unpruned loss {:.4}.",
        result.d_k,
        result.n_layers,
        removed.join(", "),
        result.baseline
    );
    if result.gamma.is_none() {
        caption.push_str(" No γ curve: this run has no key norm.");
    }
    if seeds > 0 {
        caption.push_str(&format!(
            " Random: numpy default_rng(seed) permutations, seeds 0–{}.",
            seeds - 1
        ));
    }
    let mut spec = build::surgery(&curves, &caption, sources);
    spec.title = format!("Key-dimension surgery — {run}");
    spec
}

/// Figure 5: |γ_d| vs leverage of d in the top-r90 subspace of K, one colour per layer,
/// with Spearman ρ and permutation p per layer and pooled in the caption.
pub fn scatter_figure(run: &str, importance: &Importance, sources: Vec<String>) -> FigureSpec {
    let groups: Vec<RunPoints> = importance
        .layers
        .iter()
        .filter_map(|l| {
            let g = l.abs_gamma.as_ref()?;
            Some(RunPoints {
                run: format!("layer {}", l.layer),
                color: l.layer,
                points: g.iter().zip(&l.leverage).map(|(x, y)| [*x, *y]).collect(),
            })
        })
        .collect();
    let fmt_p = |p: f64, n: usize| {
        if p <= 1.0 / (n as f64 + 1.0) + 1e-15 {
            format!("p < {:.0e}", 1.0 / n as f64)
        } else {
            if p < 1e-3 {
                format!("p = {p:.1e}")
            } else {
                format!("p = {p:.3}")
            }
        }
    };
    let caption = if importance.has_key_norm {
        let per_layer: Vec<String> = importance
            .layers
            .iter()
            .filter_map(|l| {
                l.spearman.as_ref().map(|s| {
                    format!(
                        "L{} ρ = {:.3} ({})",
                        l.layer,
                        s.rho,
                        fmt_p(s.p_perm, s.n_perm)
                    )
                })
            })
            .collect();
        let overall = importance
            .overall
            .as_ref()
            .map(|s| {
                format!(
                    "Overall ρ = {:.3} ({}, n = {}, {} permutations).",
                    s.rho,
                    fmt_p(s.p_perm, s.n_perm),
                    s.n,
                    s.n_perm
                )
            })
            .unwrap_or_default();
        format!(
            "{run}: x = |γ_d| of the key norm, y = Σ_(i ≤ r90) V_di² (leverage of coordinate d in the \
             top-r90 right singular subspace of eval-batch K, mean over kv-heads). Spearman: {overall} {}.",
            per_layer.join("; ")
        )
    } else {
        format!("{run} has no key norm (no γ), so there is nothing to plot against the leverage.")
    };
    build::scatter(
        &format!("γ vs SVD importance — {run}"),
        "|γ_d|",
        "leverage in top-r90 subspace of K",
        &groups,
        &caption,
        sources,
    )
}
