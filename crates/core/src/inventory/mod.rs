//! The inventory: what each dropped file is, and how the files fit together
//! (runs → checkpoints → tensors; run logs → series; token batches).
//!
//! Two steps. [`inspect_file`] looks at one file on its own (content first,
//! name second) and never fails: problems become the entry's status and
//! message. [`Inventory::link`] then relates the files: a `config.json` to the
//! checkpoints beside it, shards to their index, checkpoints and logs to runs,
//! token ids to the vocabulary of the models. One bad file never spoils the
//! others.

pub mod batches;
mod inspect;
pub mod naming;
pub mod run_facts;

pub use inspect::{inspect_file, scan_checkpoint_values, ScanError, MAX_WHOLE_FILE};

use crate::formats::logs::Series;
use crate::formats::safetensors::{Header, ValueScan};
use crate::formats::sharded::{self, ShardIndex};
use crate::formats::tokens::TokenBatch;
use crate::model::arch::{recognise, Recognition};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Checkpoint,
    ShardIndex,
    ModelConfig,
    RunLog,
    TokenBatch,
    Unknown,
}

impl FileKind {
    pub fn label(self) -> &'static str {
        match self {
            FileKind::Checkpoint => "checkpoint",
            FileKind::ShardIndex => "shard index",
            FileKind::ModelConfig => "model config",
            FileKind::RunLog => "run log",
            FileKind::TokenBatch => "token batch",
            FileKind::Unknown => "unknown",
        }
    }
}

/// How usable a file is. Ordered: the worse status wins when merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

/// What was parsed from a file (kept so later analysis does not re-read it).
#[derive(Debug, Clone, Default)]
pub enum Content {
    #[default]
    None,
    /// Its header (the tensors are read by the analysis, which checks their values).
    Checkpoint {
        header: Header,
    },
    ShardIndex(ShardIndex),
    ModelConfig(serde_json::Value),
    RunLog(Vec<Series>),
    TokenBatch(TokenBatch),
}

/// A remark added while linking files together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub level: Status,
    pub text: String,
}

/// One file of the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Path as dropped (`runs/A1/ckpt_tokens_0.safetensors`) or as given to the CLI.
    pub path: String,
    pub size: u64,
    pub kind: FileKind,
    pub run: Option<String>,
    pub step: Option<u64>,
    pub tokens: Option<u64>,
    /// Distinct tensor dtypes, `+`-joined (`BF16`, `F32+I64`).
    pub dtype: Option<String>,
    pub n_tensors: Option<usize>,
    /// Recognised architecture (summary), or why it was not recognised.
    pub architecture: Option<String>,
    /// One line about the content (`320 rows · 8 metrics`, `[4, 128] ids ≤ 255`).
    pub detail: Option<String>,
    /// Result of inspecting the file alone.
    pub status: Status,
    pub messages: Vec<String>,
    /// Remarks from linking it with the other files (cleared on every link).
    pub notes: Vec<Note>,
    #[serde(skip)]
    pub content: Content,
    #[serde(skip)]
    pub recognition: Option<Recognition>,
}

impl FileEntry {
    pub fn new(path: &str, size: u64) -> Self {
        Self {
            path: path.to_string(),
            size,
            kind: FileKind::Unknown,
            run: None,
            step: None,
            tokens: None,
            dtype: None,
            n_tensors: None,
            architecture: None,
            detail: None,
            status: Status::Ok,
            messages: Vec::new(),
            notes: Vec::new(),
            content: Content::None,
            recognition: None,
        }
    }

    /// The worse of the file's own status and its link notes.
    pub fn overall_status(&self) -> Status {
        self.notes
            .iter()
            .map(|n| n.level)
            .fold(self.status, Status::max)
    }

    /// Every message, the file's own first.
    pub fn all_messages(&self) -> Vec<String> {
        self.messages
            .iter()
            .cloned()
            .chain(self.notes.iter().map(|n| n.text.clone()))
            .collect()
    }

    pub(crate) fn fail(&mut self, kind: FileKind, message: impl Into<String>) {
        self.kind = kind;
        self.status = Status::Error;
        self.messages.push(message.into());
        self.content = Content::None;
    }

    pub(crate) fn warn(&mut self, message: impl Into<String>) {
        self.status = self.status.max(Status::Warning);
        self.messages.push(message.into());
    }

