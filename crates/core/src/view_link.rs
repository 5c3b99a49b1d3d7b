//! The page's view — how the reader looks at the study, not what is computed:
//! Figure 1's source, metric, matrix, layer and x axis, Figure 2's checkpoint
//! and log y, hidden runs, the runs each figure shows, every figure's log
//! axes and zoom, the comparison choices, the loss-curve section's metric,
//! x axis and smoothing, the ESD panel's choices and Figures 3–5's
//! checkpoint. The page keeps it in the URL fragment under one key,
//! `#view=v1.<payload>`, so a reload, back/forward and a copied link all
//! show the same view. The theme is not part of it (the reader's own
//! setting, kept in localStorage).
//!
//! Encoding: JSON → base64url without padding, behind a version tag. Not
//! readable `key=value` pairs: run names are arbitrary text (`&`, `=`, `#`,
//! `%` and non-ASCII all occur) and the view has nested per-figure maps, so
//! pairs would need escaping rules of our own; base64url needs none and
//! survives chat and mail tools (letters, digits, `-`, `_` only), and the
//! JSON inside reads with any base64 decoder. Not deflated like figure links
//! ([`crate::share`]): a view is a few hundred bytes, and without inflating
//! there is no decompression bomb to guard against.
//!
//! Decoding never fails the page: a link is text anyone can edit, so a view
//! that is too long or not readable is an error the page logs and replaces
//! by the default view, and within a readable view each field that does not
//! read (a wrong type, an unknown metric) falls back to its default alone
//! ([`PageView::read`]); [`PageView::sanitized`] then bounds what is left (name
//! counts and lengths, indices, numeric settings, zoom ranges). Names from a
//! view are only ever shown as text.
//!
//! The fragment may hold other keys (`figure=` for a shared figure, `src=`
//! for files opened from a URL): [`fragment_get`] and [`fragment_with`] read
//! and rewrite one key and keep every other part as it was.

use crate::analysis::losscurve::axes::XAxis;
use crate::analysis::results::KeyVariant;
use crate::analysis::trajectory::{
    CheckpointSel, LayerSel, Matrix, Metric, SpectraSource, TrainingAxis,
};
use crate::figures::spec::View;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The fragment key: `#view=v1.…`.
pub const VIEW_KEY: &str = "view";
/// The view format this build writes and reads.
pub const VIEW_VERSION: u32 = 1;
/// Longest view value read (characters). A view of the page's controls is
/// well under 2 KB; 64 KB leaves room for a few hundred hidden runs.
pub const MAX_VIEW_CHARS: usize = 64 * 1024;
/// Most names kept in any set or list of run names (hidden runs, a figure's runs, …).
pub const MAX_NAMES: usize = 1_000;
/// Longest run name (or condition name) kept, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Most figures with a view of their own (the page has about twenty).
pub const MAX_FIGURES: usize = 64;
/// Longest figure id kept (the page's are like `figure-trajectory`).
pub const MAX_FIGURE_ID_CHARS: usize = 64;
/// Largest checkpoint, layer or head index kept (beyond any model the page reads).
pub const MAX_INDEX: usize = 1_000_000;

/// Where Figure 1's numbers come from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrajectorySource {
    /// Computed from the checkpoints' weights.
    Weights,
    /// K/Q on the eval batch (forward pass), in one variant.
    Activations(KeyVariant),
    /// The user's own results.json files.
    Imported,
}

/// Figure 1's controls (and Figure 2's matrix and layer, which it shares).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(default)]
pub struct TrajectoryView {
    pub source: TrajectorySource,
    pub metric: Metric,
    /// Figure 1 shows the held-out loss instead of `metric`.
    pub heldout: bool,
    pub matrix: Matrix,
    pub layer: LayerSel,
    pub x: TrainingAxis,
}

impl Default for TrajectoryView {
    fn default() -> Self {
        Self {
            // The plan's proper measurement (K on the eval batch) when it exists.
            source: TrajectorySource::Activations(KeyVariant::PostNorm),
            metric: Metric::Pr,
            heldout: false,
            matrix: Matrix::K,
            layer: LayerSel::Mean,
            x: TrainingAxis::Tokens,
        }
    }
}

/// Figure 2's own controls.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(default)]
pub struct WaterfallView {
    pub checkpoint: CheckpointSel,
    pub log_y: bool,
}

