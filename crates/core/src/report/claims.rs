//! The plan's summary paragraph, filled in only with what the statistics support.
//!
//! - A comparison's effect is claimed only when its verdict is a difference (interval excludes 0,
//!   corrected p < α where a test applies) or "similar" (equivalence test passed): the verdict's
//!   own sentence, linked to its table row.
//! - A question whose effects are all inconclusive is named as unanswered, with links to the rows
//!   that say why — never a claim.
//! - Collapse timing is a description under a stated rule (onset, sudden or gradual at the
//!   checkpoints' resolution), linked to the run's row.
//! - The surgery verdict is claimed only when the plan's rule gives one of its two outcomes.

use super::doc::{collapse_anchor, effect_anchor, link, text, Block, Span, SURGERY_ANCHOR};
use super::{Part, ReportInput};
use crate::analysis::collapse::Pattern;
use crate::analysis::compare::{Comparison, Effect, VerdictKind};
use crate::analysis::surgery_verdict::SurgeryOutcome;

/// The summary's paragraphs.
pub(super) fn summary(input: &ReportInput) -> Vec<Block> {
    let mut paragraphs = vec![Block::Para(vec![text(
        "Only claims that the statistics support are stated; each links to the table row it rests on. \
         A question the data do not answer is named as such.",
    )])];
    match &input.comparisons {
        Part::Computed(set) if !set.comparisons.is_empty() => {
            // One paragraph per pair of conditions, in the order compared (the plan's order).
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            for c in &set.comparisons {
                if !pairs.contains(&(c.x.as_str(), c.y.as_str())) {
                    pairs.push((&c.x, &c.y));
                }
            }
            for (x, y) in pairs {
                let of_pair: Vec<(usize, &Comparison)> = set
                    .comparisons
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.x == x && c.y == y)
                    .collect();
                paragraphs.push(Block::Para(pair_paragraph(x, y, &of_pair)));
            }
        }
        Part::Computed(_) => paragraphs.push(Block::Para(vec![text(
            "No comparison could be made (see Not in this report), so no claim about the conditions.",
        )])),
        Part::NotComputed(why) => paragraphs.push(Block::Para(vec![text(format!(
            "The comparisons were not computed ({why}), so no claim about the conditions."
        ))])),
    }
    if let Part::Computed(c) = &input.collapse {
        let mut spans = vec![text("When does collapse happen? ")];
        let timed: Vec<(usize, String)> = c
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let t = r.timing.computed()?;
                let what = match (t.onset, t.pattern) {
                    (_, Pattern::NoDrop) => "no drop below its first value".to_string(),
                    (Some(o), p) => format!(
                        "onset at {}, {}",
                        o.label(),
                        if p == Pattern::Sudden {
                            "sudden"
                        } else {
                            "gradual"
                        }
                    ),
                    (None, p) => format!(
                        "no onset under the rule, {} fall",
                        if p == Pattern::Sudden {
                            "a sudden"
                        } else {
                            "a gradual"
                        }
                    ),
                };
                Some((i, format!("{}: {what}", r.run)))
            })
            .collect();
        if timed.is_empty() {
            spans.push(text("no run could be timed."));
        } else {
            spans.push(text(format!(
                "By the rule stated with the timing table ({}): ",
                c.metric
            )));
            for (k, (i, what)) in timed.iter().enumerate() {
                if k > 0 {
                    spans.push(text("; "));
                }
                spans.push(link(what.clone(), &collapse_anchor(*i)));
            }
            spans.push(text(
                ". These describe single runs at the checkpoints' resolution; they are not tests.",
            ));
        }
        paragraphs.push(Block::Para(spans));
    }
    let surgery = match &input.surgery {
        Part::Computed(s) => match s.verdict.outcome {
            SurgeryOutcome::ReliableProxy | SurgeryOutcome::Misleads => vec![
                text(format!("Is γ a reliable proxy for SVD importance? On {}: ", s.run)),
                link(s.verdict.sentence.clone(), SURGERY_ANCHOR),
                text("."),
            ],
            SurgeryOutcome::Inconclusive => vec![
                text(format!(
                    "Is γ a reliable proxy for SVD importance? Not answered on {}: ",
                    s.run
                )),
                link(s.verdict.sentence.clone(), SURGERY_ANCHOR),
                text("."),
            ],
        },
        Part::NotComputed(why) => vec![text(format!(
            "Is γ a reliable proxy for SVD importance? Not answered: the surgery was not computed ({why})."
        ))],
    };
    paragraphs.push(Block::Para(surgery));
    paragraphs
}

fn supported(e: &Effect) -> bool {
    matches!(
        e.verdict.kind,
        VerdictKind::Lower | VerdictKind::Higher | VerdictKind::Similar
    )
}

/// "A1 vs A2 — does QK-norm …? A1 has lower K PR … [row]. Not answered: … [row]."
fn pair_paragraph(x: &str, y: &str, comparisons: &[(usize, &Comparison)]) -> Vec<Span> {
    let question = comparisons
        .iter()
        .find_map(|(_, c)| c.question.as_ref())
        .map_or(String::new(), |q| format!(" — {}", q.question));
    let mut spans = vec![Span::Strong(format!("{x} vs {y}{question}")), text(" ")];
    let mut claims = Vec::new();
    let mut open = Vec::new();
    for (i, c) in comparisons {
        let effects = [
            ("final", Some(&c.final_effect)),
            ("trajectory", c.trajectory.as_ref()),
        ];
        for (which, e) in effects {
            let Some(e) = e else { continue };
            let anchor = effect_anchor(*i, which);
            if supported(e) {
                claims.push((e.verdict.sentence.clone(), anchor));
            } else {
                open.push((format!("{} {}", c.metric.short, e.what), anchor));
            }
        }
    }
    for (sentence, anchor) in &claims {
        spans.push(link(capitalise(sentence), anchor));
        spans.push(text(". "));
    }
    if !open.is_empty() {
        spans.push(text(if claims.is_empty() {
            "The statistics do not answer it: inconclusive for "
        } else {
            "Inconclusive for "
        }));
        for (k, (what, anchor)) in open.iter().enumerate() {
            if k > 0 {
                spans.push(text("; "));
            }
            spans.push(link(what.clone(), anchor));
        }
        spans.push(text(" (the verdict column says why)."));
    }
    spans
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
