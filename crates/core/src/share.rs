//! Figure links: a [`FigureSpec`] with its provenance, carried in the URL
//! fragment so a collaborator sees the figure with no server and no files.
//!
//! Encoding: JSON → deflate (raw, level 9) → base64url without padding, behind
//! a version tag: `#figure=v1.<payload>`. Values are rounded to
//! [`SIGNIFICANT_DIGITS`] significant digits first: a figure a few thousand
//! pixels wide cannot show a relative difference of 1e-5, and short decimals
//! deflate far better than full f64s.
//!
//! Decoding is defensive, since a link is text anyone can edit: size limits
//! before and after inflating, a clear message for every way it can be wrong,
//! and nothing in it is ever interpreted as markup (names are shown as text).

use crate::figures::spec::FigureSpec;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The link format this build writes and reads.
pub const LINK_VERSION: u32 = 1;
/// The fragment key: `#figure=v1.…`.
pub const FRAGMENT_KEY: &str = "figure=";
/// Longest link payload accepted (characters of the fragment).
pub const MAX_LINK_CHARS: usize = 2 * 1024 * 1024;
/// Most bytes a payload may inflate to (a deflate bomb stops here).
pub const MAX_INFLATED_BYTES: usize = 16 * 1024 * 1024;
/// Links longer than this are not offered: some browsers, chat tools and
/// mail clients cut URLs beyond ~8 KB. The session file carries more.
pub const RECOMMENDED_MAX_LINK_CHARS: usize = 8 * 1024;
/// Precision kept in links.
pub const SIGNIFICANT_DIGITS: i32 = 5;
/// Most series a link may hold. The page's figures have at most a few
/// hundred (a run per line, a faint raw line behind each smoothed one); a
/// link of 200 000 faint series (48 KB) froze the page for a minute.
pub const MAX_LINK_SERIES: usize = 2_000;
/// Most points (plus band and error-bar rows) a link may hold over all its
/// series: loss curves are downsampled to ≤ 2 000 points a series.
pub const MAX_LINK_POINTS: usize = 250_000;

/// A file a figure's numbers came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SourceFile {
    /// As dropped (relative path).
    pub name: String,
    pub size: u64,
    /// A content digest, when the page computed one: `sha256/1MiB:<16 hex>`,
    /// SHA-256 of the file's first MiB (all of a log; a checkpoint's header
    /// and first tensors), which with the size tells files apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Where the page read it, for a file opened from a URL (`#src=`): a
    /// collaborator's page can open it again from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a figure link carries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SharedFigure {
    /// The link format ([`LINK_VERSION`]).
    pub format: u32,
    /// The rankscope version that made the link.
    pub app_version: String,
    pub spec: FigureSpec,
    #[serde(default)]
    pub files: Vec<SourceFile>,
}

impl SharedFigure {
    pub fn new(spec: FigureSpec, files: Vec<SourceFile>) -> Self {
        Self {
            format: LINK_VERSION,
            app_version: env!("CARGO_PKG_VERSION").to_string(),
            spec,
            files,
        }
    }
}

/// Why a link could not be opened. Messages are for the reader of the page.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LinkError {
    #[error("this is not a rankscope figure link (it has no `#figure=` part)")]
    NotALink,
    #[error("the link is {0} characters long; links over {MAX_LINK_CHARS} are refused")]
    TooLong(usize),
    #[error("the link was made by a newer rankscope (link format v{0}); this page reads v{LINK_VERSION} — open it with an up-to-date rankscope")]
    FutureVersion(u32),
    #[error("the link's version tag is not readable (expected `v{LINK_VERSION}.`); it may have been cut or edited")]
    BadVersion,
    #[error(
        "the link's data is not valid base64url at character {0}; it may have been cut or edited"
    )]
    BadBase64(usize),
    #[error("the link is cut short: its data ends early; copy the whole link again")]
    Truncated,
    #[error("the link's data does not decompress ({0}); it may have been edited")]
    BadDeflate(String),
    #[error("the link's data would decompress to more than {MAX_INFLATED_BYTES} bytes; refused")]
    TooBig,
    #[error("the link's figure is not readable: {0}")]
    BadFigure(String),
    #[error("the link's figure is refused: {0}; it may have been edited")]
    Unreasonable(String),
}

