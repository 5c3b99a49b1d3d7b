//! The page: header, drop zone, runs, inventory.

use crate::components::loss_curves::LossCurves;
use crate::components::study_panel::StudyPanel;
use crate::components::{
    drop_zone::DropZone, figures::Figures, inventory_table::InventoryTable, run_list::RunList,
    shared_view::SharedView,
};
use crate::state::AppState;
use leptos::prelude::*;

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    view! {
        <header class="top">
            <h1>"rankscope"</h1>
            <p class="tagline">
                "Rank-collapse and loss-curve analysis of your training runs, computed in this "
                "page. Nothing is uploaded."
            </p>
        </header>
        <main>
            <SharedView/>
            <DropZone/>
            <Notice/>
            <RunList/>
            <Figures/>
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
    move || {
        state.notice.get().map(|text| {
            view! {
                <p class="notice" id="notice">
                    {text}
                    <button class="link" on:click=move |_| state.notice.set(None)>"dismiss"</button>
                </p>
            }
        })
    }
}
