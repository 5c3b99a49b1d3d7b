//! Draws a [`FigureSpec`] on any plotters backend: SVG here, a canvas in the
//! page (`plotters-canvas`), PNG through [`super::render`]. Callers draw through
//! [`super::DynBackend`], so this code is compiled once per binary.
//!
//! Layout, top to bottom: title, then the plot with its legend beside it on the
//! right (so it never covers data), then the caption (wrapped), which always
//! says what was dropped (non-finite values, values ≤ 0 on a log axis).

use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::palette::{self, Marker};
use super::spec::{FigureSpec, Scale, SeriesSpec, Style};
use super::FigureError;

/// The font family every figure asks for. The PNG renderer registers DejaVu
/// Sans under this name; the page falls back to the browser's sans-serif.
pub const FONT_FAMILY: &str = "DejaVu Sans, sans-serif";

// plotters sizes; the SVG backend writes `font-size = size / 1.24`, so these are
// 19.4 px (title), 14.5 px (axis labels) and 12.9 px (ticks, legend, caption).
const TITLE_SIZE: f64 = 24.0;
const LABEL_SIZE: f64 = 18.0;
const TEXT_SIZE: f64 = 16.0;
/// Pixel size of text of plotters size `s`.
fn px(s: f64) -> f64 {
    s / 1.24
}
/// Generous average advance of a DejaVu Sans glyph, in em: layout must not
/// rely on the backend's text measurement (the SVG backend only guesses).
const CHAR_EM: f64 = 0.62;

const PAD: i32 = 10;
const LINE_WIDTH: u32 = 2;
const MARKER_R: i32 = 4;
const BAND_ALPHA: f64 = 0.2;
const FAINT_ALPHA: f64 = 0.35;
const SPAN_ALPHA: f64 = 0.14;
const MIN_SIZE: (u32, u32) = (200, 150);

fn backend_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> FigureError {
    FigureError::Backend(e.to_string())
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT_FAMILY, size).into_font()).color(&BLACK)
}

fn text_width(text: &str, size: f64) -> i32 {
    (text.chars().count() as f64 * CHAR_EM * px(size)).ceil() as i32
}

/// Greedy word wrap to lines of at most `width` pixels (estimated); words
/// longer than a line are cut.
pub(crate) fn wrap(text: &str, width: i32, size: f64) -> Vec<String> {
    let max_chars = ((width as f64) / (CHAR_EM * px(size))).floor().max(8.0) as usize;
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > max_chars {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(word.drain(..max_chars).collect());
            }
            let word: String = word.into_iter().collect();
            let needed =
                line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
            if needed > max_chars && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Cuts `text` to at most `max_chars` characters, ending in "…" if cut.
fn ellipsize(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Tick label: short, no float noise (0.30000000000000004), SI-ish suffixes for
/// token counts (k, M, B, T).
pub fn format_tick(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    for (scale, suffix) in [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e4, "k")] {
        if a >= scale {
            let scale = if suffix == "k" { 1e3 } else { scale };
            return format!("{}{}", trim(format!("{:.2}", v / scale)), suffix);
        }
    }
    if a < 1e-3 {
        return format!("{v:.0e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim(format!("{v:.decimals$}"))
}

/// Maps an axis value to the space in which the axis is linear.
#[derive(Clone, Copy)]
struct AxisMap {
    log: bool,
    lo: f64,
    hi: f64,
}

impl AxisMap {
    fn valid(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }
    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }
    fn inv(&self, t: f64) -> f64 {
        if self.log {
            10f64.powf(t)
        } else {
            t
        }
    }
    fn contains(&self, v: f64) -> bool {
        let (a, b, t) = (self.t(self.lo), self.t(self.hi), self.t(v));
        let eps = (b - a).abs() * 1e-9;
        t >= a - eps && t <= b + eps
    }
    fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.lo, self.hi)
    }
}

/// Smallest and largest powers of ten a log axis spans: normal, finite f64s,
/// so neither end underflows to 0 nor overflows to ∞ once padded.
const LOG_MIN_DECADE: f64 = -307.0;
const LOG_MAX_DECADE: f64 = 308.0;

/// Whether `[lo, hi]` can be drawn as it is: finite ends in order, a width
/// that is itself finite (plotters' tick search never ends on an infinite
/// width) and not lost in rounding, and on a log axis ends within
/// [`LOG_MIN_DECADE`, `LOG_MAX_DECADE`] at least a hair apart.
pub(crate) fn usable_range(lo: f64, hi: f64, log: bool) -> bool {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return false;
    }
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        lo > 0.0 && a >= LOG_MIN_DECADE && b <= LOG_MAX_DECADE && b - a >= 1e-9
    } else {
        let width = hi - lo;
        width.is_finite() && width > 1e-12 * lo.abs().max(hi.abs())
    }
}

/// A linear range with finite ends and a finite width. Padding can push an
/// end past ±f64::MAX, and data at −1e308 and 1e308 spans more than an f64
/// can hold: then the axis keeps the widest finite span around the middle
/// of the data (what lies beyond is clipped at the frame).
fn bounded_linear(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = (lo.max(-f64::MAX), hi.min(f64::MAX));
    if (hi - lo).is_finite() {
        return (lo, hi);
    }
    let mid = lo / 2.0 + hi / 2.0;
    let half = f64::MAX / 2.0 * 0.99;
    (mid - half, mid + half)
}

/// Fits an axis range to `values`, or takes the spec's range if it is usable
/// (see [`usable_range`]). The result is always usable.
fn fit_range(
    values: &[f64],
    log: bool,
    fixed: Option<(f64, f64)>,
    include_zero: bool,
) -> (f64, f64) {
    if let Some((lo, hi)) = fixed {
        if usable_range(lo, hi, log) {
            return (lo, hi);
        }
    }
    let ok = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && (!log || *v > 0.0));
    let (mut lo, mut hi) = ok.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        return fit_log_range(lo.log10(), hi.log10());
    }
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if hi - lo < 1e-12 * lo.abs().max(1.0) {
        let d = (lo.abs() * 0.1).max(1.0);
        return bounded_linear(lo - d, hi + d);
    }
    // Half-widths: (hi − lo) itself may overflow.
    let pad = (hi / 2.0 - lo / 2.0) * 0.08;
    // Bars stand on zero: no padding below a zero baseline.
    let lo = if include_zero && lo == 0.0 {
        0.0
    } else {
        lo - pad
    };
    bounded_linear(lo, hi + pad)
}

