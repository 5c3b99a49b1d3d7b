//! From an inventory to the study's per-run spectra: every recognised
//! checkpoint (single file or sharded) of every run, in training order. The
//! byte sources are supplied by the caller (files natively, Blobs in the page).

use super::activations::{
    activation_spectra, ActivationCheckpoint, ActivationError, ActivationRun, ActivationSpectra,
    KeyVariant, Progress, Stage,
};
use super::study::{CheckpointSpectra, RunSpectra};
use super::weights::{weight_spectra, Shards, WeightSpectra};
use crate::formats::safetensors::Header;
use crate::formats::tokens::TokenBatch;
use crate::inventory::{Content, Inventory};
use crate::model::arch::{Architecture, Recognition};
use crate::model::forward::ModelWeights;
use crate::source::AsyncByteSource;

/// A checkpoint whose spectra could not be computed, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
                Err(message) => failures.push(SpectraFailure {
                    path: c.path.clone(),
                    message,
                }),
            }
            progress(done, total);
        }
        if !checkpoints.is_empty() {
            runs.push(RunSpectra {
                run: run.name.clone(),
                color,
                checkpoints,
            });
        }
    }
    (runs, failures)
}

/// The weight spectra of the checkpoint `inv.files[file]` (a single file or a
/// sharded model's index). `Ok(None)` when its architecture is not recognised
/// (the inventory already says so); `Err` with a message when reading fails.
/// `progress` gets the fraction of layers done.
pub async fn checkpoint_weight_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    file: usize,
    open: &dyn Fn(usize) -> Option<S>,
    progress: &mut dyn FnMut(f64),
) -> Result<Option<WeightSpectra>, String> {
    let Some(entry) = inv.files.get(file) else {
        return Err("not in the inventory".into());
    };
    let Some(Recognition::Known(arch)) = &entry.recognition else {
        return Ok(None);
    };
    let Some((headers, sources)) = open_checkpoint(inv, file, open) else {
        return Err("its file is no longer readable".into());
    };
    let shards = Shards {
        parts: headers.into_iter().zip(sources.iter()).collect(),
    };
    weight_spectra(&shards, arch, progress)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The headers and opened sources of the files that hold checkpoint
/// `inv.files[file]`'s tensors: the file itself, or a sharded model's shards.
/// `None` when one of them can no longer be opened.
pub(crate) fn open_checkpoint<'a, S>(
    inv: &'a Inventory,
    file: usize,
    open: &dyn Fn(usize) -> Option<S>,
) -> Option<(Vec<&'a Header>, Vec<S>)> {
    let parts: Vec<usize> = match &inv.files[file].content {
        Content::ShardIndex(_) => inv.shards_of(file),
        _ => vec![file],
    };
    let headers: Vec<&Header> = parts
        .iter()
        .filter_map(|&i| match &inv.files[i].content {
            Content::Checkpoint { header, .. } => Some(header),
            _ => None,
        })
        .collect();
    let sources = parts.iter().map(|&i| open(i)).collect::<Option<Vec<S>>>()?;
    (headers.len() == parts.len()).then_some((headers, sources))
}

/// Loads one checkpoint (layer by layer, by byte range) and computes its
/// activation spectra on `eval` and, when given, the held-out loss: see
/// [`activation_spectra`]. `progress` reports "loading weights: layer i of n",
/// then the forward pass, spectra and held-out loss; `cancelled` is checked
/// between layers and sequences.
pub async fn checkpoint_activation_spectra<S: AsyncByteSource>(
    shards: &Shards<'_, S>,
    arch: &Architecture,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Result<ActivationSpectra, ActivationError> {
    if cancelled() {
        return Err(ActivationError::Cancelled);
    }
    let total = arch.n_layers;
    let model = ModelWeights::load(shards, arch, &mut |f| {
        progress(Progress {
            stage: Stage::Loading,
            done: (f * total as f64).round() as usize,
            total,
        })
    })
    .await?;
    activation_spectra(&model, eval, heldout, variants, progress, cancelled)
}

/// Activation spectra (and held-out loss) of every recognised checkpoint in
/// `inv`, like [`collect_weight_spectra`]. `progress(done, total, p)` gets the
/// number of checkpoints finished, their total and the current checkpoint's
/// [`Progress`]. When `cancelled()` turns true the work stops, the
/// checkpoint in progress is listed among the failures as "cancelled", and
/// what was finished is returned.
pub async fn collect_activation_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    open: &dyn Fn(usize) -> Option<S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(usize, usize, Progress),
    cancelled: &dyn Fn() -> bool,
) -> (Vec<ActivationRun>, Vec<SpectraFailure>) {
    let total: usize = inv.runs.iter().map(|r| r.checkpoints.len()).sum();
    let mut done = 0;
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    'runs: for (color, run) in inv.runs.iter().enumerate() {
        let mut checkpoints = Vec::new();
        for c in &run.checkpoints {
            let Some(Recognition::Known(arch)) = &inv.files[c.file].recognition else {
                done += 1;
                continue;
            };
            let Some((headers, sources)) = open_checkpoint(inv, c.file, open) else {
                failures.push(SpectraFailure {
                    path: c.path.clone(),
                    message: "its file is no longer readable".into(),
                });
                done += 1;
                continue;
            };
            let shards = Shards {
                parts: headers.into_iter().zip(sources.iter()).collect(),
            };
            let result = checkpoint_activation_spectra(
                &shards,
                arch,
                eval,
                heldout,
                variants,
                &mut |p| progress(done, total, p),
                cancelled,
            )
            .await;
            done += 1;
            match result {
                Ok(spectra) => checkpoints.push(ActivationCheckpoint {
                    path: c.path.clone(),
                    step: c.step,
                    tokens: c.tokens,
                    spectra,
                }),
                Err(ActivationError::Cancelled) => {
                    failures.push(SpectraFailure {
                        path: c.path.clone(),
                        message: "cancelled".into(),
                    });
                    if !checkpoints.is_empty() {
                        runs.push(ActivationRun {
                            run: run.name.clone(),
                            color,
                            checkpoints,
                        });
                    }
                    break 'runs;
                }
                Err(e) => failures.push(SpectraFailure {
                    path: c.path.clone(),
                    message: e.to_string(),
                }),
            }
        }
        if !checkpoints.is_empty() {
            runs.push(ActivationRun {
                run: run.name.clone(),
                color,
                checkpoints,
            });
        }
    }
    (runs, failures)
}
