//! PyTorch checkpoints (`torch.save` → `.pt`, `.pth`, `.bin`), read as data
//! and by byte range, into the same [`Header`] a safetensors file gives, so
//! that every analysis reads them through the same paths.
//!
//! Two container formats:
//! - **zip** (PyTorch ≥ 1.6): `<name>/data.pkl` is a pickle of the saved
//!   object, whose tensors refer by persistent id
//!   `('storage', torch.FloatStorage, key, location, numel)` to the stored
//!   (uncompressed) entry `<name>/data/<key>`. See [`zip`].
//! - **legacy** (before 1.6): five pickles one after another (magic number,
//!   protocol version, system info, the object, the list of storage keys),
//!   then each storage as an 8-byte element count and its bytes, in key order.
//!
//! The object is read by [`pickle`], which builds data only; nothing in a
//! checkpoint is ever imported or run. A tensor is the recorded call
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`
//! (possibly wrapped in `_rebuild_parameter`): it becomes a [`TensorInfo`]
//! whose bytes start at its storage's data plus `offset` elements. A tensor
//! that is not row-major contiguous (a transposed view) keeps its strides,
//! and the readers gather its elements ([`crate::formats::safetensors::gather_strided`]);
//! views into one shared storage are simply tensors whose ranges overlap.
//!
//! The state dict is found under `model_state_dict`, `state_dict`, `model`
//! (nested too) or is the saved object itself. A `config` object beside it
//! (an instance of the user's own dataclass, read as its fields) goes into
//! the header's metadata as JSON, where the architecture recogniser looks for
//! a checkpoint's own config; `step` and `tokens` give the training point.

pub mod pickle;
pub mod write;
pub mod zip;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use self::pickle::{PickleError, Value};
use self::zip::{ZipEntry, ZipError};
use crate::formats::safetensors::{Dtype, Header, TensorInfo};
use crate::source::AsyncByteSource;

/// Largest `data.pkl` (or legacy pickle prefix) read into memory.
pub const MAX_PICKLE: u64 = 256 << 20;
/// The legacy format's first bytes: protocol 2, then the magic number
/// 0x1950a86a20f9469cfc6c as a 10-byte LONG1.
pub const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];
/// Keys under which trainers nest the state dict, tried in this order.
const STATE_DICT_KEYS: [&str; 6] = [
    "model_state_dict",
    "state_dict",
    "model",
    "module",
    "net",
    "network",
];
/// Keys under which trainers keep the model's configuration.
const CONFIG_KEYS: [&str; 5] = ["config", "model_config", "model_args", "cfg", "hparams"];
/// Deepest nesting searched for the state dict.
const MAX_NESTING: usize = 4;

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtFormat {
    Zip,
    Legacy,
}

/// A PyTorch checkpoint, located.
#[derive(Debug, Clone, PartialEq)]
pub struct PtCheckpoint {
    pub format: PtFormat,
    /// Tensors with absolute offsets (file order); metadata holds `config`
    /// (JSON text), `step` and `tokens` when the checkpoint says them.
    pub header: Header,
    /// Where the state dict was: `model_state_dict`, `model/state_dict`; empty
    /// when the saved object is the state dict.
    pub state_dict_at: String,
    /// The class of the pickled config (`configs.llm_config.LLMConfig`), or `dict`.
    pub config_class: Option<String>,
    /// Numbers under `metrics` (`val_loss`), in file order.
    pub metrics: Vec<(String, f64)>,
    /// State-dict entries that are not tensors we read, with why.
    pub skipped: Vec<String>,
}

/// Everything that can be wrong with a PyTorch checkpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PtError {
    #[error("{0}")]
    Zip(#[from] ZipError),
    #[error("{at}: {source}")]
    Pickle { at: String, source: PickleError },
    #[error("a zip archive, but not a torch.save checkpoint: it has no data.pkl")]
    NoDataPkl,
    #[error("{name} is {len} bytes, more than the {MAX_PICKLE} rankscope reads")]
    PickleTooLarge { name: String, len: u64 },
    #[error("the checkpoint was written on a big-endian machine, which rankscope does not read")]
    BigEndian,
    #[error("the checkpoint holds a whole pickled model object (class {class}), which would need that class's code to load; save its state dict instead: torch.save(model.state_dict(), path)")]
    WholeModule { class: String },
    #[error("no state dict of tensors in the checkpoint: it holds {found}")]
    NoStateDict { found: String },
    #[error("tensor `{tensor}`: {why}")]
    BadTensor { tensor: String, why: String },
    #[error("tensor `{tensor}` refers to storage `{key}`, which is not in the file")]
    MissingStorage { tensor: String, key: String },
    #[error("tensor `{tensor}` needs elements up to {needed} bytes into storage `{key}`, which holds only {available}")]
    StoragePastEnd {
        tensor: String,
        key: String,
        needed: u64,
        available: u64,
    },
    #[error("legacy torch.save file: {why}")]
    Legacy { why: String },
    #[error("could not read {len} bytes at offset {offset}: {message}")]
    Io {
        offset: u64,
        len: u64,
        message: String,
    },
}

/// A storage as the pickle names it: `('storage', torch.HalfStorage, '3', 'cpu', 12288)`.
#[derive(Debug, Clone, PartialEq)]
struct StorageRef {
    /// `None` for a storage type rankscope has no dtype for (named in `type_name`).
    dtype: Option<Dtype>,
    type_name: String,
    key: String,
    numel: u64,
}

/// The element type of a typed storage class (`FloatStorage` → F32).
fn storage_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "DoubleStorage" => Dtype::F64,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::BOOL,
        "ComplexFloatStorage" => Dtype::C64,
        "Float8_e4m3fnStorage" => Dtype::F8_E4M3,
        "Float8_e5m2Storage" => Dtype::F8_E5M2,
        "UInt16Storage" => Dtype::U16,
        "UInt32Storage" => Dtype::U32,
        "UInt64Storage" => Dtype::U64,
        _ => return None,
    })
}

fn storage_ref(pid: &Value) -> Result<StorageRef, String> {
    let parts = pid
        .elements()
        .ok_or_else(|| format!("its storage id is {}, not a tuple", pid.describe()))?;
    let [tag, ty, key, _location, numel, rest @ ..] = parts else {
        return Err(format!("its storage id has {} fields, not 5", parts.len()));
    };
    if tag.as_str() != Some("storage") {
        return Err(format!(
            "its persistent id starts with {}, not 'storage'",
            tag.describe()
        ));
    }
    if rest.iter().any(|v| *v != Value::None) {
        return Err("it is a view of a storage as pre-1.0 PyTorch wrote them, which rankscope does not read".into());
    }
    let Value::Global { module, name } = ty else {
        return Err(format!(
            "its storage type is {}, not a storage class",
            ty.describe()
        ));
    };
    let key = match key {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("its storage key is {}", other.describe())),
    };
    let numel = numel
        .as_i64()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("its storage size is {}", numel.describe()))?;
    Ok(StorageRef {
        dtype: storage_dtype(name),
        type_name: format!("{module}.{name}"),
        key,
        numel,
    })
}

/// A tensor as the pickle records it.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

/// `Some` when `v` is a tensor (or a parameter wrapping one), with what is
/// wrong with it as `Err`; `None` when it is not a tensor at all.
fn tensor_ref(v: &Value) -> Option<Result<TensorRef, String>> {
    let Value::Object {
        module, name, args, ..
    } = v
    else {
        return None;
    };
    if module != "torch._utils" && module != "torch._tensor" {
        return None;
    }
    match name.as_str() {
        "_rebuild_parameter" | "_rebuild_parameter_with_state" => tensor_ref(args.first()?),
        // (func, type, func's args, state): a tensor subclass around a plain rebuild.
        "_rebuild_from_type_v2" => match (args.first(), args.get(2)) {
            (Some(Value::Global { name: f, .. }), Some(Value::Tuple(inner))) if f == "_rebuild_tensor_v2" => {
                Some(rebuild_tensor(inner))
            }
            _ => Some(Err("a tensor subclass rankscope does not read".into())),
        },
        "_rebuild_tensor_v2" | "_rebuild_tensor" => Some(rebuild_tensor(args)),
        other if other.starts_with("_rebuild") => Some(Err(format!("stored as {module}.{other} (quantized, sparse or device-specific), which rankscope does not read"))),
        _ => None,
    }
}

fn rebuild_tensor(args: &[Value]) -> Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!(
            "_rebuild_tensor_v2 with {} arguments, not at least 4",
            args.len()
        ));
    };
    let Value::PersistentId(pid) = storage else {
        return Err(format!(
            "its storage is {}, not a persistent storage id",
            storage.describe()
        ));
    };
    let storage = storage_ref(pid)?;
    let dims = |v: &Value, what: &str| -> Result<Vec<u64>, String> {
        v.elements()
            .ok_or_else(|| format!("its {what} is {}, not a tuple", v.describe()))?
            .iter()
            .map(|d| {
                d.as_i64()
                    .and_then(|d| u64::try_from(d).ok())
                    .ok_or_else(|| format!("its {what} holds {}", d.describe()))
            })
            .collect()
    };
    let shape = dims(size, "shape")?;
    let stride = dims(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "shape {shape:?} and stride {stride:?} differ in length"
        ));
    }
    let offset = offset
        .as_i64()
        .and_then(|o| u64::try_from(o).ok())
        .ok_or_else(|| format!("its storage offset is {}", offset.describe()))?;
    Ok(TensorRef {
        storage,
        offset,
        shape,
        stride,
    })
}

/// Whether `v` is a dict with at least one tensor among its values.
fn holds_tensors(v: &Value) -> bool {
    v.dict_items()
        .is_some_and(|items| items.iter().any(|(_, x)| tensor_ref(x).is_some()))
}

/// A dict's entries, as the pickle gives them.
type Entries = [(Value, Value)];

/// The state dict inside `root`, with the key path to it.
fn find_state_dict(root: &Value) -> Result<(&Entries, String), PtError> {
    fn search(v: &Value, path: String, depth: usize) -> Option<(&Entries, String)> {
        if holds_tensors(v) {
            return v.dict_items().map(|items| (items, path));
        }
        if depth >= MAX_NESTING {
            return None;
        }
        STATE_DICT_KEYS.iter().find_map(|k| {
            let inner = v.get(k)?;
            let path = if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}/{k}")
            };
            search(inner, path, depth + 1)
        })
    }
    if let Some(found) = search(root, String::new(), 0) {
        return Ok(found);
    }
    if let Value::Object {
        module,
        name,
        state: Some(state),
        ..
    } = root
    {
        if state.get("_modules").is_some() || state.get("_parameters").is_some() {
            return Err(PtError::WholeModule {
                class: format!("{module}.{name}"),
            });
        }
    }
    let found = match root {
        Value::Dict(items) if !items.is_empty() => {
            let keys: Vec<String> = items
                .iter()
                .take(8)
                .map(|(k, v)| format!("{} ({})", key_text(k), v.describe()))
                .collect();
            format!(
                "a dict with keys {}{}",
                keys.join(", "),
                if items.len() > 8 { ", …" } else { "" }
            )
        }
        other => other.describe(),
    };
    Err(PtError::NoStateDict { found })
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        other => other.describe(),
    }
}

/// Where each storage's bytes lie in the file.
type StorageMap<'a> = dyn Fn(&str) -> Result<Range<u64>, PtError> + 'a;

/// The tensors of a state dict, located through `storage_at`.
fn locate_tensors(
    items: &[(Value, Value)],
    storage_at: &StorageMap<'_>,
) -> Result<(Vec<TensorInfo>, Vec<String>), PtError> {
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in items {
        let name = key_text(k);
        let t = match tensor_ref(v) {
            None => {
                skipped.push(format!("`{name}` is {}, not a tensor", v.describe()));
                continue;
            }
            Some(Err(why)) => return Err(PtError::BadTensor { tensor: name, why }),
            Some(Ok(t)) => t,
        };
        let Some(dtype) = t.storage.dtype else {
            skipped.push(format!(
                "`{name}` is stored as {}, a type rankscope does not read",
                t.storage.type_name
            ));
            continue;
        };
        if !seen.insert(name.clone()) {
            return Err(PtError::BadTensor {
                tensor: name,
                why: "the name appears twice".into(),
            });
        }
        tensors.push(locate(&name, dtype, &t, storage_at)?);
    }
    tensors.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
    Ok((tensors, skipped))
}

/// Row-major strides of `shape` (what a contiguous tensor has).
fn row_major(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
    }
    strides
}

fn locate(
    name: &str,
    dtype: Dtype,
    t: &TensorRef,
    storage_at: &StorageMap<'_>,
) -> Result<TensorInfo, PtError> {
    let bad = |why: String| PtError::BadTensor {
        tensor: name.to_string(),
        why,
    };
    let elem = dtype.size_bytes() as u64;
    let overflow = || {
        bad(format!(
            "shape {:?} with stride {:?} is too large to address",
            t.shape, t.stride
        ))
    };
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    // Elements from the first used to the last used, inclusive.
    let span = if numel == 0 {
        0
    } else {
        t.shape
            .iter()
            .zip(&t.stride)
            .try_fold(1u64, |a, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
            })
            .ok_or_else(overflow)?
    };
    let used_end = t.offset.checked_add(span).ok_or_else(overflow)?;
    let storage_bytes = t.storage.numel.checked_mul(elem).ok_or_else(overflow)?;
    let range = storage_at(&t.storage.key).map_err(|e| match e {
        PtError::MissingStorage { key, .. } => PtError::MissingStorage {
            tensor: name.to_string(),
            key,
        },
        other => other,
    })?;
    let available = (range.end - range.start).min(storage_bytes);
    let needed = used_end.checked_mul(elem).ok_or_else(overflow)?;
    if needed > available {
        return Err(PtError::StoragePastEnd {
            tensor: name.to_string(),
            key: t.storage.key.clone(),
            needed,
            available,
        });
    }
    // Dimensions of size 1 may carry any stride: they do not make a tensor non-contiguous.
    let contiguous = t
        .shape
        .iter()
        .zip(t.stride.iter().zip(row_major(&t.shape)))
        .all(|(&d, (&s, r))| d <= 1 || s == r);
    let start = range.start + t.offset * elem; // ≤ range.end, checked above
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape: t.shape.clone(),
        start,
        len: if contiguous {
            numel * elem
        } else {
            span * elem
        },
        strides: (!contiguous && numel > 0).then(|| t.stride.clone()),
    })
}

async fn fetch(src: &impl AsyncByteSource, offset: u64, len: u64) -> Result<Vec<u8>, PtError> {
    let io = |message: String| PtError::Io {
        offset,
        len,
        message,
    };
    let n = usize::try_from(len).map_err(|_| io("too large for this platform".into()))?;
    src.fetch(offset, n).await.map_err(|e| io(e.to_string()))
}

/// Whether the first bytes are the legacy format's magic number.
pub fn is_legacy(head: &[u8]) -> bool {
    head.starts_with(&LEGACY_MAGIC)
}

/// Reads a PyTorch checkpoint: the zip format, or the legacy one.
pub async fn read_checkpoint(src: &impl AsyncByteSource) -> Result<PtCheckpoint, PtError> {
    let head = fetch(src, 0, src.size().min(LEGACY_MAGIC.len() as u64)).await?;
    if is_legacy(&head) {
        read_legacy(src).await
    } else {
        read_zip(src).await
    }
}

async fn read_zip(src: &impl AsyncByteSource) -> Result<PtCheckpoint, PtError> {
    let entries = zip::read_entries(src).await?;
    let pkl = entries
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
        .min_by_key(|e| e.name.len())
        .ok_or(PtError::NoDataPkl)?;
    let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
    let by_name: HashMap<&str, &ZipEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    if let Some(order) = by_name.get(format!("{prefix}byteorder").as_str()) {
        let range = order.stored()?;
        let text = fetch(src, range.start, (range.end - range.start).min(16)).await?;
        if text.starts_with(b"big") {
            return Err(PtError::BigEndian);
        }
    }
    let range = pkl.stored()?;
    let len = range.end - range.start;
    if len > MAX_PICKLE {
        return Err(PtError::PickleTooLarge {
            name: pkl.name.clone(),
            len,
        });
    }
    let bytes = fetch(src, range.start, len).await?;
    let (root, _) = pickle::parse(&bytes).map_err(|source| PtError::Pickle {
        at: pkl.name.clone(),
        source,
    })?;
    let storage_at = |key: &str| -> Result<Range<u64>, PtError> {
        let entry = by_name
            .get(format!("{prefix}data/{key}").as_str())
            .ok_or_else(|| PtError::MissingStorage {
                tensor: String::new(),
                key: key.to_string(),
            })?;
        Ok(entry.stored()?)
    };
    interpret(PtFormat::Zip, &root, &storage_at, src.size())
}

/// The legacy format: the pickles are read from a growing prefix of the
/// file (they are small; the tensor data after them is not read).
async fn read_legacy(src: &impl AsyncByteSource) -> Result<PtCheckpoint, PtError> {
    let size = src.size();
    let mut want = size.min(1 << 20);
    loop {
        let bytes = fetch(src, 0, want).await?;
        match parse_legacy_pickles(&bytes) {
            Ok((root, keys, data_start)) => {
                return locate_legacy(src, root, keys, data_start).await
            }
            Err(PtError::Pickle {
                source: PickleError::Truncated { .. } | PickleError::NoStop,
                ..
            }) if want < size && want < MAX_PICKLE => {
                want = (want * 4).min(size).min(MAX_PICKLE);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The object and the storage keys, and where the storages start.
fn parse_legacy_pickles(bytes: &[u8]) -> Result<(Value, Vec<String>, u64), PtError> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Value, PtError> {
        let (v, used) = pickle::parse(&bytes[pos..]).map_err(|source| PtError::Pickle {
            at: format!("the legacy file's {what}"),
            source,
        })?;
        pos += used;
        Ok(v)
    };
    next("magic number")?;
    let protocol = next("protocol version")?;
    if protocol.as_i64() != Some(1001) {
        return Err(PtError::Legacy {
            why: format!("protocol version is {}, not 1001", protocol.describe()),
        });
    }
    let info = next("system information")?;
    if info.get("little_endian") == Some(&Value::Bool(false)) {
        return Err(PtError::BigEndian);
    }
    let root = next("saved object")?;
    let keys = next("storage key list")?;
    let keys = keys
        .elements()
        .ok_or_else(|| PtError::Legacy {
            why: format!("the storage key list is {}", keys.describe()),
        })?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| PtError::Legacy {
                    why: format!("a storage key is {}", k.describe()),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((root, keys, pos as u64))
}

/// Every storage reference in `v` (the legacy format needs each storage's
/// element size to step over it).
fn collect_storages(v: &Value, out: &mut HashMap<String, StorageRef>) {
    if let Some(Ok(t)) = tensor_ref(v) {
        out.insert(t.storage.key.clone(), t.storage);
        return;
    }
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.iter().for_each(|x| collect_storages(x, out))
        }
        Value::Dict(items) => items.iter().for_each(|(_, x)| collect_storages(x, out)),
        Value::Object {
            args, state, items, ..
        } => {
            args.iter().for_each(|x| collect_storages(x, out));
            if let Some(s) = state {
                collect_storages(s, out);
            }
            items.iter().for_each(|(_, x)| collect_storages(x, out));
        }
        _ => {}
    }
}

async fn locate_legacy(
    src: &impl AsyncByteSource,
    root: Value,
    keys: Vec<String>,
    data_start: u64,
) -> Result<PtCheckpoint, PtError> {
    let mut refs = HashMap::new();
    collect_storages(&root, &mut refs);
    let size = src.size();
    let mut ranges: HashMap<String, Range<u64>> = HashMap::new();
    let mut at = data_start;
    for key in &keys {
        let storage = refs.get(key).ok_or_else(|| PtError::Legacy {
            why: format!("storage `{key}` is listed but no tensor uses it, so its size is unknown"),
        })?;
        let elem = storage.dtype.map_or(0, |d| d.size_bytes() as u64);
        if elem == 0 {
            return Err(PtError::Legacy {
                why: format!(
                    "storage `{key}` is of type {}, which rankscope does not read",
                    storage.type_name
                ),
            });
        }
        let numel_bytes = fetch(src, at, 8).await?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&numel_bytes);
        let numel = u64::from_le_bytes(a);
        let start = at + 8;
        let end = numel.checked_mul(elem).and_then(|n| start.checked_add(n)).filter(|&e| e <= size).ok_or_else(|| PtError::Legacy {
            why: format!("storage `{key}` ({numel} elements at offset {start}) runs past the end of the {size}-byte file: truncated"),
        })?;
        ranges.insert(key.clone(), start..end);
        at = end;
    }
    let storage_at = |key: &str| -> Result<Range<u64>, PtError> {
        ranges
            .get(key)
            .cloned()
            .ok_or_else(|| PtError::MissingStorage {
                tensor: String::new(),
                key: key.to_string(),
            })
    };
    interpret(PtFormat::Legacy, &root, &storage_at, size)
}

/// From the saved object to a located checkpoint.
fn interpret(
    format: PtFormat,
    root: &Value,
    storage_at: &StorageMap<'_>,
    file_len: u64,
) -> Result<PtCheckpoint, PtError> {
    let (items, state_dict_at) = find_state_dict(root)?;
    let (tensors, skipped) = locate_tensors(items, storage_at)?;
    let mut metadata = BTreeMap::new();
    let mut config_class = None;
    if let Some(config) = CONFIG_KEYS.iter().find_map(|k| root.get(k)) {
        let json = config.to_json();
        if json.is_object() {
            config_class = Some(match config {
                Value::Object { module, name, .. } => format!("{module}.{name}"),
                _ => "dict".to_string(),
            });
            metadata.insert("config".to_string(), json.to_string());
        }
    }
    let count = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| root.get(k)?.as_i64())
            .and_then(|n| u64::try_from(n).ok())
    };
    if let Some(step) = count(&["step", "global_step", "iteration", "iter_num"]) {
        metadata.insert("step".to_string(), step.to_string());
    }
    if let Some(tokens) = count(&["tokens", "tokens_seen", "num_tokens"]) {
        metadata.insert("tokens".to_string(), tokens.to_string());
    }
    let metrics = root
        .get("metrics")
        .and_then(Value::dict_items)
        .map(|items| {
            items
                .iter()
                .filter_map(|(k, v)| {
                    let x = match v {
                        Value::Float(f) => *f,
                        Value::Int(i) => *i as f64,
                        _ => return None,
                    };
                    Some((key_text(k), x))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PtCheckpoint {
        format,
        header: Header {
            header_len: 0,
            file_len,
            metadata,
            tensors,
        },
        state_dict_at,
        config_class,
        metrics,
        skipped,
    })
}

#[cfg(test)]
mod tests;