/// A log range over decades `a..b` (log10 of the data's ends), padded by 5 %
/// and kept within [`LOG_MIN_DECADE`, `LOG_MAX_DECADE`], so 1e-310 and 1e300
/// give finite, positive ends and a bounded number of decades to tick.
fn fit_log_range(a: f64, b: f64) -> (f64, f64) {
    let (mut a, mut b) = (a, b);
    if b - a < 1e-9 {
        a -= 0.5;
        b += 0.5;
    }
    let pad = (b - a) * 0.05;
    let (a, b) = ((a - pad).max(LOG_MIN_DECADE), (b + pad).min(LOG_MAX_DECADE));
    // All data beyond one end (below 1e-307, say): one decade at that end.
    let (a, b) = if b - a >= 1e-9 {
        (a, b)
    } else if a >= LOG_MAX_DECADE - 1.0 {
        (LOG_MAX_DECADE - 1.0, LOG_MAX_DECADE)
    } else {
        (a, a + 1.0)
    };
    (10f64.powf(a), 10f64.powf(b))
}

/// The names the legend lists, in its order (what the plot draws; the page's tests read them).
pub fn legend_names(spec: &FigureSpec) -> Vec<String> {
    legend_entries(spec)
        .iter()
        .map(|e| e.name.to_owned())
        .collect()
}

/// One entry of the legend.
struct LegendEntry<'a> {
    name: &'a str,
    color: usize,
    style: Style,
    faint: bool,
}

fn legend_entries(spec: &FigureSpec) -> Vec<LegendEntry<'_>> {
    // Sets, not scans of the series: a figure (or a link) with 10⁵ series
    // must not take quadratic time before anything is drawn.
    let solid_colors: std::collections::HashSet<usize> = spec
        .series
        .iter()
        .filter(|s| !s.faint)
        .map(|s| s.color)
        .collect();
    let mut listed: std::collections::HashSet<(&str, usize)> = std::collections::HashSet::new();
    let mut out: Vec<LegendEntry<'_>> = Vec::new();
    for s in &spec.series {
        let shadowed = s.faint && solid_colors.contains(&s.color);
        // A data series with nothing drawable (no finite point, or none > 0 on a log axis) is
        // not in the legend: the legend names what the plot shows. (Spans are ranges, open
        // ends and all, and are always drawn.)
        let undrawn = !s.style.is_span() && !spec.draws(s);
        if shadowed || undrawn || !listed.insert((s.name.as_str(), s.color)) {
            continue;
        }
        out.push(LegendEntry {
            name: &s.name,
            color: s.color,
            style: s.style,
            faint: s.faint,
        });
    }
    out
}

/// Where the data of a drawn figure lies: the plot rectangle in backend
/// pixels and the axis ranges, so a pointer position maps back to data (a
/// hover readout).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotFrame {
    /// Plot rectangle, backend pixels: left, top, right, bottom.
    pub rect: (i32, i32, i32, i32),
    /// x range (lo, hi) and whether it is logarithmic.
    pub x: (f64, f64, bool),
    /// y range (lo, hi) and whether it is logarithmic.
    pub y: (f64, f64, bool),
}

impl PlotFrame {
    /// The horizontal backend pixel of data x, `None` outside the x range or undrawable.
    pub fn x_to_pixel(&self, x: f64) -> Option<f64> {
        let (l, _, r, _) = self.rect;
        let m = AxisMap {
            log: self.x.2,
            lo: self.x.0,
            hi: self.x.1,
        };
        if !m.valid(x) || !m.contains(x) {
            return None;
        }
        let f = (m.t(x) - m.t(m.lo)) / (m.t(m.hi) - m.t(m.lo));
        Some(l as f64 + f * (r - l) as f64)
    }

    /// The nearest point of the plot rectangle to backend pixel (`px`, `py`).
    pub fn clamp(&self, px: f64, py: f64) -> (f64, f64) {
        let (l, t, r, b) = self.rect;
        (px.clamp(l as f64, r as f64), py.clamp(t as f64, b as f64))
    }

    /// The data point under backend pixel (`px`, `py`), `None` outside the plot.
    pub fn to_data(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let (l, t, r, b) = self.rect;
        if px < l as f64 || px > r as f64 || py < t as f64 || py > b as f64 || r <= l || b <= t {
            return None;
        }
        let map = |(lo, hi, log): (f64, f64, bool), f: f64| {
            let m = AxisMap { log, lo, hi };
            m.inv(m.t(lo) + f * (m.t(hi) - m.t(lo)))
        };
        Some((
            map(self.x, (px - l as f64) / (r - l) as f64),
            map(self.y, (b as f64 - py) / (b - t) as f64),
        ))
    }
}

/// Draws `spec` onto `area` (which it fills with white first).
pub fn draw_figure<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &FigureSpec,
) -> Result<(), FigureError> {
    draw_figure_framed(area, spec).map(|_| ())
}

