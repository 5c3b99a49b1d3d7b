//! One file → one [`FileEntry`]: recognise the file by its content (the name is
//! only a hint) and parse what is cheap to parse. A checkpoint's tensors are not
//! read here: its header is what recognition needs, and the NaN/Inf check happens
//! when the analysis reads the tensors (`model::tensors::Shards`), so each byte is
//! read once. Written once as `async` so the page (Blob slices) and the native CLI
//! (file seeks, via [`crate::source::block_on`]) share it.

use super::naming;
use super::{Content, FileEntry, FileKind};
use crate::formats::json_outline::{self, First, Outline};
use crate::formats::{logs, pytorch, safetensors as st, sharded, tokens, MAX_JSON_DOCUMENT};
use crate::source::AsyncByteSource;

/// Bytes read to recognise a file by its signature (binary formats).
const PROBE_LEN: u64 = 64;
/// Bytes read to recognise a file that shows no signature (logs, JSON).
const HEAD_LEN: u64 = 64 * 1024;
/// Whole-file formats (logs, JSON, .npy) larger than this are refused rather
/// than read into memory.
pub const MAX_WHOLE_FILE: u64 = 512 * 1024 * 1024;
/// [`scan_checkpoint_values`] reads a tensor in pieces of at most this many bytes,
/// so a 2 GB embedding never sits in memory at once.
const SCAN_CHUNK: u64 = 16 * 1024 * 1024;

/// Why [`scan_checkpoint_values`] could not read a tensor.
#[derive(Debug, thiserror::Error)]
#[error("could not read tensor `{tensor}`: {source}")]
pub struct ScanError {
    pub tensor: String,
    pub source: std::io::Error,
}

/// Why a checkpoint's header could not be read.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Safetensors(#[from] st::SafetensorsError),
    #[error("header too large for this platform")]
    TooLarge,
}

/// What the first bytes say the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Safetensors,
    /// `torch.save`: a zip archive, or the legacy format's magic number.
    PyTorch,
    Npy,
    Json,
    Log(logs::LogFormat),
    Unknown,
}

/// The binary formats' signatures, which the first [`PROBE_LEN`] bytes show: a checkpoint
/// is recognised without reading any of its tensor bytes.
fn sniff_signature(head: &[u8], size: u64) -> Option<Sniffed> {
    if head.starts_with(b"\x93NUMPY") {
        return Some(Sniffed::Npy);
    }
    if pytorch::zip::looks_like_zip(head) || pytorch::is_legacy(head) {
        return Some(Sniffed::PyTorch);
    }
    // safetensors: u64 LE header length that fits the file, then a JSON object.
    if let Some(first8) = head.get(..8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(first8);
        let n = u64::from_le_bytes(le);
        let fits = n > 1 && n <= st::MAX_HEADER_LEN && n.saturating_add(8) <= size;
        if fits && head.get(8) == Some(&b'{') {
            return Some(Sniffed::Safetensors);
        }
    }
    None
}

fn sniff(name: &str, head: &[u8], size: u64) -> Sniffed {
    if let Some(found) = sniff_signature(head, size) {
        return found;
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".safetensors") {
        // Claims to be safetensors but is not: let the parser say why.
        return Sniffed::Safetensors;
    }
    if lower.ends_with(".npy") {
        return Sniffed::Npy;
    }
    // A pickle (protocol 2+) named like a checkpoint: let the reader say what it is.
    if (lower.ends_with(".pt") || lower.ends_with(".pth")) && head.first() == Some(&0x80) {
        return Sniffed::PyTorch;
    }
    if let Some(format) = logs::detect(name, head) {
        return Sniffed::Log(format);
    }
    let trimmed = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|i| head.get(i));
    if matches!(trimmed, Some(b'{') | Some(b'[')) {
        return Sniffed::Json;
    }
    Sniffed::Unknown
}

