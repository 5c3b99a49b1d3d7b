//! "Download study report": the core's report ([`rankscope_core::report`]) of what this page has
//! computed — Figures 1–5 as they are drawn now (read from [`FigureSpecs`], not built again), the
//! conditions and comparisons of the cards ([`Comparisons::cards`]), the collapse timing of the
//! cards' metric, the surgery verdict when Figure 4 was computed, and the eval and held-out
//! batches. What is not computed goes in as a slot with its reason, which the report lists.
//! Downloads `report.html` (self-contained) and `report.md` (figures as data URIs).

use crate::comparisons::{CardsInput, Comparisons};
use crate::components::figures::runs_of_figures_1_2;
use crate::figure_specs::FigureSpecs;
use crate::state::AppState;
use crate::view_state::RUN_PICKER_FIGURES;
use crate::web::export::save_text;
use leptos::prelude::*;
use rankscope_core::analysis::collapse::{CollapseRule, PlateauRule};
use rankscope_core::analysis::jobs::StudyOutput;
use rankscope_core::inventory::batches::{BatchRef, RunBatches};
use rankscope_core::inventory::{Content, Inventory};
use rankscope_core::report::{
    collapse_section, definitions, render, software, BatchFacts, FigureSlot, MarkdownFigures,
    Methods, Part, ReportInput, ReportOptions,
};

/// The report's figure titles, Figure n at index n − 1.
const TITLES: [&str; 5] = [
    "Figure 1: rank trajectory",
    "Figure 2: singular-value waterfall",
    "Figure 3: K PR per layer",
    "Figure 4: key-dimension surgery (held-out loss vs % of key dimensions pruned)",
    "Figure 5: |γ| vs SVD importance",
];

#[component]
pub fn ReportButton() -> impl IntoView {
    let state = AppState::use_context();
    let cmp = Comparisons::use_context();
    let specs = FigureSpecs::use_context();
    let error = RwSignal::new(None::<String>);
    // After a download: what the report lists as not in it.
    let saved = RwSignal::new(None::<Vec<String>>);
    let has_runs = move || {
        state.workspace.inventory.with(|i| !i.runs.is_empty())
            || state.analysis.spectra.with(|s| !s.is_empty())
    };
    let download = move |_| {
        let input = untrack(|| report_input(state, cmp, specs));
        let options = ReportOptions {
            markdown_figures: MarkdownFigures::Inline,
            ..ReportOptions::default()
        };
        match render(&input, &options) {
            Ok(report) => {
                save_text("report.html", &report.html, "text/html");
                save_text("report.md", &report.markdown, "text/markdown");
                error.set(None);
                saved.set(Some(report.missing));
            }
            Err(e) => {
                saved.set(None);
                error.set(Some(format!("No report was written: {e}")));
            }
        }
    };
    view! {
        <Show when=has_runs>
            <section class="report" id="report" aria-labelledby="report-title">
                <h2 id="report-title">"Study report"</h2>
                <p class="note" id="report-note">
                    "One self-contained HTML file (figures as inline SVG, nothing fetched from elsewhere, prints well) "
                    "and its Markdown twin, from what this page has computed: Figures 1–5 as drawn now, the comparisons "
                    "above, the collapse timing of the comparisons' metric and the surgery verdict. Whatever is not "
                    "computed yet is listed in the report with the reason."
                </p>
                <button id="download-report" class="button primary" type="button" aria-describedby="report-note"
                    on:click=download>"Download study report"</button>
                {move || saved.get().map(|missing| view! {
                    <div class="note" id="report-saved" role="status">
                        <p>"Saved report.html and report.md."</p>
                        {(!missing.is_empty()).then(|| view! {
                            <p>"Not in them (each listed in the report with the reason):"</p>
                            <ul>{missing.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}</ul>
                        })}
                    </div>
                })}
                {move || error.get().map(|e| view! { <p class="error" id="report-error" role="alert">{e}</p> })}
            </section>
        </Show>
    }
}

