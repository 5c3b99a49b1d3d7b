//! Run logs: the loss curves and training facts of one or more runs.
//!
//! One module per format, each with one entry point `parse(bytes)`, and one
//! [`detect`] that looks at the content first and at the file name only to
//! break a tie (the speedscope pattern, see `shared/STYLE.md`). Every format
//! lands in the same model, [`Series`]: one row per logged record, an optional
//! step and token count per row, and one column per numeric metric where a
//! missing value is `None` (never 0 or NaN).
//!
//! | format | module | what |
//! | --- | --- | --- |
//! | [`LogFormat::Jsonl`] | [`jsonl`] | one JSON object per line |
//! | [`LogFormat::Csv`], [`LogFormat::WandbCsv`] | [`csv`] | CSV, W&B "export panel data" |
//! | [`LogFormat::StudyResults`], [`LogFormat::StudyMetrics`] | [`study_json`] | the user's `results.json` / `metrics.json` |
//! | [`LogFormat::TfEvents`] | [`tfevents`] | TensorBoard `events.out.tfevents.*` |
//! | [`LogFormat::TextKv`] | [`text_kv`] | `step:250/1390 val_loss:4.45 …`, llm.c `s:0 trl:10.98 …` |

pub mod csv;
pub mod jsonl;
pub mod study_json;
pub mod text_kv;
pub mod tfevents;

use std::collections::{BTreeMap, BTreeSet};

/// The run-log formats rankscope reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogFormat {
    /// One JSON object per line (`metrics.jsonl`).
    Jsonl,
    /// A CSV table with a header row.
    Csv,
    /// A Weights & Biases panel export: `Step`, `RUN - metric`, `RUN - metric__MIN`, ….
    WandbCsv,
    /// The user's study `results.json` (`tag`, `tokens`, `layer_pr`, …).
    StudyResults,
    /// The user's training history `metrics.json` (`final_metrics`, `history`).
    StudyMetrics,
    /// TensorBoard event file (TFRecord of `Event` protos).
    TfEvents,
    /// Plain-text `key:value` / `key=value` lines.
    TextKv,
}

impl LogFormat {
    /// A short human name for the format, for the UI and messages.
    pub fn label(self) -> &'static str {
        match self {
            LogFormat::Jsonl => "JSON lines",
            LogFormat::Csv => "CSV",
            LogFormat::WandbCsv => "W&B CSV export",
            LogFormat::StudyResults => "study results.json",
            LogFormat::StudyMetrics => "training metrics.json",
            LogFormat::TfEvents => "TensorBoard events",
            LogFormat::TextKv => "text key:value log",
        }
    }
}

/// The curves of one run, as read from one log.
///
/// All vectors (`step`, `tokens` and every column of `metrics`) have the same
/// length, one entry per row of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    /// Run name when the log says it (W&B column prefix, results.json `tag`); `None` otherwise.
    pub run: Option<String>,
    /// The format it was read from.
    pub format: LogFormat,
    /// One entry per row; `None` = this row has no step.
    pub step: Vec<Option<f64>>,
    /// Tokens seen at this row; `None` where unknown.
    pub tokens: Vec<Option<f64>>,
    /// Every metric column, same length as `step`; missing = `None`. NaN and
    /// ±inf written by the log itself are kept as values.
    pub metrics: BTreeMap<String, Vec<Option<f64>>>,
    /// Run-level facts: a JSONL header line, `gamma_final`, `total_steps`, ….
    pub constants: BTreeMap<String, serde_json::Value>,
    /// Non-fatal problems (restarts, a cut last line, skipped values).
    pub warnings: Vec<String>,
}