    fn note(&mut self, level: Status, text: impl Into<String>) {
        self.notes.push(Note {
            level,
            text: text.into(),
        });
    }

    /// Reports the tensors whose values read hold NaN or ±Inf (by the analysis, or
    /// [`scan_checkpoint_values`]) as a warning naming them; once, however often the
    /// analysis runs again.
    pub fn note_non_finite(&mut self, tensors: &[(String, ValueScan)]) {
        if tensors.is_empty() {
            return;
        }
        let mut total = ValueScan::default();
        for (_, s) in tensors {
            total.nan += s.nan;
            total.pos_inf += s.pos_inf;
            total.neg_inf += s.neg_inf;
        }
        let shown: Vec<&str> = tensors.iter().take(3).map(|(t, _)| t.as_str()).collect();
        let more = tensors.len().saturating_sub(3);
        let message = format!(
            "non-finite values: {} NaN, {} +Inf, {} −Inf in {} tensor(s): {}{}",
            total.nan,
            total.pos_inf,
            total.neg_inf,
            tensors.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        self.messages
            .retain(|m| !m.starts_with("non-finite values: "));
        self.warn(message);
    }

    pub(crate) fn set_tokens(&mut self, batch: TokenBatch) {
        self.kind = FileKind::TokenBatch;
        self.detail = Some(match batch.max_id() {
            Some(max) => format!("[{}, {}] ids ≤ {max}", batch.batch, batch.seq_len),
            None => format!("[{}, {}] (no ids)", batch.batch, batch.seq_len),
        });
        self.content = Content::TokenBatch(batch);
    }

    pub(crate) fn set_log(&mut self, series: Vec<Series>) {
        self.kind = FileKind::RunLog;
        let rows: usize = series.iter().map(Series::len).sum();
        let metrics: usize = series.iter().map(|s| s.metrics.len()).max().unwrap_or(0);
        let format = series.first().map(|s| s.format.label()).unwrap_or("log");
        self.detail = Some(if series.len() > 1 {
            format!(
                "{format} · {} runs · {rows} rows · {metrics} metrics",
                series.len()
            )
        } else {
            format!("{format} · {rows} rows · {metrics} metrics")
        });
        for s in &series {
            for w in &s.warnings {
                self.warn(w.clone());
            }
        }
        // A log names its run when it says so (W&B prefix, results.json tag);
        // else its path does.
        self.run = series
            .iter()
            .find_map(|s| s.run.clone())
            .or_else(|| naming::log_run(&self.path));
        if let Some(step) = series
            .iter()
            .flat_map(|s| s.step.iter().flatten())
            .copied()
            .reduce(f64::max)
        {
            self.step = Some(step as u64);
        }
        if let Some(tokens) = series
            .iter()
            .flat_map(|s| s.tokens.iter().flatten())
            .copied()
            .reduce(f64::max)
        {
            self.tokens = Some(tokens as u64);
        }
        self.content = Content::RunLog(series);
    }
}

/// A checkpoint of a run (a single file, or a sharded model's index).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CheckpointRef {
    /// Index into [`Inventory::files`].
    pub file: usize,
    pub path: String,
    pub step: Option<u64>,
    pub tokens: Option<u64>,
}

/// A training run: its checkpoints in training order, and its logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunGroup {
    pub name: String,
    pub checkpoints: Vec<CheckpointRef>,
    pub logs: Vec<String>,
    pub architecture: Option<String>,
    /// QK-norm, optimizer, learning rates and data, as the run's files state them.
    pub facts: run_facts::RunFacts,
}

/// All files, related.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub files: Vec<FileEntry>,
    pub runs: Vec<RunGroup>,
    pub token_batches: Vec<String>,
}

impl Inventory {
    /// Relates inspected files to each other. Idempotent: call it again after
    /// adding files or renaming a run.
    pub fn link(mut files: Vec<FileEntry>) -> Self {
        for f in &mut files {
            f.notes.clear();
            f.recognition = None;
            if matches!(f.kind, FileKind::Checkpoint | FileKind::ShardIndex) {
                f.architecture = None;
            }
        }
        link_shards(&mut files);
        recognise_checkpoints(&mut files);
        let mut runs = group_runs(&mut files);
        for run in &mut runs {
            run.facts = run_facts::run_facts(&files, run);
        }
        check_token_fit(&mut files);
        let token_batches = files
            .iter()
            .filter(|f| f.kind == FileKind::TokenBatch && f.status != Status::Error)
            .map(|f| f.path.clone())
            .collect();
        Inventory {
            files,
            runs,
            token_batches,
        }
    }

