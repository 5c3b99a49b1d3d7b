//! Session files: everything computed in the page (weight and activation
//! spectra of every run, Figures 3–5's numbers, failures) and the view, as one
//! versioned JSON file. A collaborator drops it and gets the workspace back
//! without the checkpoints. Numbers are written exactly (serde_json's
//! round-trip floats), so figures redraw pixel for pixel.

use crate::analysis::activations::ActivationRun;
use crate::analysis::jobs::StudyOutput;
use crate::analysis::pipeline::SpectraFailure;
use crate::analysis::shard::Shard;
use crate::analysis::trajectory::RunSpectra;
use crate::formats::json_outline;
use crate::formats::logs::Series;
use crate::formats::tokens::TokenBatch;
use crate::inventory::batches::RunBatches;
use crate::inventory::CheckpointRef;
use crate::inventory::{Content, FileEntry};
use crate::share::SourceFile;
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod merge;

pub use crate::formats::SESSION_FORMAT;
/// The version this build writes and reads.
pub const SESSION_VERSION: u32 = 1;
/// Largest session file accepted (a 6-run, 10-checkpoint, 22-layer study with
/// activations is a few MB).
pub const MAX_SESSION_BYTES: usize = 256 * 1024 * 1024;

/// One run's Figures 3–5 numbers at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRunRecord {
    pub run: String,
    pub color: usize,
    pub checkpoint: CheckpointRef,
    pub output: Result<StudyOutput, String>,
}

/// A token batch the numbers came from: its name as given, its shape and its content digest
/// ([`TokenBatch::content_digest`]), so that joined sessions can be checked to share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub name: String,
    pub batch: usize,
    pub seq_len: usize,
    pub digest: String,
}

impl BatchRecord {
    pub fn of(name: &str, tokens: &TokenBatch) -> Self {
        Self {
            name: name.into(),
            batch: tokens.batch,
            seq_len: tokens.seq_len,
            digest: tokens.content_digest(),
        }
    }
}

/// Which slice of a folder's checkpoints a session holds (`--shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    #[serde(flatten)]
    pub shard: Shard,
    /// The whole folder's checkpoints, over all shards.
    pub of_checkpoints: usize,
}

/// Everything a session file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Always [`SESSION_FORMAT`].
    pub format: String,
    pub version: u32,
    pub app_version: String,
    /// The files the numbers came from (names and sizes; not their bytes).
    #[serde(default)]
    pub files: Vec<SourceFile>,
    #[serde(default)]
    pub weights: Vec<RunSpectra>,
    #[serde(default)]
    pub activations: Vec<ActivationRun>,
    #[serde(default)]
    pub study: Vec<StudyRunRecord>,
    #[serde(default)]
    pub failures: Vec<SpectraFailure>,
    /// The token batches each run's numbers came from (file, digest, shape).
    #[serde(default)]
    pub batches: Vec<RunBatches>,
    /// The run logs as parsed series: the loss-curve figures redraw without the log files.
    #[serde(default)]
    pub logs: Vec<SessionLog>,
    /// Run renames the user made (old name → new).
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
    /// View settings (control values: batch choices, the loss-curve section's
    /// health rules and residual settings), opaque to the core.
    #[serde(default)]
    pub view: serde_json::Value,
    /// The eval batch of `activations` (the CLI writes it; the page leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<BatchRecord>,
    /// The held-out batch of the activations' held-out loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heldout: Option<BatchRecord>,
    /// The slice of a folder this session holds; none when it holds the whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