/// [`draw_figure`], returning where the data went (`None` when nothing was drawable).
pub fn draw_figure_framed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &FigureSpec,
) -> Result<Option<PlotFrame>, FigureError> {
    let (w, h) = area.dim_in_pixel();
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 {
        return Err(FigureError::TooSmall {
            width: w,
            height: h,
            min_width: MIN_SIZE.0,
            min_height: MIN_SIZE.1,
        });
    }
    let (w, h) = (w as i32, h as i32);
    area.fill(&WHITE).map_err(backend_err)?;

    // Title (bold, centred, wrapped) and caption (wrapped, at most a quarter of the height).
    let title_font = TextStyle::from(FontDesc::new(
        FontFamily::Name(FONT_FAMILY),
        TITLE_SIZE,
        FontStyle::Bold,
    ))
    .color(&BLACK)
    .pos(Pos::new(HPos::Center, VPos::Top));
    let title_line = (px(TITLE_SIZE) * 1.3).ceil() as i32;
    let title_lines: Vec<String> = wrap(&spec.title, w - 2 * PAD, TITLE_SIZE)
        .into_iter()
        .take(2)
        .collect();
    let title_h = PAD + title_line * title_lines.len() as i32 + PAD / 2;

    let text_line = (px(TEXT_SIZE) * 1.35).ceil() as i32;
    let mut caption_lines = wrap(&spec.drawn_caption(), w - 2 * PAD, TEXT_SIZE);
    let max_caption_lines = ((h / 4) / text_line).max(1) as usize;
    if caption_lines.len() > max_caption_lines {
        caption_lines.truncate(max_caption_lines);
        if let Some(last) = caption_lines.last_mut() {
            let n = last.chars().count();
            *last = ellipsize(&format!("{last} …"), n + 2);
        }
    }
    let caption_h = if caption_lines.is_empty() {
        PAD
    } else {
        text_line * caption_lines.len() as i32 + PAD
    };

    let (top, rest) = area.split_vertically(title_h);
    let (middle, bottom) = rest.split_vertically((h - title_h - caption_h).max(1));
    for (i, line) in title_lines.iter().enumerate() {
        top.draw_text(line, &title_font, (w / 2, PAD + i as i32 * title_line))
            .map_err(backend_err)?;
    }
    let caption_font = font(TEXT_SIZE).pos(Pos::new(HPos::Left, VPos::Top));
    for (i, line) in caption_lines.iter().enumerate() {
        bottom
            .draw_text(line, &caption_font, (PAD, 2 + i as i32 * text_line))
            .map_err(backend_err)?;
    }

    // Legend beside the plot, on the right.
    let entries = legend_entries(spec);
    let swatch = 34;
    let max_name_chars = ((w as f64 * 0.36 - swatch as f64 - 2.0 * PAD as f64)
        / (CHAR_EM * px(TEXT_SIZE)))
    .max(6.0) as usize;
    let names: Vec<String> = entries
        .iter()
        .map(|e| ellipsize(e.name, max_name_chars))
        .collect();
    let legend_w = names
        .iter()
        .map(|n| text_width(n, TEXT_SIZE))
        .max()
        .map_or(0, |tw| tw + swatch + 2 * PAD);
    let (plot_area, legend_area) = middle.split_horizontally((w - legend_w).max(1));

    let chart_top = PAD;
    let frame = if !spec.has_data() {
        let msg = if spec.series.is_empty() {
            "no data"
        } else {
            "no drawable data"
        };
        let (pw, ph) = plot_area.dim_in_pixel();
        plot_area
            .draw(&Rectangle::new(
                [(PAD, chart_top), (pw as i32 - PAD, ph as i32 - PAD)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(backend_err)?;
        let style = font(LABEL_SIZE).pos(Pos::new(HPos::Center, VPos::Center));
        plot_area
            .draw_text(msg, &style, (pw as i32 / 2, ph as i32 / 2))
            .map_err(backend_err)?;
        None
    } else {
        Some(draw_plot_area(&plot_area, spec)?)
    };
    draw_legend(
        &legend_area,
        &entries,
        &names,
        chart_top,
        text_line.max(2 * MARKER_R + 8),
    )?;
    Ok(frame)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry<'_>],
    names: &[String],
    top: i32,
    row_h: i32,
) -> Result<(), FigureError> {
    let (_, ah) = area.dim_in_pixel();
    let rows = ((ah as i32 - top) / row_h).max(1) as usize;
    let style = font(TEXT_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (e, name)) in entries.iter().zip(names).enumerate() {
        let y = top + row_h / 2 + i as i32 * row_h;
        if i + 1 == rows && entries.len() > rows {
            area.draw_text(&format!("+{} more", entries.len() - i), &style, (PAD, y))
                .map_err(backend_err)?;
            break;
        }
        let c = palette::color(e.color);
        let (x0, x1) = (PAD, PAD + swatch_len());
        match e.style {
            Style::Bars => {
                area.draw(&Rectangle::new(
                    [(x0 + 6, y - 6), (x1 - 6, y + 6)],
                    c.filled(),
                ))
                .map_err(backend_err)?;
            }
            Style::HSpan | Style::VSpan => {
                area.draw(&Rectangle::new(
                    [(x0, y - 7), (x1, y + 7)],
                    c.mix(SPAN_ALPHA).filled(),
                ))
                .map_err(backend_err)?;
            }
            _ => {
                let alpha = if e.faint { FAINT_ALPHA } else { 1.0 };
                if e.style != Style::Markers {
                    let pattern = if e.faint {
                        &[][..]
                    } else {
                        palette::dash(e.color)
                    };
                    for piece in dashed(&[(x0, y), (x1, y)], pattern) {
                        area.draw(&PathElement::new(
                            piece,
                            c.mix(alpha).stroke_width(LINE_WIDTH),
                        ))
                        .map_err(backend_err)?;
                    }
                }
                if matches!(e.style, Style::Markers | Style::LineMarkers) {
                    draw_marker(
                        area,
                        ((x0 + x1) / 2, y),
                        palette::marker(e.color),
                        MARKER_R,
                        c.mix(alpha),
                    )?;
                }
            }
        }
        area.draw_text(name, &style, (x1 + 8, y))
            .map_err(backend_err)?;
    }
    Ok(())
}

fn swatch_len() -> i32 {
    26
}

/// Draws one marker of `shape` at `at` (in the area's coordinates).
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: Marker,
    r: i32,
    color: RGBAColor,
) -> Result<(), FigureError>
where
    CT::From: Clone,
{
    let fill = ShapeStyle::from(color).filled();
    let stroke = ShapeStyle::from(color).stroke_width(LINE_WIDTH);
    match shape {
        Marker::Circle => area
            .draw(&(EmptyElement::at(at) + Circle::new((0, 0), r, fill)))
            .map_err(backend_err),
        Marker::Ring => area
            .draw(&(EmptyElement::at(at) + Circle::new((0, 0), r, stroke)))
            .map_err(backend_err),
        Marker::Cross | Marker::Plus => {
            for [a, b] in shape.strokes(r) {
                area.draw(&(EmptyElement::at(at.clone()) + PathElement::new(vec![a, b], stroke)))
                    .map_err(backend_err)?;
            }
            Ok(())
        }
        _ => {
            let poly = shape.polygon(r).unwrap_or_default();
            area.draw(&(EmptyElement::at(at) + Polygon::new(poly, fill)))
                .map_err(backend_err)
        }
    }
}

/// Axis ranges and everything needed to draw the data.
fn draw_plot_area<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &FigureSpec,
) -> Result<PlotFrame, FigureError> {
    let (xlog, ylog) = (spec.x.scale == Scale::Log, spec.y.scale == Scale::Log);
    let has_bars = spec.series.iter().any(|s| s.style == Style::Bars);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in spec.series.iter().filter(|s| !s.style.is_span()) {
        let (okx, oky) = (
            |v: f64| v.is_finite() && (!xlog || v > 0.0),
            |v: f64| v.is_finite() && (!ylog || v > 0.0),
        );
        for p in &s.points {
            if okx(p[0]) && oky(p[1]) {
                xs.push(p[0]);
                ys.push(p[1]);
            }
        }
        for b in s.band.iter().chain(s.error_bars.iter()).flatten() {
            if okx(b[0]) && oky(b[1]) && oky(b[2]) {
                xs.push(b[0]);
                ys.extend([b[1], b[2]]);
            }
        }
    }
    let (x0, x1) = match (has_bars && !xlog, spec.x.range) {
        // Categories at integer x; half a category of room on each side.
        (true, None) => {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi.is_finite() {
                bounded_linear(lo - 0.5, hi + 0.5)
            } else {
                (-0.5, 0.5)
            }
        }
        _ => fit_range(&xs, xlog, spec.x.range, false),
    };
    let (y0, y1) = fit_range(&ys, ylog, spec.y.range, has_bars && !ylog);
    let (pw, ph) = area.dim_in_pixel();
    let (nx, ny) = (max_x_ticks(pw), max_y_ticks(ph));
    let xm = AxisMap {
        log: xlog,
        lo: x0,
        hi: x1,
    };
    let ym = AxisMap {
        log: ylog,
        lo: y0,
        hi: y1,
    };
    if spec.x.scale == Scale::UnixTime {
        let xr = TimeCoord {
            range: x0..x1,
            ticks: time_ticks(x0, x1, nx).0,
        };
        return if ylog {
            draw_chart(area, spec, xr, log_axis(y0, y1, ny), xm, ym)
        } else {
            draw_chart(area, spec, xr, y0..y1, xm, ym)
        };
    }
    match (xlog, ylog) {
        (false, false) => draw_chart(area, spec, x0..x1, y0..y1, xm, ym),
        (true, false) => draw_chart(area, spec, log_axis(x0, x1, nx), y0..y1, xm, ym),
        (false, true) => draw_chart(area, spec, x0..x1, log_axis(y0, y1, ny), xm, ym),
        (true, true) => draw_chart(
            area,
            spec,
            log_axis(x0, x1, nx),
            log_axis(y0, y1, ny),
            xm,
            ym,
        ),
    }
}

/// At most this many ticks on an x axis `pw` pixels wide (about one per 100 px).
fn max_x_ticks(pw: u32) -> usize {
    ((pw as i32 - 80) / 100).clamp(2, 10) as usize
}

/// At most this many ticks on a y axis `ph` pixels high (about one per 50 px).
fn max_y_ticks(ph: u32) -> usize {
    ((ph as i32 - 50) / 50).clamp(2, 10) as usize
}

/// A log axis with readable ticks: 1–9, 1-2-5 or powers of ten per decade
/// (every k-th decade if needed), the densest that fits `max_n` ticks.
/// plotters' own log ticks can leave an axis spanning less than a decade
/// with a single tick.
fn log_axis(lo: f64, hi: f64, max_n: usize) -> WithKeyPoints<LogCoord<f64>> {
    (lo..hi)
        .log_scale()
        .with_key_points(log_ticks(lo, hi, max_n))
}

/// A linear axis over Unix seconds whose ticks are round times
/// ([`time_ticks`]); its labels come from the mesh's formatter
/// ([`format_time`]). plotters' `WithKeyPoints` over a plain f64 range has no
/// default formatting, which the chart builder needs, hence this small type.
#[derive(Clone)]
struct TimeCoord {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TimeCoord {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }
    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 {
            return Vec::new();
        }
        let step = self.ticks.len().div_ceil(max).max(1);
        self.ticks.iter().copied().step_by(step).collect()
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// Steps of a wall-clock axis, in seconds: round seconds, minutes, hours, days.
const TIME_STEPS: [f64; 22] = [
    1.0,
    2.0,
    5.0,
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    10800.0,
    21600.0,
    43200.0,
    86400.0,
    172800.0,
    604800.0,
    2_592_000.0,
    31_536_000.0,
];

/// Ticks of a wall-clock axis over Unix seconds `lo..hi`: multiples of the
/// smallest [`TIME_STEPS`] step that gives at most `max_n` ticks (whole
/// minutes, hours, UTC days), and that step.
pub(crate) fn time_ticks(lo: f64, hi: f64, max_n: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return (Vec::new(), 1.0);
    }
    let span = hi - lo;
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max_n.max(2) as f64)
        // Longer than the table: whole multiples of a year, bounded in number.
        .unwrap_or_else(|| (span / max_n.max(2) as f64 / 31_536_000.0).ceil() * 31_536_000.0);
    let first = (lo / step).ceil() * step;
    let ticks = (0..=max_n.max(2))
        .map(|k| first + k as f64 * step)
        .take_while(|t| *t <= hi)
        .collect();
    (ticks, step)
}

