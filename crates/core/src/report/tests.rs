//! The report's promises on hand-made inputs: names from files are escaped in both formats, a
//! figure not computed is listed with its reason while the rest still renders, nothing refers
//! outside the file, and the summary claims only what a verdict supports.

use super::*;
use crate::analysis::activations::KeyVariant;
use crate::analysis::collapse::{collapse_timing, CollapseRule, PlateauRule};
use crate::analysis::compare::inputs::activation_metric_info;
use crate::analysis::compare::{
    compare_all, CompareOptions, MetricPoint, MetricValues, Pair, RunMetric,
};
use crate::analysis::conditions::{GroupedBy, Replicate, SeedSource};
use crate::analysis::trajectory::{Matrix, Metric};
use crate::figures::build::{trajectory, RunPoints};

/// A run with two checkpoints (0 and 1000 tokens): `first` then `last`.
fn run(name: &str, first: f64, last: f64) -> RunMetric {
    RunMetric {
        run: name.into(),
        points: [(0, first), (1000, last)]
            .iter()
            .map(|&(tokens, value)| MetricPoint {
                tokens: Some(tokens),
                step: None,
                value,
                layers: vec![value],
                units: Vec::new(),
                resamples: None,
            })
            .collect(),
    }
}

fn condition(name: &str, runs: &[&str]) -> Condition {
    Condition {
        name: name.into(),
        runs: runs
            .iter()
            .enumerate()
            .map(|(i, r)| Replicate {
                run: r.to_string(),
                seed: Some(42 + i as u64),
                seed_from: SeedSource::Name,
            })
            .collect(),
        grouped_by: GroupedBy::Name,
    }
}

/// A1 clearly below A2 (three seeds each, tight); C1 and C2 overlapping (inconclusive).
fn input(a1_name: &str) -> ReportInput {
    let a1 = [a1_name, "A1_seed43", "A1_seed44"];
    let a2 = ["A2", "A2_seed43", "A2_seed44"];
    let mut runs = vec![];
    for (i, r) in a1.iter().enumerate() {
        runs.push(run(r, 10.0, 4.0 + 0.01 * i as f64));
    }
    for (i, r) in a2.iter().enumerate() {
        runs.push(run(r, 10.0, 8.0 + 0.01 * i as f64));
    }
    for (r, v) in [
        ("C1", 5.0),
        ("C1_seed2", 7.0),
        ("C2", 6.0),
        ("C2_seed2", 6.5),
    ] {
        runs.push(run(r, 10.0, v));
    }
    let conditions = vec![
        condition("A1", &a1),
        condition("A2", &a2),
        condition("C1", &["C1", "C1_seed2"]),
        condition("C2", &["C2", "C2_seed2"]),
    ];
    let values = MetricValues {
        metric: activation_metric_info(KeyVariant::PostNorm, Matrix::K, Metric::Pr),
        runs: runs.clone(),
        resampling: None,
    };
    let pairs = [("A1", "A2"), ("C1", "C2")].map(|(x, y)| Pair {
        x: x.into(),
        y: y.into(),
    });
    let set = compare_all(&conditions, &[values], &pairs, CompareOptions::default());
    let rule = CollapseRule::default();
    let collapse = CollapseSection {
        metric: "K PR".into(),
        rule,
        plateau_rule: PlateauRule::default(),
        runs: runs
            .iter()
            .take(2)
            .map(|r| CollapseRun {
                run: r.run.clone(),
                timing: collapse_timing(r, rule).into(),
                plateaus: Part::NotComputed("no run log with a `loss` column".into()),
            })
            .collect(),
    };
    let lines: Vec<RunPoints> = runs
        .iter()
        .enumerate()
        .map(|(color, r)| RunPoints {
            run: r.run.clone(),
            color,
            points: r
                .points
                .iter()
                .map(|p| [p.tokens.unwrap_or(0) as f64, p.value])
                .collect(),
        })
        .collect();
    let fig1 = trajectory(
        "K PR",
        "training tokens",
        &lines,
        "K PR of the activations",
        vec![],
    );
    ReportInput {
        title: "Study".into(),
        figures: vec![
            FigureSlot::computed("Figure 1: K PR vs training tokens", fig1.clone()),
            FigureSlot::missing("Figure 2: waterfall", "no eval batch"),
            FigureSlot::computed("Figure 3: again", fig1),
            FigureSlot::missing("Figure 4: surgery", "surgery was not run (pass --surgery)"),
        ],
        conditions,
        comparisons: Part::Computed(set),
        collapse: Part::Computed(collapse),
        surgery: Part::NotComputed("surgery was not run (pass --surgery)".into()),
        methods: Methods {
            eval: Some(BatchFacts {
                file: "eval_tokens.safetensors".into(),
                digest: "ab12".into(),
                batch: 4,
                seq_len: 64,
            }),
            heldout: None,
            definitions: vec![Definition::new("K PR", "(Σσ)²/Σσ²")],
            software: software(),
        },
        notes: vec![],
    }
}

