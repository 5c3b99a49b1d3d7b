//! What the analysis is doing and did, said once: the progress panel while
//! it runs, then one line for where it ran, one line per forward-pass engine
//! with its count of checkpoints, and failures grouped by their message.

use super::progress_panel::ProgressPanel;
use crate::state::Analysis;
use crate::status::{engine_lines, group_failures};
use leptos::prelude::*;

#[component]
pub fn AnalysisStatus() -> impl IntoView {
    let analysis = Analysis::use_context();
    let engines = move || analysis.forward_engine.with(engine_lines);
    let failures = move || analysis.spectra_failures.with(|f| group_failures(f));
    view! {
        <ProgressPanel id="spectra-progress" progress=analysis.spectra_progress/>
        {move || analysis.spectra_runner.get().map(|r| view! { <p class="runner" id="spectra-runner">"Computed with: " {r.line()}</p> })}
        <Show when=move || !engines().is_empty()>
            <div class="runner" id="forward-engine">
                <span class="runner-label">"Forward passes on: "</span>
                <ul class="engines">
                    {move || engines().into_iter().map(|line| view! {
                        <li class="engine">
                            <span class="engine-text">{line.text}</span>
                            {line.how_to.map(|help| view! {
                                " — "
                                <details class="how-to">
                                    <summary>"how to enable it"</summary>
                                    <p>{help}</p>
                                </details>
                            })}
                        </li>
                    }).collect_view()}
                </ul>
            </div>
        </Show>
        <div class="failures" id="spectra-failures" role="alert">
            {move || failures().into_iter().map(|(message, paths)| {
                if paths.len() == 1 {
                    view! { <p class="error">{format!("{}: {message}", paths[0])}</p> }.into_any()
                } else {
                    let n = paths.len();
                    view! {
                        <div class="error-group">
                            <p class="error">{format!("{message} — {n} checkpoints")}</p>
                            <details>
                                <summary>{format!("which {n} checkpoints")}</summary>
                                <ul>{paths.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
                            </details>
                        </div>
                    }
                    .into_any()
                }
            }).collect_view()}
        </div>
    }
}
