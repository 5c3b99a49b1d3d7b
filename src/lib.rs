//! rankscope's page: a Leptos (CSR) app built by Trunk. The analysis is in
//! `rankscope-core`; this crate only reads dropped files and shows results.

mod app;
mod comparisons;
mod components;
mod figure_specs;
mod state;
pub mod status;
mod view_link;
mod view_state;
pub mod web;

/// Mounts the page (called by the `rankscope-app` binary that Trunk builds).
pub fn start() {
    web::panic::install_hook();
    leptos::mount::mount_to_body(app::App);
    web::offline::enable();
}
