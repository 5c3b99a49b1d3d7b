//! Opening files served over HTTP: a text box for URLs, and the page link
//! `#src=<url>[,<url>…]`, read once when the page loads. The files are read
//! by Range requests (`web/url_source.rs`), as dropped files are read by
//! `Blob.slice`; a URL that cannot be read gets a message naming it.

use crate::state::AppState;
use crate::web::export::{fragment, page_address};
use leptos::prelude::*;
use rankscope_core::source::remote::{src_fragment, src_list, url_list};

#[component]
pub fn UrlBox() -> impl IntoView {
    let state = AppState::use_context();
    let text = RwSignal::new(String::new());
    // The page link that opens the URLs last opened here, to copy and send.
    let link = RwSignal::new(None::<String>);
    // Only `src=` is read here; the fragment's other keys belong to others.
    if let Some(urls) = src_list(&fragment()) {
        text.set(urls.join(" "));
        if !urls.is_empty() {
            state.open_urls(urls);
        }
    }
    let submit = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let urls = url_list(&text.get_untracked());
        if urls.is_empty() {
            state.workspace.notice.set(Some(
                "no URL to open: type or paste one or more URLs".into(),
            ));
        } else {
            link.set(Some(format!("{}#{}", page_address(), src_fragment(&urls))));
            state.open_urls(urls);
        }
    };
    view! {
        <form id="url-form" class="url-form" on:submit=submit>
            <label for="url-input">"Or open files from URLs (separated by spaces; the server must answer Range requests and allow this page by CORS):"</label>
            <div class="url-row">
                <input id="url-input" type="text" inputmode="url" autocomplete="off" spellcheck="false"
                    placeholder="https://example.org/runs/A1/ckpt_1000.safetensors https://example.org/runs/A1/config.json"
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))/>
                <button id="open-urls" class="button" type="submit">"Open URLs"</button>
            </div>
            {move || link.get().map(|href| view! {
                <p class="small"><a id="src-link" href=href>"Link that opens these files"</a>" (copy it to send; it holds the URLs, not the files)"</p>
            })}
        </form>
    }
}
