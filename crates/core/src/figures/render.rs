//! Native PNG export: the SVG from [`super::to_svg`] rasterised by resvg with
//! the bundled DejaVu Sans (fresh machines may have no fonts at all).
//! Not compiled for wasm: the page draws on a canvas instead.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use super::spec::FigureSpec;
use super::FigureError;

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/DejaVuSans-LICENSE.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name inside the bundled font file.
const BUNDLED_FAMILY: &str = "DejaVu Sans";
const MAX_SIDE: f32 = 16384.0;

fn font_db() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(DEJAVU_SANS.to_vec());
        // Generic families in the SVG resolve to the bundled font too.
        db.set_sans_serif_family(BUNDLED_FAMILY);
        db.set_serif_family(BUNDLED_FAMILY);
        db.set_monospace_family(BUNDLED_FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Rasterises `svg` on a white background at `scale` (1.0 = the SVG's pixel
/// size) and returns the encoded PNG.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, FigureError> {
    let options = usvg::Options {
        font_family: BUNDLED_FAMILY.to_owned(),
        fontdb: font_db(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| FigureError::Svg(e.to_string()))?;
    let size = tree.size();
    let (w, h) = (size.width() * scale, size.height() * scale);
    if !(scale.is_finite() && scale > 0.0 && w >= 1.0 && h >= 1.0 && w <= MAX_SIDE && h <= MAX_SIDE)
    {
        return Err(FigureError::BadScale { scale });
    }
    let mut pixmap = tiny_skia::Pixmap::new(w.ceil() as u32, h.ceil() as u32)
        .ok_or(FigureError::BadScale { scale })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| FigureError::Png(e.to_string()))
}

/// Draws `spec` at `width × height` (CSS) pixels and rasterises it at `scale`
/// (2.0 for a sharp figure in a paper).
pub fn to_png(
    spec: &FigureSpec,
    width: u32,
    height: u32,
    scale: f32,
) -> Result<Vec<u8>, FigureError> {
    let svg = super::to_svg(spec, width, height)?;
    svg_to_png(&svg, scale)
}
