//! The page: header (with the theme choice), drop zone, runs, figures, inventory.

use crate::comparisons::Comparisons;
use crate::components::comparison_cards::ComparisonCards;
use crate::components::esd_panel::EsdPanel;
use crate::components::loss_curves::LossCurves;
use crate::components::report_button::ReportButton;
use crate::components::study_panel::StudyPanel;
use crate::components::{
    drop_zone::DropZone, figures::Figures, inventory_table::InventoryTable, run_list::RunList,
    shared_view::SharedView,
};
use crate::figure_specs::FigureSpecs;
use crate::state::AppState;
use leptos::prelude::*;

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    provide_context(state.workspace);
    provide_context(state.analysis);
    let cmp = Comparisons::new();
    provide_context(cmp);
    let views = state.view;
    provide_context(views);
    // The view in the URL: read now, written on every change, restored on back/forward.
    crate::view_link::start(cmp, views);
    provide_context(FigureSpecs::new());
    view! {
        <header class="top">
            <div class="title">
                <h1>"rankscope"</h1>
                <p class="tagline">
                    "Rank-collapse and loss-curve analysis of your training runs, computed in this "
                    "page. Nothing is uploaded."
                </p>
            </div>
            <div class="header-actions">
                <crate::view_link::ViewLinkButton/>
                <ThemeChoice/>
            </div>
        </header>
        <main>
            <SharedView/>
            <DropZone/>
            <Notice/>
            <RunList/>
            <Figures/>
            <ComparisonCards/>
            <EsdPanel/>
            <ReportButton/>
            <StudyPanel/>
            <LossCurves/>
            <InventoryTable/>
        </main>
    }
}

/// A one-line message about the last drop (cancelled, nothing in it, …).
#[component]
fn Notice() -> impl IntoView {
    let state = AppState::use_context();
    let notices = move || {
        let list = state.workspace.notices.get();
        (!list.is_empty()).then(|| {
            view! {
                <div class="notice" id="notices" role="status">
                    <ul>{list.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
                    <button class="link" on:click=move |_| state.workspace.notices.set(Vec::new())>"dismiss"</button>
                </div>
            }
        })
    };
    let notice = move || {
        state.workspace.notice.get().map(|text| {
            view! {
                <p class="notice" id="notice" role="status">
                    {text}
                    <button class="link" on:click=move |_| state.workspace.notice.set(None)>"dismiss"</button>
                </p>
            }
        })
    };
    view! { {notice} {notices} }
}

const THEME_KEY: &str = "rankscope-theme";

/// Light, dark, or the system's choice (`prefers-color-scheme`), kept in
/// localStorage; `index.html` applies a kept choice before the page loads.
/// Exported figures stay light whatever the theme.
#[component]
fn ThemeChoice() -> impl IntoView {
    let storage = || web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    let initial = storage()
        .and_then(|s| s.get_item(THEME_KEY).ok().flatten())
        .unwrap_or_else(|| "system".into());
    let apply = move |theme: &str| {
        let root = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element());
        if let Some(root) = root {
            let _ = match theme {
                "light" | "dark" => root.set_attribute("data-theme", theme),
                _ => root.remove_attribute("data-theme"),
            };
        }
        if let Some(s) = storage() {
            let _ = s.set_item(THEME_KEY, theme);
        }
    };
    let chosen = initial.clone();
    view! {
        <label class="theme">"Theme "
            <select id="theme" on:change=move |ev| apply(&event_target_value(&ev))>
                {[("system", "as the system"), ("light", "light"), ("dark", "dark")].into_iter().map(|(value, label)| {
                    view! { <option value=value selected=chosen == value>{label}</option> }
                }).collect_view()}
            </select>
        </label>
    }
}
