//! The report as a list of blocks (headings, paragraphs, tables, figures), built once from the
//! [`ReportInput`] and written by both [`super::html`] and [`super::markdown`], so the two files
//! carry the same tables, numbers and claims. Text here is plain; each writer escapes it.

use super::{
    claims, escape, CollapseRun, CollapseSection, MarkdownFigures, Part, ReportInput,
    ReportOptions, SurgerySection,
};
use crate::analysis::collapse::Pattern;
use crate::analysis::compare::verdict::{layer_cells, num};
use crate::analysis::compare::{Comparison, ComparisonSet, Effect, Margin, Uncertainty};
use crate::figures::to_svg;

/// Inline text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Span {
    Text(String),
    Strong(String),
    /// A link to an anchor of this report (`to` is an [`escape::anchor`]).
    Link {
        text: String,
        to: String,
    },
}

pub(super) fn text(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

pub(super) fn link(s: impl Into<String>, to: &str) -> Span {
    Span::Link {
        text: s.into(),
        to: escape::anchor(to),
    }
}

/// A table cell: its text and, for a single number, the full-precision value (HTML keeps it in
/// `data-value`, so a reader or a test can check the number the text rounds).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cell {
    pub text: String,
    pub value: Option<f64>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, value: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_string())
    }
}

fn number(v: f64) -> Cell {
    Cell {
        text: num(v),
        value: Some(v),
    }
}