impl Session {
    pub fn new(files: Vec<SourceFile>) -> Self {
        Self {
            format: SESSION_FORMAT.into(),
            version: SESSION_VERSION,
            app_version: env!("CARGO_PKG_VERSION").into(),
            files,
            weights: Vec::new(),
            activations: Vec::new(),
            study: Vec::new(),
            failures: Vec::new(),
            batches: Vec::new(),
            logs: Vec::new(),
            renames: BTreeMap::new(),
            view: serde_json::Value::Null,
            eval: None,
            heldout: None,
            shard: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A run log as the page read it. NaN and ±inf values of the log become
/// missing values (JSON has no number for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLog {
    pub path: String,
    pub size: u64,
    /// The run it belongs to (after renames).
    pub run: Option<String>,
    pub series: Vec<Series>,
}

impl SessionLog {
    /// The log of an inventory entry, if it is one.
    pub fn of(entry: &FileEntry) -> Option<Self> {
        match &entry.content {
            Content::RunLog(series) => Some(Self {
                path: entry.path.clone(),
                size: entry.size,
                run: entry.run.clone(),
                series: series.clone(),
            }),
            _ => None,
        }
    }

    /// Back into an inventory entry, as inspecting the log file made it.
    pub fn entry(&self) -> FileEntry {
        let mut e = FileEntry::new(&self.path, self.size);
        e.set_log(self.series.clone());
        if self.run.is_some() {
            e.run.clone_from(&self.run);
        }
        e
    }
}

/// Why a session file could not be opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("the file is {0} bytes; session files over {MAX_SESSION_BYTES} bytes are refused (it was not read)")]
    TooBig(u64),
    #[error("this is not a rankscope session file")]
    NotASession,
    #[error("the session was saved by a newer rankscope (session format v{0}); this page reads v{SESSION_VERSION}")]
    FutureVersion(u32),
    #[error("the session file is truncated: it ends after {0} bytes, in the middle of its data (was it copied or downloaded completely?)")]
    Truncated(usize),
    #[error("the session file is damaged: {0}")]
    Damaged(String),
    #[error("the session file could not be read: {0}")]
    Unreadable(String),
}

/// Bytes of a file's start that [`looks_like_session`] needs: the writer
/// puts `format` first, so a few hundred suffice.
pub const SESSION_HEAD: usize = 4096;

/// Whether the start of a file is a session's: a JSON object whose top-level
/// `format` is [`SESSION_FORMAT`] (among the keys the head holds). A log
/// that merely mentions the word (a run named `rankscope-session-test`) is
/// not one.
pub fn looks_like_session(head: &[u8]) -> bool {
    json_outline::head_keys(head)
        .is_some_and(|(_, format)| format.as_deref() == Some(SESSION_FORMAT))
}

/// Opens a dropped file as a session if it is one: `None` when it is not (it
/// goes to the inventory), else the session or why it cannot be opened. The
/// size is checked before anything beyond the head is read.
pub async fn read_session(src: &impl AsyncByteSource) -> Option<Result<Session, SessionError>> {
    let size = src.size();
    let head = src
        .fetch(0, size.min(SESSION_HEAD as u64) as usize)
        .await
        .ok()?;
    if !looks_like_session(&head) {
        return None;
    }
    if size > MAX_SESSION_BYTES as u64 {
        return Some(Err(SessionError::TooBig(size)));
    }
    Some(match src.fetch(0, size as usize).await {
        Ok(bytes) => load_session_bytes(&bytes),
        Err(e) => Err(SessionError::Unreadable(e.to_string())),
    })
}

/// [`load_session`] of bytes (not UTF-8 is damage).
pub fn load_session_bytes(bytes: &[u8]) -> Result<Session, SessionError> {
    if bytes.len() > MAX_SESSION_BYTES {
        return Err(SessionError::TooBig(bytes.len() as u64));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load_session(text),
        // A cut inside a multi-byte character is a cut all the same.
        Err(e) if e.error_len().is_none() && looks_like_session(bytes) => {
            Err(SessionError::Truncated(bytes.len()))
        }
        Err(e) => Err(SessionError::Damaged(format!(
            "not UTF-8 text: invalid byte at offset {}",
            e.valid_up_to()
        ))),
    }
}

/// Reads a session file, checking its format tag and version before its schema.
pub fn load_session(text: &str) -> Result<Session, SessionError> {
    if text.len() > MAX_SESSION_BYTES {
        return Err(SessionError::TooBig(text.len() as u64));
    }
    // The header first, so a future version says so rather than failing on a field.
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        version: Option<u32>,
    }
    let header: Header = match serde_json::from_str(text) {
        Ok(h) => h,
        Err(_) if !looks_like_session(text.as_bytes()) => return Err(SessionError::NotASession),
        Err(e) if e.is_eof() => return Err(SessionError::Truncated(text.len())),
        Err(e) => return Err(SessionError::Damaged(e.to_string())),
    };
    if header.format.as_deref() != Some(SESSION_FORMAT) {
        return Err(SessionError::NotASession);
    }
    match header.version {
        Some(v) if v > SESSION_VERSION => return Err(SessionError::FutureVersion(v)),
        Some(SESSION_VERSION) => {}
        _ => return Err(SessionError::Damaged("no readable version".into())),
    }
    let session: Session =
        serde_json::from_str(text).map_err(|e| SessionError::Damaged(e.to_string()))?;
    // What serde cannot check: every run's checkpoints agree on the layer count.
    for r in &session.weights {
        let layers: Vec<usize> = r
            .checkpoints
            .iter()
            .map(|c| c.spectra.layers.len())
            .collect();
        if layers.windows(2).any(|w| w[0] != w[1]) {
            return Err(SessionError::Damaged(format!(
                "run {} has checkpoints with different layer counts",
                r.run
            )));
        }
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let s = Session::new(vec![SourceFile {
            name: "runs/A1/x.safetensors".into(),
            size: 3,
            digest: None,
            url: None,
        }]);
        let text = s.to_json();
        assert!(looks_like_session(text.as_bytes()));
        assert_eq!(load_session(&text).unwrap(), s);
        assert_eq!(load_session("[1,2]"), Err(SessionError::NotASession));
        assert_eq!(
            load_session("{\"format\":\"other\",\"version\":1}"),
            Err(SessionError::NotASession)
        );
        assert_eq!(
            load_session(&text.replace("\"version\":1", "\"version\":2")),
            Err(SessionError::FutureVersion(2))
        );
        assert!(matches!(
            load_session(&text.replace("\"weights\":[]", "\"weights\":{}")),
            Err(SessionError::Damaged(_))
        ));
        assert_eq!(
            load_session(&text[..text.len() - 3]),
            Err(SessionError::Truncated(text.len() - 3))
        );
        assert!(!looks_like_session(b"{\"step\": 1, \"loss\": 2}"));
        // The word alone (a run name in a log) is not a session.
        let log = b"{\"run\": \"rankscope-session-test\", \"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": 1}\n";
        assert!(!looks_like_session(log));
        assert_eq!(crate::source::block_on(read_session(&log.to_vec())), None);
        assert!(looks_like_session(&text.as_bytes()[..60]));
    }

    /// Logs, renames and view settings survive a round trip; a session written
    /// before they existed (the committed corpus file, and one with its new
    /// keys removed) still opens.
    #[test]
    fn logs_and_renames_round_trip_and_old_sessions_open() {
        let log = b"{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, \"loss\": 2.0}\n".to_vec();
        let entry = crate::source::block_on(crate::inventory::inspect_file(
            "runs/A1/metrics.jsonl",
            &log,
            &mut |_| {},
        ));
        let mut s = Session::new(vec![]);
        s.logs.push(SessionLog::of(&entry).expect("a log"));
        s.renames.insert("A1".into(), "muon".into());
        s.view = serde_json::json!({"loss_curves": {"beta": 0.5}});
        let back = load_session(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let again = back.logs[0].entry();
        assert_eq!(again.kind, entry.kind);
        assert_eq!(again.run.as_deref(), Some("A1"));
        let crate::inventory::Content::RunLog(series) = &again.content else {
            panic!("not a log")
        };
        assert_eq!(series[0].metrics["loss"], vec![Some(2.5), Some(2.0)]);

        let old = include_str!("../../../tests/malformed/hostile/session_ok.json");
        let opened = load_session(old).unwrap();
        assert!(opened.logs.is_empty() && opened.renames.is_empty() && opened.batches.is_empty());
        let mut value: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in ["logs", "renames", "batches"] {
            value.as_object_mut().unwrap().remove(key);
        }
        assert!(load_session(&value.to_string()).unwrap().logs.is_empty());
    }
}
