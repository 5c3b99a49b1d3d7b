//! Collapse timing of one run's rank trajectory (METRICS.md "Statistics across runs"):
//!
//! - **onset**: the first checkpoint where the metric ≤ (1 − f)·its value at the first checkpoint
//!   (f = 0.3 by default);
//! - **steepest drop**: the largest decrease between two consecutive checkpoints;
//! - **sudden** when that drop is ≥ s of the total drop (first value − minimum; s = 0.5 by
//!   default), else **gradual**; "no drop" when the metric never falls below its first value;
//! - **recovery**: how much of the minimum the run wins back by its last checkpoint.
//!
//! The input is a run's per-checkpoint values ([`RunMetric`], the comparisons' input), so the page
//! and the CLI time collapse on the same trajectory they draw in Figure 1.

use super::compare::{MetricPoint, RunMetric};
use serde::{Deserialize, Serialize};

/// The thresholds of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CollapseRule {
    /// f: onset when the metric has lost this fraction of its first value.
    pub fraction: f64,
    /// s: sudden when one interval holds at least this share of the total drop.
    pub sudden_share: f64,
}

impl Default for CollapseRule {
    fn default() -> Self {
        CollapseRule {
            fraction: 0.3,
            sudden_share: 0.5,
        }
    }
}

impl CollapseRule {
    /// The rule in words, for captions.
    pub fn describe(&self) -> String {
        format!(
            "onset = first checkpoint where the metric ≤ (1 − {f})·its value at the first checkpoint; sudden when the \
             largest drop between consecutive checkpoints is ≥ {s}% of the total drop (first value − minimum), else \
             gradual",
            f = self.fraction,
            s = self.sudden_share * 100.0
        )
    }
}

/// A checkpoint named by where it sits in training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct At {
    pub index: usize,
    pub tokens: Option<u64>,
    pub step: Option<u64>,
    pub value: f64,
}

impl At {
    fn of(index: usize, p: &MetricPoint) -> At {
        At {
            index,
            tokens: p.tokens,
            step: p.step,
            value: p.value,
        }
    }

    /// "20480 tokens", "step 20" or "checkpoint 3".
    pub fn label(&self) -> String {
        match (self.tokens, self.step) {
            (Some(t), _) => format!("{t} tokens"),
            (None, Some(s)) => format!("step {s}"),
            _ => format!("checkpoint {}", self.index),
        }
    }
}

/// How the metric fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Sudden,
    Gradual,
    NoDrop,
}

/// The largest decrease between consecutive checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Drop {
    pub from: At,
    pub to: At,
    pub drop: f64,
    /// drop / total drop.
    pub share: f64,
}

/// One run's collapse timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseTiming {
    pub run: String,
    pub first: At,
    pub minimum: At,
    pub last: At,
    /// first − minimum (0 when the metric never falls).
    pub total_drop: f64,
    /// `None` when the metric never reaches (1 − f)·first.
    pub onset: Option<At>,
    pub steepest: Option<Drop>,
    pub pattern: Pattern,
    /// last − minimum: what the run wins back after its minimum.
    pub recovery: f64,
    pub rule: CollapseRule,
    /// One sentence: "A1: collapse onset at 20480 tokens (…); sudden: …".
    pub summary: String,
}

/// Why a run cannot be timed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollapseError {
    #[error("run `{run}` has {n} checkpoint(s); collapse timing needs at least 2")]
    TooFew { run: String, n: usize },
    #[error("run `{run}`: the value at {at} is not a finite number")]
    NotFinite { run: String, at: String },
    #[error("the rule's fraction and share must lie strictly between 0 and 1 (got {fraction} and {share})")]
    BadRule { fraction: f64, share: f64 },
}

