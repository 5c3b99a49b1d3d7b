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
}

/// How an axis maps values to positions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// Base-10 logarithmic; non-positive values cannot be drawn and are dropped
    /// (the drawn caption says how many).
    Log,
}

/// One axis: its label (with unit), scale and optional fixed range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Axis {
    /// Label with unit, e.g. "training tokens".
    pub label: String,
    pub scale: Scale,
    /// `None` = fit the data.
    #[serde(with = "json_f64::opt_pair", default)]
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
    #[serde(with = "json_f64::rows")]
    pub points: Vec<[f64; 2]>,
    pub style: Style,
    /// Palette index ([`super::palette::color`]); stable per run across figures.
    pub color: usize,
    /// `[x, lo, hi]`: min–max or CI, drawn as a translucent band.
    #[serde(with = "json_f64::opt_rows", default)]
    pub band: Option<Vec<[f64; 3]>>,
    /// `[x, lo, hi]`: drawn as vertical error bars.
    #[serde(with = "json_f64::opt_rows", default)]
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
        let (lx, ly) = (self.x.scale == Scale::Log, self.y.scale == Scale::Log);
        self.series.iter().filter(|s| !s.style.is_span()).any(|s| {
            s.points.iter().any(|p| {
                p[0].is_finite() && p[1].is_finite() && !(lx && p[0] <= 0.0) && !(ly && p[1] <= 0.0)
            })
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

/// JSON has no NaN or ±∞, and serde_json would write them as `null` (which
/// then does not read back as a number). A figure may hold them — a missing
/// log value, an infinite condition number — so they are written as the
/// strings `"NaN"`, `"inf"` and `"-inf"`; finite values stay plain numbers.
mod json_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Json {
        Num(f64),
        Tag(String),
    }

    fn write(v: f64) -> Json {
        match v {
            v if v.is_finite() => Json::Num(v),
            v if v.is_nan() => Json::Tag("NaN".into()),
            v if v > 0.0 => Json::Tag("inf".into()),
            _ => Json::Tag("-inf".into()),
        }
    }

    fn read<E: serde::de::Error>(j: Json) -> Result<f64, E> {
        match j {
            Json::Num(v) => Ok(v),
            Json::Tag(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("`{other}` is not a number"))),
            },
        }
    }

    fn read_row<E: serde::de::Error, const N: usize>(row: Vec<Json>) -> Result<[f64; N], E> {
        let n = row.len();
        let values = row.into_iter().map(read).collect::<Result<Vec<f64>, E>>()?;
        values
            .try_into()
            .map_err(|_| E::custom(format!("a row of {n} values where {N} were expected")))
    }

    pub mod rows {
        use super::*;
        pub fn serialize<S: Serializer, const N: usize>(
            v: &[[f64; N]],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(
                v.iter()
                    .map(|r| r.iter().map(|&x| write(x)).collect::<Vec<_>>()),
            )
        }
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<Vec<[f64; N]>, D::Error> {
            Vec::<Vec<Json>>::deserialize(d)?
                .into_iter()
                .map(read_row)
                .collect()
        }
    }

    pub mod opt_rows {
        use super::*;
        pub fn serialize<S: Serializer, const N: usize>(
            v: &Option<Vec<[f64; N]>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(rows) => s.serialize_some(
                    &rows
                        .iter()
                        .map(|r| r.iter().map(|&x| write(x)).collect::<Vec<_>>())
                        .collect::<Vec<_>>(),
                ),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<Option<Vec<[f64; N]>>, D::Error> {
            Option::<Vec<Vec<Json>>>::deserialize(d)?
                .map(|rows| rows.into_iter().map(read_row).collect())
                .transpose()
        }
    }

    pub mod opt_pair {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<(f64, f64)>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some((a, b)) => s.serialize_some(&(write(*a), write(*b))),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<(f64, f64)>, D::Error> {
            match Option::<(Json, Json)>::deserialize(d)? {
                Some((a, b)) => Ok(Some((read(a)?, read(b)?))),
                None => Ok(None),
            }
        }
    }
}
