//! How the reader chose to look at each figure: its log axes and zoom range
//! (the core's [`View`]), keyed by the figure's DOM id. Kept apart from
//! [`crate::state::AppState`] (the study's data): a figure's view changes
//! nothing that is computed, only what the canvas, the exports and the
//! figure's link show.

use leptos::prelude::*;
use rankscope_core::figures::spec::View;
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
pub struct ViewState {
    figures: RwSignal<BTreeMap<String, View>>,
}

impl ViewState {
    /// A fresh state with every figure as it is built.
    pub fn new() -> Self {
        Self {
            figures: RwSignal::new(BTreeMap::new()),
        }
    }

    /// The page's view state, made on first use.
    pub fn use_context() -> Self {
        use_context::<ViewState>().unwrap_or_else(|| {
            let s = ViewState::new();
            provide_context(s);
            s
        })
    }

    /// The view of figure `id` (tracked).
    pub fn get(self, id: &str) -> View {
        self.figures
            .with(|f| f.get(id).copied().unwrap_or_default())
    }

    /// Every figure's view (tracked), for the URL.
    pub fn all(self) -> BTreeMap<String, View> {
        self.figures.get()
    }

    /// Replaces every figure's view (a view restored from the URL).
    pub fn set_all(self, figures: BTreeMap<String, View>) {
        if self.figures.with_untracked(|f| *f != figures) {
            self.figures.set(figures);
        }
    }

    /// Changes the view of figure `id`; a view that changes nothing is forgotten.
    pub fn update(self, id: &str, change: impl FnOnce(&mut View)) {
        self.figures.update(|f| {
            let mut v = f.get(id).copied().unwrap_or_default();
            change(&mut v);
            if v.is_default() {
                f.remove(id);
            } else {
                f.insert(id.to_owned(), v);
            }
        });
    }
}
