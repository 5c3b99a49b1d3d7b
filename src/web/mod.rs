//! Browser plumbing: reading Blobs and URLs by byte range, collecting dropped files and
//! folders, fetching the built-in example, the screen canvases are drawn for,
//! and the panic hook.

pub mod blob_source;
pub mod export;
pub mod files;
pub mod gpu;
pub mod offline;
pub mod panic;
pub mod scaled_text;
pub mod screen;
pub mod sources;
pub mod url_source;
pub mod worker_main;
pub mod worker_pool;
