//! The serialisable description of a figure: data plus view.
//!
//! A [`FigureSpec`] is what the analysis produces, what [`super::draw`] draws on
//! any plotters backend, and what a share link carries (JSON, compressed, in the
//! URL fragment), so everything here is plain data with serde derives.

use serde::{Deserialize, Serialize};

/// Which figure of the study a spec is (see `shared/DESIGN.md`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FigureKind {
    /// A metric (PR by default) vs training tokens, one line per run.
    Trajectory,
    /// σ_i/σ_1 vs i per run.
    Waterfall,
    /// Grouped per-layer bars with intervals (data complexity).
    LayerBars,
    /// Held-out loss vs % of key dimensions pruned, with min–max bands.
    Surgery,
    /// γ vs SVD importance scatter.
    Scatter,
    /// Loss curves of many runs (min/max-preserving downsampled).
    LossCurve,
    /// Empirical spectral density of a weight matrix (log-log) with its
    /// fitted power-law tail.
    Esd,
}

impl FigureKind {
    /// Whether the reader may switch the x and the y axis to a log scale.
    /// Not where an axis is categories (layer bars' x) or holds 0 as its
    /// natural start (surgery's "% pruned").
    pub fn log_allowed(self) -> (bool, bool) {
        match self {
            FigureKind::LayerBars | FigureKind::Surgery => (false, true),
            _ => (true, true),
        }
    }
}

/// How the reader chose to look at a figure: log axes and a zoomed range.
/// `None` keeps what the figure itself chose. Applied by
/// [`FigureSpec::with_view`] before drawing, exporting or linking, so the
/// canvas, SVG/PNG/CSV exports and share links all show the same view.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct View {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_x: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_y: Option<bool>,
    /// Zoomed x range (data units, lo < hi).
    #[serde(
        with = "crate::json_f64::opt_pair",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub x_range: Option<(f64, f64)>,
    /// Zoomed y range (data units, lo < hi).
    #[serde(
        with = "crate::json_f64::opt_pair",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub y_range: Option<(f64, f64)>,
}

impl View {
    /// Whether the view changes nothing.
    pub fn is_default(&self) -> bool {
        *self == View::default()
    }

    /// Whether a range is zoomed.
    pub fn is_zoomed(&self) -> bool {
        self.x_range.is_some() || self.y_range.is_some()
    }
}

/// How an axis maps values to positions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// Base-10 logarithmic; non-positive values cannot be drawn and are dropped
    /// (the drawn caption says how many).
    Log,
    /// Linear in Unix seconds, ticked and labelled as UTC dates and times
    /// (a wall-clock axis). Never switched to log.
    UnixTime,
}

/// One axis: its label (with unit), scale and optional fixed range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Axis {
    /// Label with unit, e.g. "training tokens".
    pub label: String,
    pub scale: Scale,
    /// `None` = fit the data.
    #[serde(with = "crate::json_f64::opt_pair", default)]
    pub range: Option<(f64, f64)>,
}

impl Axis {
    /// A linear axis that fits the data.
    pub fn linear(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            scale: Scale::Linear,
            range: None,
        }
    }

    /// A log axis that fits the data.
    pub fn log(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            scale: Scale::Log,
            range: None,
        }
    }
}

/// How a series is drawn.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Style {
    #[default]
    Line,
    /// A line with a marker at every data point (checkpoints).
    LineMarkers,
    Markers,
    /// Grouped bars: one bar per x category, offset per series.
    Bars,
    /// Shaded horizontal ranges: each point is `[y_lo, y_hi]`, shaded across
    /// the whole plot width (a non-finite end is open: it reaches the plot's
    /// edge). Regimes, thresholds. Not data: it does not fit the axes.
    HSpan,
    /// Shaded vertical ranges: each point is `[x_lo, x_hi]`, shaded over the
    /// whole plot height (flagged intervals, transitions). Not data.
    VSpan,
}

impl Style {
    /// Whether the series is a shaded range ([`Style::HSpan`], [`Style::VSpan`]) rather than data.
    pub fn is_span(self) -> bool {
        matches!(self, Style::HSpan | Style::VSpan)
    }
}