impl Series {
    /// An empty series of the given format.
    pub fn new(format: LogFormat) -> Self {
        Series {
            run: None,
            format,
            step: Vec::new(),
            tokens: Vec::new(),
            metrics: BTreeMap::new(),
            constants: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.step.len()
    }

    /// Whether the series has no rows.
    pub fn is_empty(&self) -> bool {
        self.step.is_empty()
    }

    /// Names of the metric columns, sorted.
    pub fn metric_names(&self) -> Vec<&str> {
        self.metrics.keys().map(String::as_str).collect()
    }

    /// One metric column, one entry per row.
    pub fn metric(&self, name: &str) -> Option<&[Option<f64>]> {
        self.metrics.get(name).map(Vec::as_slice)
    }

    /// `(x, value)` for every row where `name` has a finite value; x is the
    /// row's step, or its row index where the row has no step. NaN/inf stay
    /// in [`Series::metric`] but are not drawable, so they are left out here.
    pub fn points(&self, name: &str) -> Vec<(f64, f64)> {
        let Some(col) = self.metrics.get(name) else {
            return Vec::new();
        };
        col.iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v).filter(|v| v.is_finite())?;
                let x = self.step.get(i).copied().flatten().unwrap_or(i as f64);
                Some((x, v))
            })
            .collect()
    }

    /// `(tokens, value)` for every row where both are known and finite.
    pub fn points_vs_tokens(&self, name: &str) -> Vec<(f64, f64)> {
        let Some(col) = self.metrics.get(name) else {
            return Vec::new();
        };
        col.iter()
            .zip(&self.tokens)
            .filter_map(|(v, t)| {
                let v = (*v).filter(|v| v.is_finite())?;
                Some(((*t)?, v))
            })
            .collect()
    }

    /// Whether any row has a step.
    pub fn has_steps(&self) -> bool {
        self.step.iter().any(Option::is_some)
    }

    /// Whether any row has a token count.
    pub fn has_tokens(&self) -> bool {
        self.tokens.iter().any(Option::is_some)
    }
}

/// Why a run log could not be read. Messages do not name the file: the caller adds it.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file has no bytes (or only whitespace).
    #[error("the file is empty")]
    Empty,
    /// Text formats must be UTF-8.
    #[error("not UTF-8 text: invalid byte at offset {offset}")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// [`detect`] recognised none of the formats.
    #[error("not a run log rankscope reads (JSON lines, CSV, W&B CSV, results.json, metrics.json, TensorBoard events, key:value text)")]
    UnknownFormat,
    /// A JSONL line that is not valid JSON.
    #[error("line {line}: not valid JSON ({message})")]
    JsonLine {
        /// 1-based line number.
        line: usize,
        /// serde_json's description.
        message: String,
    },
    /// A JSONL line that is JSON but not an object.
    #[error("line {line}: expected a JSON object, found {found}")]
    NotAnObject {
        /// 1-based line number.
        line: usize,
        /// What was there instead.
        found: &'static str,
    },
    /// A whole-file JSON document that does not parse.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// JSON that parses but has not the shape the format expects.
    #[error("unexpected JSON shape: {0}")]
    JsonShape(String),
    /// Arrays of a column-wise JSON file that should have one entry per point.
    #[error("\"{key}\" has {found} values but \"{reference}\" has {expected}")]
    UnequalLengths {
        /// The offending key (`layer_pr/3`).
        key: String,
        /// Its length.
        found: usize,
        /// The key that sets the number of points.
        reference: &'static str,
        /// Its length.
        expected: usize,
    },
    /// The log has rows but not one numeric value.
    #[error("no numeric values: columns are {columns}")]
    NoNumeric {
        /// The column names seen, comma-separated.
        columns: String,
    },
    /// The log has no data rows.
    #[error("no data rows{0}")]
    NoRows(&'static str),
    /// A CSV row whose number of fields differs from the header's.
    #[error("line {line}: {found} fields, but the header has {expected} (fields separated by {delimiter:?})")]
    CsvFieldCount {
        /// 1-based line number.
        line: u64,
        /// Fields in this row.
        found: usize,
        /// Fields in the header.
        expected: usize,
        /// The delimiter the header line was read with.
        delimiter: char,
    },
    /// Any other CSV problem (bad quoting, …).
    #[error("CSV: {0}")]
    Csv(String),
    /// A TFRecord whose length or data checksum is wrong.
    #[error("record {record} at byte {offset}: bad CRC of the {part}: the file is corrupted")]
    RecordCrc {
        /// 0-based record index.
        record: usize,
        /// Byte offset of the record's start.
        offset: u64,
        /// `"length"` or `"data"`.
        part: &'static str,
    },
    /// The first TFRecord is already cut short.
    #[error("record {record} at byte {offset} is cut short ({have} of {need} bytes): no complete record")]
    Truncated {
        /// 0-based record index.
        record: usize,
        /// Byte offset of the record's start.
        offset: u64,
        /// Bytes there.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The first TFRecord claims a length no file of this size can hold.
    #[error("record {record} at byte {offset} claims {len} bytes, more than the whole file ({total} bytes): the file is damaged, not cut short")]
    RecordTooLong {
        /// 0-based record index.
        record: usize,
        /// Byte offset of the record's start.
        offset: u64,
        /// The length it claims.
        len: u64,
        /// The file's size.
        total: u64,
    },
    /// A TFRecord whose data is not an `Event` proto.
    #[error("record {record} at byte {offset}: not a TensorBoard Event ({message})")]
    BadEvent {
        /// 0-based record index.
        record: usize,
        /// Byte offset of the record's start.
        offset: u64,
        /// prost's description.
        message: String,
    },
    /// An event file with no scalar values.
    #[error("no scalar values in the event file ({0})")]
    NoScalars(String),
    /// A whole-document JSON log too large to read as a tree.
    #[error("{bytes} bytes is too large for a JSON document read whole (limit {limit}); JSON lines are read without a limit")]
    TooLarge {
        /// The file's size.
        bytes: usize,
        /// [`super::MAX_JSON_DOCUMENT`].
        limit: usize,
    },
    /// A text log with no `key:value` line.
    #[error("no numeric key:value lines found")]
    NoKeyValueLines,
}

/// How many bytes [`detect`] looks at.
pub const HEAD_LEN: usize = 64 * 1024;

/// Which log format `head` (the first ≤ [`HEAD_LEN`] bytes) is in. The content
/// decides; the name only breaks ties (a file too short or too damaged to tell).
/// `None` = not a log rankscope reads.
pub fn detect(name: &str, head: &[u8]) -> Option<LogFormat> {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let head = head.get(..HEAD_LEN).unwrap_or(head);
    if tfevents::looks_like(head) {
        return Some(LogFormat::TfEvents);
    }
    let text = utf8_prefix(head);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // NUL bytes: binary (a safetensors header is valid UTF-8 for a few bytes).
    let trimmed = if text.contains('\0') {
        ""
    } else {
        text.trim_start()
    };
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return detect_json(&base, trimmed);
    }
    if !trimmed.is_empty() {
        if let Some(format) = detect_text(trimmed) {
            return Some(format);
        }
    }
    // Tie-breakers: the content is too short, too damaged or not text.
    if base.contains("tfevents") {
        Some(LogFormat::TfEvents)
    } else if base.ends_with(".jsonl") && !trimmed.is_empty() {
        Some(LogFormat::Jsonl)
    } else if base.ends_with(".csv") && !trimmed.is_empty() {
        Some(LogFormat::Csv)
    } else if (base.ends_with(".log") || base.ends_with(".txt")) && !trimmed.is_empty() {
        Some(LogFormat::TextKv)
    } else {
        None
    }
}

