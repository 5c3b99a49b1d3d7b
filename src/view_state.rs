//! How the reader chose to look at each figure: its log axes and zoom range
//! (the core's [`View`]) and the runs it shows, keyed by the figure's DOM id.
//! Kept apart from [`crate::state::AppState`] (the study's data): a figure's
//! view changes nothing that is computed, only what the canvas, the exports
//! and the figure's link show.

use leptos::prelude::*;
use rankscope_core::analysis::figure_runs::{default_runs, StudyFigure};
use rankscope_core::figures::spec::View;
use std::collections::{BTreeMap, BTreeSet};

/// Which runs each figure shows, by figure id: the reader's pick. A figure
/// without an entry shows its default ([`default_runs`]): the plan's runs
/// when present, else every run.
pub type FigureRuns = BTreeMap<String, BTreeSet<String>>;

/// The figures with a run picker, by DOM id, and the plan figure each is.
pub const RUN_PICKER_FIGURES: [(&str, StudyFigure); 3] = [
    ("figure-trajectory", StudyFigure::Trajectory),
    ("figure-waterfall", StudyFigure::Waterfall),
    ("figure-layers", StudyFigure::LayerPr),
];

#[derive(Clone, Copy)]
pub struct ViewState {
    figures: RwSignal<BTreeMap<String, View>>,
    /// The runs the reader picked per figure (see [`FigureRuns`]); renames carry over.
    pub runs: RwSignal<FigureRuns>,
}

impl ViewState {
    /// A fresh state with every figure as it is built.
    pub fn new() -> Self {
        Self {
            figures: RwSignal::new(BTreeMap::new()),
            runs: RwSignal::new(BTreeMap::new()),
        }
    }

    /// The runs figure `id` shows among `available` (tracked), in `available`'s order: the
    /// reader's pick, else the figure's default.
    pub fn shown_runs(self, id: &str, available: &[String]) -> Vec<String> {
        self.runs.with(|m| match m.get(id) {
            Some(picked) => available
                .iter()
                .filter(|r| picked.contains(*r))
                .cloned()
                .collect(),
            None => match RUN_PICKER_FIGURES.iter().find(|(f, _)| *f == id) {
                Some((_, figure)) => default_runs(*figure, available),
                None => available.to_vec(),
            },
        })
    }

    /// Shows or hides `run` in figure `id`; the first pick starts from what the figure shows.
    pub fn set_run_shown(self, id: &str, run: &str, shown: bool, available: &[String]) {
        let current: BTreeSet<String> = untrack(|| self.shown_runs(id, available))
            .into_iter()
            .collect();
        self.runs.update(|m| {
            let set = m.entry(id.to_owned()).or_insert(current);
            if shown {
                set.insert(run.to_owned());
            } else {
                set.remove(run);
            }
        });
    }

    /// Carries a run's picks over to its new name (every figure).
    pub fn rename_run(self, from: &str, to: &str) {
        self.runs.update(|m| {
            for set in m.values_mut() {
                if set.remove(from) {
                    set.insert(to.to_owned());
                }
            }
        });
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
