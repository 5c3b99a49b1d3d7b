//! Figures 3–5 (data complexity per layer, key surgery, γ vs SVD importance),
//! computed on demand: each needs forward passes (the surgery sweep about 46
//! to 65 per run), so the user starts them and can cancel.

use super::figure_canvas::FigureCanvas;
use super::progress_panel::ProgressPanel;
use super::run_picker::RunPicker;
use crate::comparisons::Comparisons;
use crate::figure_specs::FigureSpecs;
use crate::state::{AppState, StudyRun};
use crate::view_link::ViewChoices;
use crate::view_state::ViewState;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rankscope_core::analysis::jobs::StudyOptions;
use rankscope_core::analysis::losscurve::figures::readout;
use rankscope_core::analysis::replicate_figures::by_condition;
use rankscope_core::analysis::study_figures::{
    layer_pr_figure, scatter_figure, surgery_figure, LayerPrRun,
};
use rankscope_core::analysis::surgery_verdict::{surgery_verdict, SurgeryVerdict};
use rankscope_core::analysis::trajectory::CheckpointSel;
use rankscope_core::figures::format_number;
use rankscope_core::figures::spec::FigureSpec;
use rankscope_core::inventory::batches::{name_batches, run_batches};
use rankscope_core::report::SurgerySection;

/// DOM id of Figure 3 (its view and run picks are keyed by it).
const LAYERS: &str = "figure-layers";

fn checkpoint_label(r: &StudyRun) -> String {
    match r.checkpoint.tokens {
        Some(t) => format!("checkpoint at {t} tokens"),
        None => r.checkpoint.path.clone(),
    }
}