    /// The token batch at `path`, as inspection read it; `None` when the file is not there
    /// or is not a readable batch.
    pub fn token_batch(&self, path: &str) -> Option<&crate::formats::tokens::TokenBatch> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| match &f.content {
                Content::TokenBatch(b) => Some(b),
                _ => None,
            })
    }

    /// The files that are shards of the sharded model indexed by `files[index]`.
    pub fn shards_of(&self, index: usize) -> Vec<usize> {
        let Some(idx) = self.files.get(index) else {
            return Vec::new();
        };
        let tag = format!("shard of {}", idx.path);
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.notes.iter().any(|n| n.text == tag))
            .map(|(i, _)| i)
            .collect()
    }

    /// Why nothing in the inventory can be analysed as a checkpoint, file by
    /// file (`(path, reason)`), for the "nothing to analyse" answer: a command
    /// given files must say why it found nothing rather than print an empty
    /// result. Shards are left out (their index speaks for them).
    pub fn why_no_checkpoints(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .filter(|f| !is_shard(f))
            .map(|f| {
                let messages = f.all_messages().join("; ");
                let reason = match (f.kind, &f.recognition) {
                    _ if f.status == Status::Error => messages,
                    (
                        FileKind::Checkpoint | FileKind::ShardIndex,
                        Some(Recognition::Unknown { reason, .. }),
                    ) => {
                        format!(
                            "a {} whose architecture is not recognised: {reason}",
                            f.kind.label()
                        )
                    }
                    (FileKind::Checkpoint | FileKind::ShardIndex, _) if !messages.is_empty() => {
                        messages
                    }
                    (FileKind::Checkpoint | FileKind::ShardIndex, _) => {
                        format!("a {} with nothing to analyse", f.kind.label())
                    }
                    (FileKind::Unknown, _) => messages,
                    (kind, _) => format!("a {}, not a checkpoint", kind.label()),
                };
                (f.path.clone(), reason)
            })
            .collect()
    }

    /// Renames a run everywhere (checkpoints and logs), then relinks.
    pub fn rename_run(self, from: &str, to: &str) -> Self {
        let mut files = self.files;
        for f in &mut files {
            if f.run.as_deref() == Some(from) {
                f.run = Some(to.to_string());
            }
        }
        Self::link(files)
    }
}

/// Adds an inspected file to `files`. Two different files never silently
/// replace each other: when the path is taken (two dropped folders with the
/// same name, two roots given to the CLI), the new file is listed as
/// `path (2)` (`(3)`, …) and both say so. A caller that knows the new file
/// *is* the listed one (dropped again) removes the old entry first. Returns
/// the new file's index.
pub fn add_file(files: &mut Vec<FileEntry>, mut entry: FileEntry) -> usize {
    if let Some(first) = files.iter().position(|f| f.path == entry.path) {
        let original = entry.path.clone();
        let taken = |p: &str| files.iter().any(|f| f.path == p);
        let renamed = (2..)
            .map(|n| format!("{original} ({n})"))
            .find(|p| !taken(p))
            .unwrap_or_default();
        entry.warn(format!(
            "another file has the same path {original} ({} bytes); this one ({} bytes) is listed as {renamed}",
            files[first].size, entry.size
        ));
        files[first].warn(format!(
            "another file has the same path; it is listed as {renamed}"
        ));
        entry.path = renamed;
    }
    files.push(entry);
    files.len() - 1
}

/// The config.json in the same folder as `path`, if one was dropped.
fn config_beside<'a>(files: &'a [FileEntry], path: &str) -> Option<&'a serde_json::Value> {
    let dir = naming::parent_dir(path);
    files.iter().find_map(|f| match &f.content {
        Content::ModelConfig(v) if naming::parent_dir(&f.path) == dir => Some(v),
        _ => None,
    })
}