/// Inspects one file. Never fails: problems become the entry's status and
/// messages. `progress` receives values in 0..=1.
pub async fn inspect_file(
    path: &str,
    src: &impl AsyncByteSource,
    progress: &mut dyn FnMut(f64),
) -> FileEntry {
    let size = src.size();
    let mut entry = FileEntry::new(path, size);
    progress(0.0);
    if size == 0 {
        entry.fail(FileKind::Unknown, "the file is empty");
        progress(1.0);
        return entry;
    }
    // A short probe first: a checkpoint's signature is in its first bytes, and a longer
    // head would read tensor bytes that the analysis reads again.
    let mut head = Vec::new();
    let mut sniffed = None;
    for len in [PROBE_LEN, HEAD_LEN] {
        head = match src.fetch(0, size.min(len) as usize).await {
            Ok(h) => h,
            Err(e) => {
                entry.fail(FileKind::Unknown, format!("could not read the file: {e}"));
                return entry;
            }
        };
        sniffed = sniff_signature(&head, size);
        if sniffed.is_some() || size <= len {
            break;
        }
    }
    match sniffed.unwrap_or_else(|| sniff(path, &head, size)) {
        Sniffed::Safetensors => inspect_safetensors(&mut entry, src, progress).await,
        Sniffed::PyTorch => inspect_pytorch(&mut entry, src, progress).await,
        Sniffed::Npy => {
            if let Some(bytes) = read_whole(&mut entry, src, FileKind::TokenBatch).await {
                match tokens::parse_npy(&bytes) {
                    Ok(batch) => entry.set_tokens(batch),
                    Err(e) => entry.fail(FileKind::TokenBatch, e.to_string()),
                }
            }
        }
        Sniffed::Log(format) => {
            if let Some(bytes) = read_whole(&mut entry, src, FileKind::RunLog).await {
                inspect_text(&mut entry, &bytes, Some(format));
            }
        }
        Sniffed::Json => {
            if let Some(bytes) = read_whole(&mut entry, src, FileKind::Unknown).await {
                inspect_text(&mut entry, &bytes, None);
            }
        }
        Sniffed::Unknown => entry.fail(
            FileKind::Unknown,
            "not a format rankscope reads (looked for safetensors, PyTorch checkpoints, .npy, JSON, \
             JSONL, CSV, TensorBoard events and text logs, and found none of their signs)",
        ),
    }
    progress(1.0);
    entry
}

async fn read_whole(
    entry: &mut FileEntry,
    src: &impl AsyncByteSource,
    kind: FileKind,
) -> Option<Vec<u8>> {
    let size = src.size();
    if size > MAX_WHOLE_FILE {
        entry.fail(
            kind,
            format!("{size} bytes is too large for this format (limit {MAX_WHOLE_FILE})"),
        );
        return None;
    }
    match src.fetch(0, size as usize).await {
        Ok(b) => Some(b),
        Err(e) => {
            entry.fail(kind, format!("could not read the file: {e}"));
            None
        }
    }
}

/// Keys a tokenizer's output holds beside `input_ids` (`tokenizer(...).data`
/// saved as JSON): an object with `input_ids` and only these is a token batch.
const TOKENIZER_KEYS: &[&str] = &[
    "input_ids",
    "tokens",
    "ids",
    "attention_mask",
    "token_type_ids",
    "labels",
    "position_ids",
    "special_tokens_mask",
    "length",
    "offset_mapping",
    "overflow_to_sample_mapping",
];

/// JSON and text: a shard index, a model config, a token batch, or a run
/// log — each recognised by its own positive evidence, never by elimination.
/// `log`: the format [`sniff`] detected from the first bytes (detected once, and
/// handed to the parser), so a parse failure is a broken log rather than some
/// other JSON; `None`: no log format matched.
fn inspect_text(entry: &mut FileEntry, bytes: &[u8], log: Option<logs::LogFormat>) {
    // One pass over the text that keeps nothing but the top-level keys: a
    // JSON lines log stops it at its second line.
    let outline = json_outline::outline(bytes).ok();
    if let Some(outline) = &outline {
        if inspect_json(entry, bytes, outline) {
            return;
        }
    }
    let Some(format) = log else {
        return entry.fail(FileKind::Unknown, not_read_reason(outline.as_ref()));
    };
    match logs::parse_known(format, bytes) {
        Ok(series) => entry.set_log(series),
        Err(e) => entry.fail(FileKind::RunLog, e.to_string()),
    }
}

/// Reads a JSON document that is a shard index, model config or token
/// batch; `false` when it is none of them (it may still be a log).
fn inspect_json(entry: &mut FileEntry, bytes: &[u8], outline: &Outline) -> bool {
    let too_big = bytes.len() > MAX_JSON_DOCUMENT;
    if outline.has_key("weight_map") {
        if too_big {
            entry.fail(
                FileKind::ShardIndex,
                format!(
                    "{} bytes is too large for a shard index (limit {MAX_JSON_DOCUMENT})",
                    bytes.len()
                ),
            );
            return true;
        }
        match sharded::parse_index(bytes) {
            Ok(index) => {
                entry.kind = FileKind::ShardIndex;
                entry.detail = Some(format!(
                    "{} tensors in {} shards",
                    index.weight_map.len(),
                    index.shard_files().len()
                ));
                entry.content = Content::ShardIndex(index);
            }
            Err(e) => entry.fail(FileKind::ShardIndex, e.to_string()),
        }
        return true;
    }
    if let Outline::Object {
        format: Some(f), ..
    } = outline
    {
        if f == crate::formats::SESSION_FORMAT {
            entry.fail(FileKind::Unknown, "a rankscope session file (saved by the page): open it in the page; it holds results, not inputs");
            return true;
        }
    }
    if is_model_config(outline) {
        if too_big {
            entry.fail(
                FileKind::ModelConfig,
                format!(
                    "{} bytes is too large for a model config (limit {MAX_JSON_DOCUMENT})",
                    bytes.len()
                ),
            );
            return true;
        }
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => {
                entry.kind = FileKind::ModelConfig;
                entry.detail = value
                    .get("model_type")
                    .and_then(|v| v.as_str())
                    .map(|t| format!("model_type {t}"))
                    .or_else(|| {
                        crate::model::arch::is_meta_params(&value)
                            .then(|| "Meta Llama params (dim, n_layers, n_heads)".to_string())
                    });
                entry.content = Content::ModelConfig(value);
            }
            Err(e) => entry.fail(FileKind::ModelConfig, format!("not valid JSON: {e}")),
        }
        return true;
    }
    if is_token_json(outline) {
        match tokens::parse_tokens_json(bytes) {
            Ok(batch) => entry.set_tokens(batch),
            Err(e) => entry.fail(FileKind::TokenBatch, e.to_string()),
        }
        return true;
    }
    false
}