/// A Unix time as a tick label in UTC, as fine as the tick step needs:
/// `2024-10-10` (days), `10-10 14:00` (hours over several days), `14:05`,
/// `14:05:30`.
pub fn format_time(unix_s: f64, step: f64) -> String {
    if !unix_s.is_finite() || unix_s.abs() > 1e13 {
        return String::new();
    }
    let secs = unix_s.round() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if step >= 86_400.0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else if step >= 3600.0 && rem == 0 {
        format!("{m:02}-{d:02}")
    } else if step >= 60.0 {
        format!("{hh:02}:{mm:02}")
    } else {
        format!("{hh:02}:{mm:02}:{ss:02}")
    }
}

/// (year, month, day) of the day `days` after 1970-01-01, proleptic
/// Gregorian: Howard Hinnant's `civil_from_days` (public domain). Written
/// here because ten lines are cheaper than a date crate for tick labels.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn log_ticks(lo: f64, hi: f64, max_n: usize) -> Vec<f64> {
    let max_n = max_n.max(2);
    if !(lo > 0.0 && hi.is_finite() && lo < hi) {
        return Vec::new();
    }
    // Decades clamped to those of finite f64s: at most ~630 of them, however
    // the ends were computed (log10(0) = −∞ would ask for 2³¹ decades).
    let decade = |v: f64| v.clamp(-330.0, 330.0) as i32;
    let (d0, d1) = (decade(lo.log10().floor()), decade(hi.log10().ceil()));
    let in_range = |v: &f64| *v >= lo * (1.0 - 1e-12) && *v <= hi * (1.0 + 1e-12);
    let ticks = |mults: &[f64], step: i32| -> Vec<f64> {
        (d0..=d1)
            .filter(|d| d.rem_euclid(step) == 0)
            .flat_map(|d| mults.iter().map(move |m| m * 10f64.powi(d)))
            .filter(in_range)
            .collect()
    };
    let all: [&[f64]; 3] = [
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[1.0, 2.0, 5.0],
        &[1.0],
    ];
    for mults in all {
        let t = ticks(mults, 1);
        if t.len() <= max_n && t.len() >= 2 {
            return t;
        }
        if t.len() > max_n && mults.len() == 1 {
            let step = t.len().div_ceil(max_n) as i32;
            return ticks(mults, step.max(1));
        }
    }
    // Less than one tick of any kind fits: fall back to the ends.
    vec![lo, hi]
}