/// Marks the shards of each sharded model and checks them against the index.
fn link_shards(files: &mut [FileEntry]) {
    let indexes: Vec<(usize, ShardIndex)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match &f.content {
            Content::ShardIndex(idx) => Some((i, idx.clone())),
            _ => None,
        })
        .collect();
    for (i, index) in indexes {
        let dir = naming::parent_dir(&files[i].path).to_string();
        let mut present = Vec::new();
        let mut headers = Vec::new();
        for shard in index.shard_files() {
            // By last component (sharded.rs): `sub/model-00001….safetensors` in
            // the index is a dropped `model-00001….safetensors` beside the
            // index, or in its `sub/` folder.
            let base = sharded::base_name(&shard);
            let sub_dir = shard
                .strip_suffix(base)
                .unwrap_or("")
                .trim_end_matches(['/', '\\'])
                .replace('\\', "/");
            let in_sub = if dir.is_empty() {
                sub_dir.clone()
            } else {
                format!("{dir}/{sub_dir}")
            };
            let found = files.iter().position(|f| {
                let parent = naming::parent_dir(&f.path);
                (parent == dir || (!sub_dir.is_empty() && parent == in_sub))
                    && f.path.rsplit(['/', '\\']).next() == Some(base)
            });
            if let Some(j) = found {
                present.push(shard.clone());
                if let Content::Checkpoint { header, .. } = &files[j].content {
                    headers.push((shard.clone(), header.clone()));
                }
                let index_name = files[i].path.clone();
                files[j].note(Status::Ok, format!("shard of {index_name}"));
            }
        }
        let present_refs: Vec<&str> = present.iter().map(String::as_str).collect();
        let missing = index.missing_shards(&present_refs);
        if !missing.is_empty() {
            files[i].note(
                Status::Warning,
                format!("missing shards: {}", missing.join(", ")),
            );
        } else {
            let refs: Vec<(&str, &Header)> = headers.iter().map(|(n, h)| (n.as_str(), h)).collect();
            if let Err(e) = index.check_against_headers(&refs) {
                files[i].note(Status::Error, e.to_string());
            }
        }
        let facts = naming::checkpoint_facts(&files[i].path);
        let first_meta = headers
            .first()
            .map(|(_, h)| h.metadata.clone())
            .unwrap_or_default();
        let entry = &mut files[i];
        entry.run = entry
            .run
            .clone()
            .or(first_meta.get("run").cloned())
            .or(facts.run);
        entry.step = entry
            .step
            .or(first_meta.get("step").and_then(|s| s.parse().ok()))
            .or(facts.step);
        entry.tokens = entry
            .tokens
            .or(first_meta.get("tokens").and_then(|s| s.parse().ok()))
            .or(facts.tokens);
        entry.n_tensors = Some(index.weight_map.len());
        let mut dtypes: Vec<String> = headers
            .iter()
            .map(|(_, h)| {
                h.dtypes()
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        dtypes.dedup();
        if !dtypes.is_empty() {
            entry.dtype = Some(dtypes.join("+"));
        }
    }
}

fn is_shard(f: &FileEntry) -> bool {
    f.notes.iter().any(|n| n.text.starts_with("shard of "))
}

/// Recognises the architecture of every checkpoint (and sharded model).
fn recognise_checkpoints(files: &mut [FileEntry]) {
    let mut results = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (tensors, metadata) = match &f.content {
            Content::Checkpoint { header, .. } if !is_shard(f) => (
                header
                    .tensors
                    .iter()
                    .map(|t| (t.name.clone(), t.shape.clone()))
                    .collect::<Vec<_>>(),
                header.metadata.clone(),
            ),
            Content::ShardIndex(_) => {
                // The union of its shards' tensors.
                let tag = format!("shard of {}", f.path);
                let mut tensors = Vec::new();
                let mut metadata = BTreeMap::new();
                for g in files
                    .iter()
                    .filter(|g| g.notes.iter().any(|n| n.text == tag))
                {
                    if let Content::Checkpoint { header, .. } = &g.content {
                        tensors.extend(
                            header
                                .tensors
                                .iter()
                                .map(|t| (t.name.clone(), t.shape.clone())),
                        );
                        if metadata.is_empty() {
                            metadata = header.metadata.clone();
                        }
                    }
                }
                if tensors.is_empty() {
                    continue;
                }
                (tensors, metadata)
            }
            _ => continue,
        };
        let config = config_beside(files, &f.path);
        results.push((i, recognise(&tensors, &metadata, config)));
    }
    for (i, rec) in results {
        let f = &mut files[i];
        match &rec {
            Recognition::Known(arch) => {
                f.architecture = Some(arch.summary());
                if let Some(why) = &arch.no_forward_pass {
                    f.note(
                        Status::Warning,
                        format!(
                            "recognised as {}, but the forward pass cannot run it ({why}): weight spectra only, no activation spectra or loss",
                            arch.family.label()
                        ),
                    );
                }
            }
            Recognition::Unknown { reason, .. } => {
                f.architecture = Some(format!("unknown: {reason}"));
                f.note(
                    Status::Warning,
                    format!("architecture not recognised: {reason}"),
                );
            }
        }
        f.recognition = Some(rec);
    }
}

