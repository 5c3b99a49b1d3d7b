//! Figures 1 (trajectory) and 2 (waterfall) with their controls: metric,
//! matrix (W_k / W_q), layer or mean, x-axis, runs shown, checkpoint, log y.
//! Figure 1 can also come from imported `results.json` files alone.

use super::analysis_status::AnalysisStatus;
use super::figure_canvas::FigureCanvas;
use super::run_picker::RunPicker;
use crate::comparisons::Comparisons;
use crate::figure_specs::FigureSpecs;
use crate::state::AppState;
use crate::view_link::ViewChoices;
use crate::view_state::ViewState;
use crate::web::export::save_text;
use leptos::prelude::*;
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::collapse::CollapseRule;
use rankscope_core::analysis::collapse_figure::with_collapse_marks;
use rankscope_core::analysis::losscurve::figures::readout;
use rankscope_core::analysis::replicate_figures::by_condition;
use rankscope_core::analysis::study_figures::heldout_loss_figure;
use rankscope_core::analysis::trajectory::{
    layer_menu, results_depths, results_trajectory_figure, run_depths, trajectory_figure_from,
    waterfall_figure_from, CheckpointSel, LayerSel, Matrix, Metric, RunSpectra, SpectraSource,
    TrainingAxis,
};
use rankscope_core::figures::spec::FigureSpec;
use rankscope_core::formats::logs::{LogFormat, Series};
use rankscope_core::inventory::batches::name_batches;
use rankscope_core::inventory::{Content, Inventory};
// Where Figure 1's numbers come from: weights, activations (a variant) or imported results.json.
use rankscope_core::view_link::TrajectorySource;

/// DOM ids of Figures 1 and 2 (their views and run picks are keyed by them).
const TRAJECTORY: &str = "figure-trajectory";
const WATERFALL: &str = "figure-waterfall";

/// The metric menu's value for the held-out loss (not a per-head [`Metric`]).
const HELDOUT_KEY: &str = "heldout_loss";

/// The study's results.json series, with each run's palette index.
fn imported_results(inv: &Inventory) -> Vec<(String, usize, Series)> {
    inv.files
        .iter()
        .filter_map(|f| match &f.content {
            Content::RunLog(series) => series
                .iter()
                .find(|s| s.format == LogFormat::StudyResults)
                .map(|s| {
                    let run = f.run.clone().unwrap_or_else(|| f.path.clone());
                    let color = inv.runs.iter().position(|r| r.name == run).unwrap_or(0);
                    (run, color, s.clone())
                }),
            _ => None,
        })
        .collect()
}

/// The runs Figures 1 and 2 can show (tracked): those with weight or activation spectra, else
/// those of the imported results.json files. Their pickers list these; the report names the
/// ones a figure leaves out.
pub fn runs_of_figures_1_2(state: AppState) -> Vec<String> {
    let mut names: Vec<String> = state
        .analysis
        .spectra
        .with(|r| r.iter().map(|r| r.run.clone()).collect());
    state.analysis.activations.with(|runs| {
        for r in runs {
            if !names.contains(&r.run) {
                names.push(r.run.clone());
            }
        }
    });
    if names.is_empty() {
        names = state.workspace.inventory.with(|inv| {
            imported_results(inv)
                .into_iter()
                .map(|(r, _, _)| r)
                .collect()
        });
    }
    names
}

fn parse_source(v: &str) -> TrajectorySource {
    match v {
        "weights" => TrajectorySource::Weights,
        "imported" => TrajectorySource::Imported,
        v => v
            .strip_prefix("act:")
            .and_then(KeyVariant::from_key)
            .map_or(TrajectorySource::Weights, TrajectorySource::Activations),
    }
}

/// The layer menu from each run's own depth (the core says which runs lack a layer).
fn layer_options(depths: &[(String, usize)]) -> Vec<(String, String)> {
    layer_menu(depths)
        .into_iter()
        .map(|(sel, label)| match sel {
            LayerSel::Mean => ("mean".to_string(), label),
            LayerSel::Layer(l) => (l.to_string(), label),
        })
        .collect()
}

fn parse_layer(v: &str) -> LayerSel {
    v.parse().map(LayerSel::Layer).unwrap_or(LayerSel::Mean)
}

