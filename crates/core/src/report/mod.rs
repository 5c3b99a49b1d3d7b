//! The study report: one self-contained HTML file and its Markdown twin, from the results the
//! page and the CLI already have — the figures ([`FigureSpec`]s), the comparisons
//! ([`ComparisonSet`]), the collapse timings ([`CollapseTiming`]), the surgery verdict
//! ([`SurgeryVerdict`]) and the facts of the methods (eval batch, metric definitions, version).
//!
//! What it promises:
//! - **Self-contained, offline**: figures are inline SVG, the CSS is inline, and nothing refers
//!   to anything outside the file (no fonts, scripts, images or links elsewhere); an `@media print`
//!   block keeps figures and table rows whole on paper.
//! - **Nothing silently dropped**: every part that was not computed is a [`Part::NotComputed`]
//!   with its reason; the report lists each one ("Not in this report") and renders the rest. A
//!   figure that fails to draw is listed the same way.
//! - **Controlled claims**: the summary states only what a verdict supports (an interval that
//!   excludes 0 with its corrected p, an equivalence test that passed, the plan's surgery rule),
//!   each claim linking to its table row; an unanswered question is named as such, with a link
//!   to the row that says why.
//! - **Escaped**: every name from a file (runs, conditions, files, captions) is escaped for HTML
//!   and for Markdown ([`escape`]); anchors are built from indices only.
//!
//! # How the page calls it
//!
//! The page holds the same data the CLI assembles; it fills a [`ReportInput`] and downloads the
//! two strings:
//!
//! ```ignore
//! use rankscope_core::report::*;
//! let input = ReportInput {
//!     title: "Rank-collapse study".into(),
//!     figures: vec![
//!         FigureSlot::computed("Figure 1: K PR vs training tokens", figure1_spec),
//!         // A figure the page has not computed yet is still a slot, with the reason:
//!         FigureSlot::missing("Figure 4: key-dimension surgery", "not run: press Run surgery"),
//!     ],
//!     conditions,                                   // analysis::conditions::group_conditions
//!     comparisons: Part::Computed(comparison_set),  // analysis::compare::compare_all
//!     // The timing of every run of `values` (analysis::compare::inputs::activation_metric_values):
//!     collapse: Part::Computed(collapse_section(&inventory, &values, rule, PlateauRule::default())),
//!     surgery: Part::NotComputed("surgery was not run".into()),
//!     methods: Methods {
//!         eval: Some(BatchFacts::of("eval_tokens.safetensors", &eval_batch)),
//!         heldout: None,
//!         definitions: vec![Definition::new("K PR", "(Σσ)²/Σσ² of …")],
//!         software: software(),
//!     },
//!     notes: vec![],                                // files that could not be analysed, …
//! };
//! // Inline: the Markdown carries its figures as data: URIs, so one download is enough.
//! let report = render(&input, &ReportOptions { markdown_figures: MarkdownFigures::Inline, ..Default::default() })?;
//! download("report.html", &report.html);
//! download("report.md", &report.markdown);
//! ```
//!
//! The CLI (`rankscope report`) uses [`MarkdownFigures::Files`]: the SVGs are written beside
//! `report.md` and linked by relative name, because the widest-used Markdown renderers (GitHub,
//! GitLab) strip inline `<svg>` and refuse `data:` images, while a relative `.svg` link shows
//! everywhere and keeps the Markdown readable and diffable.

mod claims;
mod collapse;
mod doc;
pub mod escape;
mod html;
mod markdown;

pub use collapse::collapse_section;

use crate::analysis::collapse::{CollapseRule, CollapseTiming, PlateauRule, RunPlateaus};
use crate::analysis::compare::ComparisonSet;
use crate::analysis::conditions::Condition;
use crate::analysis::surgery::SurgeryResult;
use crate::analysis::surgery_verdict::SurgeryVerdict;
use crate::figures::FigureSpec;
use crate::formats::tokens::TokenBatch;
use serde::{Deserialize, Serialize};

/// A part of the report: computed, or not, with the reason (shown in the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "value", rename_all = "snake_case")]
pub enum Part<T> {
    Computed(T),
    NotComputed(String),
}

impl<T> Part<T> {
    /// The computed value, if any.
    pub fn computed(&self) -> Option<&T> {
        match self {
            Part::Computed(v) => Some(v),
            Part::NotComputed(_) => None,
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Part<T> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Part::Computed(v),
            Err(e) => Part::NotComputed(e.to_string()),
        }
    }
}

/// One figure of the report, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureSlot {
    /// "Figure 1: K PR vs training tokens" (the slot's name, also when not computed).
    pub title: String,
    pub figure: Part<FigureSpec>,
}

impl FigureSlot {
    pub fn computed(title: impl Into<String>, spec: FigureSpec) -> Self {
        FigureSlot {
            title: title.into(),
            figure: Part::Computed(spec),
        }
    }

    pub fn missing(title: impl Into<String>, why: impl Into<String>) -> Self {
        FigureSlot {
            title: title.into(),
            figure: Part::NotComputed(why.into()),
        }
    }
}

/// The collapse timing of every run, with the rules used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseSection {
    /// The metric timed ("K PR of the activations (…), mean over layers and heads").
    pub metric: String,
    pub rule: CollapseRule,
    pub plateau_rule: PlateauRule,
    pub runs: Vec<CollapseRun>,
}

/// One run's timing and its loss plateaus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseRun {
    pub run: String,
    pub timing: Part<CollapseTiming>,
    /// Not computed when the run has no log with a loss column (the reason says so).
    pub plateaus: Part<RunPlateaus>,
}