/// The sort key of a run's checkpoints: by training point (tokens, else step; none last), then
/// by name. Session merges order checkpoints by it too.
pub fn training_order(
    tokens: Option<u64>,
    step: Option<u64>,
    path: &str,
) -> (u64, Option<u64>, &str) {
    (tokens.or(step).unwrap_or(u64::MAX), step, path)
}

/// Groups checkpoints and logs into runs, checkpoints in training order.
fn group_runs(files: &mut [FileEntry]) -> Vec<RunGroup> {
    let mut runs: BTreeMap<String, RunGroup> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let is_model =
            (f.kind == FileKind::Checkpoint && !is_shard(f)) || f.kind == FileKind::ShardIndex;
        if f.status == Status::Error || !(is_model || f.kind == FileKind::RunLog) {
            continue;
        }
        let name = f
            .run
            .clone()
            .unwrap_or_else(|| naming::file_stem(&f.path).to_string());
        let group = runs.entry(name.clone()).or_insert_with(|| RunGroup {
            name,
            checkpoints: Vec::new(),
            logs: Vec::new(),
            architecture: None,
            facts: run_facts::RunFacts::default(),
        });
        if is_model {
            group.checkpoints.push(CheckpointRef {
                file: i,
                path: f.path.clone(),
                step: f.step,
                tokens: f.tokens,
            });
            if group.architecture.is_none() {
                group.architecture = f.architecture.clone();
            }
        } else {
            group.logs.push(f.path.clone());
        }
    }
    let mut out: Vec<RunGroup> = runs.into_values().collect();
    for run in &mut out {
        run.checkpoints.sort_by(|a, b| {
            training_order(a.tokens, a.step, &a.path)
                .cmp(&training_order(b.tokens, b.step, &b.path))
        });
        // A lone model (a Hugging Face `model.safetensors`) is a run of one
        // checkpoint: say so, rather than leave the user to wonder where its
        // trajectory went.
        if let [c] = run.checkpoints.as_slice() {
            if c.step.is_none() && c.tokens.is_none() {
                files[c.file].note(
                    Status::Ok,
                    "a checkpoint with no training point (no step or token count in its metadata or name): \
                     analysed as a one-checkpoint run, with spectra but no trajectory",
                );
            }
        }
        // Two files claiming the same point of the same run.
        for pair in run.checkpoints.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if (a.tokens, a.step) == (b.tokens, b.step) && (a.tokens.is_some() || a.step.is_some())
            {
                let text = format!("same run and training point as {}", a.path);
                files[b.file].note(Status::Warning, text);
                let text = format!("same run and training point as {}", b.path);
                files[a.file].note(Status::Warning, text);
            }
        }
    }
    out
}

/// A token batch must fit some recognised model: its ids below the vocabulary, its sequences no
/// longer than the context (when the model states one). A batch that fits one model and not
/// another belongs to the one (`batches` matches it there and warns on the model it does not
/// fit), so only a batch that fits none is flagged here, with every reason per model kind.
fn check_token_fit(files: &mut [FileEntry]) {
    let mut models: Vec<((usize, Option<usize>), String)> = files
        .iter()
        .filter_map(|f| match &f.recognition {
            Some(Recognition::Known(a)) => Some((
                (a.vocab, a.context),
                f.run.clone().unwrap_or_else(|| f.path.clone()),
            )),
            _ => None,
        })
        .collect();
    models.sort();
    models.dedup_by(|a, b| a.0 == b.0);
    for f in files.iter_mut() {
        let Content::TokenBatch(batch) = &f.content else {
            continue;
        };
        let notes: Vec<String> = models
            .iter()
            .filter_map(|((vocab, context), run)| {
                batches::why_not_fit(batch, *vocab, *context)
                    .map(|why| format!("{why} (model of {run})"))
            })
            .collect();
        if notes.len() < models.len() {
            continue; // it fits a model
        }
        for n in notes {
            f.note(Status::Warning, n);
        }
    }
}
