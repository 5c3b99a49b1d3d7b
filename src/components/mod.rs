//! Small Leptos components over the page's contexts ([`crate::state::Workspace`], [`crate::state::Analysis`], [`crate::state::AppState`] for actions that span them).

pub mod analysis_status;
pub mod comparison_cards;
pub mod conditions_panel;
pub mod download_panel;
pub mod drop_zone;
pub mod esd_panel;
pub mod figure_canvas;
pub mod figures;
pub mod inventory_table;
pub mod loss_curves;
pub mod progress_panel;
pub mod report_button;
pub mod run_list;
pub mod run_picker;
pub mod shared_view;
pub mod sortable;
pub mod study_panel;
pub mod url_box;

/// Bytes as a short human size (`1.5 MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