fn draw_chart<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    spec: &FigureSpec,
    xr: X,
    yr: Y,
    xm: AxisMap,
    ym: AxisMap,
) -> Result<PlotFrame, FigureError>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (pw, ph) = area.dim_in_pixel();
    let has_bars = spec.series.iter().any(|s| s.style == Style::Bars);
    let tick_chars = [ym.lo, ym.hi, (ym.lo + ym.hi) / 2.0, -ym.hi.abs()]
        .iter()
        .map(|v| format_tick(*v).chars().count())
        .max()
        .unwrap_or(4)
        .max(3);
    let y_area =
        (tick_chars as f64 * CHAR_EM * px(TEXT_SIZE)) as i32 + (px(LABEL_SIZE) * 1.6) as i32 + 12;
    let x_area = (px(TEXT_SIZE) * 1.3) as i32 + (px(LABEL_SIZE) * 1.3) as i32 + 8;

    let mut chart = ChartBuilder::on(area)
        .margin_top(PAD)
        .margin_left(PAD / 2)
        .margin_right(PAD * 2)
        .margin_bottom(PAD / 2)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(xr, yr)
        .map_err(backend_err)?;

    let categories = if has_bars {
        (xm.hi - xm.lo).round().max(1.0) as usize
    } else {
        0
    };
    let n_x = if has_bars {
        categories.min(20)
    } else {
        max_x_ticks(pw)
    };
    let n_y = max_y_ticks(ph);
    // A tick a hair off zero (float noise of the tick arithmetic, 2e-18) reads as 0.
    let snap = |m: AxisMap, v: f64| {
        if !m.log && v.abs() < (m.hi - m.lo).abs() * 1e-9 {
            0.0
        } else {
            v
        }
    };
    let time_step = (spec.x.scale == Scale::UnixTime).then(|| time_ticks(xm.lo, xm.hi, n_x).1);
    let x_fmt = move |v: &f64| {
        if let Some(step) = time_step {
            format_time(*v, step)
        } else if has_bars && (v - v.round()).abs() > 1e-6 {
            String::new()
        } else {
            format_tick(snap(xm, *v))
        }
    };
    let y_fmt = move |v: &f64| format_tick(snap(ym, *v));
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(spec.x.label.as_str())
        .y_desc(spec.y.label.as_str())
        .label_style(font(TEXT_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .x_labels(n_x)
        .y_labels(n_y)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(WHITE.mix(0.0))
        .axis_style(BLACK.stroke_width(1));
    if has_bars {
        mesh.disable_x_mesh();
    }
    mesh.draw().map_err(backend_err)?;

    let plot = chart.plotting_area();
    let (xr, yr) = plot.get_pixel_range();
    let frame = PlotFrame {
        rect: (xr.start, yr.start, xr.end, yr.end),
        x: (xm.lo, xm.hi, xm.log),
        y: (ym.lo, ym.hi, ym.log),
    };
    // Shaded spans under everything, then bands, bars, lines, error bars, markers.
    for s in spec.series.iter().filter(|s| s.style.is_span()) {
        draw_spans(plot, s, xm, ym)?;
    }
    // A band on bars is a per-bar range (e.g. min–max over heads), drawn with the bar.
    for s in spec.series.iter().filter(|s| s.style != Style::Bars) {
        if let Some(band) = &s.band {
            draw_band(plot, band, s.color, xm, ym)?;
        }
    }
    let bar_series: Vec<&SeriesSpec> = spec
        .series
        .iter()
        .filter(|s| s.style == Style::Bars)
        .collect();
    let group = 0.8;
    let bar_w = group / bar_series.len().max(1) as f64;
    for (k, s) in bar_series.iter().enumerate() {
        let offset = -group / 2.0 + (k as f64 + 0.5) * bar_w;
        let base = if ym.log { ym.lo } else { ym.clamp(0.0) };
        for p in s
            .points
            .iter()
            .filter(|p| xm.valid(p[0]) && ym.valid(p[1]) && xm.contains(p[0]))
        {
            let (xa, xb) = (p[0] + offset - bar_w * 0.45, p[0] + offset + bar_w * 0.45);
            plot.draw(&Rectangle::new(
                [(xa, base), (xb, ym.clamp(p[1]))],
                palette::color(s.color).filled(),
            ))
            .map_err(backend_err)?;
        }
        if let Some(ranges) = &s.band {
            draw_bar_ranges(plot, ranges, offset, bar_w * 0.5, xm, ym)?;
        }
        if let Some(errs) = &s.error_bars {
            draw_error_bars(plot, errs, offset, xm, ym)?;
        }
    }
    for s in spec
        .series
        .iter()
        .filter(|s| matches!(s.style, Style::Line | Style::LineMarkers))
    {
        let alpha = if s.faint { FAINT_ALPHA } else { 1.0 };
        let width = if s.faint { 1 } else { LINE_WIDTH };
        let style = palette::color(s.color).mix(alpha).stroke_width(width);
        let pattern = if s.faint {
            &[][..]
        } else {
            palette::dash(s.color)
        };
        for piece in clip_polyline(&s.points, xm, ym) {
            if pattern.is_empty() {
                plot.draw(&PathElement::new(piece, style))
                    .map_err(backend_err)?;
                continue;
            }
            // Dashes are laid out in pixels, so a pattern looks the same at any zoom.
            let pixels: Vec<(i32, i32)> = piece
                .iter()
                .map(|&p| {
                    let (x, y) = plot.map_coordinate(&p);
                    (x - frame.rect.0, y - frame.rect.1)
                })
                .collect();
            let pixel_area = plot.strip_coord_spec();
            for dash in dashed(&pixels, pattern) {
                pixel_area
                    .draw(&PathElement::new(dash, style))
                    .map_err(backend_err)?;
            }
        }
    }
    for s in spec.series.iter().filter(|s| s.style != Style::Bars) {
        if let Some(errs) = &s.error_bars {
            draw_error_bars(plot, errs, 0.0, xm, ym)?;
        }
        if matches!(s.style, Style::Markers | Style::LineMarkers) {
            let alpha = if s.faint { FAINT_ALPHA } else { 1.0 };
            let r = if s.style == Style::Markers && s.points.len() > 200 {
                MARKER_R - 1
            } else {
                MARKER_R
            };
            let color = palette::color(s.color).mix(alpha);
            for p in s.points.iter().filter(|p| {
                xm.valid(p[0]) && ym.valid(p[1]) && xm.contains(p[0]) && ym.contains(p[1])
            }) {
                draw_marker(plot, (p[0], p[1]), palette::marker(s.color), r, color)?;
            }
        }
    }
    Ok(frame)
}

/// Cuts a pixel polyline into the "on" pieces of a dash `pattern`
/// (alternating on/off lengths in pixels, continued across vertices; empty =
/// one solid piece).
fn dashed(points: &[(i32, i32)], pattern: &[u32]) -> Vec<Vec<(i32, i32)>> {
    if pattern.is_empty() || pattern.iter().all(|&l| l == 0) || points.len() < 2 {
        return vec![points.to_vec()];
    }
    let mut pieces = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let (mut k, mut left) = (0usize, pattern[0] as f64);
    let on = |k: usize| k.is_multiple_of(2);
    let round = |p: &[(f64, f64)]| {
        p.iter()
            .map(|&(x, y)| (x.round() as i32, y.round() as i32))
            .collect::<Vec<_>>()
    };
    let mut a = (points[0].0 as f64, points[0].1 as f64);
    current.push(a);
    for &(bx, by) in &points[1..] {
        let b = (bx as f64, by as f64);
        let mut seg = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        while seg > left {
            let t = left / seg;
            let cut = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if on(k) {
                current.push(cut);
                pieces.push(round(&current));
                current.clear();
            } else {
                current.push(cut);
            }
            seg -= left;
            a = cut;
            k = (k + 1) % pattern.len().max(2);
            left = pattern.get(k).copied().unwrap_or(pattern[0]) as f64;
            if !on(k) {
                current.clear();
            }
        }
        left -= seg;
        a = b;
        if on(k) {
            current.push(b);
        }
    }
    if on(k) && current.len() >= 2 {
        pieces.push(round(&current));
    }
    pieces
}

type Plot<'a, DB, X, Y> = DrawingArea<DB, Cartesian2d<X, Y>>;

fn draw_band<DB: DrawingBackend, X, Y>(
    plot: &Plot<'_, DB, X, Y>,
    band: &[[f64; 3]],
    color: usize,
    xm: AxisMap,
    ym: AxisMap,
) -> Result<(), FigureError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut pts: Vec<[f64; 3]> = band
        .iter()
        .copied()
        .filter(|b| xm.valid(b[0]) && ym.valid(b[1]) && ym.valid(b[2]) && xm.contains(b[0]))
        .collect();
    if pts.len() < 2 {
        return Ok(());
    }
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let lo = pts.iter().map(|b| (b[0], ym.clamp(b[1].min(b[2]))));
    let hi = pts.iter().rev().map(|b| (b[0], ym.clamp(b[1].max(b[2]))));
    let outline: Vec<(f64, f64)> = lo.chain(hi).collect();
    plot.draw(&Polygon::new(
        outline,
        palette::color(color).mix(BAND_ALPHA).filled(),
    ))
    .map_err(backend_err)
}

