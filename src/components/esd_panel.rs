//! The empirical spectral density of one weight matrix (run, checkpoint,
//! layer, W_k or W_q, head) with its fitted power-law tail: the figure
//! behind the α that the analysis computes (`rankscope_core::analysis::esd`).

use super::figure_canvas::FigureCanvas;
use crate::state::Analysis;
use crate::view_link::ViewChoices;
use leptos::prelude::*;
use rankscope_core::analysis::esd::esd_figure;
use rankscope_core::analysis::losscurve::figures::readout;
use rankscope_core::analysis::trajectory::Matrix;
use rankscope_core::figures::spec::FigureSpec;

/// One number chosen from a `<select>`: its value parsed, 0 when it is not a number.
fn index_of(ev: &leptos::ev::Event) -> usize {
    event_target_value(ev).parse().unwrap_or(0)
}

#[component]
pub fn EsdPanel() -> impl IntoView {
    let analysis = Analysis::use_context();
    // The choices live in the page's view (the URL keeps them); the run by
    // name, so a view restored before the runs arrive finds it when they do.
    let esd = ViewChoices::use_context().esd;
    let run = Memo::new(move |_| {
        let name = esd.with(|e| e.run.clone());
        analysis.spectra.with(|runs| {
            name.and_then(|n| runs.iter().position(|r| r.run == n))
                .unwrap_or(0)
        })
    });
    // `None` = the run's last checkpoint.
    let checkpoint = Memo::new(move |_| esd.with(|e| e.checkpoint));
    let layer = Memo::new(move |_| esd.with(|e| e.layer));
    let matrix = Memo::new(move |_| esd.with(|e| e.matrix));
    let head = Memo::new(move |_| esd.with(|e| e.head));
    let choose_run = move |i: usize| {
        let name = analysis
            .spectra
            .with_untracked(|r| r.get(i).map(|r| r.run.clone()));
        esd.update(|e| {
            e.run = name;
            e.checkpoint = None;
        })
    };

    let runs = move || {
        analysis
            .spectra
            .with(|r| r.iter().map(|r| r.run.clone()).collect::<Vec<_>>())
    };
    // What the controls offer, from the chosen run's own checkpoint (its own model).
    let shape = move || {
        analysis.spectra.with(|runs| {
            let r = runs.get(run.get())?;
            let n_ckpt = r.checkpoints.len();
            let c = r.checkpoints.get(
                checkpoint
                    .get()
                    .unwrap_or(n_ckpt.saturating_sub(1))
                    .min(n_ckpt.saturating_sub(1)),
            )?;
            let layers = c.spectra.layers.len();
            let heads = c
                .spectra
                .layers
                .get(layer.get())
                .map_or(0, |l| match matrix.get() {
                    Matrix::K => l.k_heads.len(),
                    Matrix::Q => l.q_heads.len(),
                });
            Some((n_ckpt, layers, heads))
        })
    };
    let result = Memo::new(move |_| -> Result<FigureSpec, String> {
        analysis.spectra.with(|runs| {
            let r = runs.get(run.get()).ok_or("no run has weight spectra yet")?;
            let last = r
                .checkpoints
                .len()
                .checked_sub(1)
                .ok_or_else(|| format!("run {} has no checkpoint", r.run))?;
            let ci = checkpoint.get().unwrap_or(last).min(last);
            let c = &r.checkpoints[ci];
            let l = c.spectra.layers.get(layer.get()).ok_or_else(|| {
                format!(
                    "{} has {} layers; layer {} does not exist",
                    c.path,
                    c.spectra.layers.len(),
                    layer.get()
                )
            })?;
            let (name, heads) = match matrix.get() {
                Matrix::K => ("W_k", &l.k_heads),
                Matrix::Q => ("W_q", &l.q_heads),
            };
            let h = heads.get(head.get()).ok_or_else(|| {
                format!(
                    "layer {} of {} has {} {name} heads; head {} does not exist",
                    layer.get(),
                    c.path,
                    heads.len(),
                    head.get()
                )
            })?;
            let what = format!(
                "{}, checkpoint {} of {}, layer {}, {name} head {}",
                r.run,
                ci + 1,
                last + 1,
                layer.get(),
                head.get()
            );
            esd_figure(&what, &h.singular_values, &c.path)
                .map(|(spec, _)| spec)
                .map_err(|e| e.to_string())
        })
    });
    let options = |n: usize, label: fn(usize) -> String, chosen: Memo<usize>| {
        (0..n)
            .map(move |i| view! { <option value=i.to_string() prop:selected=move || chosen.get() == i>{label(i)}</option> })
            .collect_view()
    };
    let chosen_checkpoint = Memo::new(move |_| checkpoint.get().unwrap_or(usize::MAX));
    view! {
        <Show when=move || analysis.spectra.with(|r| !r.is_empty())>
            <section class="figures esd" id="esd">
                <h2>"Weight spectra: power-law tail (ESD)"</h2>
                <div class="controls">
                    <label>"run "
                        <select id="esd-run" on:change=move |ev| choose_run(index_of(&ev))>
                            {move || runs().into_iter().enumerate().map(|(i, r)| view! { <option value=i.to_string() prop:selected=move || run.get() == i>{r}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>"checkpoint "
                        <select id="esd-checkpoint" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            esd.update(|e| e.checkpoint = v.parse().ok())
                        }>
                            <option value="final" prop:selected=move || checkpoint.get().is_none()>"final"</option>
                            {move || options(shape().map_or(0, |s| s.0), |i| format!("#{} in training order", i + 1), chosen_checkpoint)}
                        </select>
                    </label>
                    <label>"layer "
                        <select id="esd-layer" on:change=move |ev| esd.update(|e| e.layer = index_of(&ev))>
                            {move || options(shape().map_or(0, |s| s.1), |i| format!("layer {i}"), layer)}
                        </select>
                    </label>
                    <label>"matrix "
                        <select id="esd-matrix" on:change=move |ev| esd.update(|e| e.matrix = if event_target_value(&ev) == "q" { Matrix::Q } else { Matrix::K })>
                            <option value="k" prop:selected=move || matrix.get() == Matrix::K>"W_k (keys)"</option>
                            <option value="q" prop:selected=move || matrix.get() == Matrix::Q>"W_q (queries)"</option>
                        </select>
                    </label>
                    <label>"head "
                        <select id="esd-head" on:change=move |ev| esd.update(|e| e.head = index_of(&ev))>
                            {move || options(shape().map_or(0, |s| s.2), |i| format!("head {i}"), head)}
                        </select>
                    </label>
                </div>
                {move || result.get().err().map(|e| view! { <p class="message" id="esd-message">{e}</p> })}
                <FigureCanvas id="figure-esd" readout=readout spec=Signal::derive(move || result.get().ok()) empty_text="Pick a run, checkpoint, layer, matrix and head."/>
            </section>
        </Show>
    }
}
