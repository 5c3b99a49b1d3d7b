//! A figure opened from a link (`#figure=v1.…`): drawn read-only, with a
//! banner naming the files it came from. Dropping files replaces it with the
//! live figures; files it names by URL can be opened again from there with
//! one button. Everything from the link is shown as text, never as markup.

use super::figure_canvas::FigureCanvas;
use crate::state::AppState;
use crate::web::export::fragment;
use leptos::prelude::*;
use rankscope_core::share::{decode_link, FRAGMENT_KEY};

fn size_text(bytes: u64) -> String {
    match bytes {
        0 => String::new(),
        b if b >= 1 << 20 => format!(" ({:.1} MB)", b as f64 / (1 << 20) as f64),
        b => format!(" ({:.1} KB)", b as f64 / 1024.0),
    }
}

#[component]
pub fn SharedView() -> impl IntoView {
    let state = AppState::use_context();
    let text = fragment();
    if !text.contains(FRAGMENT_KEY) {
        return None;
    }
    let live = move || state.workspace.inventory.with(|i| !i.files.is_empty());
    let decoded = decode_link(&text);
    let render = move || {
        match decoded.clone() {
        Ok(shared) => {
            let files = shared.files.clone();
            let n = files.len();
            let urls: Vec<String> = files.iter().filter_map(|f| f.url.clone()).collect();
            let reopen = (!urls.is_empty()).then(|| {
                let label = format!("Open the {} file{} from {} URL{}", urls.len(), if urls.len() == 1 { "" } else { "s" }, if urls.len() == 1 { "its" } else { "their" }, if urls.len() == 1 { "" } else { "s" });
                view! { <button id="shared-reopen" class="button" type="button" on:click=move |_| state.open_urls(urls.clone())>{label}</button> }
            });
            let spec = Signal::stored(Some(shared.spec));
            view! {
                <section class="shared" id="shared-figure">
                    <p class="banner" role="status">
                        <strong>"Shared figure (read-only)"</strong>
                        {format!(" — made with rankscope {} from {n} file{}. Drop those files to compute it live.", shared.app_version, if n == 1 { "" } else { "s" })}
                    </p>
                    {reopen}
                    <details class="shared-files">
                        <summary>"Files it came from"</summary>
                        <ul>{files.into_iter().map(|f| view! { <li>{format!("{}{}{}{}", f.name, size_text(f.size), f.digest.as_ref().map(|d| format!(" · {d}")).unwrap_or_default(), f.url.as_ref().map(|u| format!(" · from {u}")).unwrap_or_default())}</li> }).collect_view()}</ul>
                    </details>
                    <FigureCanvas id="figure-shared" spec=spec empty_text="The link holds no figure."/>
                </section>
            }
            .into_any()
        }
        Err(e) => view! {
            <p class="error" id="shared-error" role="alert">{format!("This figure link cannot be opened: {e}")}</p>
        }
        .into_any(),
    }
    };
    Some(view! { <Show when=move || !live()>{render.clone()}</Show> })
}
