//! The conditions the runs form (seed replicates of one setting), with each run's seed and where
//! it was read; a run can be put in another condition by typing its name.

use crate::comparisons::Comparisons;
use crate::state::AppState;
use leptos::prelude::*;
use rankscope_core::analysis::conditions::Condition;

/// One row: a run of a condition.
#[derive(Clone, PartialEq)]
struct Row {
    condition: String,
    run: String,
    seed: String,
    seed_from: &'static str,
    grouped_by: &'static str,
}

fn rows(conditions: &[Condition]) -> Vec<Row> {
    conditions
        .iter()
        .flat_map(|c| {
            c.runs.iter().map(|r| Row {
                condition: c.name.clone(),
                run: r.run.clone(),
                seed: r.seed.map_or("not stated".into(), |s| s.to_string()),
                seed_from: r.seed_from.label(),
                grouped_by: c.grouped_by.label(),
            })
        })
        .collect()
}

#[component]
pub fn ConditionsPanel() -> impl IntoView {
    let state = AppState::use_context();
    let cmp = Comparisons::use_context();
    let grouped = Memo::new(move |_| cmp.conditions(state));
    let summary = move || {
        grouped.with(|g| match g {
            Ok(c) => c
                .iter()
                .map(|c| {
                    format!(
                        "{} ({} seed{})",
                        c.name,
                        c.runs.len(),
                        if c.runs.len() == 1 { "" } else { "s" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(_) => String::new(),
        })
    };
    view! {
        <Show when=move || grouped.with(|g| g.as_ref().map_or(true, |c| !c.is_empty()))>
            <div class="conditions" id="conditions">
                <h3>"Conditions"</h3>
                <p class="note">
                    "Runs whose names differ only by a seed marker (A1, A1_seed43, A1-s2, A1/seed3) are seeds of one "
                    "condition; a seed is read from the checkpoints' metadata or the log header, else from the name. "
                    "To regroup a run, type a condition's name in its box (empty: grouped by name again)."
                </p>
                <p class="note" id="conditions-summary">{summary}</p>
                {move || grouped.with(|g| g.as_ref().err().map(|e| view! {
                    <p class="error" id="conditions-error" role="alert">{format!("Your grouping cannot be applied: {e}")}</p>
                }))}
                <table id="conditions-table">
                    <thead><tr><th scope="col">"condition"</th><th scope="col">"run"</th><th scope="col">"seed"</th><th scope="col">"seed read from"</th><th scope="col">"grouped"</th></tr></thead>
                    <tbody>
                        <For each=move || grouped.with(|g| rows(g.as_deref().unwrap_or_default())) key=|r| (r.condition.clone(), r.run.clone(), r.seed.clone()) let:row>
                            {
                                let run = row.run.clone();
                                view! {
                                    <tr class="condition-run" data-run=row.run.clone() data-condition=row.condition.clone()>
                                        <td>
                                            <input class="condition-name" value=row.condition.clone()
                                                aria-label=format!("condition of run {} (type a name to regroup)", row.run)
                                                on:change=move |ev| cmp.assign(run.clone(), event_target_value(&ev))/>
                                        </td>
                                        <td>{row.run.clone()}</td>
                                        <td class="seed">{row.seed.clone()}</td>
                                        <td class="seed-from">{row.seed_from}</td>
                                        <td>{row.grouped_by}</td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </div>
        </Show>
    }
}