/// One named series of a figure.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct SeriesSpec {
    pub name: String,
    /// `[x, y]` pairs, in x order for lines.
    #[serde(with = "crate::json_f64::rows")]
    pub points: Vec<[f64; 2]>,
    pub style: Style,
    /// Palette index ([`super::palette::color`]); stable per run across figures.
    pub color: usize,
    /// `[x, lo, hi]`: min–max or CI, drawn as a translucent band.
    #[serde(with = "crate::json_f64::opt_rows", default)]
    pub band: Option<Vec<[f64; 3]>>,
    /// `[x, lo, hi]`: drawn as vertical error bars.
    #[serde(with = "crate::json_f64::opt_rows", default)]
    pub error_bars: Option<Vec<[f64; 3]>>,
    /// Raw points behind a smoothed line: drawn pale and thin.
    pub faint: bool,
    /// How many points the series had before downsampling.
    pub points_total: Option<usize>,
}

impl SeriesSpec {
    /// A series with the given name, points, style and colour, and nothing else.
    pub fn new(name: impl Into<String>, points: Vec<[f64; 2]>, style: Style, color: usize) -> Self {
        Self {
            name: name.into(),
            points,
            style,
            color,
            ..Self::default()
        }
    }
}

/// A complete figure: what it shows, how, and where the numbers came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FigureSpec {
    pub kind: FigureKind,
    pub title: String,
    /// Says metric variant, aggregation, run names, eval batch, points drawn.
    pub caption: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<SeriesSpec>,
    /// File names the numbers came from.
    pub sources: Vec<String>,
}

/// Points a figure cannot draw, counted over all series, bands and error bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Values that are NaN or ±∞.
    pub non_finite: usize,
    /// Finite values ≤ 0 on a log axis.
    pub non_positive_on_log: usize,
}

impl FigureSpec {
    /// This figure as `view` shows it: the log scales the kind allows
    /// ([`FigureKind::log_allowed`]) and the zoomed ranges. A zoom range that
    /// cannot be drawn on the resulting scale (≤ 0 on a log axis, not
    /// finite, empty, beyond the decades an f64 holds) is ignored, so the
    /// axes stay bounded whatever a link or a drag asks for; the caption then
    /// says nothing about it, because nothing was changed.
    pub fn with_view(&self, view: &View) -> FigureSpec {
        let mut spec = self.clone();
        let (allow_x, allow_y) = self.kind.log_allowed();
        let scale = |log: bool| if log { Scale::Log } else { Scale::Linear };
        if let (Some(log), true) = (view.log_x, allow_x && self.x.scale != Scale::UnixTime) {
            spec.x.scale = scale(log);
        }
        if let (Some(log), true) = (view.log_y, allow_y && self.y.scale != Scale::UnixTime) {
            spec.y.scale = scale(log);
        }
        for (axis, own, range) in [
            (&mut spec.x, &self.x, view.x_range),
            (&mut spec.y, &self.y, view.y_range),
        ] {
            let log = axis.scale == Scale::Log;
            // The figure's own fixed range may not suit the scale the reader chose
            // (0..1 on a log axis): then the axis fits the data.
            if let (Some((lo, hi)), true) = (axis.range, axis.scale != own.scale) {
                if !super::draw::usable_range(lo, hi, log) {
                    axis.range = None;
                }
            }
            if let Some((lo, hi)) = range {
                if super::draw::usable_range(lo, hi, log) {
                    axis.range = Some((lo, hi));
                }
            }
        }
        let zoomed =
            |a: &Axis, b: &Axis, r: Option<(f64, f64)>| r.is_some() && a.range == r && b.range != r;
        if zoomed(&spec.x, &self.x, view.x_range) || zoomed(&spec.y, &self.y, view.y_range) {
            let note = "Zoomed in: points outside the shown ranges are not drawn.";
            spec.caption = format!("{} {note}", spec.caption.trim_end());
        }
        spec
    }

