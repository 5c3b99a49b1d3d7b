//! One file → one [`FileEntry`]: recognise the file by its content (the name is
//! only a hint), parse what is cheap to parse, and read tensors one at a time
//! (by byte range) to count NaN/Inf values. Written once as `async` so the page
//! (Blob slices) and the native CLI (file seeks, via [`crate::source::block_on`])
//! share it.

use super::naming;
use super::{Content, FileEntry, FileKind, Status};
use crate::formats::json_outline::{self, First, Outline};
use crate::formats::{logs, pytorch, safetensors as st, sharded, tokens, MAX_JSON_DOCUMENT};
use crate::source::AsyncByteSource;

/// Bytes read to recognise a file.
const HEAD_LEN: u64 = 64 * 1024;
/// Whole-file formats (logs, JSON, .npy) larger than this are refused rather
/// than read into memory.
pub const MAX_WHOLE_FILE: u64 = 512 * 1024 * 1024;
/// NaN/Inf scanning reads a tensor in pieces of at most this many bytes, so a
/// 2 GB embedding never sits in memory at once.
const SCAN_CHUNK: u64 = 16 * 1024 * 1024;

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

fn sniff(name: &str, head: &[u8], size: u64) -> Sniffed {
    if head.starts_with(b"\x93NUMPY") {
        return Sniffed::Npy;
    }
    if pytorch::zip::looks_like_zip(head) || pytorch::is_legacy(head) {
        return Sniffed::PyTorch;
    }
    // safetensors: u64 LE header length that fits the file, then a JSON object.
    if let Some(first8) = head.get(..8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(first8);
        let n = u64::from_le_bytes(le);
        let fits = n > 1 && n <= st::MAX_HEADER_LEN && n.saturating_add(8) <= size;
        if fits && head.get(8) == Some(&b'{') {
            return Sniffed::Safetensors;
        }
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
    let head = match src.fetch(0, size.min(HEAD_LEN) as usize).await {
        Ok(h) => h,
        Err(e) => {
            entry.fail(FileKind::Unknown, format!("could not read the file: {e}"));
            return entry;
        }
    };
    match sniff(path, &head, size) {
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
        Sniffed::Log(_) => {
            if let Some(bytes) = read_whole(&mut entry, src, FileKind::RunLog).await {
                inspect_text(&mut entry, &bytes, true);
            }
        }
        Sniffed::Json => {
            if let Some(bytes) = read_whole(&mut entry, src, FileKind::Unknown).await {
                inspect_text(&mut entry, &bytes, false);
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
/// `looks_like_log`: the log detector recognised the first bytes, so a parse
/// failure is a broken log rather than some other JSON.
fn inspect_text(entry: &mut FileEntry, bytes: &[u8], looks_like_log: bool) {
    // One pass over the text that keeps nothing but the top-level keys: a
    // JSON lines log stops it at its second line.
    let outline = json_outline::outline(bytes).ok();
    if let Some(outline) = &outline {
        if inspect_json(entry, bytes, outline) {
            return;
        }
    }
    match logs::parse(&entry.path, bytes) {
        Ok(series) => entry.set_log(series),
        Err(e) if looks_like_log => entry.fail(FileKind::RunLog, e.to_string()),
        Err(_) => entry.fail(FileKind::Unknown, not_read_reason(outline.as_ref())),
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
        if f == crate::session::SESSION_FORMAT {
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

async fn read_header(src: &impl AsyncByteSource) -> Result<st::Header, String> {
    let size = src.size();
    let first8 = src
        .fetch(0, size.min(8) as usize)
        .await
        .map_err(|e| e.to_string())?;
    let n = st::read_header_len(&first8, size).map_err(|e| e.to_string())?;
    let n_usize =
        usize::try_from(n).map_err(|_| "header too large for this platform".to_string())?;
    let json = src.fetch(8, n_usize).await.map_err(|e| e.to_string())?;
    st::parse_header(&json, size).map_err(|e| e.to_string())
}

async fn inspect_safetensors(
    entry: &mut FileEntry,
    src: &impl AsyncByteSource,
    progress: &mut dyn FnMut(f64),
) {
    let header = match read_header(src).await {
        Ok(h) => h,
        Err(e) => {
            entry.fail(FileKind::Checkpoint, e);
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

    inspect_checkpoint(entry, src, header, progress).await;
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
    inspect_checkpoint(entry, src, ckpt.header, progress).await;
}

/// A checkpoint's header, read: run and training point from its metadata (or
/// its path), and non-finite values counted tensor by tensor, in chunks.
async fn inspect_checkpoint(
    entry: &mut FileEntry,
    src: &impl AsyncByteSource,
    header: st::Header,
    progress: &mut dyn FnMut(f64),
) {
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

    let data_bytes: u64 = header.tensors.iter().map(|t| t.len).sum::<u64>().max(1);
    let mut done = 0u64;
    let mut scan = st::ValueScan::default();
    let mut bad_tensors = Vec::new();
    for t in &header.tensors {
        let mut tensor_scan = st::ValueScan::default();
        if t.dtype.is_float() {
            // A strided view's span is scanned as stored: a value it skips
            // over is still a value in the file.
            let elem = t.dtype.size_bytes().max(1) as u64;
            let chunk = (SCAN_CHUNK / elem).max(1) * elem;
            let mut off = 0;
            while off < t.len {
                let n = chunk.min(t.len - off);
                match src.fetch(t.start + off, n as usize).await {
                    Ok(bytes) => {
                        let s = st::scan_values(&bytes, t.dtype);
                        tensor_scan.nan += s.nan;
                        tensor_scan.pos_inf += s.pos_inf;
                        tensor_scan.neg_inf += s.neg_inf;
                    }
                    Err(e) => {
                        entry.fail(
                            FileKind::Checkpoint,
                            format!("could not read tensor `{}`: {e}", t.name),
                        );
                        return;
                    }
                }
                off += n;
                done += n;
                progress(0.02 + 0.98 * done as f64 / data_bytes as f64);
            }
        } else {
            done += t.len;
        }
        if tensor_scan.nan + tensor_scan.pos_inf + tensor_scan.neg_inf > 0 {
            bad_tensors.push(t.name.clone());
            scan.nan += tensor_scan.nan;
            scan.pos_inf += tensor_scan.pos_inf;
            scan.neg_inf += tensor_scan.neg_inf;
        }
    }
    if !bad_tensors.is_empty() {
        let shown: Vec<&str> = bad_tensors.iter().take(3).map(String::as_str).collect();
        let more = bad_tensors.len().saturating_sub(3);
        entry.warn(format!(
            "non-finite values: {} NaN, {} +Inf, {} −Inf in {} tensor(s): {}{}",
            scan.nan,
            scan.pos_inf,
            scan.neg_inf,
            bad_tensors.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    entry.dtype = Some(join_dtypes(&header.dtypes()));
    entry.n_tensors = Some(header.tensors.len());
    entry.content = Content::Checkpoint {
        header,
        values: scan,
    };
    if entry.status == Status::Error {
        entry.content = Content::None;
    }
}

fn join_dtypes(dtypes: &[st::Dtype]) -> String {
    dtypes
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("+")
}
