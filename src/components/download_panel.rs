//! The example study's download: a bar of the bytes received (the files are
//! fetched several at a time, so a count of files would move in jumps), the
//! files done, the time left and Cancel beside the bar.

use super::human_size;
use crate::state::{now_ms, AppState};
use crate::status::{time_left_ms, time_left_text};
use crate::web::files::Download;
use leptos::prelude::*;
use std::time::Duration;

#[component]
pub fn DownloadPanel(
    /// DOM id of the panel; it exists only while the download runs (tests wait on it).
    id: &'static str,
    title: &'static str,
    /// The download so far; `None` hides the panel.
    progress: RwSignal<Option<Download>>,
) -> impl IntoView {
    let state = AppState::use_context();
    let now = RwSignal::new(now_ms());
    let ticker = set_interval_with_handle(move || now.set(now_ms()), Duration::from_secs(1)).ok();
    on_cleanup(move || {
        if let Some(t) = ticker {
            t.clear();
        }
    });
    let with = move |f: &dyn Fn(&Download) -> String| {
        progress.with(|p| p.as_ref().map(f).unwrap_or_default())
    };
    let fraction = move || progress.with(|p| p.as_ref().map_or(0.0, Download::fraction));
    let percent = move || format!("{:.0}%", fraction() * 100.0);
    let bytes = move || {
        with(&|d| {
            format!(
                "{} of {}",
                human_size(d.bytes_done as u64),
                human_size(d.bytes_total as u64)
            )
        })
    };
    let files = move || with(&|d| format!("{} of {} files", d.files_done, d.files_total));
    let left = move || {
        let started = progress.with(|p| p.as_ref().map_or(0.0, |d| d.started_ms));
        time_left_text(time_left_ms(fraction(), now.get() - started))
    };
    view! {
        <Show when=move || progress.with(Option::is_some)>
            <div id=id class="progress-panel">
                <p class="progress-title" id=format!("{id}-label")>{title}</p>
                <div class="progress-row">
                    <progress id=format!("{id}-bar") max="1" value=fraction aria-labelledby=format!("{id}-label")
                        aria-valuetext=move || format!("{}, {}", percent(), bytes())></progress>
                    <span class="percent" aria-hidden="true">{percent}</span>
                    <button class="button cancel" id=format!("{id}-cancel") on:click=move |_| state.cancel_all()>"Cancel"</button>
                </div>
                <p class="progress-summary">
                    <span class="bytes">{bytes}</span>
                    " · "
                    <span role="status">{files}</span>
                    " · "
                    <span class="eta">{left}</span>
                </p>
            </div>
        </Show>
    }
}
