//! The page's view in the URL: the controls' choices (this module's
//! [`ViewChoices`], with [`crate::comparisons::Comparisons`],
//! [`crate::view_state::ViewState`]: per-figure views and run picks) are written
//! to the fragment's `view=` key (the core's [`rankscope_core::view_link`]
//! encodes it) and read back at startup and on back/forward, so a reload or
//! a copied link shows the same view.
//!
//! History: a change is written 300 ms after the last one (typing a number
//! or a burst of clicks is one entry). A choice (a menu, a checkbox, a
//! hidden run) pushes a history entry, so back/forward walks through views;
//! a zoom or a typed number only replaces the current one, so they do not
//! fill the history.
//!
//! This is the one place that writes the fragment for views; other keys
//! (`figure=`, `src=`) pass through untouched.

use crate::comparisons::Comparisons;
use crate::view_state::ViewState;
use leptos::prelude::*;
use rankscope_core::analysis::losscurve::axes::XAxis;
use rankscope_core::analysis::trajectory::CheckpointSel;
use rankscope_core::view_link::{
    decode_view, encode_view, fragment_get, fragment_with, fragment_with_src, view_from_fragment,
    CompareView, EsdView, LossView, PageView, StudyView, TrajectoryView, WaterfallView, VIEW_KEY,
};
use std::collections::BTreeSet;
use std::time::Duration;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function history_write(url, push) {
  if (push) { history.pushState(null, '', url); } else { history.replaceState(null, '', url); }
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn history_write(url: &str, push: bool) -> Result<(), JsValue>;
}

/// How long the page waits after a change before writing the URL.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The view's choices that have no other home: Figures 1–2, the loss-curve
/// section, the ESD panel, Figures 3–5, and the runs each figure shows.
#[derive(Clone, Copy)]
pub struct ViewChoices {
    pub trajectory: RwSignal<TrajectoryView>,
    pub waterfall: RwSignal<WaterfallView>,
    pub esd: RwSignal<EsdView>,
    pub study_checkpoint: RwSignal<CheckpointSel>,
    // The loss-curve section's view, one signal each (the section reads them as its settings).
    pub loss_metric: RwSignal<Option<String>>,
    pub loss_x: RwSignal<XAxis>,
    pub loss_log_y: RwSignal<bool>,
    pub loss_beta: RwSignal<f64>,
    pub loss_hidden: RwSignal<BTreeSet<String>>,
    pub loss_reference: RwSignal<Option<BTreeSet<String>>>,
    pub loss_window: RwSignal<(f64, f64)>,
}

impl ViewChoices {
    fn new(v: &PageView) -> Self {
        Self {
            trajectory: RwSignal::new(v.trajectory),
            waterfall: RwSignal::new(v.waterfall),
            esd: RwSignal::new(v.esd.clone()),
            study_checkpoint: RwSignal::new(v.study.checkpoint),
            loss_metric: RwSignal::new(v.loss.metric.clone()),
            loss_x: RwSignal::new(v.loss.x),
            loss_log_y: RwSignal::new(v.loss.log_y),
            loss_beta: RwSignal::new(v.loss.beta),
            loss_hidden: RwSignal::new(v.loss.hidden.clone()),
            loss_reference: RwSignal::new(v.loss.reference.clone()),
            loss_window: RwSignal::new(v.loss.window),
        }
    }

    pub fn use_context() -> Self {
        expect_context::<ViewChoices>()
    }
}

/// Sets a signal only when the value differs (so restoring a view redraws
/// only what it changes).
fn put<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    if signal.with_untracked(|v| *v != value) {
        signal.set(value);
    }
}

/// Every signal the view is made of, in one place.
#[derive(Clone, Copy)]
struct Parts {
    cmp: Comparisons,
    views: ViewState,
    choices: ViewChoices,
}