    /// Counts the values that [`super::draw::draw_figure`] skips.
    pub fn dropped(&self) -> Dropped {
        let mut d = Dropped::default();
        let (lx, ly) = (self.x.scale == Scale::Log, self.y.scale == Scale::Log);
        let mut check = |x: f64, ys: &[f64]| {
            if !x.is_finite() || ys.iter().any(|y| !y.is_finite()) {
                d.non_finite += 1;
            } else if (lx && x <= 0.0) || (ly && ys.iter().any(|&y| y <= 0.0)) {
                d.non_positive_on_log += 1;
            }
        };
        for s in self.series.iter().filter(|s| !s.style.is_span()) {
            for p in &s.points {
                check(p[0], &p[1..]);
            }
            for b in s.band.iter().chain(s.error_bars.iter()).flatten() {
                check(b[0], &b[1..]);
            }
        }
        d
    }

    /// The caption as drawn: [`Self::caption`] plus a note on dropped points, if any.
    pub fn drawn_caption(&self) -> String {
        let d = self.dropped();
        let mut notes = Vec::new();
        if d.non_positive_on_log > 0 {
            notes.push(format!(
                "{} point(s) with values ≤ 0 omitted on the log axis",
                d.non_positive_on_log
            ));
        }
        if d.non_finite > 0 {
            notes.push(format!(
                "{} non-finite point(s) (NaN/∞) skipped",
                d.non_finite
            ));
        }
        for (name, axis) in [("x", &self.x), ("y", &self.y)] {
            let Some((lo, hi)) = axis.range else { continue };
            if !super::draw::usable_range(lo, hi, axis.scale == Scale::Log) {
                let (lo, hi) = (short_number(lo), short_number(hi));
                notes.push(format!("the fixed {name} range [{lo}, {hi}] cannot be drawn, so {name} is fitted to the data"));
            }
        }
        let mut caption = self.caption.trim().to_owned();
        if !notes.is_empty() {
            if !caption.is_empty() {
                caption.push_str(if caption.ends_with('.') { " " } else { ". " });
            }
            caption.push_str(&notes.join("; "));
            caption.push('.');
        }
        if !self.sources.is_empty() {
            if !caption.is_empty() {
                caption.push(' ');
            }
            caption.push_str("Sources: ");
            caption.push_str(&summarise_sources(&self.sources));
            caption.push('.');
        }
        caption
    }

    /// Whether any series has at least one drawable point.
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .filter(|s| !s.style.is_span())
            .any(|s| self.draws(s))
    }

    /// Whether the data series `series` has at least one point these axes can draw (finite, and
    /// > 0 on a log axis): the legend lists only such series.
    pub fn draws(&self, series: &SeriesSpec) -> bool {
        let (lx, ly) = (self.x.scale == Scale::Log, self.y.scale == Scale::Log);
        series.points.iter().any(|p| {
            p[0].is_finite() && p[1].is_finite() && !(lx && p[0] <= 0.0) && !(ly && p[1] <= 0.0)
        })
    }
}

/// A number as a caption shows it: `1.7e308`, not 309 digits.
fn short_number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// The sources as a caption can show them: all of a few; of many, the count,
/// the first and last two, so a figure of 36 checkpoints keeps a short caption
/// (the spec itself keeps every name, for links and exports).
fn summarise_sources(sources: &[String]) -> String {
    const SHOWN_IN_FULL: usize = 4;
    if sources.len() <= SHOWN_IN_FULL {
        return sources.join(", ");
    }
    let n = sources.len();
    format!(
        "{n} files: {}, {}, … {}, {}",
        sources[0],
        sources[1],
        sources[n - 2],
        sources[n - 1]
    )
}

#[cfg(test)]
mod source_caption_tests {
    use super::summarise_sources;

