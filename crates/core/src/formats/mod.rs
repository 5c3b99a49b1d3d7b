//! Input formats: one module per format, each with one entry point, so that a
//! reader finds "how is X read" in one file. Nothing here does I/O by itself:
//! parsers take bytes or a [`crate::ByteSource`].

pub mod json_outline;
pub mod logs;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod tokens;

/// Largest JSON document read as a whole into a tree (model configs, shard
/// indexes, a study's `results.json`/`metrics.json`): a tree takes up to ~40×
/// its text, and these files are a few kB to a few MB in practice. Token
/// arrays and JSON lines are read as streams and have no such limit.
pub const MAX_JSON_DOCUMENT: usize = 32 * 1024 * 1024;

/// The `format` field that marks a rankscope session file. It lives here, below the
/// inventory, because inspection recognises a session (to say it holds results, not
/// inputs) and the inventory sits below [`crate::session`], which reads and writes them.
pub const SESSION_FORMAT: &str = "rankscope-session";