/// Rounds to [`SIGNIFICANT_DIGITS`] significant digits (non-finite values pass through).
pub fn quantise(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = SIGNIFICANT_DIGITS - 1 - magnitude;
    // Multiply or divide by an exact power of ten so 0.1234567 → 0.12346 exactly as printed.
    let rounded = if scale >= 0 {
        let p = 10f64.powi(scale);
        (x * p).round() / p
    } else {
        let p = 10f64.powi(-scale);
        (x / p).round() * p
    };
    // Shortest decimal of the rounded value; parsing it back is exact.
    format!("{rounded:.*e}", (SIGNIFICANT_DIGITS - 1) as usize)
        .parse()
        .unwrap_or(rounded)
}

/// The spec with every number rounded as a link keeps it.
pub fn quantise_spec(spec: &FigureSpec) -> FigureSpec {
    let mut q = spec.clone();
    let round = |v: &mut f64| *v = quantise(*v);
    for s in &mut q.series {
        s.points.iter_mut().flatten().for_each(round);
        s.band.iter_mut().flatten().flatten().for_each(round);
        s.error_bars.iter_mut().flatten().flatten().for_each(round);
    }
    for axis in [&mut q.x, &mut q.y] {
        if let Some((a, b)) = axis.range.as_mut() {
            *a = quantise(*a);
            *b = quantise(*b);
        }
    }
    q
}

/// The URL fragment (without `#`) for a figure.
pub fn encode_link(figure: &SharedFigure) -> String {
    let mut figure = figure.clone();
    figure.spec = quantise_spec(&figure.spec);
    // Serialising plain data with string keys cannot fail.
    let json = serde_json::to_vec(&figure).unwrap_or_default();
    let packed = miniz_oxide::deflate::compress_to_vec(&json, 9);
    format!(
        "{FRAGMENT_KEY}v{LINK_VERSION}.{}",
        URL_SAFE_NO_PAD.encode(packed)
    )
}

/// Reads a figure from a URL fragment (with or without the leading `#`, or a
/// whole URL).
pub fn decode_link(text: &str) -> Result<SharedFigure, LinkError> {
    if text.len() > MAX_LINK_CHARS {
        return Err(LinkError::TooLong(text.len()));
    }
    let start = text.find(FRAGMENT_KEY).ok_or(LinkError::NotALink)?;
    let rest = &text[start + FRAGMENT_KEY.len()..];
    // Anything after the payload (another fragment parameter) is ignored.
    let rest = rest.split('&').next().unwrap_or_default();
    let (tag, payload) = rest.split_once('.').ok_or(LinkError::BadVersion)?;
    let version: u32 = tag
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .ok_or(LinkError::BadVersion)?;
    if version > LINK_VERSION {
        return Err(LinkError::FutureVersion(version));
    }
    if version != LINK_VERSION {
        return Err(LinkError::BadVersion);
    }
    let packed = URL_SAFE_NO_PAD
        .decode(payload.trim_end())
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(at, _) => LinkError::BadBase64(at),
            base64::DecodeError::InvalidLength(_)
            | base64::DecodeError::InvalidLastSymbol(_, _) => LinkError::Truncated,
            base64::DecodeError::InvalidPadding => LinkError::BadBase64(payload.len()),
        })?;
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, MAX_INFLATED_BYTES)
        .map_err(|e| {
            use miniz_oxide::inflate::TINFLStatus;
            match e.status {
                TINFLStatus::HasMoreOutput => LinkError::TooBig,
                TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                    LinkError::Truncated
                }
                other => LinkError::BadDeflate(format!("{other:?}")),
            }
        })?;
    let figure: SharedFigure =
        serde_json::from_slice(&json).map_err(|e| LinkError::BadFigure(e.to_string()))?;
    if figure.format > LINK_VERSION {
        return Err(LinkError::FutureVersion(figure.format));
    }
    check_bounds(&figure.spec).map_err(LinkError::Unreasonable)?;
    Ok(figure)
}