/// Why a JSON or text file is none of the formats, from what its top level is.
fn not_read_reason(outline: Option<&Outline>) -> String {
    let what = match outline {
        Some(Outline::Array(First::Integer)) => {
            "a JSON array of integers, but a token batch is an array of equal-length rows ([[ids…], …]) or an object with \"input_ids\""
        }
        Some(Outline::Array(_)) => "a JSON array, but not of rows of integer token ids",
        Some(Outline::Object { keys, .. }) if keys.iter().any(|k| k == "input_ids") => {
            "a JSON object with \"input_ids\" among other keys (a results file?), not a token batch, run log, model config or shard index"
        }
        Some(Outline::Object { .. }) => "a JSON object, but not a run log, model config, shard index or token batch",
        Some(Outline::Scalar) => "a single JSON value",
        None => "text, but not a run log rankscope reads",
    };
    format!("not a format rankscope reads: {what}")
}

/// A Hugging Face / GPT-2 / the reference trainer's config file (the
/// reference's `LLMConfig` fields, as a `.pt` checkpoint pickles them), or
/// Meta's `params.json` (`n_heads`).
fn is_model_config(outline: &Outline) -> bool {
    const KEYS: &[&str] = &[
        "model_type",
        "architectures",
        "num_attention_heads",
        "n_head",
        "hidden_size",
        "n_embd",
        "n_heads",
        "d_model",
    ];
    KEYS.iter().any(|k| outline.has_key(k))
}

/// Positive evidence of a token batch: an array whose first element is a row
/// of integers (the reader checks every row), or an object with `input_ids`
/// (or `tokens`/`ids`) and nothing but what a tokenizer writes beside it.
fn is_token_json(outline: &Outline) -> bool {
    match outline {
        Outline::Array(first) => *first == First::IntegerRow,
        Outline::Object { keys, .. } => {
            keys.iter()
                .any(|k| matches!(k.as_str(), "input_ids" | "tokens" | "ids"))
                && keys.iter().all(|k| TOKENIZER_KEYS.contains(&k.as_str()))
        }
        Outline::Scalar => false,
    }
}

async fn read_header(src: &impl AsyncByteSource) -> Result<st::Header, HeaderError> {
    let size = src.size();
    let first8 = src.fetch(0, size.min(8) as usize).await?;
    let n = st::read_header_len(&first8, size)?;
    let n_usize = usize::try_from(n).map_err(|_| HeaderError::TooLarge)?;
    let json = src.fetch(8, n_usize).await?;
    Ok(st::parse_header(&json, size)?)
}

async fn inspect_safetensors(
    entry: &mut FileEntry,
    src: &impl AsyncByteSource,
    progress: &mut dyn FnMut(f64),
) {
    let header = match read_header(src).await {
        Ok(h) => h,
        Err(e) => {
            entry.fail(FileKind::Checkpoint, e.to_string());
            return;
        }
    };
    progress(0.02);
    // A token batch: integer tensors only, `input_ids` or a single one.
    let all_int = !header.tensors.is_empty() && header.tensors.iter().all(|t| !t.dtype.is_float());
    if all_int && (header.tensor("input_ids").is_some() || header.tensors.len() == 1) {
        let total: u64 = header.tensors.iter().map(|t| t.len).sum();
        if total > MAX_WHOLE_FILE {
            entry.fail(
                FileKind::TokenBatch,
                format!(
                    "{total} bytes of token ids is more than rankscope holds ({MAX_WHOLE_FILE})"
                ),
            );
            return;
        }
        // Token batches are small: read the file once and parse it.
        match src.fetch(0, src.size() as usize).await {
            Ok(bytes) => match tokens::parse_tokens_safetensors(&bytes) {
                Ok(batch) => entry.set_tokens(batch),
                Err(e) => entry.fail(FileKind::TokenBatch, e.to_string()),
            },
            Err(e) => entry.fail(
                FileKind::TokenBatch,
                format!("could not read the file: {e}"),
            ),
        }
        return;
    }

    inspect_checkpoint(entry, header);
}

