//! Where files come in: drop files or folders, pick them in a dialog, or open
//! the built-in example study.

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
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    let busy = move || {
        state.pending.with(|p| !p.is_empty()) || state.spectra_progress.with(Option::is_some)
    };

    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        hovering.set(false);
        let Some(dt) = ev.data_transfer() else { return };
        // Must start synchronously: the DataTransfer is emptied after the event.
        let collecting = collect_drop(&dt);
        spawn_local(async move {
            match collecting.await {
                Ok(files) => state.add_files(files),
                Err(e) => state.notice.set(Some(e)),
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
        spawn_local(async move {
            match fetch_example().await {
                Ok(files) => state.add_files(files),
                Err(e) => state
                    .notice
                    .set(Some(format!("could not load the example study: {e}"))),
            }
        });
    };

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
                <label class="button">
                    "Choose files…"
                    <input id="pick-files" type="file" multiple on:change=on_pick/>
                </label>
                <label class="button">
                    "Choose a folder…"
                    <input id="pick-folder" type="file" multiple node_ref=folder_input on:change=on_pick/>
                </label>
                <button id="open-example" class="button primary" on:click=open_example>
                    "Open the example study"
                </button>
                <Show when=busy>
                    <button id="cancel" class="button" on:click=move |_| state.cancel_all()>"Cancel"</button>
                </Show>
                <Show when=move || state.inventory.with(|i| !i.files.is_empty())>
                    <button id="clear" class="button" on:click=move |_| state.clear()>"Clear"</button>
                </Show>
            </div>
        </section>
    }
}
