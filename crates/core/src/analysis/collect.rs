//! From an inventory to the study's per-run spectra: every recognised
//! checkpoint (single file or sharded) of every run, in training order. The
//! byte sources are supplied by the caller (files natively, Blobs in the page).

use super::study::{CheckpointSpectra, RunSpectra};
use super::weights::{weight_spectra, Shards, WeightSpectra};
use crate::inventory::{Content, Inventory};
use crate::model::arch::Recognition;
use crate::source::AsyncByteSource;

/// A checkpoint whose spectra could not be computed, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpectraFailure {
    pub path: String,
    pub message: String,
}

/// Computes the weight spectra of every recognised checkpoint in `inv`.
/// `open(i)` gives the source of `inv.files[i]`. Runs keep the inventory's
/// order, so a run's palette colour is its index there. `progress(done, total)`
/// is called after each checkpoint.
pub async fn collect_weight_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    open: &dyn Fn(usize) -> Option<S>,
    progress: &mut dyn FnMut(usize, usize),
) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    let total: usize = inv.runs.iter().map(|r| r.checkpoints.len()).sum();
    let mut done = 0;
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for (color, run) in inv.runs.iter().enumerate() {
        let mut checkpoints = Vec::new();
        for c in &run.checkpoints {
            done += 1;
            match checkpoint_weight_spectra(inv, c.file, open, &mut |_| {}).await {
                Ok(Some(spectra)) => checkpoints.push(CheckpointSpectra {
                    path: c.path.clone(),
                    step: c.step,
                    tokens: c.tokens,
                    spectra,
                }),
                Ok(None) => {}
                Err(message) => failures.push(SpectraFailure { path: c.path.clone(), message }),
            }
            progress(done, total);
        }
        if !checkpoints.is_empty() {
            runs.push(RunSpectra { run: run.name.clone(), color, checkpoints });
        }
    }
    (runs, failures)
}

/// The weight spectra of the checkpoint `inv.files[file]` (a single file or a
/// sharded model's index). `Ok(None)` when its architecture is not recognised
/// (the inventory already says so); `Err` with a message when reading fails.
/// `progress` gets the fraction of heads done.
pub async fn checkpoint_weight_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    file: usize,
    open: &dyn Fn(usize) -> Option<S>,
    progress: &mut dyn FnMut(f64),
) -> Result<Option<WeightSpectra>, String> {
    let Some(entry) = inv.files.get(file) else { return Err("not in the inventory".into()) };
    let Some(Recognition::Known(arch)) = &entry.recognition else {
        return Ok(None);
    };
    // The files that hold the tensors: the checkpoint itself, or a sharded
    // model's shards.
    let parts: Vec<usize> = match &entry.content {
        Content::ShardIndex(_) => inv.shards_of(file),
        _ => vec![file],
    };
    let sources: Vec<Option<S>> = parts.iter().map(|&i| open(i)).collect();
    let headers: Vec<_> = parts
        .iter()
        .filter_map(|&i| match &inv.files[i].content {
            Content::Checkpoint { header, .. } => Some(header),
            _ => None,
        })
        .collect();
    if headers.len() != parts.len() || sources.iter().any(Option::is_none) {
        return Err("its file is no longer readable".into());
    }
    let shards = Shards { parts: headers.into_iter().zip(sources.iter().flatten()).collect() };
    weight_spectra(&shards, arch, progress).await.map(Some).map_err(|e| e.to_string())
}