fn detect_json(base: &str, text: &str) -> Option<LogFormat> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    if let Ok(serde_json::Value::Object(obj)) = parse_json_lenient(first) {
        let second_is_object = lines.next().is_some_and(|l| l.starts_with('{'));
        if second_is_object {
            return Some(LogFormat::Jsonl);
        }
        // A single line: one JSONL record, or a whole document on one line.
        if study_json::is_results_keys(obj.keys().map(String::as_str)) {
            return Some(LogFormat::StudyResults);
        }
        if study_json::is_metrics_keys(obj.keys().map(String::as_str)) {
            return Some(LogFormat::StudyMetrics);
        }
        // One object is a log record only with a sign of one (a step or
        // token count, or the .jsonl name): a results or manifest file
        // written on one line is not a one-row log.
        let is_record = jsonl::STEP_KEYS
            .iter()
            .chain(&jsonl::TOKEN_KEYS)
            .any(|k| obj.get(*k).is_some_and(|v| v.is_number()));
        if is_record || base.ends_with(".jsonl") {
            return Some(LogFormat::Jsonl);
        }
        return None;
    }
    // A multi-line (pretty-printed) document, maybe cut at HEAD_LEN: look for its keys.
    if text.starts_with('{') {
        if ["\"layer_pr\"", "\"mean_pr\"", "\"gamma_final\""]
            .iter()
            .any(|k| text.contains(k))
        {
            return Some(LogFormat::StudyResults);
        }
        if ["\"history\"", "\"final_metrics\""]
            .iter()
            .any(|k| text.contains(k))
        {
            return Some(LogFormat::StudyMetrics);
        }
    }
    if base.ends_with("results.json") {
        Some(LogFormat::StudyResults)
    } else if base.ends_with("metrics.json") {
        Some(LogFormat::StudyMetrics)
    } else if base.ends_with(".jsonl") {
        Some(LogFormat::Jsonl)
    } else {
        None
    }
}