/// Everything the report shows, from the page's state now (call untracked).
fn report_input(state: AppState, cmp: Comparisons, specs: FigureSpecs) -> ReportInput {
    let figures = TITLES
        .iter()
        .enumerate()
        .map(|(i, title)| match specs.current(i + 1) {
            Some(spec) => FigureSlot::computed(*title, spec),
            None => FigureSlot::missing(*title, figure_missing(state, i + 1)),
        })
        .collect();
    let comparisons = match cmp.cards(state) {
        CardsInput::Set(set) => Part::Computed(*set),
        CardsInput::Missing(why) => Part::NotComputed(why),
    };
    let values = cmp.metric_values(state);
    let collapse = match &values {
        None => Part::NotComputed(cmp.no_spectra(state)),
        Some(v) if !v.metric.rank_like => Part::NotComputed(format!(
            "collapse timing reads a fall of a rank metric (pr, pr_eig, r90, erank, stable_rank); the \
             comparisons' metric, {}, is not one",
            v.metric.short
        )),
        Some(v) => Part::Computed(state.workspace.inventory.with(|inv| {
            // The rule Figure 1's collapse marks use.
            collapse_section(inv, v, CollapseRule::default(), PlateauRule::default())
        })),
    };
    let surgery = match specs.current_surgery() {
        Some(s) => Part::Computed(s),
        None => Part::NotComputed(figure_missing(state, 4)),
    };
    let (short, label) = match &values {
        Some(v) => (v.metric.short.clone(), v.metric.label.clone()),
        None => {
            let m = cmp.metric.get();
            (m.key().to_string(), m.label().to_string())
        }
    };
    // Each run's batches (matched per model); the methods name the one most runs used, and a
    // note lists every run's when they differ.
    let per_run = state.analysis.batches.get();
    let most_used = |pick: fn(&RunBatches) -> Option<&BatchRef>| -> Option<String> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for b in per_run.iter().filter_map(pick) {
            match counts.iter_mut().find(|(p, _)| *p == b.path) {
                Some((_, n)) => *n += 1,
                None => counts.push((b.path.clone(), 1)),
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(p, _)| p)
    };
    let (eval_path, heldout_path) = (
        most_used(|b| b.eval.as_ref()),
        most_used(|b| b.heldout.as_ref()),
    );
    let (eval, heldout) = state.workspace.inventory.with(|inv| {
        (
            eval_path.and_then(|e| batch_facts(inv, &e)),
            heldout_path.and_then(|h| batch_facts(inv, &h)),
        )
    });
    let mut notes: Vec<String> = state.analysis.spectra_failures.with(|f| {
        f.iter()
            .map(|f| format!("{}: not analysed: {}", f.path, f.message))
            .collect()
    });
    let differ = |pick: fn(&RunBatches) -> Option<&BatchRef>| {
        let mut paths: Vec<&str> = per_run
            .iter()
            .filter_map(pick)
            .map(|b| b.path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths.len() > 1
    };
    if differ(|b| b.eval.as_ref()) || differ(|b| b.heldout.as_ref()) {
        let label = |b: Option<&BatchRef>| b.map_or("none".to_owned(), BatchRef::label);
        notes.push(format!(
            "Runs used different batches: {}.",
            per_run
                .iter()
                .map(|b| format!(
                    "{}: eval {}, held-out {}",
                    b.run,
                    label(b.eval.as_ref()),
                    label(b.heldout.as_ref())
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    // Each figure's runs as its picker chose them (the plan's runs by default).
    let figure_12 = runs_of_figures_1_2(state);
    let figure_3: Vec<String> = state
        .analysis
        .study
        .with(|s| s.iter().map(|r| r.run.clone()).collect());
    for ((id, _), (n, available)) in
        RUN_PICKER_FIGURES
            .iter()
            .zip([(1, &figure_12), (2, &figure_12), (3, &figure_3)])
    {
        let shown = state.view.shown_runs(id, available);
        let left_out: Vec<&str> = available
            .iter()
            .filter(|r| !shown.contains(r))
            .map(String::as_str)
            .collect();
        if !left_out.is_empty() {
            notes.push(format!(
                "Figure {n} draws {} of the {} runs; not drawn there: {}.",
                shown.join(", "),
                available.len(),
                left_out.join(", ")
            ));
        }
    }
    ReportInput {
        title: "Rank-collapse study".into(),
        figures,
        conditions: cmp.conditions_or_none(state),
        comparisons,
        collapse,
        surgery,
        methods: Methods {
            eval,
            heldout,
            definitions: definitions(&short, &label),
            software: software(),
        },
        notes,
    }
}

/// A token batch of the inventory as the methods name it (`None` if it was not read).
fn batch_facts(inv: &Inventory, path: &str) -> Option<BatchFacts> {
    inv.files
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| match &f.content {
            Content::TokenBatch(b) => Some(BatchFacts::of(path, b)),
            _ => None,
        })
}

/// Why Figure `n` has no spec now (the report puts "not computed: " before it).
fn figure_missing(state: AppState, n: usize) -> String {
    if n <= 2 {
        return if state.analysis.spectra_progress.with(Option::is_some) {
            "the analysis of the checkpoints was still running".into()
        } else {
            "no checkpoint (or results.json) has been analysed".into()
        };
    }
    if state.analysis.study_progress.with(Option::is_some) {
        return "still computing (Compute Figures 3–5 was running)".into();
    }
    let part = |o: &StudyOutput| -> Option<String> {
        match n {
            3 => o.layers.as_ref().err().cloned(),
            4 => o.surgery.as_ref().err().cloned(),
            _ => o.importance.as_ref().err().cloned(),
        }
    };
    let failures: Vec<String> = state.analysis.study.with(|runs| {
        runs.iter()
            .filter_map(|r| match &r.output {
                Err(e) => Some(format!("{}: {e}", r.run)),
                Ok(o) => part(o).map(|e| format!("{}: {e}", r.run)),
            })
            .collect()
    });
    if failures.is_empty() {
        "press “Compute Figures 3–5” (it needs an eval batch and a different held-out \
         batch, and runs forward passes at the chosen checkpoint)"
            .into()
    } else {
        failures.join("; ")
    }
}
