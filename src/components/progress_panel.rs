//! A long job's progress: a bar from the fractions the workers send, the
//! stage running now, the time left overall and per job, and Cancel beside
//! the bar. The count ("3 of 36 checkpoints done") is a live region
//! (`role=status`); the bar and the time left update every second without
//! being read out each time.

use crate::state::{now_ms, AppState};
use crate::status::{time_left_text, JobsProgress};
use leptos::prelude::*;
use std::time::Duration;

#[component]
pub fn ProgressPanel(
    /// DOM id of the panel; it exists only while the jobs run (tests wait on it).
    id: &'static str,
    /// The jobs' progress; `None` hides the panel.
    progress: RwSignal<Option<JobsProgress>>,
) -> impl IntoView {
    let state = AppState::use_context();
    // The time left moves on between the workers' reports.
    let now = RwSignal::new(now_ms());
    let ticker = set_interval_with_handle(move || now.set(now_ms()), Duration::from_secs(1)).ok();
    on_cleanup(move || {
        if let Some(t) = ticker {
            t.clear();
        }
    });
    let with = move |f: &dyn Fn(&JobsProgress) -> String| {
        progress.with(|p| p.as_ref().map(f).unwrap_or_default())
    };
    let fraction = move || progress.with(|p| p.as_ref().map_or(0.0, JobsProgress::fraction));
    let percent = move || format!("{:.0}%", fraction() * 100.0);
    let active = move || {
        progress.with(|p| {
            p.as_ref()
                .map(|p| p.active.values().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    // The skeleton stays while the numbers change, so keyboard focus on Cancel is kept.
    view! {
        <Show when=move || progress.with(Option::is_some)>
            <div id=id class="progress-panel">
                <p class="progress-title" id=format!("{id}-label")>{move || with(&|p| p.title.clone())}</p>
                <div class="progress-row">
                    <progress id=format!("{id}-bar") max="1" value=fraction aria-labelledby=format!("{id}-label")
                        aria-valuetext=move || format!("{}, {}", percent(), with(&JobsProgress::count_text))></progress>
                    <span class="percent" aria-hidden="true">{percent}</span>
                    <button class="button cancel" id=format!("{id}-cancel") on:click=move |_| state.cancel_all()>"Cancel"</button>
                </div>
                <p class="progress-summary">
                    <span role="status">{move || with(&JobsProgress::count_text)}</span>
                    " · now: "
                    {move || with(&|p| { let s = p.stages_now(); if s.is_empty() { "starting".into() } else { s.join("; ") } })}
                    " · "
                    <span class="eta">{move || time_left_text(progress.with(|p| p.as_ref().and_then(|p| p.time_left_ms(now.get()))))}</span>
                </p>
                <ul class="active-jobs" aria-label="running now">
                    {move || active().into_iter().map(|job| {
                        let left = time_left_text(job.time_left_ms(now.get()));
                        view! {
                            <li>
                                <progress max="1" value=job.fraction aria-label=format!("{} progress", job.label)></progress>
                                <span><span class="job-label">{job.label.clone()}</span>
                                {format!(": {} · {:.0}% · {left}", job.stage, job.fraction * 100.0)}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </div>
        </Show>
    }
}
