//! Input formats: one module per format, each with one entry point, so that a
//! reader finds "how is X read" in one file. Nothing here does I/O by itself:
//! parsers take bytes or a [`crate::ByteSource`].

pub mod logs;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod tokens;