/// Times the collapse of one run (checkpoints in training order).
pub fn collapse_timing(
    run: &RunMetric,
    rule: CollapseRule,
) -> Result<CollapseTiming, CollapseError> {
    let valid = |v: f64| v > 0.0 && v < 1.0;
    if !valid(rule.fraction) || !valid(rule.sudden_share) {
        return Err(CollapseError::BadRule {
            fraction: rule.fraction,
            share: rule.sudden_share,
        });
    }
    let points: Vec<At> = run
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| At::of(i, p))
        .collect();
    if points.len() < 2 {
        return Err(CollapseError::TooFew {
            run: run.run.clone(),
            n: points.len(),
        });
    }
    if let Some(bad) = points.iter().find(|p| !p.value.is_finite()) {
        return Err(CollapseError::NotFinite {
            run: run.run.clone(),
            at: bad.label(),
        });
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let minimum = *points
        .iter()
        .min_by(|a, b| a.value.total_cmp(&b.value))
        .expect("two points at least");
    let total_drop = (first.value - minimum.value).max(0.0);
    let threshold = (1.0 - rule.fraction) * first.value;
    let onset = points.iter().find(|p| p.value <= threshold).copied();
    let steepest = points
        .windows(2)
        .map(|w| (w[0], w[1], w[0].value - w[1].value))
        .filter(|(_, _, d)| *d > 0.0)
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(from, to, drop)| Drop {
            from,
            to,
            drop,
            share: if total_drop > 0.0 {
                drop / total_drop
            } else {
                0.0
            },
        });
    let pattern = match steepest {
        _ if total_drop <= 0.0 => Pattern::NoDrop,
        Some(d) if d.share >= rule.sudden_share => Pattern::Sudden,
        _ => Pattern::Gradual,
    };
    let recovery = last.value - minimum.value;
    let summary = summarise(
        &run.run, first, minimum, last, onset, steepest, pattern, rule,
    );
    Ok(CollapseTiming {
        run: run.run.clone(),
        first,
        minimum,
        last,
        total_drop,
        onset,
        steepest,
        pattern,
        recovery,
        rule,
        summary,
    })
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    run: &str,
    first: At,
    minimum: At,
    last: At,
    onset: Option<At>,
    steepest: Option<Drop>,
    pattern: Pattern,
    rule: CollapseRule,
) -> String {
    let v = super::compare::verdict::num;
    let onset = match onset {
        Some(o) => format!(
            "onset at {} ({} ≤ {:.0}% of {} at {})",
            o.label(),
            v(o.value),
            (1.0 - rule.fraction) * 100.0,
            v(first.value),
            first.label()
        ),
        None => format!(
            "no onset (never ≤ {:.0}% of its first value {})",
            (1.0 - rule.fraction) * 100.0,
            v(first.value)
        ),
    };
    let shape = match (pattern, steepest) {
        (Pattern::NoDrop, _) | (_, None) => "no drop below its first value".to_string(),
        (p, Some(d)) => format!(
            "{}: the steepest drop, {} → {} between {} and {}, is {:.0}% of the total drop",
            if p == Pattern::Sudden {
                "sudden"
            } else {
                "gradual"
            },
            v(d.from.value),
            v(d.to.value),
            d.from.label(),
            d.to.label(),
            d.share * 100.0
        ),
    };
    let recovery = if last.index != minimum.index && last.value > minimum.value {
        format!(
            "; minimum {} at {}, back to {} at {}",
            v(minimum.value),
            minimum.label(),
            v(last.value),
            last.label()
        )
    } else {
        String::new()
    };
    format!("{run}: {onset}; {shape}{recovery}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[f64]) -> RunMetric {
        RunMetric {
            run: "r".into(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, &value)| MetricPoint {
                    tokens: Some(1000 * i as u64),
                    step: None,
                    value,
                    layers: Vec::new(),
                    units: Vec::new(),
                    resamples: None,
                })
                .collect(),
        }
    }

    #[test]
    fn sudden_gradual_and_no_drop() {
        let t = collapse_timing(&run(&[10.0, 9.5, 4.0, 3.8, 5.0]), CollapseRule::default())
            .expect("valid");
        assert_eq!(
            (t.pattern, t.onset.map(|o| o.index)),
            (Pattern::Sudden, Some(2))
        );
        let d = t.steepest.expect("a drop");
        assert_eq!((d.from.index, d.to.index), (1, 2));
        assert!((d.share - 5.5 / 6.2).abs() < 1e-12 && (t.recovery - 1.2).abs() < 1e-12);
        assert!(
            t.summary.contains("onset at 2000 tokens") && t.summary.contains("sudden"),
            "{}",
            t.summary
        );
        let g = collapse_timing(&run(&[10.0, 9.0, 8.0, 7.0, 6.0]), CollapseRule::default())
            .expect("valid");
        assert_eq!(
            (g.pattern, g.onset.map(|o| o.index)),
            (Pattern::Gradual, Some(3))
        );
        let n = collapse_timing(&run(&[5.0, 6.0, 7.0]), CollapseRule::default()).expect("valid");
        assert_eq!(
            (n.pattern, n.onset, n.steepest),
            (Pattern::NoDrop, None, None)
        );
    }

    #[test]
    fn refuses_what_it_cannot_time() {
        assert!(matches!(
            collapse_timing(&run(&[1.0]), CollapseRule::default()),
            Err(CollapseError::TooFew { .. })
        ));
        assert!(matches!(
            collapse_timing(&run(&[1.0, f64::NAN]), CollapseRule::default()),
            Err(CollapseError::NotFinite { .. })
        ));
        let bad = CollapseRule {
            fraction: 1.5,
            sudden_share: 0.5,
        };
        assert!(matches!(
            collapse_timing(&run(&[2.0, 1.0]), bad),
            Err(CollapseError::BadRule { .. })
        ));
    }
}