impl Parts {
    /// The view as the signals hold it (tracked).
    fn snapshot(self) -> PageView {
        let (c, cmp) = (self.choices, self.cmp);
        PageView {
            trajectory: c.trajectory.get(),
            waterfall: c.waterfall.get(),
            figure_runs: self
                .views
                .runs
                .get()
                .into_iter()
                .map(|(id, runs)| (id, runs.into_iter().collect()))
                .collect(),
            figures: self.views.all(),
            compare: CompareView {
                groups: cmp.assigned.get(),
                show_seeds: cmp.show_seeds.get(),
                mark_collapse: cmp.mark_collapse.get(),
                source: cmp.source.get(),
                matrix: cmp.matrix.get(),
                metric: cmp.metric.get(),
                margin_pct: cmp.margin_pct.get(),
                extra: cmp.extra.get(),
            },
            loss: LossView {
                metric: c.loss_metric.get(),
                x: c.loss_x.get(),
                log_y: c.loss_log_y.get(),
                beta: c.loss_beta.get(),
                hidden: c.loss_hidden.get(),
                reference: c.loss_reference.get(),
                window: c.loss_window.get(),
            },
            esd: c.esd.get(),
            study: StudyView {
                checkpoint: c.study_checkpoint.get(),
            },
        }
    }

    /// Shows `v`: every signal set to its value.
    fn apply(self, v: PageView) {
        let (c, cmp) = (self.choices, self.cmp);
        put(c.trajectory, v.trajectory);
        put(c.waterfall, v.waterfall);
        put(
            self.views.runs,
            v.figure_runs
                .into_iter()
                .map(|(id, runs)| (id, runs.into_iter().collect()))
                .collect(),
        );
        self.views.set_all(v.figures);
        put(cmp.assigned, v.compare.groups);
        put(cmp.show_seeds, v.compare.show_seeds);
        put(cmp.mark_collapse, v.compare.mark_collapse);
        put(cmp.source, v.compare.source);
        put(cmp.matrix, v.compare.matrix);
        put(cmp.metric, v.compare.metric);
        put(cmp.margin_pct, v.compare.margin_pct);
        put(cmp.extra, v.compare.extra);
        put(c.loss_metric, v.loss.metric);
        put(c.loss_x, v.loss.x);
        put(c.loss_log_y, v.loss.log_y);
        put(c.loss_beta, v.loss.beta);
        put(c.loss_hidden, v.loss.hidden);
        put(c.loss_reference, v.loss.reference);
        put(c.loss_window, v.loss.window);
        put(c.esd, v.esd);
        put(c.study_checkpoint, v.study.checkpoint);
    }
}

/// The view without what changes continuously (zoom ranges, typed numbers):
/// two views that differ beyond this differ by a choice, which earns a
/// history entry of its own.
fn choices_only(v: &PageView) -> PageView {
    let mut v = v.clone();
    for f in v.figures.values_mut() {
        f.x_range = None;
        f.y_range = None;
    }
    let d = PageView::default();
    v.compare.margin_pct = d.compare.margin_pct;
    v.loss.beta = d.loss.beta;
    v.loss.window = d.loss.window;
    v
}

fn current_fragment() -> String {
    crate::web::export::fragment()
}

/// Writes `view` into the URL (pushing a history entry or replacing the current one).
fn write(view: &PageView, push: bool) {
    let value = (!view.is_default()).then(|| encode_view(view));
    let fragment = fragment_with(&current_fragment(), VIEW_KEY, value.as_deref());
    let url = format!("{}#{fragment}", crate::web::export::page_address());
    // Without any key the URL keeps a bare `#`: harmless, and no reload.
    if let Err(e) = history_write(&url, push) {
        web_sys::console::warn_1(&e);
    }
}

/// The view the URL holds now (the default when it has none or an unreadable one, which is logged).
fn read_url() -> PageView {
    let (view, error) = view_from_fragment(&current_fragment());
    if let Some(e) = error {
        web_sys::console::warn_1(&format!("rankscope: the link's view is ignored: {e}").into());
    }
    view
}