#[component]
pub fn Figures() -> impl IntoView {
    let state = AppState::use_context();
    let cmp = Comparisons::use_context();
    // The controls' choices live in the page's view (the URL keeps them).
    let choices = ViewChoices::use_context();
    let t = choices.trajectory;
    let w = choices.waterfall;
    let metric = Memo::new(move |_| t.with(|t| t.metric));
    // Figure 1 shows the held-out loss instead of a spectral metric.
    let heldout_metric = Memo::new(move |_| t.with(|t| t.heldout));
    let has_heldout = move || {
        state.analysis.activations.with(|runs| {
            runs.iter()
                .flat_map(|r| &r.checkpoints)
                .any(|c| c.spectra.heldout_loss.is_some())
        })
    };
    let matrix = Memo::new(move |_| t.with(|t| t.matrix));
    let layer = Memo::new(move |_| t.with(|t| t.layer));
    let x_axis = Memo::new(move |_| t.with(|t| t.x));
    let source = Memo::new(move |_| t.with(|t| t.source));
    let view = ViewState::use_context();
    let at = Memo::new(move |_| w.with(|w| w.checkpoint));
    let log_y = Memo::new(move |_| w.with(|w| w.log_y));

    let imported = Memo::new(move |_| state.workspace.inventory.with(imported_results));
    let has_spectra = move || state.analysis.spectra.with(|r| !r.is_empty());
    let has_activations = move || state.analysis.activations.with(|r| !r.is_empty());
    let has_imported = move || imported.with(|i| !i.is_empty());
    // With results.json but no checkpoints, Figure 1 shows the imported numbers.
    // While activation spectra are on their way it waits for them rather than
    // showing the weights and then swapping its data source.
    let effective_source = move || match source.get() {
        TrajectorySource::Activations(v)
            if !has_activations() && state.analysis.expecting_activations.get() =>
        {
            TrajectorySource::Activations(v)
        }
        TrajectorySource::Activations(_) if !has_activations() => {
            if has_spectra() {
                TrajectorySource::Weights
            } else {
                TrajectorySource::Imported
            }
        }
        TrajectorySource::Weights if !has_spectra() => TrajectorySource::Imported,
        s => s,
    };
    let all_runs = Memo::new(move |_| runs_of_figures_1_2(state));
    // The runs figure `id` draws (its picker's choice, else its default).
    let picked = move |id: &str| view.shown_runs(id, &all_runs.get());
    let shown_runs = move |id: &str| -> Vec<RunSpectra> {
        let shown = picked(id);
        match effective_source() {
            TrajectorySource::Activations(v) => state.analysis.activations.with(|runs| {
                runs.iter()
                    .filter(|r| shown.contains(&r.run))
                    .map(|r| r.run_spectra(v))
                    .collect()
            }),
            _ => state.analysis.spectra.with(|runs| {
                runs.iter()
                    .filter(|r| shown.contains(&r.run))
                    .cloned()
                    .collect()
            }),
        }
    };
    // Activation figures name each run's eval batch (file, digest, shape).
    let with_batches = move |mut spec: FigureSpec, runs: &[RunSpectra]| {
        if matches!(effective_source(), TrajectorySource::Activations(_)) {
            let names: Vec<String> = runs.iter().map(|r| r.run.clone()).collect();
            state
                .analysis
                .batches
                .with(|b| name_batches(&mut spec, b, &names, false));
        }
        spec
    };
    let study_source = move || match effective_source() {
        TrajectorySource::Activations(v) => SpectraSource::Activations(v),
        _ => SpectraSource::Weights,
    };
    // Each run's own depth (checkpoints' spectra, else the imported results.json series).
    let depths = move || -> Vec<(String, usize)> {
        let mut d = state.analysis.spectra.with(|runs| run_depths(runs));
        imported.with(|list| {
            let runs: Vec<(String, usize, &Series)> =
                list.iter().map(|(r, c, s)| (r.clone(), *c, s)).collect();
            for (run, n) in results_depths(&runs) {
                if !d.iter().any(|(r, _)| *r == run) {
                    d.push((run, n));
                }
            }
        });
        d
    };
    let max_ckpts = move || {
        state
            .analysis
            .spectra
            .with(|runs| runs.iter().map(|r| r.checkpoints.len()).max().unwrap_or(0))
    };

    let trajectory = Signal::derive(move || -> Option<FigureSpec> {
        if heldout_metric.get() {
            // The held-out loss is per checkpoint (not per head), from the activation pass.
            let shown = picked(TRAJECTORY);
            let runs: Vec<ActivationRun> = state.analysis.activations.with(|runs| {
                runs.iter()
                    .filter(|r| shown.contains(&r.run))
                    .cloned()
                    .collect()
            });
            return (!runs.is_empty()).then(|| {
                let mut spec =
                    heldout_loss_figure(&runs, x_axis.get(), "of each run (named at the end)");
                let names: Vec<String> = runs.iter().map(|r| r.run.clone()).collect();
                state
                    .analysis
                    .batches
                    .with(|b| name_batches(&mut spec, b, &names, true));
                by_condition(spec, &cmp.conditions_or_none(state), cmp.show_seeds.get())
            });
        }
        match effective_source() {
            TrajectorySource::Weights | TrajectorySource::Activations(_) => {
                let runs = shown_runs(TRAJECTORY);
                (!runs.is_empty()).then(|| {
                    let spec = trajectory_figure_from(
                        study_source(),
                        &runs,
                        layer.get(),
                        matrix.get(),
                        metric.get(),
                        x_axis.get(),
                    );
                    let spec = with_batches(spec, &runs);
                    let spec =
                        by_condition(spec, &cmp.conditions_or_none(state), cmp.show_seeds.get());
                    if cmp.mark_collapse.get() && metric.get().is_rank_like() {
                        with_collapse_marks(
                            spec,
                            CollapseRule::default(),
                            x_axis.get() == TrainingAxis::Tokens,
                        )
                    } else {
                        spec
                    }
                })
            }
            TrajectorySource::Imported => imported.with(|list| {
                let shown = picked(TRAJECTORY);
                let chosen: Vec<(String, usize, &Series)> = list
                    .iter()
                    .filter(|(r, _, _)| shown.contains(r))
                    .map(|(r, c, s)| (r.clone(), *c, s))
                    .collect();
                (!chosen.is_empty()).then(|| {
                    let sources = chosen
                        .iter()
                        .map(|(r, _, _)| format!("{r}: results.json"))
                        .collect();
                    results_trajectory_figure(&chosen, layer.get(), sources)
                })
            }),
        }
    });
    let waterfall = Signal::derive(move || -> Option<FigureSpec> {
        let runs = shown_runs(WATERFALL);
        let at = at.get();
        (!runs.is_empty()).then(|| {
            let spec = waterfall_figure_from(
                study_source(),
                &runs,
                at,
                layer.get(),
                matrix.get(),
                None,
                log_y.get(),
            );
            by_condition(
                with_batches(spec, &runs),
                &cmp.conditions_or_none(state),
                cmp.show_seeds.get(),
            )
        })
    });
    // The report reads Figures 1 and 2 as drawn here.
    let specs = FigureSpecs::use_context();
    specs.register(1, trajectory);
    specs.register(2, waterfall);
    view! {
        <Show when=move || has_spectra() || has_imported() || state.analysis.spectra_progress.with(Option::is_some)>
            <section class="figures">
                <h2>"Figures"</h2>
                <div class="actions session-actions">
                    <button id="save-session" class="button" on:click=move |_| {
                        save_text("rankscope-session.json", &state.session().to_json(), "application/json")
                    }>"Save session"</button>
                    <span class="note">" everything computed, as one file: drop it here later, or send it to a collaborator"</span>
                </div>
                <AnalysisStatus/>
                <label class="note use-gpu">
                    <input type="checkbox" id="use-gpu" prop:checked=move || state.analysis.use_gpu.get()
                        on:change=move |ev| state.set_use_gpu(event_target_checked(&ev))/>
                    " forward passes on the GPU (WebGPU) when the browser has one"
                </label>
                <div class="controls">
                    <label>"source "
                        <select id="source" on:change=move |ev| t.update(|t| t.source = parse_source(&event_target_value(&ev)))>
                            {KeyVariant::ALL.into_iter().map(|v| view! {
                                <option value=format!("act:{}", v.key()) prop:selected=move || effective_source() == TrajectorySource::Activations(v) disabled=move || !has_activations() && !state.analysis.expecting_activations.get()>
                                    {format!("activations: K {} (eval batch)", v.key())}
                                </option>
                            }).collect_view()}
                            <option value="weights" prop:selected=move || effective_source() == TrajectorySource::Weights disabled=move || !has_spectra()>"weights (W_k / W_q, no forward pass)"</option>
                            <option value="imported" prop:selected=move || effective_source() == TrajectorySource::Imported disabled=move || !has_imported()>"imported results.json"</option>
                        </select>
                    </label>
                    <label>"metric "
                        <select id="metric" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            t.update(|t| {
                                t.heldout = v == HELDOUT_KEY;
                                if let Some(m) = Metric::from_key(&v) { t.metric = m }
                            })
                        }>
                            {Metric::ALL.into_iter().map(|m| view! { <option value=m.key() prop:selected=move || !heldout_metric.get() && metric.get() == m>{m.label()}</option> }).collect_view()}
                            <option value=HELDOUT_KEY disabled=move || !has_heldout() prop:selected=move || heldout_metric.get()>"held-out loss (per checkpoint)"</option>
                        </select>
                    </label>
                    <label>"matrix "
                        <select id="matrix" on:change=move |ev| t.update(|t| t.matrix = if event_target_value(&ev) == "q" { Matrix::Q } else { Matrix::K })>
                            <option value="k" prop:selected=move || matrix.get() == Matrix::K>"W_k (keys)"</option>
                            <option value="q" prop:selected=move || matrix.get() == Matrix::Q>"W_q (queries)"</option>
                        </select>
                    </label>
                    <label>"layer "
                        <select id="layer" on:change=move |ev| t.update(|t| t.layer = parse_layer(&event_target_value(&ev)))>
                            {move || layer_options(&depths()).into_iter().map(|(v, label)| {
                                let chosen = parse_layer(&v);
                                view! { <option value=v prop:selected=move || layer.get() == chosen>{label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label>"x "
                        <select id="x-axis" on:change=move |ev| t.update(|t| t.x = if event_target_value(&ev) == "step" { TrainingAxis::Step } else { TrainingAxis::Tokens })>
                            <option value="tokens" prop:selected=move || x_axis.get() == TrainingAxis::Tokens>"training tokens"</option>
                            <option value="step" prop:selected=move || x_axis.get() == TrainingAxis::Step>"step"</option>
                        </select>
                    </label>
                    <label title="with two or more seeds of a condition, Figures 1–3 draw its mean with a ± 1 SD band">
                        <input type="checkbox" id="show-seeds" prop:checked=move || cmp.show_seeds.get()
                            on:change=move |ev| cmp.show_seeds.set(event_target_checked(&ev))/>
                        " each seed as a thin line"
                    </label>
                    <label>
                        <input type="checkbox" id="mark-collapse" prop:checked=move || cmp.mark_collapse.get()
                            on:change=move |ev| cmp.mark_collapse.set(event_target_checked(&ev))/>
                        " mark collapse onset and steepest drop"
                    </label>
                </div>
                <h3>"Figure 1 — trajectory"</h3>
                <RunPicker figure=TRAJECTORY name="Figure 1" available=Signal::from(all_runs)/>
                <FigureCanvas id="figure-trajectory" readout=readout spec=trajectory empty_text="Drop checkpoints (or results.json files) to see how effective rank evolves."/>
                <h3>"Figure 2 — singular-value waterfall"</h3>
                <div class="controls">
                    <label>"checkpoint "
                        <select id="waterfall-checkpoint" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            w.update(|w| w.checkpoint = v.parse::<usize>().map_or(CheckpointSel::Final, CheckpointSel::Index))
                        }>
                            <option value="final" prop:selected=move || at.get() == CheckpointSel::Final>"final"</option>
                            {move || (0..max_ckpts()).map(|i| view! { <option value=i.to_string() prop:selected=move || at.get() == CheckpointSel::Index(i)>{format!("#{} in training order", i + 1)}</option> }).collect_view()}
                        </select>
                    </label>
                    <label><input id="log-y" type="checkbox" prop:checked=move || log_y.get() on:change=move |ev| w.update(|w| w.log_y = event_target_checked(&ev))/>" log y"</label>
                </div>
                <RunPicker figure=WATERFALL name="Figure 2" available=Signal::from(all_runs)/>
                <FigureCanvas id="figure-waterfall" readout=readout own_log_y=true spec=waterfall empty_text="The waterfall needs checkpoints."/>
            </section>
        </Show>
    }
}
