//! Sudden drops (phase transitions) in a PR trajectory (issue 6, "Rank vs loss").
//!
//! A drop between consecutive points is sudden when it is larger than `k`
//! times the median absolute change between consecutive points of the whole
//! trajectory (a robust scale of the ordinary step-to-step movement: one or
//! two jumps do not move the median) and larger than an absolute floor
//! `min_drop` (so that a trajectory with a median change of 0 — a flat run
//! with a few moves — does not mark every rounding wiggle).

/// Options of [`sudden_drops`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TransitionConfig {
    /// A drop must exceed `k` × the median |Δy| (default 5).
    pub k: f64,
    /// … and this absolute size (default 0).
    pub min_drop: f64,
}

impl Default for TransitionConfig {
    fn default() -> Self {
        TransitionConfig {
            k: 5.0,
            min_drop: 0.0,
        }
    }
}

/// One sudden drop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    /// x of the point before the drop.
    pub x_before: f64,
    /// x where the drop has happened (the point after it).
    pub x: f64,
    /// y before.
    pub y_before: f64,
    /// y after.
    pub y_after: f64,
    /// y_before − y_after (> 0).
    pub drop: f64,
    /// drop / median |Δy| (∞ when the median is 0).
    pub ratio: f64,
}

/// The sudden drops of `(x, y)` points (in x order; non-finite points are left out).
pub fn sudden_drops(points: &[(f64, f64)], config: &TransitionConfig) -> Vec<Transition> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.len() < 2 {
        return Vec::new();
    }
    let mut changes: Vec<f64> = pts.windows(2).map(|w| (w[1].1 - w[0].1).abs()).collect();
    changes.sort_by(f64::total_cmp);
    let n = changes.len();
    let median = if n % 2 == 1 {
        changes[n / 2]
    } else {
        (changes[n / 2 - 1] + changes[n / 2]) / 2.0
    };
    pts.windows(2)
        .filter_map(|w| {
            let drop = w[0].1 - w[1].1;
            (drop > config.k * median && drop > config.min_drop).then(|| Transition {
                x_before: w[0].0,
                x: w[1].0,
                y_before: w[0].1,
                y_after: w[1].1,
                drop,
                ratio: if median > 0.0 {
                    drop / median
                } else {
                    f64::INFINITY
                },
            })
        })
        .collect()
}