/// Provides [`ViewChoices`] (from the URL's view) and keeps the URL and the
/// view in step. Call once, after the other contexts are provided.
pub fn start(cmp: Comparisons, views: ViewState) {
    let initial = read_url();
    let choices = ViewChoices::new(&initial);
    provide_context(choices);
    let parts = Parts {
        cmp,
        views,
        choices,
    };
    parts.apply(initial.clone());
    // A view value that was cleaned on reading (bounded, or unreadable) is
    // written back as read, so the address shows what the page shows.
    if let Some(raw) = fragment_get(&current_fragment(), VIEW_KEY) {
        if decode_view(raw).ok().as_ref() != Some(&initial) || initial.is_default() {
            write(&initial, false);
        }
    }
    // What the URL holds (last written or restored), and the write waiting for its debounce.
    let written = StoredValue::new_local(initial);
    let pending = StoredValue::new_local(None::<(TimeoutHandle, bool)>);
    let cancel_pending = move || {
        if let Some((h, _)) = pending.try_update_value(Option::take).flatten() {
            h.clear();
        }
    };
    Effect::new(move |_| {
        let now = parts.snapshot();
        if written.with_value(|w| *w == now) {
            cancel_pending();
            return;
        }
        let push = written.with_value(|w| choices_only(w) != choices_only(&now))
            || pending.with_value(|p| p.as_ref().is_some_and(|(_, push)| *push));
        cancel_pending();
        let handle = set_timeout_with_handle(
            move || {
                pending.set_value(None);
                let now = parts.snapshot_untracked();
                write(&now, push);
                written.set_value(now);
            },
            DEBOUNCE,
        );
        if let Ok(h) = handle {
            pending.set_value(Some((h, push)));
        }
    });
    // Back/forward (and an edited address): show the view the URL now holds.
    let restore = move |_: web_sys::Event| {
        cancel_pending();
        let view = read_url();
        written.set_value(view.clone());
        parts.apply(view);
    };
    // The listeners live as long as the page.
    std::mem::forget(window_event_listener_untyped("popstate", restore));
    std::mem::forget(window_event_listener_untyped("hashchange", restore));
    provide_context(Flush(Callback::new(move |_: ()| {
        let pending_push = pending.with_value(|p| p.as_ref().map(|(_, push)| *push));
        if let Some(push) = pending_push {
            cancel_pending();
            let now = parts.snapshot_untracked();
            write(&now, push);
            written.set_value(now);
        }
    })));
}

impl Parts {
    fn snapshot_untracked(self) -> PageView {
        untrack(|| self.snapshot())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Writes a change still waiting for its debounce now (before the URL is copied).
#[derive(Clone, Copy)]
pub struct Flush(Callback<()>);

/// "Link to this view": copies the page's address (which holds the view) with
/// a status line saying what it carries.
#[component]
pub fn ViewLinkButton() -> impl IntoView {
    let flush = use_context::<Flush>();
    let state = crate::state::AppState::use_context();
    let note = RwSignal::new(None::<String>);
    let link = RwSignal::new(None::<String>);
    let copy = move |_| {
        if let Some(Flush(f)) = flush {
            f.run(());
        }
        // The address holds the view; files opened from URLs go in as `src=`, so the link
        // reopens them too (dropped files cannot travel in a link).
        let urls = state.opened_urls();
        let dropped = state
            .workspace
            .inventory
            .with_untracked(|i| i.files.len())
            .saturating_sub(urls.len());
        let url = format!(
            "{}#{}",
            crate::web::export::page_address(),
            fragment_with_src(&crate::web::export::fragment(), &urls)
        );
        let files = match (urls.len(), dropped) {
            (0, _) => "The files are not in it: whoever opens it drops the same files.".to_string(),
            (n, 0) => format!("It reopens the {n} file{} opened from URLs.", plural(n)),
            (n, d) => format!(
                "It reopens the {n} file{} opened from URLs; the {d} dropped file{} are not in it: whoever opens it drops them.",
                plural(n),
                plural(d)
            ),
        };
        leptos::task::spawn_local(async move {
            link.set(Some(url.clone()));
            note.set(Some(match crate::web::export::copy_to_clipboard(&url).await {
                Ok(()) => format!("Link copied: it opens this view (figures, menus, hidden runs, zoom). {files}"),
                Err(e) => format!("The clipboard refused ({e}): copy the link below. It opens this view. {files}"),
            }));
        });
    };
    view! {
        <div class="view-link">
            <button id="view-link" class="button" type="button" on:click=copy>"Link to this view"</button>
            <p id="view-link-status" class="note" role="status">{move || note.get()}</p>
            {move || link.get().map(|l| view! {
                <input id="view-link-url" class="link-field" type="text" readonly aria-label="link to this view" prop:value=l/>
            })}
        </div>
    }
}