/// Shades a [`Style::HSpan`] or [`Style::VSpan`] series: each point `[lo, hi]`
/// is a range of y (across the plot) or of x (over its height), clamped to
/// the axes (a non-finite end reaches the edge); an HSpan's name is written
/// at its first range's top-left corner inside the plot.
fn draw_spans<DB: DrawingBackend, X, Y>(
    plot: &Plot<'_, DB, X, Y>,
    s: &SeriesSpec,
    xm: AxisMap,
    ym: AxisMap,
) -> Result<(), FigureError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let fill = palette::color(s.color).mix(SPAN_ALPHA).filled();
    let edge = |m: AxisMap, v: f64, low: bool| -> f64 {
        if v.is_nan() || (m.log && v <= 0.0 && low) {
            return if low { m.lo } else { m.hi };
        }
        if v == f64::NEG_INFINITY {
            m.lo
        } else if v == f64::INFINITY {
            m.hi
        } else {
            m.clamp(v)
        }
    };
    let label_color = palette::color(s.color).mix(0.9);
    let label = font(TEXT_SIZE * 0.85)
        .color(&label_color)
        .pos(Pos::new(HPos::Left, VPos::Top));
    for (i, p) in s.points.iter().enumerate() {
        let (m, other) = if s.style == Style::HSpan {
            (ym, xm)
        } else {
            (xm, ym)
        };
        let (lo, hi) = (
            edge(m, p[0].min(p[1]), true),
            edge(m, p[0].max(p[1]), false),
        );
        if lo > hi || (lo == hi && s.style != Style::VSpan) {
            continue;
        }
        let (corner_a, corner_b, at) = if s.style == Style::HSpan {
            ((other.lo, lo), (other.hi, hi), (other.lo, hi))
        } else {
            ((lo, other.lo), (hi, other.hi), (lo, other.hi))
        };
        if lo == hi {
            // A zero-width x range: a thin line.
            plot.draw(&PathElement::new(
                vec![corner_a, corner_b],
                palette::color(s.color).mix(0.6).stroke_width(2),
            ))
            .map_err(backend_err)?;
        } else {
            plot.draw(&Rectangle::new([corner_a, corner_b], fill))
                .map_err(backend_err)?;
        }
        // Horizontal ranges (regimes) are named once inside the plot; vertical
        // ones would collide at the top, the legend names them.
        if i == 0 && s.style == Style::HSpan && !s.name.is_empty() {
            plot.draw(&(EmptyElement::at(at) + Text::new(s.name.clone(), (4, 3), label.clone())))
                .map_err(backend_err)?;
        }
    }
    Ok(())
}

