//! rankscope's core: everything that is not the web page.
//!
//! Data flows one way (see `shared/DESIGN.md`):
//! bytes ([`source`]) → [`formats`] (safetensors by byte range, run logs, token
//! batches) → [`model`] (architecture recognition) → [`inventory`] (what each
//! dropped file is) → analysis and figures.

pub mod analysis;
pub mod figures;
pub mod formats;
pub mod inventory;
pub mod model;
pub mod parallel;
pub mod report;
pub mod session;
pub mod share;
pub mod source;
pub mod view_link;

pub use source::{AsyncByteSource, ByteSource};