fn detect_text(text: &str) -> Option<LogFormat> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next()?;
    if text_kv::is_kv_line(first) {
        return Some(LogFormat::TextKv);
    }
    if let Some(format) = csv::detect_header(text) {
        return Some(format);
    }
    // Prose or a config dump first, then the log lines.
    if text.lines().take(2000).any(text_kv::is_kv_line) {
        return Some(LogFormat::TextKv);
    }
    None
}

/// Reads a run log: [`detect`] plus the format's parser. A W&B export with
/// several runs gives one [`Series`] per run; every other format gives one.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Vec<Series>, LogError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LogError::Empty);
    }
    let head = bytes.get(..HEAD_LEN).unwrap_or(bytes);
    let Some(format) = detect(name, head) else {
        return Err(match std::str::from_utf8(head) {
            Err(e) if e.error_len().is_some() => LogError::NotUtf8 {
                offset: e.valid_up_to(),
            },
            _ => LogError::UnknownFormat,
        });
    };
    parse_as(format, bytes)
}

/// Reads a run log whose format [`detect`] already found (the inventory detects once
/// and hands the format over): [`parse`] without its detection.
pub fn parse_known(format: LogFormat, bytes: &[u8]) -> Result<Vec<Series>, LogError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LogError::Empty);
    }
    parse_as(format, bytes)
}

/// Reads a run log whose format is already known.
pub fn parse_as(format: LogFormat, bytes: &[u8]) -> Result<Vec<Series>, LogError> {
    let whole_document = matches!(format, LogFormat::StudyResults | LogFormat::StudyMetrics);
    if whole_document && bytes.len() > super::MAX_JSON_DOCUMENT {
        return Err(LogError::TooLarge {
            bytes: bytes.len(),
            limit: super::MAX_JSON_DOCUMENT,
        });
    }
    let mut all = match format {
        LogFormat::Jsonl => vec![jsonl::parse(bytes)?],
        LogFormat::Csv | LogFormat::WandbCsv => csv::parse(bytes)?,
        LogFormat::StudyResults => vec![study_json::parse_results(bytes)?],
        LogFormat::StudyMetrics => vec![study_json::parse_metrics(bytes)?],
        LogFormat::TfEvents => vec![tfevents::parse(bytes)?],
        LogFormat::TextKv => vec![text_kv::parse(bytes)?],
    };
    for series in &mut all {
        warn_steps_backwards(series);
    }
    Ok(all)
}

/// How many "steps go backwards" warnings are spelled out before a summary.
const MAX_BACKWARDS_WARNINGS: usize = 3;

/// Adds a warning for every row whose step (or, without steps, token count)
/// is smaller than the previous one: the log may hold a restart.
fn warn_steps_backwards(series: &mut Series) {
    let (xs, what) = if series.has_steps() {
        (&series.step, "step")
    } else {
        (&series.tokens, "tokens")
    };
    let mut prev: Option<f64> = None;
    let mut found = 0usize;
    let mut messages = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        let Some(x) = *x else { continue };
        if let Some(p) = prev {
            if x < p {
                found += 1;
                if found <= MAX_BACKWARDS_WARNINGS {
                    messages.push(format!(
                        "{what}s go backwards at row {} ({what} {x} after {p}): the log may hold a restart",
                        i + 1
                    ));
                }
            }
        }
        prev = Some(x);
    }
    if found > MAX_BACKWARDS_WARNINGS {
        messages.push(format!(
            "{what}s go backwards {} more times",
            found - MAX_BACKWARDS_WARNINGS
        ));
    }
    series.warnings.extend(messages);
}

