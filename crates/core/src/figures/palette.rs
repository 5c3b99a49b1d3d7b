//! Series colours, marker shapes and dash patterns, stable per series index.
//!
//! Twelve colours, twelve marker shapes and twelve dash patterns travel
//! together: index `i` gets colour, marker and dash `i mod 12`, so twelve runs
//! are told apart by colour, and in greyscale (or by a colour-blind reader)
//! by shape and dash. The first three colours are Okabe & Ito's ("Color
//! Universal Design", 2008) blue, vermillion and bluish green; their reddish
//! purple, orange, sky blue and yellow are darkened or replaced (teal, olive)
//! because they fall below 3:1 contrast on white; five more hues (violet,
//! wine, brown, magenta, dark green) bring the set to twelve, chosen so that
//! no two are closer than ΔE*ab ≈ 24 (CIELAB distance).
//!
//! Every colour has a WCAG contrast of at least 3:1 (graphical objects,
//! WCAG 2.1 SC 1.4.11) against the light theme's figure background (white)
//! and against the dark theme's, where the page shows the same drawing through
//! `filter: invert(0.9) hue-rotate(180deg)` (`style/main.css`); the tests
//! below compute both.

use plotters::style::RGBColor;

/// The series colours, in the order runs receive them.
pub const COLORS: [(u8, u8, u8); 12] = [
    (0x00, 0x72, 0xB2), // blue (Okabe–Ito)
    (0xD5, 0x5E, 0x00), // vermillion (Okabe–Ito)
    (0x00, 0x9E, 0x73), // bluish green (Okabe–Ito)
    (0xC0, 0x64, 0x9B), // reddish purple (Okabe–Ito, darkened)
    (0xA8, 0x6B, 0x00), // dark orange (Okabe–Ito's orange, darkened)
    (0x00, 0x73, 0x7A), // teal
    (0x7A, 0x7A, 0x00), // olive (in place of yellow)
    (0x5E, 0x3C, 0x99), // violet
    (0x88, 0x22, 0x55), // wine
    (0x8C, 0x56, 0x4B), // brown
    (0xD6, 0x26, 0x7A), // magenta
    (0x3B, 0x7D, 0x23), // dark green
];

/// How many colours [`color`] cycles through; markers and dashes cycle with it.
pub const SERIES_COLORS: usize = COLORS.len();

/// The colour of palette index `i` (cycles after [`SERIES_COLORS`]).
pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = COLORS[i % SERIES_COLORS];
    RGBColor(r, g, b)
}

/// A marker shape; index `i` gets [`marker`]`(i)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Marker {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Cross,
    Plus,
    Star,
    TriangleLeft,
    Pentagon,
    TriangleRight,
    /// A hollow circle.
    Ring,
}

const MARKERS: [Marker; SERIES_COLORS] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Cross,
    Marker::Plus,
    Marker::Star,
    Marker::TriangleLeft,
    Marker::Pentagon,
    Marker::TriangleRight,
    Marker::Ring,
];

/// The marker shape of palette index `i`; a colour and shape always travel together.
pub fn marker(i: usize) -> Marker {
    MARKERS[i % MARKERS.len()]
}

/// Dash patterns as alternating on/off lengths in pixels; empty = solid.
/// Each period is at most 22 px, so a 26 px legend swatch shows its pattern.
const DASHES: [&[u32]; SERIES_COLORS] = [
    &[],
    &[8, 4],
    &[2, 3],
    &[8, 3, 2, 3],
    &[4, 4],
    &[12, 4],
    &[8, 3, 2, 3, 2, 3],
    &[2, 6],
    &[12, 3, 2, 3],
    &[6, 2],
    &[4, 2, 1, 2],
    &[10, 3, 4, 3],
];

/// The dash pattern of palette index `i` (on/off pixel lengths; empty = solid).
pub fn dash(i: usize) -> &'static [u32] {
    DASHES[i % DASHES.len()]
}