/// How loss plateaus are found in a run log (defaults in [`PlateauRule::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauRule {
    /// β of the debiased EMA that smooths the loss.
    pub beta: f64,
    /// The slope at a point is taken to the first point at least this many decades of tokens later.
    pub window_decades: f64,
    /// Flat when |slope| ≤ this many nats per decade of tokens.
    pub max_slope: f64,
    /// A plateau spans at least this many decades.
    pub min_span_decades: f64,
}

impl Default for PlateauRule {
    fn default() -> Self {
        PlateauRule {
            beta: 0.9,
            window_decades: 0.1,
            max_slope: 0.1,
            min_span_decades: 0.3,
        }
    }
}

impl PlateauRule {
    /// The rule in words, for captions.
    pub fn describe(&self) -> String {
        format!(
            "loss plateau = a stretch of at least {} decades of tokens where the slope of the loss (debiased EMA, β = \
             {}) against log10(tokens), taken over {} decades, stays within ±{} nats per decade",
            self.min_span_decades, self.beta, self.window_decades, self.max_slope
        )
    }
}

/// A stretch of training where the smoothed loss is flat against log-tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub start_tokens: f64,
    pub end_tokens: f64,
    /// Smoothed loss at the start and the end.
    pub start_loss: f64,
    pub end_loss: f64,
}

/// Where the collapse's steepest drop falls relative to a plateau.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum DropVsPlateau {
    /// The drop's interval and the plateau overlap by `tokens`.
    Overlaps { tokens: f64 },
    /// The drop ends `lag` tokens before the plateau starts.
    Before { lag: f64 },
    /// The drop starts `lag` tokens after the plateau ends.
    After { lag: f64 },
}

/// Loss plateaus of a run log's `(tokens, loss)` points (tokens > 0, in order; others skipped).
pub fn loss_plateaus(points: &[(f64, f64)], rule: PlateauRule) -> Vec<Plateau> {
    let kept: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, l)| *t > 0.0 && l.is_finite())
        .collect();
    let smooth = super::losscurve::axes::ema_debiased(
        &kept.iter().map(|p| Some(p.1)).collect::<Vec<_>>(),
        rule.beta,
    );
    let pts: Vec<(f64, f64, f64)> = kept
        .iter()
        .zip(smooth)
        .filter_map(|(&(t, _), s)| Some((t, t.log10(), s?)))
        .collect();
    // flat[i]: the slope from i to the first point `window` decades later; the plateau reaches that point.
    let flat: Vec<Option<usize>> = (0..pts.len())
        .map(|i| {
            let j = (i + 1..pts.len()).find(|&j| pts[j].1 >= pts[i].1 + rule.window_decades)?;
            let slope = (pts[j].2 - pts[i].2) / (pts[j].1 - pts[i].1);
            (slope.abs() <= rule.max_slope).then_some(j)
        })
        .collect();
    let mut out: Vec<Plateau> = Vec::new();
    let mut i = 0;
    while i < pts.len() {
        let Some(mut reach) = flat[i] else {
            i += 1;
            continue;
        };
        let start = i;
        while i + 1 < pts.len() && flat[i + 1].is_some() {
            i += 1;
            reach = reach.max(flat[i].unwrap_or(reach));
        }
        if pts[reach].1 - pts[start].1 >= rule.min_span_decades {
            out.push(Plateau {
                start_tokens: pts[start].0,
                end_tokens: pts[reach].0,
                start_loss: pts[start].2,
                end_loss: pts[reach].2,
            });
        }
        i += 1;
    }
    out
}

