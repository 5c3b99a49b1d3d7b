//! Figures: a serialisable [`FigureSpec`] (data + view) built from analysis
//! results ([`build`]), drawn by plotters on any backend ([`draw`]): a canvas in
//! the page, SVG for export and tests, PNG natively ([`render`]).
//!
//! Every figure says what it shows (`shared/DESIGN.md`): the caption carries the
//! metric variant, aggregation, runs, eval batch and points drawn, and the
//! drawing adds what it had to drop.

pub mod build;
pub mod csv;
pub mod downsample;
pub mod draw;
pub mod dyn_backend;
pub mod number;
pub mod palette;
#[cfg(not(target_arch = "wasm32"))]
pub mod render;
pub mod spec;

pub use build::{RunPoints, RunSpectrum};
pub use csv::to_csv;
pub use downsample::min_max_downsample;
pub use draw::{draw_figure, to_svg};
pub use dyn_backend::DynBackend;
pub use number::format_number;
#[cfg(not(target_arch = "wasm32"))]
pub use render::{svg_to_png, to_png};
pub use spec::{Axis, FigureKind, FigureSpec, Scale, SeriesSpec, Style};

/// Why a figure could not be drawn or exported.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// The drawing backend (SVG, canvas, …) failed.
    #[error("drawing the figure failed: {0}")]
    Backend(String),
    /// The requested size leaves no room for a readable figure.
    #[error("figure size {width}×{height} px is too small (at least {min_width}×{min_height} px)")]
    TooSmall {
        width: u32,
        height: u32,
        min_width: u32,
        min_height: u32,
    },
    /// The PNG scale factor is not a positive finite number, or the image would be too large.
    #[error("PNG scale {scale} gives no usable image (scale must be > 0 and the image at most 16384 px a side)")]
    BadScale { scale: f32 },
    /// The SVG could not be parsed for rasterising.
    #[error("cannot read the figure's SVG: {0}")]
    Svg(String),
    /// The PNG encoder failed.
    #[error("cannot encode the PNG: {0}")]
    Png(String),
}