#[test]
fn missing_figures_are_listed_and_the_rest_renders() {
    let r = render(&input("A1"), &ReportOptions::default()).expect("report");
    assert_eq!(r.html.matches("<svg").count(), 2, "two computed figures");
    assert_eq!(r.figure_files.len(), 2);
    assert_eq!(r.figure_files[1].name, "report-figure-3.svg");
    for why in [
        "Figure 2: waterfall: not computed: no eval batch",
        "Figure 4: surgery: not computed: surgery was not run (pass --surgery)",
        "Surgery verdict: not computed: surgery was not run (pass --surgery)",
    ] {
        assert!(
            r.missing.iter().any(|m| m == why),
            "{why} in {:?}",
            r.missing
        );
        assert!(r.html.contains(&escape::html(why)), "{why} in the HTML");
    }
    assert!(r
        .markdown
        .contains("![Figure 1: K PR vs training tokens](report-figure-1.svg)"));
    assert!(r.markdown.contains("> **not computed: no eval batch**"));
    // Every figure slot keeps its place, computed or not.
    for id in ["figure-1", "figure-2", "figure-3", "figure-4"] {
        assert!(r.html.contains(&format!("<figure id=\"{id}\">")), "{id}");
    }
}

#[test]
fn nothing_outside_the_file_is_referenced() {
    let r = render(&input("A1"), &ReportOptions::default()).expect("report");
    for bad in [
        "src=",
        "href=\"http",
        "href='http",
        "url(",
        "@import",
        "<script",
        "<link",
    ] {
        assert!(!r.html.contains(bad), "{bad} in the HTML");
    }
    for href in r.html.split("href=\"").skip(1) {
        assert!(
            href.starts_with('#'),
            "a link to elsewhere: {}",
            &href[..40.min(href.len())]
        );
    }
    assert!(r.html.contains("@media print"));
    let inline = render(
        &input("A1"),
        &ReportOptions {
            markdown_figures: MarkdownFigures::Inline,
            ..ReportOptions::default()
        },
    )
    .expect("report");
    assert!(inline.figure_files.is_empty());
    assert_eq!(
        inline
            .markdown
            .matches("](data:image/svg+xml;base64,")
            .count(),
        2
    );
}

#[test]
fn names_from_files_are_escaped_in_both_formats() {
    let evil = "<img src=x onerror=alert(1)>](http://evil.example)|*x*";
    let r = render(&input(evil), &ReportOptions::default()).expect("report");
    assert!(!r.html.contains("<img"), "raw markup in the HTML");
    assert!(r.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!r.markdown.contains("<img"), "raw markup in the Markdown");
    // `\]` is a literal bracket; an unescaped `](http` would open a link.
    assert!(
        !r.markdown.replace("\\]", "").contains("](http"),
        "a link formed in the Markdown"
    );
    assert!(
        !r.markdown.contains("http://"),
        "an autolink in the Markdown"
    );
    assert!(
        r.markdown.contains("\\|\\*x\\*"),
        "table cell and emphasis escaped"
    );
    // The SVG (plotters) escapes the name too.
    let svg_start = r.html.find("<svg").expect("svg");
    assert!(!r.html[svg_start..].contains("<img"));
}

#[test]
fn claims_only_what_the_statistics_support() {
    let r = render(&input("A1"), &ReportOptions::default()).expect("report");
    let summary = &r.html[r.html.find("id=\"summary\"").expect("summary")
        ..r.html.find("id=\"figures\"").expect("figures")];
    // A1 < A2 by far, three seeds a side: claimed, with the plan's implication, linking its row.
    assert!(
        summary.contains(
            "<a href=\"#cmp-1-final\">A1 has lower K PR than A2 at the final shared checkpoint"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("QK-norm accelerates collapse"),
        "{summary}"
    );
    assert!(r.html.contains("<tr id=\"cmp-1-final\">"));
    // C1 vs C2 overlap: no claim, named as unanswered with links to the rows that say why.
    let c = &summary[summary.find("C1 vs C2").expect("C1 vs C2")..];
    assert!(c.contains("The statistics do not answer it"), "{c}");
    assert!(c.contains("href=\"#cmp-2-final\""), "{c}");
    assert!(!c.contains("C1 has lower") && !c.contains("C1 has higher") && !c.contains("similar"));
    // The surgery was not run: no claim about γ.
    assert!(summary.contains("Not answered: the surgery was not computed"));
    // The Markdown carries the same links.
    assert!(r.markdown.contains("](#cmp-1-final)"));
    assert!(r.markdown.contains("<a id=\"cmp-1-final\"></a>"));
}

#[test]
fn nothing_computed_is_an_error_naming_what_is_missing() {
    let mut i = input("A1");
    i.figures = vec![FigureSlot::missing("Figure 1", "no checkpoints")];
    i.comparisons = Part::NotComputed("no eval batch".into());
    i.collapse = Part::NotComputed("no eval batch".into());
    let e = render(&i, &ReportOptions::default()).expect_err("nothing to report");
    let ReportError::NothingComputed { missing } = &e else {
        panic!("{e}")
    };
    assert_eq!(missing.len(), 4, "{missing:?}");
    assert!(e
        .to_string()
        .contains("Figure 1: not computed: no checkpoints"));
}