/// Where a drop between `from` and `to` tokens falls relative to `plateau`.
pub fn drop_vs_plateau(from: f64, to: f64, plateau: &Plateau) -> DropVsPlateau {
    if to <= plateau.start_tokens {
        DropVsPlateau::Before {
            lag: plateau.start_tokens - to,
        }
    } else if from >= plateau.end_tokens {
        DropVsPlateau::After {
            lag: from - plateau.end_tokens,
        }
    } else {
        DropVsPlateau::Overlaps {
            tokens: to.min(plateau.end_tokens) - from.max(plateau.start_tokens),
        }
    }
}

/// A loss plateau and where the run's steepest rank drop falls relative to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlacedPlateau {
    pub plateau: Plateau,
    /// `None` when the run has no drop, or its checkpoints have no token counts.
    pub steepest_drop: Option<DropVsPlateau>,
}

/// A run's loss plateaus, from the log they were found in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlateaus {
    /// The log's path, as the inventory names it.
    pub log: String,
    pub plateaus: Vec<PlacedPlateau>,
}

/// The loss plateaus of a run's `(tokens, loss)` log points, each placed against the steepest
/// drop of its collapse timing (the CLI's `collapse` and the report read the same answer).
pub fn place_plateaus(
    timing: &CollapseTiming,
    log: &str,
    points: &[(f64, f64)],
    rule: PlateauRule,
) -> RunPlateaus {
    let drop = timing
        .steepest
        .and_then(|d| Some((d.from.tokens? as f64, d.to.tokens? as f64)));
    RunPlateaus {
        log: log.to_string(),
        plateaus: loss_plateaus(points, rule)
            .into_iter()
            .map(|plateau| PlacedPlateau {
                plateau,
                steepest_drop: drop.map(|(a, b)| drop_vs_plateau(a, b, &plateau)),
            })
            .collect(),
    }
}

impl DropVsPlateau {
    /// "the steepest rank drop overlaps it by 2048 tokens".
    pub fn describe(&self) -> String {
        match self {
            DropVsPlateau::Overlaps { tokens } => {
                format!("the steepest rank drop overlaps it by {tokens:.0} tokens")
            }
            DropVsPlateau::Before { lag } => {
                format!("the steepest rank drop ends {lag:.0} tokens before it")
            }
            DropVsPlateau::After { lag } => {
                format!("the steepest rank drop starts {lag:.0} tokens after it")
            }
        }
    }
}

impl PlacedPlateau {
    /// "1024–3072 tokens (loss 5.545 → 5.545): the steepest rank drop overlaps it by 2048 tokens".
    pub fn describe(&self) -> String {
        let p = &self.plateau;
        let when = self
            .steepest_drop
            .map_or("no rank drop to place".to_string(), |d| d.describe());
        format!(
            "{:.0}–{:.0} tokens (loss {:.3} → {:.3}): {when}",
            p.start_tokens, p.end_tokens, p.start_loss, p.end_loss
        )
    }
}

#[cfg(test)]
mod plateau_tests {
    use super::*;

    #[test]
    fn finds_a_flat_stretch_between_two_falls() {
        // Falls over 1e3..1e4 tokens, flat over 1e4..1e5, falls again to 1e6 (per decade: −1, 0, −1).
        let points: Vec<(f64, f64)> = (0..=60)
            .map(|k| {
                let x = 3.0 + k as f64 / 20.0;
                let loss = if x < 4.0 {
                    6.0 - (x - 3.0)
                } else if x < 5.0 {
                    5.0
                } else {
                    5.0 - (x - 5.0)
                };
                (10f64.powf(x), loss)
            })
            .collect();
        let rule = PlateauRule {
            beta: 0.0,
            ..PlateauRule::default()
        };
        let p = loss_plateaus(&points, rule);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            (p[0].start_tokens.log10() - 4.0).abs() < 0.06
                && (p[0].end_tokens.log10() - 5.0).abs() < 0.06,
            "{p:?}"
        );
        assert_eq!(
            drop_vs_plateau(1e3, 5e3, &p[0]),
            DropVsPlateau::Before {
                lag: p[0].start_tokens - 5e3
            }
        );
        assert!(matches!(
            drop_vs_plateau(5e3, 2e4, &p[0]),
            DropVsPlateau::Overlaps { .. }
        ));
        assert!(matches!(
            drop_vs_plateau(2e5, 3e5, &p[0]),
            DropVsPlateau::After { .. }
        ));
    }
}
