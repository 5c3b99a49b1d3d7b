//! The runs found among the files, with their checkpoints in training order
//! and logs; each run's name can be edited.

use super::conditions_panel::ConditionsPanel;
use crate::state::AppState;
use leptos::prelude::*;
use leptos::task::spawn_local;
use rankscope_core::inventory::batches::{run_batches, BatchChoice, BatchRef, RunBatches};
use rankscope_core::inventory::run_facts::{Fact, RunFacts};
use rankscope_core::inventory::RunGroup;

#[component]
pub fn RunList() -> impl IntoView {
    let state = AppState::use_context();
    let runs = move || state.workspace.inventory.with(|inv| inv.runs.clone());
    let tokens = move || {
        state
            .workspace
            .inventory
            .with(|inv| inv.token_batches.clone())
    };
    view! {
        <Show when=move || state.workspace.inventory.with(|inv| !inv.runs.is_empty() || !inv.token_batches.is_empty())>
            <section class="runs">
                <h2>"Runs"</h2>
                <ul id="runs">
                    // Keyed by everything a row shows: a config.json dropped after its checkpoint
                    // changes the run's architecture and facts, not its name or counts.
                    <For each=runs key=|r| serde_json::to_string(r).unwrap_or_else(|_| r.name.clone()) let:run>
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
            <RunFactsRow facts=run.facts.clone()/>
            <RunBatchesRow run=name.clone()/>
        </li>
    }
}

/// What the run's files say about its training (QK-norm, optimizer, learning rates, data), each
/// naming its file on hover; sources that disagree are listed as warnings.
#[component]
fn RunFactsRow(facts: RunFacts) -> impl IntoView {
    let items: Vec<(&'static str, String, String)> = [
        ("qk-norm", None, &facts.qk_norm),
        ("optimizer", Some("optimizer"), &facts.optimizer),
        ("lr", Some("lr"), &facts.lr),
        ("data", Some("data"), &facts.data),
    ]
    .into_iter()
    .filter_map(|(key, label, fact)| {
        let f: &Fact = fact.as_ref()?;
        let text = match label {
            Some(l) => format!("{l}: {}", f.value),
            None => f.value.clone(),
        };
        Some((key, text, format!("from {}", f.source)))
    })
    .collect();
    let disagreements = facts.disagreements.clone();
    (!items.is_empty() || !disagreements.is_empty()).then(|| {
        view! {
            <span class="facts">
                {items.into_iter().map(|(key, text, source)| view! {
                    <span class="fact" data-fact=key title=source>{text}</span>
                }).collect_view()}
            </span>
            {(!disagreements.is_empty()).then(|| view! {
                <ul class="fact-disagreements">
                    {disagreements.into_iter().map(|d| view! { <li class="warning">{format!("the files disagree: {d}")}</li> }).collect_view()}
                </ul>
            })}
        }
    })
}

/// A run's eval and held-out batch, matched by `inventory::batches` (folder,
/// then name, then fit), each with a picker; the matching's warnings
/// (ambiguous, incompatible, a narrow batch) beside them, never a silent choice.
#[component]
fn RunBatchesRow(run: String) -> impl IntoView {
    let state = AppState::use_context();
    let current = {
        let run = run.clone();
        Memo::new(move |_| -> Option<RunBatches> {
            let choices = state.workspace.batch_choices.get();
            state.workspace.inventory.with(|inv| {
                run_batches(inv, &choices)
                    .into_iter()
                    .find(|b| b.run == run)
            })
        })
    };
    let all = move || {
        state
            .workspace
            .inventory
            .with(|inv| inv.token_batches.clone())
    };
    let picker = move |heldout: bool| {
        let run = run.clone();
        let what = if heldout { "held-out" } else { "eval" };
        let label = format!("{what} batch of run {run}");
        let pick = move |b: &RunBatches| {
            if heldout {
                b.heldout.clone()
            } else {
                b.eval.clone()
            }
        };
        let on_change = {
            let run = run.clone();
            move |ev: web_sys::Event| {
                let v = event_target_value(&ev);
                let v = (!v.is_empty()).then_some(v);
                state.workspace.batch_choices.update(|c| {
                    let e = c.entry(run.clone()).or_insert_with(BatchChoice::default);
                    if heldout {
                        e.heldout = v;
                    } else {
                        e.eval = v;
                    }
                });
                spawn_local(state.compute_spectra());
            }
        };
        let chosen_by_user = {
            let run = run.clone();
            move || {
                state.workspace.batch_choices.with(|c| {
                    c.get(&run).and_then(|x| {
                        if heldout {
                            x.heldout.clone()
                        } else {
                            x.eval.clone()
                        }
                    })
                })
            }
        };
        let chosen_for_options = chosen_by_user.clone();
        view! {
            <label class=format!("batch batch-{}", if heldout { "heldout" } else { "eval" })>
                {format!("{what}: ")}
                <select aria-label=label on:change=on_change>
                    <option value="" selected=move || chosen_by_user().is_none()>
                        {move || format!("matched: {}", current.with(|c| c.as_ref().and_then(&pick).map_or("none".to_string(), |b: BatchRef| b.label())))}
                    </option>
                    {move || all().into_iter().map(|p| {
                        let is = p.clone();
                        let chosen = chosen_for_options.clone();
                        view! { <option value=p.clone() selected=move || chosen().as_deref() == Some(is.as_str())>{p.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
    };
    let warnings =
        move || current.with(|c| c.as_ref().map(|c| c.warnings.clone()).unwrap_or_default());
    view! {
        <Show when=move || current.with(Option::is_some)>
            <div class="run-batches">
                {picker.clone()(false)}
                {picker.clone()(true)}
                // The live region wraps the list: `role` on the <ul> itself would take its list
                // semantics away and leave the <li>s orphaned for screen readers.
                <div class="batch-warnings" role="status">
                    <ul>
                        <For each=warnings key=|w| w.clone() let:w>
                            <li class="warning">{w}</li>
                        </For>
                    </ul>
                </div>
            </div>
        </Show>
    }
}