#[component]
pub fn StudyPanel() -> impl IntoView {
    let state = AppState::use_context();
    let cmp = Comparisons::use_context();
    // The checkpoint choice lives in the page's view (the URL keeps it).
    let at = ViewChoices::use_context().study_checkpoint;
    let seeds = RwSignal::new(5usize);
    let step_pct = RwSignal::new(10usize);
    // By the run's palette index, which a rename does not change.
    let chosen_run = RwSignal::new(None::<usize>);

    let has_checkpoints = move || {
        state
            .workspace
            .inventory
            .with(|i| i.runs.iter().any(|r| !r.checkpoints.is_empty()))
            || state.analysis.study.with(|s| !s.is_empty())
    };
    // Ready when some run has both batches (each run's own: see the runs panel).
    let ready = move || {
        let choices = state.workspace.batch_choices.get();
        state.workspace.inventory.with(|inv| {
            run_batches(inv, &choices)
                .iter()
                .any(|b| b.eval.is_some() && b.heldout.is_some())
        })
    };
    let busy = move || {
        state.analysis.study_progress.with(Option::is_some)
            || state.analysis.spectra_progress.with(Option::is_some)
    };
    let max_ckpts = move || {
        state.workspace.inventory.with(|i| {
            i.runs
                .iter()
                .map(|r| r.checkpoints.len())
                .max()
                .unwrap_or(0)
        })
    };

    let start = move |_| {
        let at = at.get_untracked();
        let mut options = StudyOptions::default();
        options.sweep.seeds = seeds.get_untracked();
        let step = step_pct.get_untracked().clamp(1, 50);
        options.sweep.fractions = (0..100).step_by(step).map(|p| p as f64 / 100.0).collect();
        spawn_local(state.compute_study(at, options));
    };

    let n_boot = StudyOptions::default().n_boot;
    let view = ViewState::use_context();
    // The runs Figure 3 can show: those whose study job ran.
    let layer_runs = Memo::new(move |_| {
        state
            .analysis
            .study
            .with(|runs| runs.iter().map(|r| r.run.clone()).collect::<Vec<_>>())
    });
    let layers = Signal::derive(move || -> Option<FigureSpec> {
        let shown = view.shown_runs(LAYERS, &layer_runs.get());
        state
            .analysis
            .study
            .with(|runs| {
                let ok: Vec<LayerPrRun> = runs
                    .iter()
                    .filter(|r| shown.contains(&r.run))
                    .filter_map(|r| {
                        let layers = r.output.as_ref().ok()?.layers.as_ref().ok()?.clone();
                        Some(LayerPrRun {
                            run: r.run.clone(),
                            color: r.color,
                            checkpoint: checkpoint_label(r),
                            layers,
                        })
                    })
                    .collect();
                let sources = runs
                    .iter()
                    .filter(|r| shown.contains(&r.run))
                    .map(|r| r.checkpoint.path.clone())
                    .collect();
                (!ok.is_empty()).then(|| {
                    let mut spec = layer_pr_figure(&ok, n_boot, sources);
                    let names: Vec<String> = ok.iter().map(|r| r.run.clone()).collect();
                    state
                        .analysis
                        .batches
                        .with(|b| name_batches(&mut spec, b, &names, false));
                    spec
                })
            })
            .map(|spec| by_condition(spec, &cmp.conditions_or_none(state), cmp.show_seeds.get()))
    });
    let run_names = move || {
        state.analysis.study.with(|runs| {
            runs.iter()
                .map(|r| (r.color, r.run.clone()))
                .collect::<Vec<_>>()
        })
    };
    let selected = move || -> Option<StudyRun> {
        state.analysis.study.with(|runs| {
            let want = chosen_run.get();
            runs.iter()
                .find(|r| Some(r.color) == want)
                .or(runs.first())
                .cloned()
        })
    };
    let surgery = Signal::derive(move || -> Option<FigureSpec> {
        let r = selected()?;
        let result = r.output.as_ref().ok()?.surgery.as_ref().ok()?;
        let mut spec = surgery_figure(&r.run, result, vec![r.checkpoint.path.clone()]);
        state
            .analysis
            .batches
            .with(|b| name_batches(&mut spec, b, std::slice::from_ref(&r.run), true));
        Some(spec)
    });
    // The plan's rule on the chosen run's sweep (default margin), shown under Figure 4.
    let verdict = move || -> Option<(String, SurgeryVerdict)> {
        let r = selected()?;
        let result = r.output.as_ref().ok()?.surgery.as_ref().ok()?;
        Some((r.run.clone(), surgery_verdict(result, SURGERY_MARGIN)))
    };
    // Where the selected run's passes ran (the surgery sweep on WebGPU when the worker has an
    // adapter, else the CPU, and why): the engine's own words.
    let engine = move || -> Option<String> {
        let r = selected()?;
        let engine = r.output.as_ref().ok()?.engine.clone();
        (!engine.is_empty()).then_some(engine)
    };
    let scatter = Signal::derive(move || -> Option<FigureSpec> {
        let r = selected()?;
        let importance = r.output.as_ref().ok()?.importance.as_ref().ok()?;
        let mut spec = scatter_figure(&r.run, importance, vec![r.checkpoint.path.clone()]);
        state
            .analysis
            .batches
            .with(|b| name_batches(&mut spec, b, std::slice::from_ref(&r.run), false));
        Some(spec)
    });
    // The report reads Figures 3–5 and the surgery verdict as shown here.
    let specs = FigureSpecs::use_context();
    specs.register(3, layers);
    specs.register(4, surgery);
    specs.register(5, scatter);
    specs.surgery.set_value(Some(Signal::derive(move || {
        let r = selected()?;
        let result = r.output.as_ref().ok()?.surgery.as_ref().ok()?.clone();
        let verdict = surgery_verdict(&result, SURGERY_MARGIN);
        Some(SurgerySection {
            run: r.run,
            checkpoint: r.checkpoint.path,
            result,
            verdict,
        })
    })));
    // Every part that failed, by run: shown under the controls.
    let problems =
        move || -> Vec<String> {
            state.analysis.study.with(|runs| {
                let mut out = Vec::new();
                for r in runs {
                    match &r.output {
                        Err(e) => out.push(format!("{}: {e}", r.run)),
                        Ok(o) => {
                            let parts = [
                                ("layer PR", o.layers.as_ref().err()),
                                ("importance", o.importance.as_ref().err()),
                                ("surgery", o.surgery.as_ref().err()),
                            ];
                            out.extend(parts.iter().filter_map(|(what, e)| {
                                e.map(|e| format!("{}: {what}: {e}", r.run))
                            }));
                        }
                    }
                }
                out
            })
        };

    view! {
        <Show when=has_checkpoints>
            <section class="figures" id="study">
                <h2>"Figures 3–5 — data complexity, surgery, γ vs SVD"</h2>
                <p class="note">
                    "Each run's model is loaded once at the chosen checkpoint; K comes from the eval batch, the "
                    "surgery losses from the held-out batch. The sweep runs one forward pass per strategy, "
                    "fraction and seed."
                </p>
                <div class="controls">
                    <label>"checkpoint "
                        <select id="study-checkpoint" on:change=move |ev| {
                            at.set(event_target_value(&ev).parse::<usize>().map_or(CheckpointSel::Final, CheckpointSel::Index))
                        }>
                            <option value="final" prop:selected=move || at.get() == CheckpointSel::Final>"final"</option>
                            {move || (0..max_ckpts()).map(|i| view! { <option value=i.to_string() prop:selected=move || at.get() == CheckpointSel::Index(i)>{format!("#{} in training order", i + 1)}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>"random seeds "
                        <input id="study-seeds" class="num" type="number" min="1" max="20" prop:value=move || seeds.get().to_string()
                            on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<usize>() { seeds.set(v.clamp(1, 20)) } }/>
                    </label>
                    <label>"fraction step (%) "
                        <input id="study-step" class="num" type="number" min="1" max="50" prop:value=move || step_pct.get().to_string()
                            on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<usize>() { step_pct.set(v.clamp(1, 50)) } }/>
                    </label>
                    <button id="compute-study" class="button primary" on:click=start disabled=move || busy() || !ready()>
                        "Compute Figures 3–5"
                    </button>
                    {move || (!ready()).then(|| view! {
                        <span class="note">"needs an eval batch and a different held-out batch (each run's batches: see the runs panel)"</span>
                    })}
                </div>
                <ProgressPanel id="study-progress" progress=state.analysis.study_progress/>
                <div class="failures" role="alert">
                    <For each=problems key=|p| p.clone() let:p>
                        <p class="error">{p}</p>
                    </For>
                </div>
                <h3>"Figure 3 — K PR per layer"</h3>
                <RunPicker figure=LAYERS name="Figure 3" available=Signal::from(layer_runs)/>
                <FigureCanvas id=LAYERS readout=readout spec=layers empty_text="Compute Figures 3–5 to see PR per layer, runs side by side."/>
                <div class="controls">
                    <label>"run (Figures 4 and 5) "
                        <select id="study-run" on:change=move |ev| chosen_run.set(event_target_value(&ev).parse().ok())>
                            {move || run_names().into_iter().map(|(color, r)| view! {
                                <option value=color.to_string() selected=move || selected().map(|s| s.color) == Some(color)>{r}</option>
                            }).collect_view()}
                        </select>
                    </label>
                </div>
                <h3>"Figure 4 — key-dimension surgery"</h3>
                <FigureCanvas id="figure-surgery" readout=readout spec=surgery empty_text="Compute Figures 3–5 to see held-out loss vs % of key dimensions pruned."/>
                {move || engine().map(|e| view! { <p class="runner" id="surgery-engine">"Surgery passes on: " {e}</p> })}
                {move || verdict().map(|(run, v)| view! { <SurgeryVerdictView run=run v=v/> })}
                <h3>"Figure 5 — |γ| vs SVD importance"</h3>
                <FigureCanvas id="figure-scatter" spec=scatter empty_text="Figure 5 needs a run with a key norm (γ); compute Figures 3–5 first."/>
            </section>
        </Show>
    }
}

/// The surgery rule's margin m (the core's default): γ "≈ SVD" when it recovers ≥ 1 − m of SVD's
/// advantage over random, "misleads" when ≤ m.
const SURGERY_MARGIN: f64 = 0.25;

/// The plan's surgery verdict for one run: areas, differences, the sentence and the rule.
#[component]
fn SurgeryVerdictView(run: String, v: SurgeryVerdict) -> impl IntoView {
    let a = &v.areas;
    let o = |x: Option<f64>| x.map_or("—".to_string(), format_number);
    let random = match (a.random_mean, a.random_min, a.random_max) {
        (Some(m), Some(lo), Some(hi)) => format!(
            "{} (min {}, max {} over {} seeds)",
            format_number(m),
            format_number(lo),
            format_number(hi),
            a.random.len()
        ),
        _ => "—".into(),
    };
    let interval = v
        .gamma_minus_random_interval
        .map_or(String::new(), |[lo, hi]| {
            format!(
                ", 95% interval over the random seeds [{}, {}]",
                format_number(lo),
                format_number(hi)
            )
        });
    let outcome = format!("{:?}", v.outcome).to_lowercase();
    view! {
        <div class="surgery-verdict" id="surgery-verdict" data-outcome=outcome>
            <p><strong>{format!("Surgery verdict for {run}: {}", v.sentence)}</strong></p>
            <p class="note">{format!(
                "Area under the loss-increase curve: SVD {}, γ {}, random {}; SVD − γ = {} (both deterministic, no interval); \
                 γ − random = {}{interval}; γ's share of SVD's advantage s = {}.",
                o(a.svd), o(a.gamma), random, o(v.svd_minus_gamma), o(v.gamma_minus_random), o(v.gamma_share)
            )}</p>
            <p class="note">{format!("Rule: {}.", v.rule)}</p>
        </div>
    }
}
