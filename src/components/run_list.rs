//! The runs found among the files, with their checkpoints in training order
//! and logs; each run's name can be edited.

use super::conditions_panel::ConditionsPanel;
use crate::state::AppState;
use leptos::prelude::*;
use rankscope_core::inventory::RunGroup;

#[component]
pub fn RunList() -> impl IntoView {
    let state = AppState::use_context();
    let runs = move || state.inventory.with(|inv| inv.runs.clone());
    let tokens = move || state.inventory.with(|inv| inv.token_batches.clone());
    view! {
        <Show when=move || state.inventory.with(|inv| !inv.runs.is_empty() || !inv.token_batches.is_empty())>
            <section class="runs">
                <h2>"Runs"</h2>
                <ul id="runs">
                    <For each=runs key=|r| (r.name.clone(), r.checkpoints.len(), r.logs.len()) let:run>
                        <RunItem run=run/>
                    </For>
                </ul>
                <p class="tokens" id="token-batches">
                    "Token batches: "
                    {move || { let t = tokens(); if t.is_empty() { "none yet".to_string() } else { t.join(", ") } }}
                </p>
                <ConditionsPanel/>
            </section>
        </Show>
    }
}

/// One run: an editable name, its checkpoints (tokens or steps) and logs.
#[component]
fn RunItem(
    /// The run as grouped by the inventory.
    run: RunGroup,
) -> impl IntoView {
    let state = AppState::use_context();
    let name = run.name.clone();
    let points: Vec<String> = run
        .checkpoints
        .iter()
        .map(|c| match (c.tokens, c.step) {
            (Some(t), _) => format!("{t} tok"),
            (None, Some(s)) => format!("step {s}"),
            _ => "?".into(),
        })
        .collect();
    let on_change = {
        let name = name.clone();
        move |ev: web_sys::Event| state.rename_run(name.clone(), event_target_value(&ev))
    };
    view! {
        <li class="run" data-run=name.clone()>
            <input class="run-name" title="rename this run" aria-label=format!("name of run {name} (edit to rename)") value=name.clone() on:change=on_change/>
            <span class="ckpts">{format!("{} checkpoint(s)", run.checkpoints.len())}</span>
            <span class="points">{points.join(" · ")}</span>
            <span class="logs">{format!("{} log(s)", run.logs.len())}</span>
            <span class="arch">{run.architecture.clone().unwrap_or_default()}</span>
        </li>
    }
}
