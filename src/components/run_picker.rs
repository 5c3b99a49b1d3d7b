//! A figure's run picker: a disclosure ("Runs: 4 of 6 shown") holding one labelled
//! checkbox per run, reachable and operable by keyboard (Enter or Space opens it, Tab
//! walks the boxes, Space ticks one). The choice lives in [`ViewState::runs`], by the
//! figure's id; until the reader picks, the figure shows its default (the plan's runs
//! when present, else every run).

use crate::view_state::ViewState;
use leptos::prelude::*;

#[component]
pub fn RunPicker(
    /// DOM id of the figure whose runs this picks (`figure-trajectory`, …).
    figure: &'static str,
    /// What the figure is called in the labels ("Figure 1").
    name: &'static str,
    /// The runs the figure can show, in their order.
    available: Signal<Vec<String>>,
) -> impl IntoView {
    let view = ViewState::use_context();
    let shown = Memo::new(move |_| view.shown_runs(figure, &available.get()));
    let summary = move || {
        let n = available.with(Vec::len);
        let k = shown.with(Vec::len);
        if k == n {
            format!("Runs: all {n} shown")
        } else {
            format!("Runs: {k} of {n} shown")
        }
    };
    let picked = move || view.runs.with(|m| m.contains_key(figure));
    view! {
        <Show when=move || available.with(|a| !a.is_empty())>
            <details class="run-picker" id=format!("{figure}-runs")>
                <summary aria-label=move || format!("{name}: {}", summary())>{summary}</summary>
                <fieldset>
                    <legend>{format!("Runs drawn in {name}")}</legend>
                    <For each=move || available.get() key=|r| r.clone() let:run>
                        {
                            let name_of = run.clone();
                            let toggled = run.clone();
                            let data_run = run.clone();
                            view! {
                                <label class="run-toggle" data-run=data_run>
                                    <input type="checkbox"
                                        prop:checked=move || shown.with(|s| s.contains(&name_of))
                                        on:change=move |ev| view.set_run_shown(figure, &toggled, event_target_checked(&ev), &available.get_untracked())/>
                                    {run}
                                </label>
                            }
                        }
                    </For>
                    <button type="button" class="link run-picker-reset" disabled=move || !picked()
                        on:click=move |_| view.runs.update(|m| { m.remove(figure); })>
                        "default runs"
                    </button>
                </fieldset>
            </details>
        </Show>
    }
}