/// The whole input as UTF-8, or the offset of the first bad byte.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, LogError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LogError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The longest valid UTF-8 prefix (a head may end mid-character).
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        // Cannot fail: the bytes up to `valid_up_to` are valid UTF-8.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Sentinels standing for the non-JSON literals Python's `json` writes.
const NAN_SENTINEL: &str = "\u{1}rankscope:NaN";
const INF_SENTINEL: &str = "\u{1}rankscope:Infinity";
const NEG_INF_SENTINEL: &str = "\u{1}rankscope:-Infinity";

/// Parses JSON, also accepting the `NaN`, `Infinity` and `-Infinity` literals
/// of Python's `json.dumps`; read them back with [`json_number`].
pub(crate) fn parse_json_lenient(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if text.contains("NaN") || text.contains("Infinity") => {
            serde_json::from_str(&replace_non_finite(text)).map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// Rewrites bare `NaN`/`Infinity`/`-Infinity` (outside strings) as sentinel strings.
fn replace_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let literal = [
                ("-Infinity", NEG_INF_SENTINEL),
                ("Infinity", INF_SENTINEL),
                ("NaN", NAN_SENTINEL),
            ]
            .into_iter()
            .find(|(lit, _)| rest.starts_with(lit));
            if let Some((lit, sentinel)) = literal {
                out.push('"');
                out.push_str(&sentinel.replace('\u{1}', "\\u0001"));
                out.push('"');
                rest = &rest[lit.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A JSON value as a metric value: numbers (and the NaN/Infinity literals)
/// are values; everything else (strings, null, booleans, …) is missing.
pub(crate) fn json_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            NAN_SENTINEL => Some(f64::NAN),
            INF_SENTINEL => Some(f64::INFINITY),
            NEG_INF_SENTINEL => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value to keep in `constants`, with the NaN sentinels turned back into strings.
pub(crate) fn json_constant(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) if s.starts_with('\u{1}') => serde_json::Value::String(
            s.trim_start_matches('\u{1}')
                .trim_start_matches("rankscope:")
                .to_owned(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(json_constant).collect())
        }
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_constant(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Dense cells ([`Series`] columns × rows) a log may fill without a
/// question: 4 M cells (64 MB), or 8 per byte of the log, whichever is more.
/// A dense log holds at least a separator per cell, so it never reaches this;
/// a log that adds a new key on every line would (20 000 lines with a new key
/// each are 498 KB of JSONL and 400 M cells).
pub const MIN_CELL_BUDGET: usize = 4 << 20;
/// Cells allowed per byte of input beyond [`MIN_CELL_BUDGET`].
pub const CELLS_PER_BYTE: usize = 8;

/// Builds a [`Series`] row by row in memory linear in the input: values are
/// kept per column as (row, value) pairs while reading, and laid out as
/// full columns once at the end, within a cell budget
/// ([`MIN_CELL_BUDGET`], [`CELLS_PER_BYTE`]) — the sparsest columns beyond it
/// are left out, with a warning saying which.
pub(crate) struct RowBuilder {
    series: Series,
    /// (row, value) per column, rows increasing.
    sparse: BTreeMap<String, Vec<(usize, f64)>>,
    /// Every column name seen, numeric or not (for "no numeric values" messages).
    seen: BTreeSet<String>,
    /// Bytes of the log being read (sets the cell budget).
    input_len: usize,
}

impl RowBuilder {
    pub(crate) fn new(format: LogFormat, input_len: usize) -> Self {
        RowBuilder {
            series: Series::new(format),
            sparse: BTreeMap::new(),
            seen: BTreeSet::new(),
            input_len,
        }
    }

    /// Opens a new row; later calls write into it.
    pub(crate) fn start_row(&mut self) {
        self.series.step.push(None);
        self.series.tokens.push(None);
    }

    pub(crate) fn rows(&self) -> usize {
        self.series.step.len()
    }

    pub(crate) fn set_step(&mut self, v: f64) {
        if let Some(s) = self.series.step.last_mut() {
            *s = Some(v);
        }
    }

    pub(crate) fn set_tokens(&mut self, v: f64) {
        if let Some(t) = self.series.tokens.last_mut() {
            *t = Some(v);
        }
    }

    /// Notes a column name that may hold no numeric value.
    pub(crate) fn see(&mut self, name: &str) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_owned());
        }
    }

    /// Writes `name = v` into the open row (a repeated key overwrites).
    pub(crate) fn set(&mut self, name: &str, v: f64) {
        let Some(row) = self.series.step.len().checked_sub(1) else {
            return;
        };
        let col = match self.sparse.get_mut(name) {
            Some(col) => col,
            None => self.sparse.entry(name.to_owned()).or_default(),
        };
        match col.last_mut() {
            Some(last) if last.0 == row => last.1 = v,
            _ => col.push((row, v)),
        }
    }

    /// Whether `name` already has a value in the open row.
    pub(crate) fn has_in_row(&self, name: &str) -> bool {
        let n = self.series.step.len();
        n > 0
            && self
                .sparse
                .get(name)
                .and_then(|c| c.last())
                .is_some_and(|last| last.0 == n - 1)
    }

    pub(crate) fn constants(&mut self) -> &mut BTreeMap<String, serde_json::Value> {
        &mut self.series.constants
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.series.warnings.push(message);
    }

    /// The series, every column laid out over all rows. Errors when there is
    /// no row or no numeric value.
    pub(crate) fn finish(mut self, no_rows_hint: &'static str) -> Result<Series, LogError> {
        let n = self.series.step.len();
        if n == 0 {
            return Err(LogError::NoRows(no_rows_hint));
        }
        if self.sparse.is_empty() {
            let columns: Vec<&str> = self.seen.iter().map(String::as_str).collect();
            return Err(LogError::NoNumeric {
                columns: columns.join(", "),
            });
        }
        let budget = MIN_CELL_BUDGET.max(self.input_len.saturating_mul(CELLS_PER_BYTE));
        let keep = (budget / n).max(1);
        let total_columns = self.sparse.len();
        let mut columns: Vec<(String, Vec<(usize, f64)>)> =
            std::mem::take(&mut self.sparse).into_iter().collect();
        if total_columns > keep {
            // The fullest columns first; ties by name, so the choice is stable.
            columns.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
            let dropped: Vec<String> = columns
                .split_off(keep)
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            let shown: Vec<&str> = dropped.iter().take(3).map(String::as_str).collect();
            let more = dropped.len().saturating_sub(shown.len());
            self.series.warnings.push(format!(
                "{} of {total_columns} columns left out ({}{}): {n} rows × {total_columns} columns is more than \
                 the {budget} values kept for a log of {} bytes; the log adds new keys on most lines, and the \
                 columns with the fewest values were dropped",
                dropped.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() },
                self.input_len,
            ));
        }
        for (name, values) in columns {
            let mut col = vec![None; n];
            for (row, v) in values {
                if let Some(slot) = col.get_mut(row) {
                    *slot = Some(v);
                }
            }
            self.series.metrics.insert(name, col);
        }
        Ok(self.series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_json_reads_python_literals() {
        let v =
            parse_json_lenient(r#"{"a": NaN, "b": -Infinity, "c": "NaN", "d": Infinity}"#).unwrap();
        assert!(json_number(&v["a"]).unwrap().is_nan());
        assert_eq!(json_number(&v["b"]), Some(f64::NEG_INFINITY));
        assert_eq!(json_number(&v["c"]), None);
        assert_eq!(json_number(&v["d"]), Some(f64::INFINITY));
        assert_eq!(json_constant(&v["a"]), serde_json::json!("NaN"));
    }

    #[test]
    fn backwards_steps_warn() {
        let mut s = Series::new(LogFormat::Jsonl);
        s.step = vec![Some(1.0), Some(2.0), None, Some(1.0), Some(2.0)];
        s.tokens = vec![None; 5];
        warn_steps_backwards(&mut s);
        assert_eq!(
            s.warnings,
            ["steps go backwards at row 4 (step 1 after 2): the log may hold a restart"]
        );
    }

    #[test]
    fn builder_pads_columns() {
        let mut b = RowBuilder::new(LogFormat::Jsonl, 0);
        b.start_row();
        b.set("a", 1.0);
        b.start_row();
        b.start_row();
        b.set("b", 2.0);
        b.set("a", 3.0);
        b.start_row();
        let s = b.finish("").unwrap();
        assert_eq!(s.metric("a").unwrap(), [Some(1.0), None, Some(3.0), None]);
        assert_eq!(s.metric("b").unwrap(), [None, None, Some(2.0), None]);
        assert_eq!(s.points("a"), [(0.0, 1.0), (2.0, 3.0)]);
    }
}