impl Default for WaterfallView {
    fn default() -> Self {
        Self {
            checkpoint: CheckpointSel::Final,
            log_y: true,
        }
    }
}

/// The comparison cards' choices and how Figures 1–3 group runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct CompareView {
    /// Run → condition the user put it in.
    pub groups: BTreeMap<String, String>,
    pub show_seeds: bool,
    pub mark_collapse: bool,
    pub source: SpectraSource,
    pub matrix: Matrix,
    pub metric: Metric,
    /// The equivalence margin δ, in percent of the pooled mean (0 < δ ≤ 100).
    pub margin_pct: f64,
    /// A pair of conditions the user picks besides the plan's.
    pub extra: (String, String),
}

impl Default for CompareView {
    fn default() -> Self {
        Self {
            groups: BTreeMap::new(),
            show_seeds: false,
            mark_collapse: false,
            source: SpectraSource::Activations(KeyVariant::PostNorm),
            matrix: Matrix::K,
            metric: Metric::Pr,
            margin_pct: 5.0,
            extra: (String::new(), String::new()),
        }
    }
}

/// The loss-curve section's view: which metric on which x axis, log y, the
/// EMA smoothing, hidden runs, reference runs and the residual's window.
/// (Its thresholds, C(t) settings and health rules are analysis settings:
/// sessions keep them.)
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct LossView {
    /// `None` = the section's default metric for the logs present.
    pub metric: Option<String>,
    pub x: XAxis,
    pub log_y: bool,
    /// EMA smoothing β, in [0, 0.999].
    pub beta: f64,
    pub hidden: BTreeSet<String>,
    /// `None` until the user picks reference runs.
    pub reference: Option<BTreeSet<String>>,
    /// The residual's window in t̂ (0 ≤ start < end ≤ 1).
    pub window: (f64, f64),
}

impl Default for LossView {
    fn default() -> Self {
        Self {
            metric: None,
            x: XAxis::Step,
            log_y: false,
            beta: 0.9,
            hidden: BTreeSet::new(),
            reference: None,
            window: (0.10, 0.30),
        }
    }
}

/// The ESD panel's choices. The run is kept by name, so a view restored
/// before the runs arrive finds it when they do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct EsdView {
    /// `None` = the first run.
    pub run: Option<String>,
    /// `None` = the run's last checkpoint.
    pub checkpoint: Option<usize>,
    pub layer: usize,
    pub matrix: Matrix,
    pub head: usize,
}

impl Default for EsdView {
    fn default() -> Self {
        Self {
            run: None,
            checkpoint: None,
            layer: 0,
            matrix: Matrix::K,
            head: 0,
        }
    }
}

/// Figures 3–5's choice of checkpoint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(default)]
pub struct StudyView {
    pub checkpoint: CheckpointSel,
}

impl Default for StudyView {
    fn default() -> Self {
        Self {
            checkpoint: CheckpointSel::Final,
        }
    }
}

/// Everything the view link carries. Every field has a default and reads
/// on its own ([`PageView::read`]): an old link missing a field, or a link with one
/// unreadable field, still opens with the rest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct PageView {
    pub trajectory: TrajectoryView,
    pub waterfall: WaterfallView,
    /// The runs each figure shows, by figure id (a figure not named here
    /// shows its default runs). For per-figure run pickers.
    pub figure_runs: BTreeMap<String, Vec<String>>,
    /// Each figure's log axes and zoom, by figure id.
    pub figures: BTreeMap<String, View>,
    pub compare: CompareView,
    pub loss: LossView,
    pub esd: EsdView,
    pub study: StudyView,
}

/// `key` of a JSON object read as `T`, or `default` when it is missing or
/// does not read as one (a wrong type, an unknown enum value): one bad field
/// never spoils the others. serde's `#[serde(default)]` alone fills missing
/// fields but fails the whole struct on a bad one, hence these readers.
fn field<T: DeserializeOwned>(v: &Value, key: &str, default: T) -> T {
    v.get(key)
        .and_then(|x| T::deserialize(x).ok())
        .unwrap_or(default)
}

