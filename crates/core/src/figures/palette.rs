//! Colour-blind-safe colours and marker shapes, stable per series index.
//!
//! Colours: the Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"),
//! ordered so that the colours with the most contrast on white come first and
//! yellow comes late; black is last and [`color`] skips it, since axes and text
//! are black. Each index also gets its own marker shape ([`marker`]), so a figure
//! still reads in greyscale.

use plotters::style::RGBColor;

/// The eight Okabe–Ito colours: blue, vermillion, bluish green, reddish purple,
/// orange, sky blue, yellow, black.
pub const OKABE_ITO: [(u8, u8, u8); 8] = [
    (0, 114, 178),   // blue
    (213, 94, 0),    // vermillion
    (0, 158, 115),   // bluish green
    (204, 121, 167), // reddish purple
    (230, 159, 0),   // orange
    (86, 180, 233),  // sky blue
    (240, 228, 66),  // yellow
    (0, 0, 0),       // black
];

/// How many colours [`color`] cycles through (black is skipped on white).
pub const SERIES_COLORS: usize = 7;

/// The colour of palette index `i` (cycles through the seven non-black colours).
pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = OKABE_ITO[i % SERIES_COLORS];
    RGBColor(r, g, b)
}

/// A marker shape; index `i` gets [`marker`]`(i)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Cross,
    Plus,
}

const MARKERS: [Marker; 7] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Cross,
    Marker::Plus,
];

/// The marker shape of palette index `i`. It cycles with a period of 7 like
/// the colours; a colour and shape always travel together.
pub fn marker(i: usize) -> Marker {
    MARKERS[i % MARKERS.len()]
}

impl Marker {
    /// The outline of a filled marker of half-size `r` around (0, 0), in pixels,
    /// or `None` for the stroked ones ([`Marker::Cross`], [`Marker::Plus`]).
    pub fn polygon(self, r: i32) -> Option<Vec<(i32, i32)>> {
        let t = r + r / 4; // triangles look smaller than squares of the same size
        match self {
            Marker::Circle | Marker::Cross | Marker::Plus => None,
            Marker::Square => Some(vec![(-r, -r), (r, -r), (r, r), (-r, r)]),
            Marker::TriangleUp => Some(vec![(0, -t), (t, t - t / 4), (-t, t - t / 4)]),
            Marker::TriangleDown => Some(vec![(0, t), (t, -t + t / 4), (-t, -t + t / 4)]),
            Marker::Diamond => Some(vec![(0, -t), (t, 0), (0, t), (-t, 0)]),
        }
    }

    /// The strokes of a stroked marker of half-size `r` around (0, 0), in pixels.
    pub fn strokes(self, r: i32) -> Vec<[(i32, i32); 2]> {
        match self {
            Marker::Cross => vec![[(-r, -r), (r, r)], [(-r, r), (r, -r)]],
            Marker::Plus => vec![[(-r, 0), (r, 0)], [(0, -r), (0, r)]],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_cycle_and_skip_black() {
        assert_eq!(color(0), color(SERIES_COLORS));
        for i in 0..20 {
            assert_ne!(color(i), RGBColor(0, 0, 0));
        }
        assert_eq!(OKABE_ITO[7], (0, 0, 0));
    }
}