/// A bar's range (`[x, lo, hi]`) as a hollow box `width` wide (x units), centred on the bar.
fn draw_bar_ranges<DB: DrawingBackend, X, Y>(
    plot: &Plot<'_, DB, X, Y>,
    ranges: &[[f64; 3]],
    x_offset: f64,
    width: f64,
    xm: AxisMap,
    ym: AxisMap,
) -> Result<(), FigureError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = RGBColor(40, 40, 40).stroke_width(1);
    for r in ranges
        .iter()
        .filter(|r| xm.valid(r[0]) && ym.valid(r[1]) && ym.valid(r[2]) && xm.contains(r[0]))
    {
        let x = r[0] + x_offset;
        let (lo, hi) = (ym.clamp(r[1].min(r[2])), ym.clamp(r[1].max(r[2])));
        plot.draw(&Rectangle::new(
            [(x - width / 2.0, lo), (x + width / 2.0, hi)],
            WHITE.mix(0.35).filled(),
        ))
        .map_err(backend_err)?;
        plot.draw(&Rectangle::new(
            [(x - width / 2.0, lo), (x + width / 2.0, hi)],
            style,
        ))
        .map_err(backend_err)?;
    }
    Ok(())
}

fn draw_error_bars<DB: DrawingBackend, X, Y>(
    plot: &Plot<'_, DB, X, Y>,
    errs: &[[f64; 3]],
    x_offset: f64,
    xm: AxisMap,
    ym: AxisMap,
) -> Result<(), FigureError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    // Dark grey reads on every palette colour and on white.
    let style = RGBColor(40, 40, 40).stroke_width(LINE_WIDTH);
    for e in errs
        .iter()
        .filter(|e| xm.valid(e[0]) && ym.valid(e[1]) && ym.valid(e[2]) && xm.contains(e[0]))
    {
        let x = e[0] + x_offset;
        let (lo, hi) = (ym.clamp(e[1].min(e[2])), ym.clamp(e[1].max(e[2])));
        plot.draw(&PathElement::new(vec![(x, lo), (x, hi)], style))
            .map_err(backend_err)?;
        for y in [lo, hi] {
            plot.draw(&(EmptyElement::at((x, y)) + PathElement::new(vec![(-5, 0), (5, 0)], style)))
                .map_err(backend_err)?;
        }
    }
    Ok(())
}

/// Splits a polyline at undrawable points (non-finite, ≤ 0 on a log axis) and
/// clips it to the axis ranges (Liang–Barsky, in the space where the axes are
/// linear), so nothing is drawn outside the plot.
fn clip_polyline(points: &[[f64; 2]], xm: AxisMap, ym: AxisMap) -> Vec<Vec<(f64, f64)>> {
    let (bx0, bx1, by0, by1) = (xm.t(xm.lo), xm.t(xm.hi), ym.t(ym.lo), ym.t(ym.hi));
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut prev: Option<(f64, f64)> = None;
    let flush = |current: &mut Vec<(f64, f64)>, pieces: &mut Vec<Vec<(f64, f64)>>| {
        if !current.is_empty() {
            pieces.push(std::mem::take(current));
        }
    };
    for p in points {
        if !(xm.valid(p[0]) && ym.valid(p[1])) {
            prev = None;
            flush(&mut current, &mut pieces);
            continue;
        }
        let q = (xm.t(p[0]), ym.t(p[1]));
        if let Some(a) = prev {
            match clip_segment(a, q, (bx0, bx1, by0, by1)) {
                Some((s, e, s_cut, e_cut)) => {
                    if s_cut || current.is_empty() {
                        flush(&mut current, &mut pieces);
                        current.push((xm.inv(s.0), ym.inv(s.1)));
                    }
                    current.push((xm.inv(e.0), ym.inv(e.1)));
                    if e_cut {
                        flush(&mut current, &mut pieces);
                    }
                }
                None => flush(&mut current, &mut pieces),
            }
        } else if q.0 >= bx0 && q.0 <= bx1 && q.1 >= by0 && q.1 <= by1 {
            current.push((p[0], p[1]));
        }
        prev = Some(q);
    }
    flush(&mut current, &mut pieces);
    pieces
}