    #[test]
    fn many_sources_are_summarised_few_are_listed() {
        let names: Vec<String> = (0..36).map(|i| format!("runs/A{i}.safetensors")).collect();
        assert_eq!(
            summarise_sources(&names[..2]),
            "runs/A0.safetensors, runs/A1.safetensors"
        );
        let s = summarise_sources(&names);
        assert!(
            s.starts_with("36 files: runs/A0.safetensors, runs/A1.safetensors, … runs/A34"),
            "{s}"
        );
        assert!(s.ends_with("runs/A35.safetensors"), "{s}");
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    fn spec(kind: FigureKind) -> FigureSpec {
        FigureSpec {
            kind,
            title: "t".into(),
            caption: "c.".into(),
            x: Axis::linear("x"),
            y: Axis {
                range: Some((0.0, 1.0)),
                ..Axis::linear("y")
            },
            series: vec![SeriesSpec::new(
                "s",
                vec![[0.0, 0.1], [1.0, 0.5], [10.0, 0.9]],
                Style::Line,
                0,
            )],
            sources: Vec::new(),
        }
    }

    #[test]
    fn default_view_changes_nothing() {
        let s = spec(FigureKind::Trajectory);
        assert_eq!(s.with_view(&View::default()), s);
    }

    #[test]
    fn log_toggles_follow_what_the_kind_allows() {
        let log = View {
            log_x: Some(true),
            log_y: Some(true),
            ..View::default()
        };
        let t = spec(FigureKind::Trajectory).with_view(&log);
        assert_eq!((t.x.scale, t.y.scale), (Scale::Log, Scale::Log));
        // The figure's own 0..1 y range cannot be drawn on a log axis: y fits the data instead.
        assert_eq!(t.y.range, None);
        assert!(!t.drawn_caption().contains("cannot be drawn"));
        let bars = spec(FigureKind::LayerBars).with_view(&log);
        assert_eq!((bars.x.scale, bars.y.scale), (Scale::Linear, Scale::Log));
        let surgery = spec(FigureKind::Surgery).with_view(&log);
        assert_eq!(surgery.x.scale, Scale::Linear);
        // Switching back to linear keeps the figure's own range.
        let lin = View {
            log_y: Some(false),
            ..View::default()
        };
        assert_eq!(
            spec(FigureKind::Waterfall).with_view(&lin).y.range,
            Some((0.0, 1.0))
        );
    }

    #[test]
    fn zoom_sets_ranges_and_says_so_but_only_bounded_ones() {
        let z = View {
            x_range: Some((1.0, 5.0)),
            y_range: Some((0.2, 0.6)),
            ..View::default()
        };
        let s = spec(FigureKind::Trajectory).with_view(&z);
        assert_eq!((s.x.range, s.y.range), (Some((1.0, 5.0)), Some((0.2, 0.6))));
        assert!(
            s.caption
                .ends_with("Zoomed in: points outside the shown ranges are not drawn."),
            "{}",
            s.caption
        );
        for bad in [
            (5.0, 1.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
            (-f64::MAX, f64::MAX),
            (2.0, 2.0),
        ] {
            let v = View {
                x_range: Some(bad),
                ..View::default()
            };
            let s2 = spec(FigureKind::Trajectory).with_view(&v);
            assert_eq!(s2.x.range, None, "{bad:?}");
            assert_eq!(s2.caption, "c.");
        }
        // A range with 0 in it is fine on a linear axis, not on a log one.
        let v = View {
            log_x: Some(true),
            x_range: Some((0.0, 5.0)),
            ..View::default()
        };
        assert_eq!(spec(FigureKind::Trajectory).with_view(&v).x.range, None);
        let v = View {
            log_x: Some(true),
            x_range: Some((1e-300, 1e300)),
            ..View::default()
        };
        assert_eq!(
            spec(FigureKind::Trajectory).with_view(&v).x.range,
            Some((1e-300, 1e300))
        );
    }

    #[test]
    fn views_travel_as_json() {
        let v = View {
            log_x: Some(true),
            log_y: None,
            x_range: Some((1.0, 2.5)),
            y_range: None,
        };
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"log_x":true,"x_range":[1.0,2.5]}"#);
        assert_eq!(serde_json::from_str::<View>(&text).unwrap(), v);
        assert_eq!(serde_json::from_str::<View>("{}").unwrap(), View::default());
    }
}
