//! Verdicts in the plan's words (METRICS.md "Statistics across runs", "Verdicts"):
//! - "x has lower/higher … than y" only when the interval of the difference excludes 0 and, where a
//!   test applies, its Holm-corrected p is below α; for a rank metric on a pair the plan names, the
//!   plan's implication follows ("→ QK-norm accelerates collapse");
//! - "similar" only when the equivalence test passes at the margin δ;
//! - otherwise "inconclusive", with the reason.

use super::{CompareOptions, Effect, MetricInfo, Uncertainty};
use serde::{Deserialize, Serialize};

/// A question of the study plan that a pair of conditions answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanQuestion {
    pub question: String,
    /// What x < y (in rank) implies, x > y, and x ≈ y.
    pub if_lower: String,
    pub if_higher: String,
    pub if_similar: String,
}

/// The plan's pairs (x, y): QK-norm (A1/A2), optimizer (A1/B1), data (C1/C2), and the double
/// control (A2/B2), with their questions and what each outcome implies for a rank metric.
const PLAN: [(&str, &str, &str, &str, &str, &str); 4] = [
    (
        "A1",
        "A2",
        "does QK-norm cause or only report collapse?",
        "QK-norm accelerates collapse",
        "QK-norm slows collapse",
        "QK-norm does not change the rank: it reports the collapse rather than causing it",
    ),
    (
        "A1",
        "B1",
        "does Muon change spectral evolution?",
        "Muon accelerates collapse",
        "Muon preserves rank",
        "Muon does not change the rank",
    ),
    (
        "C1",
        "C2",
        "is collapse data-adaptive?",
        "rank adapts to data complexity (simpler data, lower rank)",
        "simpler data keeps more rank, the opposite of data-adaptive collapse",
        "no sign that rank adapts to data complexity",
    ),
    (
        "A2",
        "B2",
        "double control: does Muon change spectral evolution without QK-norm?",
        "Muon accelerates collapse without QK-norm too",
        "Muon preserves rank without QK-norm",
        "Muon does not change the rank without QK-norm",
    ),
];

/// The plan's question for x vs y (either order), or `None` for a pair the plan does not name.
pub fn plan_question(x: &str, y: &str) -> Option<PlanQuestion> {
    PLAN.iter().find_map(|&(a, b, q, lower, higher, similar)| {
        let make = |lower: &str, higher: &str| PlanQuestion {
            question: q.to_string(),
            if_lower: lower.to_string(),
            if_higher: higher.to_string(),
            if_similar: similar.to_string(),
        };
        if (a, b) == (x, y) {
            Some(make(lower, higher))
        } else if (b, a) == (x, y) {
            Some(make(higher, lower))
        } else {
            None
        }
    })
}

/// The plan's pairs whose both conditions are among `conditions`, in the plan's order.
pub fn plan_pairs(conditions: &[&str]) -> Vec<super::Pair> {
    PLAN.iter()
        .filter(|(a, b, ..)| conditions.contains(a) && conditions.contains(b))
        .map(|(a, b, ..)| super::Pair {
            x: a.to_string(),
            y: b.to_string(),
        })
        .collect()
}

/// The kind of verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Lower,
    Higher,
    Similar,
    Inconclusive,
}

/// A verdict: its kind, the sentence to show, and the evidence or reason behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub sentence: String,
    pub reason: String,
}

impl Verdict {
    /// Placeholder until Holm's correction is known.
    pub(crate) fn pending() -> Self {
        Verdict {
            kind: VerdictKind::Inconclusive,
            sentence: String::new(),
            reason: "not evaluated".into(),
        }
    }
}