impl Marker {
    /// The outline of a filled marker of half-size `r` around (0, 0), in pixels,
    /// or `None` for the stroked ones ([`Marker::Cross`], [`Marker::Plus`],
    /// [`Marker::Ring`]) and the circle.
    pub fn polygon(self, r: i32) -> Option<Vec<(i32, i32)>> {
        let t = r + r / 4; // triangles look smaller than squares of the same size
        match self {
            Marker::Circle | Marker::Cross | Marker::Plus | Marker::Ring => None,
            Marker::Square => Some(vec![(-r, -r), (r, -r), (r, r), (-r, r)]),
            Marker::TriangleUp => Some(vec![(0, -t), (t, t - t / 4), (-t, t - t / 4)]),
            Marker::TriangleDown => Some(vec![(0, t), (t, -t + t / 4), (-t, -t + t / 4)]),
            Marker::TriangleLeft => Some(vec![(-t, 0), (t - t / 4, -t), (t - t / 4, t)]),
            Marker::TriangleRight => Some(vec![(t, 0), (-t + t / 4, -t), (-t + t / 4, t)]),
            Marker::Diamond => Some(vec![(0, -t), (t, 0), (0, t), (-t, 0)]),
            Marker::Pentagon => Some(regular(5, t as f64, 0.0)),
            Marker::Star => {
                // Alternating outer and inner points of a five-pointed star.
                let (outer, inner) = (
                    regular(5, t as f64 * 1.15, 0.0),
                    regular(5, t as f64 * 0.5, 36.0),
                );
                Some(
                    outer
                        .into_iter()
                        .zip(inner)
                        .flat_map(|(a, b)| [a, b])
                        .collect(),
                )
            }
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

/// The corners of a regular `n`-gon of radius `r`, the first at the top
/// turned by `turn_deg` clockwise, in pixels (y down).
fn regular(n: usize, r: f64, turn_deg: f64) -> Vec<(i32, i32)> {
    (0..n)
        .map(|k| {
            let a = (turn_deg + 360.0 * k as f64 / n as f64).to_radians();
            ((r * a.sin()).round() as i32, (-r * a.cos()).round() as i32)
        })
        .collect()
}

/// WCAG 2.1 relative luminance of an sRGB colour.
pub fn relative_luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let lin = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// WCAG 2.1 contrast ratio (1 to 21) between two sRGB colours.
pub fn contrast_ratio(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let (la, lb) = (relative_luminance(a), relative_luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The colour the dark theme shows for `c` drawn on the canvas: the page's
/// CSS `filter: invert(0.9) hue-rotate(180deg)` (Filter Effects Level 1,
/// applied to sRGB values, clamped after each function).
pub fn dark_theme_shown((r, g, b): (u8, u8, u8)) -> (u8, u8, u8) {
    let inv = |c: u8| 0.9 - 0.8 * (c as f64 / 255.0);
    let v = [inv(r), inv(g), inv(b)];
    // hue-rotate(θ) at θ = 180°: cos θ = −1, sin θ = 0 in the spec's matrix.
    let m = [
        [0.213 - 0.787, 0.715 + 0.715, 0.072 + 0.072],
        [0.213 + 0.213, 0.715 - 0.285, 0.072 + 0.072],
        [0.213 + 0.213, 0.715 + 0.715, 0.072 - 0.928],
    ];
    let ch = |row: [f64; 3]| {
        let s: f64 = row.iter().zip(v).map(|(a, b)| a * b).sum();
        (s.clamp(0.0, 1.0) * 255.0).round() as u8
    };
    (ch(m[0]), ch(m[1]), ch(m[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: (u8, u8, u8) = (255, 255, 255);

    #[test]
    fn colors_cycle_after_twelve_with_their_marker_and_dash() {
        assert_eq!(SERIES_COLORS, 12);
        assert_eq!(color(0), color(SERIES_COLORS));
        assert_eq!(marker(3), marker(3 + SERIES_COLORS));
        let colors: std::collections::HashSet<_> = COLORS.iter().collect();
        let markers: std::collections::HashSet<_> = MARKERS.iter().collect();
        let dashes: std::collections::HashSet<_> = DASHES.iter().collect();
        assert_eq!((colors.len(), markers.len(), dashes.len()), (12, 12, 12));
        // A pattern's whole period fits the legend swatch (26 px).
        assert!(DASHES.iter().all(|d| d.iter().sum::<u32>() <= 22));
    }

    /// WCAG contrast of every colour against both backgrounds.
    #[test]
    fn every_color_has_3_to_1_contrast_on_light_and_dark() {
        // Checked against WCAG's own numbers first: black on white is 21:1,
        // and #767676 on white is the well-known 4.54:1.
        assert!((contrast_ratio((0, 0, 0), WHITE) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio((0x76, 0x76, 0x76), WHITE) - 4.54).abs() < 0.01);
        let dark_bg = dark_theme_shown(WHITE);
        // White shows as 10 % grey: 0.1 · 255 = 25.5.
        assert!(dark_bg.0 == dark_bg.1 && dark_bg.1 == dark_bg.2 && (25..=26).contains(&dark_bg.0));
        for (i, &c) in COLORS.iter().enumerate() {
            let light = contrast_ratio(c, WHITE);
            let dark = contrast_ratio(dark_theme_shown(c), dark_bg);
            assert!(light >= 3.0, "colour {i} {c:?}: {light:.2}:1 on white");
            assert!(
                dark >= 3.0,
                "colour {i} {c:?}: {dark:.2}:1 in the dark theme"
            );
        }
    }

    /// The dark theme modelled above is the one the page's stylesheet applies.
    #[test]
    fn dark_theme_filter_is_the_one_modelled() {
        let css = include_str!("../../../../style/main.css");
        let rules = css
            .matches("filter: invert(0.9) hue-rotate(180deg)")
            .count();
        let all = css.matches("filter:").count();
        assert!(
            rules >= 1 && rules == all,
            "style/main.css changed its canvas filter: update dark_theme_shown"
        );
    }

    /// Colours stay apart: no two closer than ΔE*ab 20 (CIELAB, D65).
    #[test]
    fn colors_are_apart() {
        fn lab(c: (u8, u8, u8)) -> [f64; 3] {
            let lin = |c: u8| {
                let c = c as f64 / 255.0;
                if c <= 0.04045 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            };
            let (r, g, b) = (lin(c.0), lin(c.1), lin(c.2));
            let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
            let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
            let f = |t: f64| {
                if t > 0.008856 {
                    t.cbrt()
                } else {
                    7.787 * t + 16.0 / 116.0
                }
            };
            [
                116.0 * f(y) - 16.0,
                500.0 * (f(x) - f(y)),
                200.0 * (f(y) - f(z)),
            ]
        }
        for (i, &ci) in COLORS.iter().enumerate() {
            for (j, &cj) in COLORS.iter().enumerate().skip(i + 1) {
                let (a, b) = (lab(ci), lab(cj));
                let d =
                    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
                assert!(d >= 20.0, "colours {i} and {j} are only ΔE {d:.1} apart");
            }
        }
    }
}