/// A map of `key` read entry by entry: entries whose value does not read are dropped.
fn map_field<T: DeserializeOwned>(v: &Value, key: &str) -> BTreeMap<String, T> {
    match v.get(key) {
        Some(Value::Object(entries)) => entries
            .iter()
            .filter_map(|(k, x)| T::deserialize(x).ok().map(|t| (k.clone(), t)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl TrajectoryView {
    fn read(v: &Value) -> Self {
        let d = Self::default();
        Self {
            source: field(v, "source", d.source),
            metric: field(v, "metric", d.metric),
            heldout: field(v, "heldout", d.heldout),
            matrix: field(v, "matrix", d.matrix),
            layer: field(v, "layer", d.layer),
            x: field(v, "x", d.x),
        }
    }
}

impl WaterfallView {
    fn read(v: &Value) -> Self {
        let d = Self::default();
        Self {
            checkpoint: field(v, "checkpoint", d.checkpoint),
            log_y: field(v, "log_y", d.log_y),
        }
    }
}

impl CompareView {
    fn read(v: &Value) -> Self {
        let d = Self::default();
        Self {
            groups: field(v, "groups", d.groups),
            show_seeds: field(v, "show_seeds", d.show_seeds),
            mark_collapse: field(v, "mark_collapse", d.mark_collapse),
            source: field(v, "source", d.source),
            matrix: field(v, "matrix", d.matrix),
            metric: field(v, "metric", d.metric),
            margin_pct: field(v, "margin_pct", d.margin_pct),
            extra: field(v, "extra", d.extra),
        }
    }
}

impl LossView {
    fn read(v: &Value) -> Self {
        let d = Self::default();
        Self {
            metric: field(v, "metric", d.metric),
            x: field(v, "x", d.x),
            log_y: field(v, "log_y", d.log_y),
            beta: field(v, "beta", d.beta),
            hidden: field(v, "hidden", d.hidden),
            reference: field(v, "reference", d.reference),
            window: field(v, "window", d.window),
        }
    }
}

impl EsdView {
    fn read(v: &Value) -> Self {
        let d = Self::default();
        Self {
            run: field(v, "run", d.run),
            checkpoint: field(v, "checkpoint", d.checkpoint),
            layer: field(v, "layer", d.layer),
            matrix: field(v, "matrix", d.matrix),
            head: field(v, "head", d.head),
        }
    }
}

impl StudyView {
    fn read(v: &Value) -> Self {
        Self {
            checkpoint: field(v, "checkpoint", Self::default().checkpoint),
        }
    }
}

/// Why a view value could not be read (the page then shows the default view
/// and logs this; it is never an error banner).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ViewLinkError {
    #[error("the view is {0} characters long; views over {MAX_VIEW_CHARS} are ignored")]
    TooLong(usize),
    #[error("the view's version tag is not readable (expected `v{VIEW_VERSION}.`)")]
    BadVersion,
    #[error("the view was written by a newer rankscope (view format v{0}); this page reads v{VIEW_VERSION}")]
    FutureVersion(u32),
    #[error("the view is not valid base64url; it may have been cut or edited")]
    BadBase64,
    #[error("the view is not readable: {0}")]
    BadJson(String),
}

impl PageView {
    /// A view from JSON, field by field: missing or unreadable fields (and
    /// map entries) take their defaults, unknown fields are ignored. Not yet
    /// bounded: see [`Self::sanitized`].
    pub fn read(v: &Value) -> Self {
        let null = Value::Null;
        let part = |key: &str| v.get(key).unwrap_or(&null);
        Self {
            trajectory: TrajectoryView::read(part("trajectory")),
            waterfall: WaterfallView::read(part("waterfall")),
            figure_runs: map_field(v, "figure_runs"),
            figures: map_field(v, "figures"),
            compare: CompareView::read(part("compare")),
            loss: LossView::read(part("loss")),
            esd: EsdView::read(part("esd")),
            study: StudyView::read(part("study")),
        }
    }

    /// Whether this is the page's default view (nothing to put in the URL).
    pub fn is_default(&self) -> bool {
        *self == PageView::default()
    }

    /// The view bounded to what the page can use: at most [`MAX_NAMES`] names
    /// of at most [`MAX_NAME_CHARS`] characters in each set, [`MAX_FIGURES`]
    /// figures, indices up to [`MAX_INDEX`], numeric settings in their range
    /// (else their default), and zoom ranges that are finite with lo < hi.
    pub fn sanitized(mut self) -> Self {
        let names = |set: BTreeSet<String>| -> BTreeSet<String> {
            set.into_iter()
                .filter(|n| n.chars().count() <= MAX_NAME_CHARS)
                .take(MAX_NAMES)
                .collect()
        };
        let name_ok = |n: &String| n.chars().count() <= MAX_NAME_CHARS;
        let index = |i: usize| i.min(MAX_INDEX);
        let checkpoint = |c: CheckpointSel| match c {
            CheckpointSel::Index(i) => CheckpointSel::Index(index(i)),
            c => c,
        };
        let id_ok = |id: &String| id.chars().count() <= MAX_FIGURE_ID_CHARS;

        if let LayerSel::Layer(l) = self.trajectory.layer {
            self.trajectory.layer = LayerSel::Layer(index(l));
        }
        self.waterfall.checkpoint = checkpoint(self.waterfall.checkpoint);
        self.study.checkpoint = checkpoint(self.study.checkpoint);
        self.figure_runs = std::mem::take(&mut self.figure_runs)
            .into_iter()
            .filter(|(id, _)| id_ok(id))
            .take(MAX_FIGURES)
            .map(|(id, runs)| {
                let runs = runs.into_iter().filter(name_ok).take(MAX_NAMES).collect();
                (id, runs)
            })
            .collect();
        self.figures = std::mem::take(&mut self.figures)
            .into_iter()
            .filter(|(id, _)| id_ok(id))
            .map(|(id, v)| (id, sane_view(v)))
            .filter(|(_, v)| !v.is_default())
            .take(MAX_FIGURES)
            .collect();

        let c = &mut self.compare;
        c.groups = std::mem::take(&mut c.groups)
            .into_iter()
            .filter(|(run, group)| name_ok(run) && name_ok(group))
            .take(MAX_NAMES)
            .collect();
        if !(c.margin_pct.is_finite() && c.margin_pct > 0.0 && c.margin_pct <= 100.0) {
            c.margin_pct = CompareView::default().margin_pct;
        }
        if !(name_ok(&c.extra.0) && name_ok(&c.extra.1)) {
            c.extra = Default::default();
        }

        let l = &mut self.loss;
        let defaults = LossView::default();
        if !(l.beta.is_finite() && (0.0..=0.999).contains(&l.beta)) {
            l.beta = defaults.beta;
        }
        let (w0, w1) = l.window;
        if !(w0.is_finite() && w1.is_finite() && 0.0 <= w0 && w0 < w1 && w1 <= 1.0) {
            l.window = defaults.window;
        }
        if l.metric.as_ref().is_some_and(|m| !name_ok(m)) {
            l.metric = None;
        }
        l.hidden = names(std::mem::take(&mut l.hidden));
        l.reference = l.reference.take().map(names);

        let e = &mut self.esd;
        if e.run.as_ref().is_some_and(|r| !name_ok(r)) {
            e.run = None;
        }
        e.checkpoint = e.checkpoint.map(index);
        e.layer = index(e.layer);
        e.head = index(e.head);
        self
    }
}

/// A figure's view with only ranges that can be drawn on some scale:
/// finite, lo < hi (log-axis limits are the figure's own business,
/// [`crate::figures::spec::FigureSpec::with_view`]).
fn sane_view(mut v: View) -> View {
    let ok =
        |r: Option<(f64, f64)>| r.filter(|(lo, hi)| lo.is_finite() && hi.is_finite() && lo < hi);
    v.x_range = ok(v.x_range);
    v.y_range = ok(v.y_range);
    v
}

/// The fragment value for a view: `v1.<base64url(json)>`.
pub fn encode_view(view: &PageView) -> String {
    // Serialising plain data with string keys cannot fail.
    let json = serde_json::to_vec(view).unwrap_or_default();
    format!("v{VIEW_VERSION}.{}", URL_SAFE_NO_PAD.encode(json))
}

/// Reads a view from its fragment value (what follows `view=`), bounded by
/// [`PageView::sanitized`].
pub fn decode_view(value: &str) -> Result<PageView, ViewLinkError> {
    if value.len() > MAX_VIEW_CHARS {
        return Err(ViewLinkError::TooLong(value.len()));
    }
    let (tag, payload) = value.split_once('.').ok_or(ViewLinkError::BadVersion)?;
    let version: u32 = tag
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .ok_or(ViewLinkError::BadVersion)?;
    if version > VIEW_VERSION {
        return Err(ViewLinkError::FutureVersion(version));
    }
    if version != VIEW_VERSION {
        return Err(ViewLinkError::BadVersion);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload.trim_end())
        .map_err(|_| ViewLinkError::BadBase64)?;
    let json: Value =
        serde_json::from_slice(&json).map_err(|e| ViewLinkError::BadJson(e.to_string()))?;
    if !json.is_object() {
        return Err(ViewLinkError::BadJson("not a JSON object".into()));
    }
    Ok(PageView::read(&json).sanitized())
}

/// The view a fragment holds: the default view when it has none, or one that
/// cannot be read (with the reason, for the console).
pub fn view_from_fragment(fragment: &str) -> (PageView, Option<ViewLinkError>) {
    match fragment_get(fragment, VIEW_KEY) {
        None => (PageView::default(), None),
        Some(value) => match decode_view(value) {
            Ok(v) => (v, None),
            Err(e) => (PageView::default(), Some(e)),
        },
    }
}

/// The value of `key` in a fragment of `&`-separated `key=value` parts (with
/// or without the leading `#`).
pub fn fragment_get<'a>(fragment: &'a str, key: &str) -> Option<&'a str> {
    fragment
        .trim_start_matches('#')
        .split('&')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
}

/// The fragment (without `#`) with `key` set to `value`, or removed for
/// `None`. Every other part is kept as it was, in its place: keys this
/// module does not own (`figure=`, `src=`) pass through untouched. A new
/// key goes last.
pub fn fragment_with(fragment: &str, key: &str, value: Option<&str>) -> String {
    let ours = |part: &str| part.strip_prefix(key).is_some_and(|r| r.starts_with('='));
    let mut parts: Vec<String> = Vec::new();
    let mut placed = false;
    for part in fragment.trim_start_matches('#').split('&') {
        if part.is_empty() {
            continue;
        }
        if ours(part) {
            if let (Some(v), false) = (value, placed) {
                parts.push(format!("{key}={v}"));
                placed = true;
            }
        } else {
            parts.push(part.to_string());
        }
    }
    if let (Some(v), false) = (value, placed) {
        parts.push(format!("{key}={v}"));
    }
    parts.join("&")
}

/// The fragment (without `#`) with `src=` naming `urls`, every other key kept (an empty list
/// leaves the fragment as it is): "Link to this view" of a page whose files were opened from
/// URLs (the box or a `#src=` link) reopens those files, and the view then applies to them.
pub fn fragment_with_src<S: AsRef<str>>(fragment: &str, urls: &[S]) -> String {
    if urls.is_empty() {
        return fragment.trim_start_matches('#').to_string();
    }
    fragment_with(
        fragment,
        "src",
        Some(&crate::source::remote::src_value(urls)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_link_names_the_urls_its_files_came_from() {
        let urls = ["http://h/a b.safetensors", "http://h/c,d.json"];
        let f = fragment_with_src("#figure=v1.x&view=v1.y", &urls);
        assert_eq!(
            f,
            "figure=v1.x&view=v1.y&src=http://h/a%20b.safetensors,http://h/c%2Cd.json"
        );
        assert_eq!(crate::source::remote::src_list(&f).unwrap(), urls);
        // An older src= is replaced in its place; no URLs leave the fragment alone.
        assert_eq!(
            fragment_with_src("src=http://old&view=v1.y", &urls[..1]),
            "src=http://h/a%20b.safetensors&view=v1.y"
        );
        assert_eq!(fragment_with_src::<&str>("#view=v1.y", &[]), "view=v1.y");
    }

    fn busy_view() -> PageView {
        let mut v = PageView::default();
        v.trajectory.metric = Metric::Erank;
        v.trajectory.layer = LayerSel::Layer(3);
        v.trajectory.x = TrainingAxis::Step;
        v.trajectory.source = TrajectorySource::Weights;
        v.waterfall.checkpoint = CheckpointSel::Index(2);
        v.waterfall.log_y = false;
        v.loss.hidden = ["A2", "run <b>&amp;</b> #1=2"]
            .map(String::from)
            .into_iter()
            .collect();
        v.figure_runs
            .insert("figure-trajectory".into(), vec!["A1".into(), "B1".into()]);
        v.figures.insert(
            "figure-trajectory".into(),
            View {
                log_x: None,
                log_y: Some(true),
                x_range: Some((1.5e6, 3.25e7)),
                y_range: None,
            },
        );
        v.compare.show_seeds = true;
        v.compare.margin_pct = 2.5;
        v.compare.extra = ("A1".into(), "C2".into());
        v.compare.groups.insert("A1_seed43".into(), "A1".into());
        v.loss.beta = 0.5;
        v.loss.x = XAxis::Tokens;
        v.loss.hidden.insert("muonh_seed1".into());
        v.loss.reference = Some(["adamh_seed1".to_string()].into_iter().collect());
        v.esd.run = Some("B2".into());
        v.esd.checkpoint = Some(1);
        v.esd.head = 2;
        v.study.checkpoint = CheckpointSel::Index(0);
        v
    }

    #[test]
    fn a_view_round_trips_through_the_fragment() {
        let v = busy_view();
        let value = encode_view(&v);
        assert!(value.starts_with("v1."));
        assert!(
            value[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "only URL-safe characters: {value}"
        );
        assert_eq!(decode_view(&value), Ok(v.clone()));
        let fragment = fragment_with("", VIEW_KEY, Some(&value));
        assert_eq!(view_from_fragment(&format!("#{fragment}")), (v, None));
        // The default view reads back as itself, and an empty object is the default.
        assert_eq!(
            decode_view(&encode_view(&PageView::default())),
            Ok(PageView::default())
        );
        let empty = format!("v1.{}", URL_SAFE_NO_PAD.encode(b"{}"));
        assert_eq!(decode_view(&empty), Ok(PageView::default()));
        // No view in the fragment: the default, and no error.
        assert_eq!(
            view_from_fragment("#figure=v1.abc"),
            (PageView::default(), None)
        );
    }

    #[test]
    fn other_fragment_keys_are_kept_in_place() {
        let f = "#figure=v1.AbC_-&src=https%3A%2F%2Fexample.org%2Fa.safetensors";
        let with = fragment_with(f, VIEW_KEY, Some("v1.xyz"));
        assert_eq!(
            with,
            "figure=v1.AbC_-&src=https%3A%2F%2Fexample.org%2Fa.safetensors&view=v1.xyz"
        );
        assert_eq!(fragment_get(&with, VIEW_KEY), Some("v1.xyz"));
        assert_eq!(fragment_get(&with, "figure"), Some("v1.AbC_-"));
        // Replaced where it stands, then removed, leaving the others untouched.
        let again = fragment_with(&with, VIEW_KEY, Some("v1.new"));
        assert_eq!(again.replace("v1.new", "v1.xyz"), with);
        assert_eq!(
            fragment_with(&again, VIEW_KEY, None),
            f.trim_start_matches('#')
        );
        // A key that merely starts like ours is not ours; a doubled key is written once.
        assert_eq!(
            fragment_with("viewer=1&view=a&view=b", VIEW_KEY, Some("c")),
            "viewer=1&view=c"
        );
        assert_eq!(fragment_get("viewer=1", VIEW_KEY), None);
        assert_eq!(fragment_with("", VIEW_KEY, None), "");
    }

    #[test]
    fn broken_views_fall_back_to_the_default() {
        let value = encode_view(&busy_view());
        for bad in [
            "",
            "garbage",
            "v1",
            "x1.abc",
            "v1.***",
            "v1.!!notbase64",
            &value[..value.len() / 2],
        ] {
            let fragment = format!("view={bad}");
            let (v, err) = view_from_fragment(&fragment);
            assert_eq!(v, PageView::default(), "{bad:?}");
            assert!(err.is_some(), "{bad:?} says why");
        }
        assert_eq!(
            decode_view(&value.replacen("v1.", "v7.", 1)),
            Err(ViewLinkError::FutureVersion(7))
        );
        let huge = format!("v1.{}", "A".repeat(MAX_VIEW_CHARS));
        assert!(matches!(decode_view(&huge), Err(ViewLinkError::TooLong(_))));
        // JSON nested beyond serde_json's limit is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep = format!("v1.{}", URL_SAFE_NO_PAD.encode(deep));
        assert!(decode_view(&deep).is_err());
    }

    #[test]
    fn a_bad_field_falls_back_alone() {
        let json = serde_json::json!({
            "trajectory": { "metric": "no_such_metric", "layer": { "layer": 2 }, "x": 17 },
            "loss": { "beta": 7.5, "window": [0.5, 0.2], "x": "tokens", "hidden": ["A1", 5] },
            "waterfall": "not an object",
            "figures": {
                "figure-a": { "log_y": true, "x_range": ["NaN", 5.0] },
                "figure-b": { "y_range": ["inf", "-inf"] },
                "figure-c": { "x_range": [3.0, 1.0], "log_x": true },
                "figure-d": "nonsense",
                "figure-e": { "x_range": [1.0, 2.0] }
            },
            "compare": { "margin_pct": -3, "show_seeds": true },
            "esd": { "layer": 1e300, "head": 18446744073709551615u64, "run": "B1" },
            "unknown_future_field": { "x": 1 }
        });
        let v = decode_view(&format!("v1.{}", URL_SAFE_NO_PAD.encode(json.to_string())))
            .expect("a readable view");
        let d = PageView::default();
        assert_eq!(v.trajectory.metric, d.trajectory.metric);
        assert_eq!(v.trajectory.layer, LayerSel::Layer(2));
        assert_eq!(v.trajectory.x, d.trajectory.x);
        // A set with one wrong element does not read: the default (no hidden runs).
        assert!(v.loss.hidden.is_empty());
        assert_eq!(v.waterfall, d.waterfall);
        // NaN / ±inf / reversed ranges are dropped; the rest of each figure's view stays.
        assert_eq!(
            v.figures.get("figure-a"),
            Some(&View {
                log_y: Some(true),
                ..View::default()
            })
        );
        assert_eq!(v.figures.get("figure-b"), None);
        assert_eq!(
            v.figures.get("figure-c"),
            Some(&View {
                log_x: Some(true),
                ..View::default()
            })
        );
        assert_eq!(v.figures.get("figure-d"), None);
        assert_eq!(
            v.figures.get("figure-e").and_then(|f| f.x_range),
            Some((1.0, 2.0))
        );
        assert_eq!(v.compare.margin_pct, d.compare.margin_pct);
        assert!(v.compare.show_seeds);
        assert_eq!((v.loss.beta, v.loss.window), (d.loss.beta, d.loss.window));
        assert_eq!(v.loss.x, XAxis::Tokens);
        assert_eq!(v.esd.layer, 0, "1e300 is no index");
        assert_eq!(v.esd.head, MAX_INDEX);
        assert_eq!(v.esd.run.as_deref(), Some("B1"));
    }

    #[test]
    fn huge_views_are_bounded() {
        // 100 000 hidden runs: over the length limit as a link ...
        let mut v = PageView {
            loss: LossView {
                hidden: (0..100_000).map(|i| format!("run{i}")).collect(),
                ..LossView::default()
            },
            ..PageView::default()
        };
        v.figure_runs = (0..1_000)
            .map(|i| (format!("figure-{i}"), vec![format!("r{i}"); 3]))
            .collect();
        v.figures = (0..1_000)
            .map(|i| {
                (
                    format!("figure-{i}"),
                    View {
                        log_y: Some(true),
                        ..View::default()
                    },
                )
            })
            .collect();
        let value = encode_view(&v);
        assert!(matches!(
            decode_view(&value),
            Err(ViewLinkError::TooLong(_))
        ));
        // ... and bounded when read some other way.
        v.loss.hidden.insert("x".repeat(MAX_NAME_CHARS + 1));
        let s = v.sanitized();
        assert!(s.loss.hidden.iter().all(|n| n.len() <= MAX_NAME_CHARS));
        assert_eq!(s.loss.hidden.len(), MAX_NAMES);
        assert_eq!(s.figure_runs.len(), MAX_FIGURES);
        assert_eq!(s.figures.len(), MAX_FIGURES);
        // Indices beyond any model are capped.
        let mut v = PageView::default();
        v.waterfall.checkpoint = CheckpointSel::Index(usize::MAX);
        v.trajectory.layer = LayerSel::Layer(usize::MAX);
        let s = v.sanitized();
        assert_eq!(s.waterfall.checkpoint, CheckpointSel::Index(MAX_INDEX));
        assert_eq!(s.trajectory.layer, LayerSel::Layer(MAX_INDEX));
    }
}