type Pt = (f64, f64);

/// Liang–Barsky: the part of segment a→b inside the box, and whether its start
/// or end was cut.
fn clip_segment(
    a: Pt,
    b: Pt,
    (x0, x1, y0, y1): (f64, f64, f64, f64),
) -> Option<(Pt, Pt, bool, bool)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    Some((at(t0), at(t1), t0 > 0.0, t1 < 1.0))
}

/// Draws `spec` into an SVG document of `width × height` pixels.
pub fn to_svg(spec: &FigureSpec, width: u32, height: u32) -> Result<String, FigureError> {
    let mut svg = String::new();
    {
        // Through `DynBackend`, as the page's canvas: one compiled drawing routine for both.
        let root = super::DynBackend::new(SVGBackend::with_string(&mut svg, (width, height)))
            .into_drawing_area();
        draw_figure(&root, spec)?;
        root.present().map_err(backend_err)?;
    }
    Ok(xml_safe(svg))
}

/// The SVG with every character XML 1.0 forbids (C0 controls other than tab,
/// newline and carriage return; U+FFFE, U+FFFF) replaced by U+FFFD. plotters
/// escapes markup in text but passes control characters through, and a run
/// named with one would make the file unreadable (and its PNG export fail).
fn xml_safe(svg: String) -> String {
    let forbidden = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    };
    if !svg.contains(forbidden) {
        return svg;
    }
    svg.replace(forbidden, "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(2.5e9), "2.5B");
        assert_eq!(format_tick(12_000.0), "12k");
        assert_eq!(format_tick(3e6), "3M");
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(1e-5), "1e-5");
        assert_eq!(format_tick(1.0), "1");
        assert_eq!(format_tick(-0.25), "-0.25");
    }

    #[test]
    fn log_ticks_fit() {
        assert_eq!(log_ticks(0.9, 7.5, 4), vec![1.0, 2.0, 5.0]);
        assert_eq!(log_ticks(1e-4, 1.2, 6), vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert!(log_ticks(1e-12, 1e12, 5).len() <= 5);
        assert_eq!(log_ticks(2.1, 2.9, 4), vec![2.1, 2.9]);
    }

    #[test]
    fn wrap_respects_width() {
        let text = "one two three four five six seven eight nine ten eleven twelve";
        let lines = wrap(text, 100, TEXT_SIZE);
        assert!(lines.len() > 1);
        let max = (100.0 / (CHAR_EM * px(TEXT_SIZE))).floor() as usize;
        assert!(lines.iter().all(|l| l.chars().count() <= max));
        assert_eq!(lines.join(" "), text);
    }

    #[test]
    fn wall_clock_ticks_are_round_utc_times() {
        // Checked with `date -u -d @1728569000`: Thu Oct 10 14:03:20 UTC 2024.
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_006), (2024, 10, 10));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(format_time(1_728_569_000.0, 60.0), "14:03");
        assert_eq!(format_time(1_728_569_000.0, 10.0), "14:03:20");
        assert_eq!(format_time(1_728_518_400.0, 86_400.0), "2024-10-10");
        assert_eq!(format_time(1_728_518_400.0, 21_600.0), "10-10");
        let (ticks, step) = time_ticks(1_728_569_000.0, 1_728_569_000.0 + 3.0 * 3600.0, 6);
        assert_eq!(step, 1800.0);
        assert!(
            ticks.iter().all(|t| t % 1800.0 == 0.0) && ticks.len() <= 7,
            "{ticks:?}"
        );
        let (ticks, _) = time_ticks(0.0, 1e12, 5);
        assert!(ticks.len() <= 6);
    }

    #[test]
    fn dashes_follow_the_pattern_across_vertices() {
        assert_eq!(dashed(&[(0, 0), (30, 0)], &[]), vec![vec![(0, 0), (30, 0)]]);
        let pieces = dashed(&[(0, 0), (30, 0)], &[8, 4]);
        assert_eq!(
            pieces,
            vec![
                vec![(0, 0), (8, 0)],
                vec![(12, 0), (20, 0)],
                vec![(24, 0), (30, 0)]
            ]
        );
        // A dash that turns a corner keeps its length: 3 px along x, 5 px along y.
        let pieces = dashed(&[(0, 0), (3, 0), (3, 20)], &[8, 4]);
        assert_eq!(pieces[0], vec![(0, 0), (3, 0), (3, 5)]);
        assert_eq!(pieces[1], vec![(3, 9), (3, 17)]);
    }

    #[test]
    fn clipping_keeps_inside_and_cuts_outside() {
        let m = AxisMap {
            log: false,
            lo: 0.0,
            hi: 1.0,
        };
        let pieces = clip_polyline(&[[0.5, 0.5], [1.5, 0.5], [1.5, 0.2], [0.5, 0.2]], m, m);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], vec![(0.5, 0.5), (1.0, 0.5)]);
        assert_eq!(pieces[1], vec![(1.0, 0.2), (0.5, 0.2)]);
        let pieces = clip_polyline(&[[0.1, 0.1], [f64::NAN, 0.5], [0.2, 0.2], [0.3, 0.3]], m, m);
        assert_eq!(pieces, vec![vec![(0.1, 0.1)], vec![(0.2, 0.2), (0.3, 0.3)]]);
    }
}