fn maybe(v: Option<f64>) -> Cell {
    v.map_or(Cell::from("—"), number)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    /// Anchor of the row, for the summary's links.
    pub id: Option<String>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Table {
    pub id: String,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Block {
    Heading {
        level: u8,
        text: String,
        id: String,
    },
    Para(Vec<Span>),
    List(Vec<Vec<Span>>),
    Table(Table),
    /// Index into [`Built::figures`].
    Figure(usize),
}

/// A figure slot, drawn (or the reason it is not there).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DrawnFigure {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// The SVG, or why there is none ("not computed: …", "could not be drawn: …").
    pub svg: Result<String, String>,
    /// The file name the Markdown links to ([`MarkdownFigures::Files`]).
    pub file: Option<String>,
}

pub(super) struct Built {
    pub blocks: Vec<Block>,
    pub figures: Vec<DrawnFigure>,
    pub missing: Vec<String>,
    pub anything_computed: bool,
}

fn heading(level: u8, text: &str, id: &str) -> Block {
    Block::Heading {
        level,
        text: text.to_string(),
        id: escape::anchor(id),
    }
}

/// Anchors of the rows the summary links to.
pub(super) fn effect_anchor(comparison: usize, which: &str) -> String {
    format!("cmp-{}-{which}", comparison + 1)
}

pub(super) fn collapse_anchor(run: usize) -> String {
    format!("collapse-{}", run + 1)
}

pub(super) const SURGERY_ANCHOR: &str = "surgery-verdict";

pub(super) fn build(input: &ReportInput, options: &ReportOptions) -> Built {
    let figures = draw_figures(input, options);
    let mut missing: Vec<String> = figures
        .iter()
        .filter_map(|f| {
            f.svg
                .as_ref()
                .err()
                .map(|why| format!("{}: {why}", f.title))
        })
        .collect();
    let mut anything = figures.iter().any(|f| f.svg.is_ok());

    let mut blocks = vec![Block::Para(vec![text(format!(
        "Written by {}. This file is self-contained: its figures, styles and numbers are inside it, \
         and it makes no request to anything outside it.",
        input.methods.software
    ))])];

    blocks.push(heading(2, "Summary", "summary"));
    blocks.extend(claims::summary(input));

    match &input.comparisons {
        Part::Computed(set) => {
            anything |= !set.comparisons.is_empty();
            for f in &set.failed {
                missing.push(format!(
                    "{} vs {} ({}): not compared: {}",
                    f.x, f.y, f.metric, f.message
                ));
            }
        }
        Part::NotComputed(why) => missing.push(format!("Comparisons: not computed: {why}")),
    }
    match &input.collapse {
        Part::Computed(c) => {
            for r in &c.runs {
                match &r.timing {
                    Part::Computed(_) => anything = true,
                    Part::NotComputed(why) => {
                        missing.push(format!("Collapse timing of {}: not timed: {why}", r.run))
                    }
                }
            }
        }
        Part::NotComputed(why) => missing.push(format!("Collapse timing: not computed: {why}")),
    }
    match &input.surgery {
        Part::Computed(_) => anything = true,
        Part::NotComputed(why) => missing.push(format!("Surgery verdict: not computed: {why}")),
    }

    if !missing.is_empty() {
        blocks.push(heading(2, "Not in this report", "missing"));
        blocks.push(Block::List(
            missing.iter().map(|m| vec![text(m.clone())]).collect(),
        ));
    }

    blocks.push(heading(2, "Figures", "figures"));
    blocks.extend((0..figures.len()).map(Block::Figure));

    if !input.conditions.is_empty() {
        blocks.push(heading(2, "Conditions", "conditions"));
        blocks.push(Block::Table(conditions_table(input)));
    }

    blocks.push(heading(2, "Comparisons", "comparisons"));
    match &input.comparisons {
        Part::Computed(set) => comparison_blocks(set, &mut blocks),
        Part::NotComputed(why) => {
            blocks.push(Block::Para(vec![text(format!("Not computed: {why}"))]))
        }
    }

    blocks.push(heading(2, "Collapse timing", "collapse"));
    match &input.collapse {
        Part::Computed(c) => collapse_blocks(c, &mut blocks),
        Part::NotComputed(why) => {
            blocks.push(Block::Para(vec![text(format!("Not computed: {why}"))]))
        }
    }

    blocks.push(heading(2, "Surgery verdict", "surgery"));
    match &input.surgery {
        Part::Computed(s) => surgery_blocks(s, &mut blocks),
        Part::NotComputed(why) => {
            blocks.push(Block::Para(vec![text(format!("Not computed: {why}"))]))
        }
    }

    blocks.push(heading(2, "Methods", "methods"));
    methods_blocks(input, &mut blocks);

    if !input.notes.is_empty() {
        blocks.push(heading(2, "Notes", "notes"));
        blocks.push(Block::List(
            input.notes.iter().map(|n| vec![text(n.clone())]).collect(),
        ));
    }

    Built {
        blocks,
        figures,
        missing,
        anything_computed: anything,
    }
}

fn draw_figures(input: &ReportInput, options: &ReportOptions) -> Vec<DrawnFigure> {
    input
        .figures
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let id = format!("figure-{}", i + 1);
            let file = match &options.markdown_figures {
                MarkdownFigures::Files { stem } => {
                    Some(format!("{}-figure-{}.svg", escape::file_stem(stem), i + 1))
                }
                MarkdownFigures::Inline => None,
            };
            let (svg, caption) = match &slot.figure {
                Part::Computed(spec) => {
                    // The caption is written beside the figure in full (text a reader can select
                    // and search); drawn inside too, it would repeat it, cut to a quarter of the
                    // height. Notes on dropped points are still drawn.
                    let mut bare = spec.clone();
                    bare.caption.clear();
                    bare.sources.clear();
                    (
                        to_svg(&bare, options.figure_width, options.figure_height)
                            .map(|s| responsive(&s))
                            .map_err(|e| format!("could not be drawn: {e}")),
                        spec.drawn_caption(),
                    )
                }
                Part::NotComputed(why) => (Err(format!("not computed: {why}")), String::new()),
            };
            DrawnFigure {
                id,
                title: slot.title.clone(),
                caption,
                file: file.filter(|_| svg.is_ok()),
                svg,
            }
        })
        .collect()
}