/// The surgery sweep of one checkpoint and the plan's verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurgerySection {
    pub run: String,
    /// The checkpoint's file name.
    pub checkpoint: String,
    pub result: SurgeryResult,
    pub verdict: SurgeryVerdict,
}

/// A token batch as the methods name it: file, content digest and shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFacts {
    pub file: String,
    /// SHA-256 of the content ([`TokenBatch::content_digest`]).
    pub digest: String,
    /// Sequences.
    pub batch: usize,
    pub seq_len: usize,
}

impl BatchFacts {
    pub fn of(file: impl Into<String>, batch: &TokenBatch) -> Self {
        BatchFacts {
            file: file.into(),
            digest: batch.content_digest(),
            batch: batch.batch,
            seq_len: batch.seq_len,
        }
    }
}

/// A metric or rule and its definition, for the methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub text: String,
}

impl Definition {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Definition {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// The facts of the methods paragraph that only the caller knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Methods {
    pub eval: Option<BatchFacts>,
    pub heldout: Option<BatchFacts>,
    /// The metrics shown and how each is computed (the statistics' and rules' definitions are
    /// added from the comparisons, collapse and surgery parts themselves).
    pub definitions: Vec<Definition>,
    /// "rankscope 0.1.0" ([`software`]).
    pub software: String,
}

/// "rankscope <version>", the version of this core.
pub fn software() -> String {
    format!("rankscope {}", env!("CARGO_PKG_VERSION"))
}

/// What the methods define: the compared metric (`short`, `label` of its
/// [`MetricInfo`](crate::analysis::compare::MetricInfo)), the held-out loss and the figures'
/// measures — one list for the CLI's and the page's reports.
pub fn definitions(short: &str, label: &str) -> Vec<Definition> {
    vec![
        Definition::new(short, format!("{label} (METRICS.md)")),
        Definition::new(
            "held-out loss",
            "mean next-token cross-entropy (nats) of the checkpoint on the held-out batch",
        ),
        Definition::new(
            "waterfall",
            // The page lets the reader pick the layer and checkpoint; the figure's caption names them.
            "σ_i/σ_1 against i, mean over the kv-heads (and layers, unless one is named) at the checkpoint the caption names",
        ),
        Definition::new(
            "K PR per layer",
            "PR = (Σσ)²/Σσ² per kv-head, mean over the layer's kv-heads; whiskers: percentile bootstrap over eval sequences",
        ),
    ]
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    pub title: String,
    pub figures: Vec<FigureSlot>,
    pub conditions: Vec<Condition>,
    pub comparisons: Part<ComparisonSet>,
    pub collapse: Part<CollapseSection>,
    pub surgery: Part<SurgerySection>,
    pub methods: Methods,
    /// Anything else the reader must know: files that could not be analysed, resampling notes.
    pub notes: Vec<String>,
}

/// How the Markdown twin carries its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkdownFigures {
    /// `![…](<stem>-figure-<n>.svg)`, the SVGs returned in [`Report::figure_files`] to be written
    /// beside the Markdown (the stem is reduced to safe characters).
    Files { stem: String },
    /// `![…](data:image/svg+xml;base64,…)`: one file, for renderers that show data URIs.
    Inline,
}

/// Options of [`render`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    pub markdown_figures: MarkdownFigures,
    /// Size of each figure's SVG (CSS pixels; it scales down to the page width).
    pub figure_width: u32,
    pub figure_height: u32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            markdown_figures: MarkdownFigures::Files {
                stem: "report".into(),
            },
            figure_width: 900,
            figure_height: 560,
        }
    }
}

/// An SVG for the Markdown twin to link to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureFile {
    /// A bare file name (safe characters only), relative to the Markdown file.
    pub name: String,
    pub svg: String,
}

/// The rendered report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub html: String,
    pub markdown: String,
    /// Empty with [`MarkdownFigures::Inline`].
    pub figure_files: Vec<FigureFile>,
    /// Every part not in the report, and why (also listed inside it).
    pub missing: Vec<String>,
}

/// Why no report was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// Not one figure, comparison, timing or surgery result: a report would only list absences.
    #[error("nothing to report: {}", .missing.join("; "))]
    NothingComputed { missing: Vec<String> },
    #[error("figure size {width}×{height} is too small for a readable figure (at least 320×240)")]
    FigureSize { width: u32, height: u32 },
}

/// Renders the report (HTML, Markdown and the Markdown's figure files).
pub fn render(input: &ReportInput, options: &ReportOptions) -> Result<Report, ReportError> {
    if options.figure_width < 320 || options.figure_height < 240 {
        return Err(ReportError::FigureSize {
            width: options.figure_width,
            height: options.figure_height,
        });
    }
    let built = doc::build(input, options);
    if !built.anything_computed {
        return Err(ReportError::NothingComputed {
            missing: built.missing,
        });
    }
    let figure_files = match &options.markdown_figures {
        MarkdownFigures::Files { .. } => built
            .figures
            .iter()
            .filter_map(|f| {
                Some(FigureFile {
                    name: f.file.clone()?,
                    svg: f.svg.as_ref().ok()?.clone(),
                })
            })
            .collect(),
        MarkdownFigures::Inline => Vec::new(),
    };
    Ok(Report {
        html: html::write(&input.title, &built.blocks, &built.figures),
        markdown: markdown::write(&input.title, &built.blocks, &built.figures, options),
        figure_files,
        missing: built.missing,
    })
}

#[cfg(test)]
mod tests;
