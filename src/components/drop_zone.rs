//! Where files come in: drop files or folders, pick them in a dialog, open
//! them from URLs, or open the built-in example study. The dialogs open from ordinary buttons (the
//! file inputs themselves are hidden), so the keyboard reaches every way in.

use super::download_panel::DownloadPanel;
use super::url_box::UrlBox;
use crate::state::AppState;
use crate::web::files::{collect_drop, fetch_example, from_file_list};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlInputElement;

#[component]
pub fn DropZone() -> impl IntoView {
    let state = AppState::use_context();
    let hovering = RwSignal::new(false);
    // `webkitdirectory` (pick a whole folder) is not in Leptos' typed
    // attributes for <input>: set it on the element once it exists.
    let folder_input = NodeRef::<leptos::html::Input>::new();
    let files_input = NodeRef::<leptos::html::Input>::new();
    let open_dialog = move |input: NodeRef<leptos::html::Input>| {
        if let Some(input) = input.get_untracked() {
            input.click();
        }
    };
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    // The analysis and the download have their own Cancel beside their bars.
    let reading = move || state.workspace.pending.with(|p| !p.is_empty());

    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        hovering.set(false);
        let Some(dt) = ev.data_transfer() else { return };
        // Must start synchronously: the DataTransfer is emptied after the event.
        let collecting = collect_drop(&dt);
        spawn_local(async move {
            match collecting.await {
                Ok(files) => state.add_files(files),
                Err(e) => state.workspace.notice.set(Some(e)),
            }
        });
    };
    let on_pick = move |ev: web_sys::Event| {
        let input: HtmlInputElement = event_target(&ev);
        if let Some(list) = input.files() {
            state.add_files(from_file_list(&list));
        }
        input.set_value("");
    };
    let open_example = move |_| {
        if state
            .workspace
            .example_progress
            .with_untracked(Option::is_some)
        {
            return; // already downloading
        }
        state.workspace.cancel.set(false);
        spawn_local(async move {
            let progress = state.workspace.example_progress;
            let result = fetch_example(
                move |d| progress.set(Some(d)),
                move || state.workspace.cancel.get_untracked(),
            )
            .await;
            progress.set(None);
            match result {
                Ok(Some(files)) => state.add_files(files),
                Ok(None) => state.workspace.notice.set(Some(
                    "cancelled: the example study was not downloaded".into(),
                )),
                Err(e) => state
                    .workspace
                    .notice
                    .set(Some(format!("could not load the example study: {e}"))),
            }
        });
    };

    // For the page-load measurement (tests/e2e/perf.test.mjs): the drop zone
    // is in the document with its handlers, so a drop works from now on.
    Effect::new(move |_| mark_ready());

    view! {
        <section
            id="dropzone"
            class="dropzone"
            class:hover=move || hovering.get()
            on:dragover=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                hovering.set(true);
            }
            on:dragleave=move |_| hovering.set(false)
            on:drop=on_drop
        >
            <p class="big">"Drop checkpoints, run logs and token batches here — files or whole folders."</p>
            <p class="small">
                "safetensors (sharded too) · JSONL · CSV / W&B export · TensorBoard events · "
                "text logs · results.json · .npy / JSON token ids"
            </p>
            <div class="actions">
                <button id="choose-files" class="button" type="button" on:click=move |_| open_dialog(files_input)>
                    "Choose files…"
                </button>
                <button id="choose-folder" class="button" type="button" on:click=move |_| open_dialog(folder_input)>
                    "Choose a folder…"
                </button>
                // Opened by the buttons above; out of the tab order and the accessibility tree.
                <input id="pick-files" class="file-input" type="file" multiple tabindex="-1" aria-hidden="true" node_ref=files_input on:change=on_pick/>
                <input id="pick-folder" class="file-input" type="file" multiple tabindex="-1" aria-hidden="true" node_ref=folder_input on:change=on_pick/>
                <button id="open-example" class="button primary" type="button" on:click=open_example>
                    "Open the example study"
                </button>
                <Show when=reading>
                    <button id="cancel" class="button" on:click=move |_| state.cancel_all()>"Cancel reading"</button>
                </Show>
                <Show when=move || state.workspace.inventory.with(|i| !i.files.is_empty())>
                    <button id="clear" class="button" on:click=move |_| state.clear()>"Clear"</button>
                </Show>
            </div>
            <UrlBox/>
            <DownloadPanel id="example-progress" progress=state.workspace.example_progress
                title="Downloading the example study (six runs, 36 checkpoints, logs and token batches)"/>
        </section>
    }
}

/// `performance.mark("rankscope-dropzone-ready")`, once: its time is counted
/// from the page's navigation start.
fn mark_ready() {
    let performance = web_sys::window().and_then(|w| w.performance());
    if let Some(p) = performance {
        if p.get_entries_by_name("rankscope-dropzone-ready").length() == 0 {
            let _ = p.mark("rankscope-dropzone-ready");
        }
    }
}