/// A PyTorch checkpoint (`torch.save`, zip or legacy): located through its
/// pickle, then treated as a safetensors checkpoint is.
async fn inspect_pytorch(
    entry: &mut FileEntry,
    src: &impl AsyncByteSource,
    progress: &mut dyn FnMut(f64),
) {
    let ckpt = match pytorch::read_checkpoint(src).await {
        Ok(c) => c,
        Err(e) => {
            entry.fail(FileKind::Checkpoint, format!("PyTorch checkpoint: {e}"));
            return;
        }
    };
    progress(0.02);
    if ckpt.header.tensors.is_empty() {
        entry.fail(
            FileKind::Checkpoint,
            "PyTorch checkpoint: its state dict holds no tensors rankscope reads",
        );
        return;
    }
    let mut detail = vec![match ckpt.format {
        pytorch::PtFormat::Zip => "torch.save".to_string(),
        pytorch::PtFormat::Legacy => "torch.save (legacy format)".to_string(),
    }];
    if !ckpt.state_dict_at.is_empty() {
        detail.push(format!("state dict under `{}`", ckpt.state_dict_at));
    }
    if let Some(class) = &ckpt.config_class {
        detail.push(format!("config from the checkpoint's pickled {class}"));
    }
    detail.extend(
        ckpt.metrics
            .iter()
            .take(4)
            .map(|(k, v)| format!("{k} {v:.4}")),
    );
    entry.detail = Some(detail.join(" · "));
    if !ckpt.skipped.is_empty() {
        let shown: Vec<&str> = ckpt.skipped.iter().take(3).map(String::as_str).collect();
        let more = ckpt.skipped.len().saturating_sub(3);
        entry.warn(format!(
            "{} state-dict entries skipped: {}{}",
            ckpt.skipped.len(),
            shown.join("; "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    inspect_checkpoint(entry, ckpt.header);
}

/// A checkpoint's header, read: run and training point from its metadata (or
/// its path). Its tensors are not read (see the module doc).
fn inspect_checkpoint(entry: &mut FileEntry, header: st::Header) {
    let facts = naming::checkpoint_facts(&entry.path);
    entry.kind = FileKind::Checkpoint;
    entry.run = header
        .metadata
        .get("run")
        .cloned()
        .filter(|r| !r.is_empty())
        .or(facts.run);
    entry.step = header
        .metadata
        .get("step")
        .and_then(|s| s.trim().parse().ok())
        .or(facts.step);
    entry.tokens = header
        .metadata
        .get("tokens")
        .and_then(|s| s.trim().parse().ok())
        .or(facts.tokens);
    entry.dtype = Some(join_dtypes(&header.dtypes()));
    entry.n_tensors = Some(header.tensors.len());
    entry.content = Content::Checkpoint { header };
}

/// Counts NaN/±Inf in every float tensor of a checkpoint `header` describes, reading it
/// tensor by tensor in chunks: a pass of its own, for the CLI's `inspect --values`
/// (the analyses check what they read as they read it). `(tensor, counts)` of the
/// tensors that hold any, in file order.
pub async fn scan_checkpoint_values(
    header: &st::Header,
    src: &impl AsyncByteSource,
) -> Result<Vec<(String, st::ValueScan)>, ScanError> {
    let mut bad = Vec::new();
    for t in header.tensors.iter().filter(|t| t.dtype.is_float()) {
        // A strided view's span is scanned as stored: a value it skips
        // over is still a value in the file.
        let elem = t.dtype.size_bytes().max(1) as u64;
        let chunk = (SCAN_CHUNK / elem).max(1) * elem;
        let mut scan = st::ValueScan::default();
        let mut off = 0;
        while off < t.len {
            let n = chunk.min(t.len - off);
            let bytes = src
                .fetch(t.start + off, n as usize)
                .await
                .map_err(|source| ScanError {
                    tensor: t.name.clone(),
                    source,
                })?;
            let s = st::scan_values(&bytes, t.dtype);
            scan.nan += s.nan;
            scan.pos_inf += s.pos_inf;
            scan.neg_inf += s.neg_inf;
            off += n;
        }
        if scan.non_finite() > 0 {
            bad.push((t.name.clone(), scan));
        }
    }
    Ok(bad)
}

fn join_dtypes(dtypes: &[st::Dtype]) -> String {
    dtypes
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("+")
}
