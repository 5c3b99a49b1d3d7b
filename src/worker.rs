//! The Web Worker binary: runs checkpoint jobs sent by the page.
fn main() {
    rankscope_app::web::worker_main::serve();
}