/// What a link may ask the page to draw: a bounded number of series and
/// points. A fixed axis range that cannot be drawn (reversed, infinite, of
/// infinite width like [-1.7e308, 1.7e308], ≤ 0 on a log axis) is kept as
/// written, so the link round-trips; the drawing fits that axis to the data
/// instead and its caption says so (`FigureSpec::drawn_caption`).
fn check_bounds(spec: &FigureSpec) -> Result<(), String> {
    if spec.series.len() > MAX_LINK_SERIES {
        return Err(format!(
            "it has {} series (at most {MAX_LINK_SERIES})",
            spec.series.len()
        ));
    }
    let points: usize = spec
        .series
        .iter()
        .map(|s| {
            s.points.len()
                + s.band.as_ref().map_or(0, Vec::len)
                + s.error_bars.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if points > MAX_LINK_POINTS {
        return Err(format!(
            "it has {points} points (at most {MAX_LINK_POINTS})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::spec::{Axis, FigureKind, SeriesSpec, Style};

    fn figure() -> SharedFigure {
        let series = (0..6)
            .map(|r| {
                let pts = (0..10)
                    .map(|c| [c as f64 * 4096.0, 10.0 / (1.0 + c as f64 + r as f64 * 0.37)])
                    .collect();
                SeriesSpec::new(format!("run {r} <b>&amp;</b>"), pts, Style::LineMarkers, r)
            })
            .collect();
        let spec = FigureSpec {
            kind: FigureKind::Trajectory,
            title: "PR vs tokens".into(),
            caption: "mean over 22 layers".into(),
            x: Axis::linear("training tokens"),
            y: Axis::log("PR"),
            series,
            sources: vec!["runs/A1/ckpt_tokens_0.safetensors".into()],
        };
        SharedFigure::new(
            spec,
            vec![SourceFile {
                name: "runs/A1/ckpt_tokens_0.safetensors".into(),
                size: 1234,
                digest: None,
                url: Some("https://lab.example/runs/A1/ckpt_tokens_0.safetensors".into()),
            }],
        )
    }

    #[test]
    fn quantise_keeps_five_significant_digits() {
        assert_eq!(quantise(0.123456789), 0.12346);
        assert_eq!(quantise(123456.789), 123460.0);
        assert_eq!(quantise(-9.99999e-7), -1.0e-6);
        assert_eq!(quantise(0.0), 0.0);
        assert!(quantise(f64::NAN).is_nan());
        assert_eq!(quantise(f64::INFINITY), f64::INFINITY);
        for x in [1e-300, 3.3333333e200, 7.0, 0.5, 1.0 / 3.0] {
            assert!(
                (quantise(x) - x).abs() <= 5e-5 * x.abs(),
                "{x} → {}",
                quantise(x)
            );
        }
    }

    #[test]
    fn a_link_round_trips_to_the_quantised_figure() {
        let f = figure();
        let link = encode_link(&f);
        assert!(link.starts_with("figure=v1."));
        let back = decode_link(&format!("https://example.org/rankscope/#{link}")).expect("decodes");
        assert_eq!(back.spec, quantise_spec(&f.spec));
        assert_eq!(back.files, f.files);
        assert_eq!(
            back.spec.series[0].name, "run 0 <b>&amp;</b>",
            "names come back as the same text"
        );
        // Quantising twice changes nothing: a shared figure re-shared is the same link.
        assert_eq!(encode_link(&back), link);
    }

    #[test]
    fn broken_links_say_what_is_wrong() {
        let link = encode_link(&figure());
        assert_eq!(decode_link("#nothing"), Err(LinkError::NotALink));
        assert_eq!(
            decode_link(&link.replace("v1.", "v9.")),
            Err(LinkError::FutureVersion(9))
        );
        assert_eq!(
            decode_link(&link.replace("v1.", "x.")),
            Err(LinkError::BadVersion)
        );
        for cut in [
            link.len() / 2,
            link.len() / 2 + 1,
            link.len() / 2 + 2,
            link.len() - 1,
        ] {
            assert_eq!(
                decode_link(&link[..cut]),
                Err(LinkError::Truncated),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            decode_link(&format!("{link}*")),
            Err(LinkError::BadBase64(_))
        ));
        let huge = format!("figure=v1.{}", "A".repeat(MAX_LINK_CHARS));
        assert!(matches!(decode_link(&huge), Err(LinkError::TooLong(_))));
        // Valid deflate of JSON that is not a figure.
        let not_figure = format!(
            "figure=v1.{}",
            URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(b"{\"a\":1}", 9))
        );
        assert!(matches!(
            decode_link(&not_figure),
            Err(LinkError::BadFigure(_))
        ));
        // A deflate bomb: 64 MiB of zeros packs to a few KB.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![b' '; 64 << 20], 9);
        assert_eq!(
            decode_link(&format!("figure=v1.{}", URL_SAFE_NO_PAD.encode(bomb))),
            Err(LinkError::TooBig)
        );
        // A figure whose own format field is from the future.
        let mut f = figure();
        f.format = 7;
        let json = serde_json::to_vec(&f).unwrap();
        let future = format!(
            "figure=v1.{}",
            URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(&json, 9))
        );
        assert_eq!(decode_link(&future), Err(LinkError::FutureVersion(7)));
    }
}
