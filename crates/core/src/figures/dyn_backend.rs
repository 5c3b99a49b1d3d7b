//! One drawing routine for every backend: [`DynBackend`] puts any plotters
//! backend behind a trait object, so [`super::draw::draw_figure`] and the
//! plotters chart code under it are compiled once however many backends a
//! binary draws on. The page draws on a canvas and exports SVG; drawn through
//! each backend directly, it held two copies of all of it (about 0.35 MB of
//! WebAssembly each). Drawing calls are per line, marker or label, so the one
//! indirect call each costs nothing measurable.
//!
//! plotters' `DrawingBackend` has generic methods (the styles, the point
//! iterators), so it cannot be a trait object itself: [`Erased`] is its
//! object-safe form, with the styles as plain values and the points as slices.

use plotters::style::{FontDesc, TextStyle};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// A backend's error, as its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(String);

type Result<T = ()> = std::result::Result<T, DrawingErrorKind<BackendError>>;

/// Any plotters backend, drawn through one compiled copy of the drawing code.
pub struct DynBackend<'a>(Box<dyn Erased + 'a>);

impl<'a> DynBackend<'a> {
    pub fn new(backend: impl DrawingBackend + 'a) -> Self {
        DynBackend(Box::new(backend))
    }
}

/// A stroke or fill: everything `BackendStyle` says.
struct Pen {
    color: BackendColor,
    width: u32,
}

impl BackendStyle for Pen {
    fn color(&self) -> BackendColor {
        self.color
    }
    fn stroke_width(&self) -> u32 {
        self.width
    }
}

fn pen<S: BackendStyle>(style: &S) -> Pen {
    Pen {
        color: style.color(),
        width: style.stroke_width(),
    }
}

/// A text style as plotters' own `TextStyle` (what the drawing code passes anyway).
fn text_style<S: BackendTextStyle>(style: &S) -> TextStyle<'_> {
    TextStyle {
        font: FontDesc::new(style.family(), style.size(), style.style())
            .transform(style.transform()),
        color: style.color(),
        pos: style.anchor(),
    }
}

fn erase<E: std::error::Error + Send + Sync>(
    e: DrawingErrorKind<E>,
) -> DrawingErrorKind<BackendError> {
    match e {
        DrawingErrorKind::DrawingError(e) => {
            DrawingErrorKind::DrawingError(BackendError(e.to_string()))
        }
        DrawingErrorKind::FontError(e) => DrawingErrorKind::FontError(e),
    }
}

/// `DrawingBackend` without generic methods.
trait Erased {
    fn get_size(&self) -> (u32, u32);
    fn ensure_prepared(&mut self) -> Result;
    fn present(&mut self) -> Result;
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result;
    fn draw_line(&mut self, from: BackendCoord, to: BackendCoord, style: &Pen) -> Result;
    fn draw_rect(&mut self, ul: BackendCoord, br: BackendCoord, style: &Pen, fill: bool) -> Result;
    fn draw_path(&mut self, path: &[BackendCoord], style: &Pen) -> Result;
    fn draw_circle(&mut self, center: BackendCoord, radius: u32, style: &Pen, fill: bool)
        -> Result;
    fn fill_polygon(&mut self, vert: &[BackendCoord], style: &Pen) -> Result;
    fn draw_text(&mut self, text: &str, style: &TextStyle<'_>, pos: BackendCoord) -> Result;
    fn estimate_text_size(&self, text: &str, style: &TextStyle<'_>) -> Result<(u32, u32)>;
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result;
}

impl<B: DrawingBackend> Erased for B {
    fn get_size(&self) -> (u32, u32) {
        DrawingBackend::get_size(self)
    }
    fn ensure_prepared(&mut self) -> Result {
        DrawingBackend::ensure_prepared(self).map_err(erase)
    }
    fn present(&mut self) -> Result {
        DrawingBackend::present(self).map_err(erase)
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result {
        DrawingBackend::draw_pixel(self, point, color).map_err(erase)
    }
    fn draw_line(&mut self, from: BackendCoord, to: BackendCoord, style: &Pen) -> Result {
        DrawingBackend::draw_line(self, from, to, style).map_err(erase)
    }
    fn draw_rect(&mut self, ul: BackendCoord, br: BackendCoord, style: &Pen, fill: bool) -> Result {
        DrawingBackend::draw_rect(self, ul, br, style, fill).map_err(erase)
    }
    fn draw_path(&mut self, path: &[BackendCoord], style: &Pen) -> Result {
        DrawingBackend::draw_path(self, path.iter().copied(), style).map_err(erase)
    }
    fn draw_circle(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &Pen,
        fill: bool,
    ) -> Result {
        DrawingBackend::draw_circle(self, center, radius, style, fill).map_err(erase)
    }
    fn fill_polygon(&mut self, vert: &[BackendCoord], style: &Pen) -> Result {
        DrawingBackend::fill_polygon(self, vert.iter().copied(), style).map_err(erase)
    }
    fn draw_text(&mut self, text: &str, style: &TextStyle<'_>, pos: BackendCoord) -> Result {
        DrawingBackend::draw_text(self, text, style, pos).map_err(erase)
    }
    fn estimate_text_size(&self, text: &str, style: &TextStyle<'_>) -> Result<(u32, u32)> {
        DrawingBackend::estimate_text_size(self, text, style).map_err(erase)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result {
        DrawingBackend::blit_bitmap(self, pos, size, src).map_err(erase)
    }
}

impl DrawingBackend for DynBackend<'_> {
    type ErrorType = BackendError;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result {
        self.0.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result {
        self.0.draw_line(from, to, &pen(style))
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result {
        self.0
            .draw_rect(upper_left, bottom_right, &pen(style), fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result {
        let path: Vec<BackendCoord> = path.into_iter().collect();
        self.0.draw_path(&path, &pen(style))
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result {
        self.0.draw_circle(center, radius, &pen(style), fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result {
        let vert: Vec<BackendCoord> = vert.into_iter().collect();
        self.0.fill_polygon(&vert, &pen(style))
    }
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result {
        self.0.draw_text(text, &text_style(style), pos)
    }
    fn estimate_text_size<S: BackendTextStyle>(&self, text: &str, style: &S) -> Result<(u32, u32)> {
        self.0.estimate_text_size(text, &text_style(style))
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result {
        self.0.blit_bitmap(pos, size, src)
    }
}