/// plotters writes a fixed `width`/`height` without a `viewBox`; with one the SVG scales to the
/// page (and to paper) instead of overflowing it.
fn responsive(svg: &str) -> String {
    let Some(start) = svg.find("<svg") else {
        return svg.to_string();
    };
    let end = start + svg[start..].find('>').unwrap_or(0);
    let tag = &svg[start..end];
    if tag.contains("viewBox") {
        return svg.to_string();
    }
    let attr = |name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[at..].find('"')?;
        Some(tag[at..at + len].to_string())
    };
    match (attr("width"), attr("height")) {
        (Some(w), Some(h)) => format!(
            "{}<svg viewBox=\"0 0 {w} {h}\"{}",
            &svg[..start],
            &svg[start + 4..]
        ),
        _ => svg.to_string(),
    }
}

fn conditions_table(input: &ReportInput) -> Table {
    Table {
        id: "conditions-table".into(),
        header: vec!["condition".into(), "runs (seed)".into(), "grouped".into()],
        rows: input
            .conditions
            .iter()
            .map(|c| Row {
                id: None,
                cells: vec![
                    Cell::from(c.name.clone()),
                    Cell::from(
                        c.runs
                            .iter()
                            .map(|r| match r.seed {
                                Some(s) => format!(
                                    "{} (seed {s}, from its {})",
                                    r.run,
                                    r.seed_from.label()
                                ),
                                None => format!("{} (seed not stated)", r.run),
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    Cell::from(c.grouped_by.label()),
                ],
            })
            .collect(),
    }
}

fn comparison_title(c: &Comparison) -> String {
    let q = c
        .question
        .as_ref()
        .map_or(String::new(), |q| format!(" — {}", q.question));
    format!("{} vs {}: {}{q}", c.x, c.y, c.metric.short)
}

fn comparison_blocks(set: &ComparisonSet, blocks: &mut Vec<Block>) {
    if set.comparisons.is_empty() {
        blocks.push(Block::Para(vec![text("No comparison could be made.")]));
    }
    for (i, c) in set.comparisons.iter().enumerate() {
        blocks.push(heading(3, &comparison_title(c), &format!("cmp-{}", i + 1)));
        blocks.push(Block::Para(vec![text(format!(
            "{}. Runs: {} vs {}; {} shared checkpoints.",
            c.metric.label,
            c.runs_x.join(", "),
            c.runs_y.join(", "),
            c.shared.len()
        ))]));
        let mut rows = vec![effect_row(&c.final_effect, effect_anchor(i, "final"))];
        if let Some(t) = &c.trajectory {
            rows.push(effect_row(t, effect_anchor(i, "trajectory")));
        }
        if let Some(u) = &c.units {
            rows.push(Row {
                id: Some(effect_anchor(i, "units")),
                cells: vec![
                    Cell::from(format!(
                        "per (layer, head) unit, {} vs {} at {}",
                        u.run_x, u.run_y, u.at
                    )),
                    Cell::from("—"),
                    Cell::from("—"),
                    Cell::from("—"),
                    Cell::from("—"),
                    Cell::from(format!(
                        "exact Wilcoxon signed-rank, T = {}{}",
                        num(u.test.statistic),
                        if u.test.ties {
                            ", ties at average ranks"
                        } else {
                            ""
                        }
                    )),
                    Cell::from(format!(
                        "{} unit pairs ({} zero differences dropped)",
                        u.test.n, u.test.zeros
                    )),
                    number(u.test.p),
                    Cell::from("not in the family"),
                    Cell::from(format!("descriptive only: {}", u.caveat)),
                ],
            });
        }
        blocks.push(Block::Table(Table {
            id: format!("cmp-{}-table", i + 1),
            header: [
                "effect".to_string(),
                format!("{} mean", c.x),
                format!("{} mean", c.y),
                "difference x − y".into(),
                "interval".into(),
                "test".into(),
                "n".into(),
                "p".into(),
                "Holm p".into(),
                "verdict".into(),
            ]
            .to_vec(),
            rows,
        }));
        if !c.layers.is_empty() {
            blocks.push(Block::Para(vec![text(format!(
                "Per layer at the final checkpoint (x − y, descriptive, not corrected): {}.",
                layer_cells(&c.layers)
            ))]));
        }
        if !c.notes.is_empty() {
            blocks.push(Block::List(
                c.notes
                    .iter()
                    .map(|n| vec![text(format!("Note: {n}"))])
                    .collect(),
            ));
        }
    }
    if !set.failed.is_empty() {
        blocks.push(Block::Para(vec![Span::Strong("Not compared".into())]));
        blocks.push(Block::List(
            set.failed
                .iter()
                .map(|f| {
                    vec![text(format!(
                        "{} vs {} ({}): {}",
                        f.x, f.y, f.metric, f.message
                    ))]
                })
                .collect(),
        ));
    }
    let family = if set.holm_family.is_empty() {
        "No test entered Holm's family (no comparison had a p-value).".to_string()
    } else {
        format!(
            "Holm's step-down correction over the {} tests shown together: {}.",
            set.holm_family.len(),
            set.holm_family.join("; ")
        )
    };
    blocks.push(Block::Para(vec![text(family)]));
}

fn test_text(e: &Effect) -> String {
    let mut parts = Vec::new();
    match &e.uncertainty {
        Uncertainty::Seeds { .. } => {
            if let Some(w) = &e.welch {
                parts.push(format!(
                    "Welch t = {}, df = {}",
                    num(w.t),
                    num(w.df)
                ));
            }
            if let Some(p) = &e.permutation {
                parts.push(format!(
                    "exact permutation p = {} ({} relabelings)",
                    num(p.p),
                    p.relabelings
                ));
            }
        }
        Uncertainty::Bootstrap {
            n_boot,
            n_sequences,
            ..
        } => parts.push(format!(
            "percentile bootstrap over {n_sequences} eval sequences ({n_boot} resamples): measurement noise \
             only, no p-value"
        )),
        Uncertainty::None { reason } => parts.push(format!("none: {reason}")),
    }
    if let Some(eq) = &e.equivalence {
        let tost = eq
            .tost
            .map_or(String::new(), |t| format!(", TOST p = {}", num(t.p)));
        parts.push(format!(
            "equivalence at ±{}: {}{tost}",
            num(eq.margin),
            if eq.passed { "shown" } else { "not shown" }
        ));
    }
    parts.join("; ")
}

fn effect_row(e: &Effect, id: String) -> Row {
    let n = match &e.uncertainty {
        Uncertainty::Seeds { n_x, n_y } => format!("{n_x} vs {n_y} seeds"),
        _ => format!("{} vs {} runs", e.values_x.len(), e.values_y.len()),
    };
    Row {
        id: Some(id),
        cells: vec![
            Cell::from(e.what.clone()),
            number(e.mean_x),
            number(e.mean_y),
            number(e.difference),
            Cell::from(e.interval.map_or("none".to_string(), |[lo, hi]| {
                format!("[{}, {}] ({:.0}%)", num(lo), num(hi), e.level * 100.0)
            })),
            Cell::from(test_text(e)),
            Cell::from(n),
            maybe(e.p),
            maybe(e.p_holm),
            Cell::from(format!("{} — {}", e.verdict.sentence, e.verdict.reason)),
        ],
    }
}

fn pattern_text(p: Pattern) -> &'static str {
    match p {
        Pattern::Sudden => "sudden",
        Pattern::Gradual => "gradual",
        Pattern::NoDrop => "no drop",
    }
}

fn collapse_row(i: usize, r: &CollapseRun) -> Row {
    let plateaus = match &r.plateaus {
        Part::Computed(p) if p.plateaus.is_empty() => format!("none in {}", p.log),
        Part::Computed(p) => format!(
            "{}: {}",
            p.log,
            p.plateaus
                .iter()
                .map(|p| p.describe())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Part::NotComputed(why) => why.clone(),
    };
    let cells = match &r.timing {
        Part::Computed(t) => vec![
            Cell::from(r.run.clone()),
            Cell {
                text: format!("{} at {}", num(t.first.value), t.first.label()),
                value: Some(t.first.value),
            },
            t.onset
                .map_or(Cell::from("none"), |o| Cell::from(o.label())),
            Cell::from(t.steepest.map_or("—".to_string(), |d| {
                format!(
                    "{} → {} between {} and {}",
                    num(d.from.value),
                    num(d.to.value),
                    d.from.label(),
                    d.to.label()
                )
            })),
            t.steepest.map_or(Cell::from("—"), |d| Cell {
                text: format!("{:.0}%", d.share * 100.0),
                value: Some(d.share),
            }),
            Cell::from(pattern_text(t.pattern)),
            Cell {
                text: format!("{} at {}", num(t.minimum.value), t.minimum.label()),
                value: Some(t.minimum.value),
            },
            number(t.recovery),
            Cell::from(plateaus),
        ],
        Part::NotComputed(why) => {
            let mut cells = vec![
                Cell::from(r.run.clone()),
                Cell::from(format!("not timed: {why}")),
            ];
            cells.extend((0..6).map(|_| Cell::from("—")));
            cells.push(Cell::from(plateaus));
            cells
        }
    };
    Row {
        id: Some(collapse_anchor(i)),
        cells,
    }
}

fn collapse_blocks(c: &CollapseSection, blocks: &mut Vec<Block>) {
    blocks.push(Block::Para(vec![text(format!(
        "Timed on {}. Rule: {}. Loss plateaus: {}. Timing resolution is the checkpoints' spacing: \
         \"sudden\" means most of the drop lies between two consecutive checkpoints.",
        c.metric,
        c.rule.describe(),
        c.plateau_rule.describe()
    ))]));
    if c.runs.is_empty() {
        blocks.push(Block::Para(vec![text("No run to time.")]));
        return;
    }
    blocks.push(Block::Table(Table {
        id: "collapse-table".into(),
        header: [
            "run",
            "first value",
            "onset",
            "steepest drop",
            "share of total drop",
            "pattern",
            "minimum",
            "recovery (last − minimum)",
            "loss plateaus",
        ]
        .map(String::from)
        .to_vec(),
        rows: c
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| collapse_row(i, r))
            .collect(),
    }));
}

fn surgery_blocks(s: &SurgerySection, blocks: &mut Vec<Block>) {
    let v = &s.verdict;
    let a = &v.areas;
    let seeds = a.random.len();
    blocks.push(Block::Para(vec![text(format!(
        "{} ({}): held-out loss after removing key dimensions at fractions {} of d_k = {} \
         (baseline {}); random pruning over {seeds} seed(s).",
        s.run,
        s.checkpoint,
        s.result
            .fractions
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.result.d_k,
        num(s.result.baseline)
    ))]));
    let range = a
        .random_min
        .zip(a.random_max)
        .map_or("—".to_string(), |(lo, hi)| {
            format!("{} … {} over {seeds} seeds", num(lo), num(hi))
        });
    let row = |what: &str, value: Cell, interval: String, note: &str| Row {
        id: None,
        cells: vec![
            Cell::from(what),
            value,
            Cell::from(interval),
            Cell::from(note),
        ],
    };
    let mut rows = vec![
        row(
            &format!("area A_SVD over p ∈ [0, {}]", a.p_max),
            maybe(a.svd),
            "—".into(),
            "deterministic",
        ),
        row(
            "area A_γ",
            maybe(a.gamma),
            "—".into(),
            if a.gamma.is_some() {
                "deterministic"
            } else {
                "no γ strategy (no key norm)"
            },
        ),
        row("area A_random (mean)", maybe(a.random_mean), range, "per seed, then the mean"),
        row(
            "A_SVD − A_γ",
            maybe(v.svd_minus_gamma),
            "—".into(),
            "no interval: both deterministic, and the sweep keeps no per-sequence losses to resample",
        ),
        row(
            "A_γ − A_random",
            maybe(v.gamma_minus_random),
            v.gamma_minus_random_interval
                .map_or("—".to_string(), |[lo, hi]| {
                    format!("[{}, {}] (95%, over the random seeds)", num(lo), num(hi))
                }),
            "",
        ),
        row(
            "γ's share s of SVD's advantage",
            maybe(v.gamma_share),
            "—".into(),
            "s = (A_random − A_γ)/(A_random − A_SVD)",
        ),
    ];
    rows.push(Row {
        id: Some(SURGERY_ANCHOR.into()),
        cells: vec![
            Cell::from("verdict"),
            Cell::from(v.sentence.clone()),
            Cell::from(format!("margin m = {}", v.margin)),
            Cell::from(v.rule.clone()),
        ],
    });
    blocks.push(Block::Table(Table {
        id: "surgery-table".into(),
        header: ["quantity", "value", "interval or range", "note"]
            .map(String::from)
            .to_vec(),
        rows,
    }));
}

fn margin_text(m: Margin) -> String {
    match m {
        Margin::FractionOfPooledMean(f) => format!("±{}% of the pooled mean", f * 100.0),
        Margin::Absolute(a) => format!("±{a} in the metric's units"),
    }
}

fn methods_blocks(input: &ReportInput, blocks: &mut Vec<Block>) {
    let m = &input.methods;
    let mut s = Vec::new();
    match &m.eval {
        Some(e) => s.push(format!(
            "Activation spectra come from a forward pass of every checkpoint on the eval batch {} \
             ({} sequences × {} tokens = {} tokens; SHA-256 of its content {}), the same batch for every run.",
            e.file,
            e.batch,
            e.seq_len,
            e.batch * e.seq_len,
            e.digest
        )),
        None => s.push("No eval batch was given: no activation spectra.".into()),
    }
    if let Some(h) = &m.heldout {
        s.push(format!(
            "The held-out loss is the mean next-token cross-entropy on {} ({} sequences × {} tokens; \
             SHA-256 {}).",
            h.file, h.batch, h.seq_len, h.digest
        ));
    }
    let runs: usize = input.conditions.iter().map(|c| c.runs.len()).sum();
    if runs > 0 {
        s.push(format!(
            "The {runs} runs form {} conditions; runs of one condition are seed replicates.",
            input.conditions.len()
        ));
    }
    if let Part::Computed(set) = &input.comparisons {
        let o = &set.options;
        s.push(format!(
            "An effect is the difference of the condition means, x − y, at the final shared checkpoint and \
             over the trajectory (per run the mean over the shared checkpoints). With at least two seeds a \
             side: Welch's t-test (two-sided, Welch–Satterthwaite df, {:.0}% interval) and the exact \
             permutation test over all relabelings of the seed labels; with fewer: a percentile bootstrap \
             over the eval sequences (measurement noise only) and an exact Wilcoxon signed-rank test across \
             (layer, head) units, which is descriptive because units of one model are not independent. \
             Holm's step-down correction over the {} tests shown together; α = {}. A difference is claimed \
             only when its interval excludes 0 (and its corrected p < α); \"similar\" only when an \
             equivalence test (two one-sided tests) passes at {}; anything else is inconclusive.",
            o.level * 100.0,
            set.holm_family.len(),
            o.alpha,
            margin_text(o.margin)
        ));
    }
    if let Part::Computed(c) = &input.collapse {
        s.push(format!(
            "Collapse timing: {}. Loss plateaus: {}.",
            c.rule.describe(),
            c.plateau_rule.describe()
        ));
    }
    if let Part::Computed(sg) = &input.surgery {
        s.push(format!("Surgery: {}.", sg.verdict.rule));
    }
    s.push(format!("Software: {}.", m.software));
    blocks.push(Block::Para(vec![text(s.join(" "))]));
    if !m.definitions.is_empty() {
        blocks.push(Block::List(
            m.definitions
                .iter()
                .map(|d| vec![Span::Strong(d.name.clone()), text(format!(": {}", d.text))])
                .collect(),
        ));
    }
}
