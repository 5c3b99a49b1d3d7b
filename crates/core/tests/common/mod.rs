//! Shared by the core's integration tests (`mod common;`): the fixtures folder, page-worker
//! jobs planned from fixture files the way the page plans them, and a byte source that
//! counts what is read.
#![allow(dead_code)] // each test binary uses part of it

use rankscope_core::analysis::jobs::{CheckpointJob, JobKind};
use rankscope_core::inventory::{inspect_file, Inventory};
use rankscope_core::source::{block_on, AsyncByteSource, ByteSource};
use std::io;
use std::sync::{Arc, Mutex};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

/// The bytes of a fixture file (`path` relative to the fixtures folder).
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The inventory of fixture files (paths relative to the fixtures folder), inspected and
/// linked as the page does.
pub fn inventory_of(paths: &[&str]) -> Inventory {
    let entries = paths
        .iter()
        .map(|p| block_on(inspect_file(p, &fixture(p), &mut |_| {})))
        .collect();
    Inventory::link(entries)
}

/// The page's job for `checkpoint` among fixture files `paths`, and the sources of its
/// files (in `job.files` order).
pub fn fixture_job(
    paths: &[&str],
    checkpoint: &str,
    kind: JobKind,
) -> (CheckpointJob, Vec<Vec<u8>>) {
    let inv = inventory_of(paths);
    let index = inv
        .files
        .iter()
        .position(|f| f.path == checkpoint)
        .unwrap_or_else(|| panic!("{checkpoint} is not among {paths:?}"));
    let job =
        CheckpointJob::plan(&inv, index, kind).unwrap_or_else(|e| panic!("{checkpoint}: {e}"));
    let sources = job.files.iter().map(|p| fixture(p)).collect();
    (job, sources)
}

/// A byte source that counts how often each byte is read (a cheap-to-clone handle: clones
/// count into the same tally, as the page's Blob handles read the same file).
#[derive(Clone)]
pub struct CountingSource {
    bytes: Arc<Vec<u8>>,
    reads: Arc<Mutex<Vec<u32>>>,
}

impl CountingSource {
    pub fn new(bytes: Vec<u8>) -> Self {
        let n = bytes.len();
        Self {
            bytes: Arc::new(bytes),
            reads: Arc::new(Mutex::new(vec![0; n])),
        }
    }

    /// How often each byte was read, by offset.
    pub fn reads(&self) -> Vec<u32> {
        self.reads.lock().unwrap().clone()
    }

    /// Bytes read in all (with repeats).
    pub fn total(&self) -> u64 {
        self.reads().iter().map(|&n| n as u64).sum()
    }

    pub fn reset(&self) {
        self.reads.lock().unwrap().iter_mut().for_each(|n| *n = 0);
    }
}

impl ByteSource for CountingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let out = self.bytes.as_slice().read_at(offset, len)?;
        let start = offset as usize;
        for n in &mut self.reads.lock().unwrap()[start..start + len] {
            *n += 1;
        }
        Ok(out)
    }
}

/// Inspects `path` from `src` (as the page does on drop).
pub fn inspect(path: &str, src: &impl AsyncByteSource) -> rankscope_core::inventory::FileEntry {
    block_on(inspect_file(path, src, &mut |_| {}))
}