/// Four significant digits, for sentences.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// The per-layer effects as one line of cells, "layer 0: 0.4 [0.1, 0.7]; layer 1: …" (the CLI's
/// text and the report's paragraph say the same).
pub fn layer_cells(layers: &[super::LayerEffect]) -> String {
    layers
        .iter()
        .map(|l| {
            let ci = l.interval.map_or(String::new(), |[lo, hi]| {
                format!(" [{}, {}]", num(lo), num(hi))
            });
            format!("layer {}: {}{ci}", l.layer, num(l.difference))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn interval_text(level: f64, [lo, hi]: [f64; 2]) -> String {
    format!("{:.0}% interval [{}, {}]", level * 100.0, num(lo), num(hi))
}

/// The verdict on one effect of x − y; `family` is the size of Holm's family.
pub fn verdict(
    e: &Effect,
    x: &str,
    y: &str,
    metric: &MetricInfo,
    question: Option<&PlanQuestion>,
    options: &CompareOptions,
    family: usize,
) -> Verdict {
    let implication = |text: &str| match question.filter(|_| metric.rank_like) {
        Some(_) => format!(" → {text}"),
        None => String::new(),
    };
    // A bootstrap over eval sequences sees the measurement's noise only: the claim says so itself.
    let (caveat, qualifier) = match e.uncertainty {
        Uncertainty::Bootstrap { .. } => (
            " (interval from resampled eval sequences: measurement noise only)",
            " (beyond measurement noise; with fewer than 2 seeds a side, seed-to-seed variation is unknown)",
        ),
        _ => ("", ""),
    };
    let Some(interval) = e.interval else {
        let reason = match &e.uncertainty {
            Uncertainty::None { reason } => reason.clone(),
            other => other.describe(),
        };
        return Verdict {
            kind: VerdictKind::Inconclusive,
            sentence: format!("inconclusive: {x} vs {y} {}, no interval", e.what),
            reason,
        };
    };
    let ci = interval_text(e.level, interval);
    let excludes_zero = interval[0] > 0.0 || interval[1] < 0.0;
    let corrected_ok = e.p_holm.is_none_or(|p| p < options.alpha);
    if excludes_zero && corrected_ok {
        let (kind, word, text) = if e.difference < 0.0 {
            (
                VerdictKind::Lower,
                "lower",
                question.map(|q| q.if_lower.as_str()),
            )
        } else {
            (
                VerdictKind::Higher,
                "higher",
                question.map(|q| q.if_higher.as_str()),
            )
        };
        let p = e.p_holm.map_or(String::new(), |p| {
            format!(", Holm-corrected p = {} (family of {family})", num(p))
        });
        return Verdict {
            kind,
            sentence: format!(
                "{x} has {word} {} than {y} {}{qualifier}{}",
                metric.short,
                e.what,
                implication(text.unwrap_or(""))
            ),
            reason: format!("difference {} with {ci}{p}{caveat}", num(e.difference)),
        };
    }
    if let Some(eq) = e.equivalence.as_ref().filter(|eq| eq.passed) {
        let tost = eq
            .tost
            .map_or(String::new(), |t| format!(", TOST p = {}", num(t.p)));
        return Verdict {
            kind: VerdictKind::Similar,
            sentence: format!(
                "{x} and {y} have similar {} {}{qualifier}{}",
                metric.short,
                e.what,
                implication(question.map_or("", |q| q.if_similar.as_str()))
            ),
            reason: format!(
                "the {:.0}% interval [{}, {}] lies inside ±{} (the margin){tost}{caveat}",
                (1.0 - 2.0 * options.alpha) * 100.0,
                num(eq.interval[0]),
                num(eq.interval[1]),
                num(eq.margin)
            ),
        };
    }
    let mut why = Vec::new();
    if excludes_zero {
        let p = e.p_holm.unwrap_or(f64::NAN);
        why.push(format!(
            "the {ci} excludes 0 but the Holm-corrected p = {} ≥ {} (family of {family})",
            num(p),
            options.alpha
        ));
    } else {
        why.push(format!("the {ci} includes 0"));
    }
    match &e.equivalence {
        Some(eq) => why.push(format!(
            "equivalence at ±{} fails ({:.0}% interval [{}, {}]{})",
            num(eq.margin),
            (1.0 - 2.0 * options.alpha) * 100.0,
            num(eq.interval[0]),
            num(eq.interval[1]),
            eq.tost
                .map_or(String::new(), |t| format!(", TOST p = {}", num(t.p)))
        )),
        None => why.push("no equivalence test".into()),
    }
    if let Some(perm) = &e.permutation {
        // With equal group sizes the swapped labels are as extreme as the observed ones.
        let floor = if e.values_x.len() == e.values_y.len() {
            2.0
        } else {
            1.0
        } / perm.relabelings as f64;
        if floor >= options.alpha {
            why.push(format!(
                "with {} relabelings the exact permutation p cannot go below {} (more seeds needed)",
                perm.relabelings,
                num(floor)
            ));
        }
    }
    if let Uncertainty::Seeds { n_x, n_y } = e.uncertainty {
        why.push(format!("{n_x} and {n_y} seeds"));
    }
    Verdict {
        kind: VerdictKind::Inconclusive,
        sentence: format!("inconclusive: {x} vs {y} {}", e.what),
        reason: format!("{}{caveat}", why.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_questions_read_both_ways() {
        let q = plan_question("A1", "A2").expect("plan pair");
        assert_eq!(q.if_lower, "QK-norm accelerates collapse");
        let r = plan_question("A2", "A1").expect("reversed");
        assert_eq!(r.if_higher, "QK-norm accelerates collapse");
        assert!(plan_question("A1", "C2").is_none());
        let pairs = plan_pairs(&["A1", "A2", "C1"]);
        assert_eq!(pairs.len(), 1);
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.0727891), "0.07279");
        assert_eq!(num(7.340236), "7.340");
        assert_eq!(num(-0.138139), "-0.1381");
        assert_eq!(num(1234.4), "1234");
    }
}
