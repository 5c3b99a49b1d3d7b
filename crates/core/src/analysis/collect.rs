//! From an inventory to the study's per-run spectra: every recognised
//! checkpoint (single file or sharded) of every run, in training order. The
//! byte sources are supplied by the caller (files natively, Blobs in the page).

use super::activations::{
    streamed_activation_spectra, ActivationCheckpoint, ActivationError, ActivationRun,
    ActivationSpectra, KeyVariant, Progress,
};
use super::trajectory::{CheckpointSpectra, RunSpectra};
use super::weights::{weight_spectra, ModelSpectra, Shards};
use crate::formats::safetensors::Header;
use crate::formats::tokens::TokenBatch;
use crate::inventory::{CheckpointRef, Content, Inventory, RunGroup};
use crate::model::arch::{Architecture, Recognition};
use crate::model::forward::StreamedModel;
use crate::source::{block_on, AsyncByteSource};

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
    let plan = planned(inv);
    let mut outcomes = Vec::with_capacity(plan.len());
    for (_, c) in &plan {
        outcomes.push(Outcome::from(
            checkpoint_weight_spectra(inv, c.file, open, &mut |_| {}).await,
        ));
        progress(outcomes.len(), plan.len());
    }
    weight_runs(inv, outcomes)
}

/// [`collect_weight_spectra`] for sources whose reads complete at once (files, natively),
/// the checkpoints spread over [`crate::parallel::map`]; the same runs, checkpoints and
/// failures in the same order, whatever the thread count.
pub fn collect_weight_spectra_blocking<S: AsyncByteSource>(
    inv: &Inventory,
    open: &(dyn Fn(usize) -> Option<S> + Sync),
) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    let outcomes = crate::parallel::map(&planned(inv), |(_, c)| {
        Outcome::from(block_on(checkpoint_weight_spectra(
            inv,
            c.file,
            open,
            &mut |_| {},
        )))
    });
    weight_runs(inv, outcomes)
}

fn weight_runs(
    inv: &Inventory,
    outcomes: Vec<Outcome<ModelSpectra>>,
) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    let (runs, failures) = assemble(inv, outcomes);
    let runs = runs
        .into_iter()
        .map(|(color, run, checkpoints)| RunSpectra {
            run: run.name.clone(),
            color,
            checkpoints: checkpoints
                .into_iter()
                .map(|(c, spectra)| CheckpointSpectra {
                    path: c.path.clone(),
                    step: c.step,
                    tokens: c.tokens,
                    spectra,
                })
                .collect(),
        })
        .collect();
    (runs, failures)
}

/// What became of one checkpoint.
enum Outcome<T> {
    Done(T),
    /// Its architecture is not recognised: the inventory already says so, no failure is listed.
    NotRecognised,
    Failed(String),
    Cancelled,
}

impl<T> From<Result<Option<T>, String>> for Outcome<T> {
    fn from(result: Result<Option<T>, String>) -> Self {
        match result {
            Ok(Some(t)) => Outcome::Done(t),
            Ok(None) => Outcome::NotRecognised,
            Err(message) => Outcome::Failed(message),
        }
    }
}

/// Every checkpoint of every run, in the order the collectors return them, with the run's
/// palette index (its index in `inv.runs`).
fn planned(inv: &Inventory) -> Vec<(usize, &CheckpointRef)> {
    inv.runs
        .iter()
        .enumerate()
        .flat_map(|(color, run)| run.checkpoints.iter().map(move |c| (color, c)))
        .collect()
}

/// A run's palette index, the run, and its checkpoints that have a result.
type Assembled<'a, T> = Vec<(usize, &'a RunGroup, Vec<(&'a CheckpointRef, T)>)>;

/// Groups the outcomes of the first `outcomes.len()` [`planned`] checkpoints by run (runs
/// without a result left out) and lists the failures, in plan order.
fn assemble<T>(
    inv: &Inventory,
    outcomes: Vec<Outcome<T>>,
) -> (Assembled<'_, T>, Vec<SpectraFailure>) {
    let mut runs: Assembled<'_, T> = Vec::new();
    let mut failures = Vec::new();
    for ((color, c), outcome) in planned(inv).into_iter().zip(outcomes) {
        let message = match outcome {
            Outcome::Done(t) => {
                match runs.last_mut() {
                    Some((last, _, checkpoints)) if *last == color => checkpoints.push((c, t)),
                    _ => runs.push((color, &inv.runs[color], vec![(c, t)])),
                }
                continue;
            }
            Outcome::NotRecognised => continue,
            Outcome::Failed(message) => message,
            Outcome::Cancelled => "cancelled".into(),
        };
        failures.push(SpectraFailure {
            path: c.path.clone(),
            message,
        });
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
) -> Result<Option<ModelSpectra>, String> {
    let Some(entry) = inv.files.get(file) else {
        return Err("not in the inventory".into());
    };
    let Some(Recognition::Known(arch)) = &entry.recognition else {
        return Ok(None);
    };
    let Some((headers, sources)) = open_checkpoint(inv, file, open) else {
        return Err("its file is no longer readable".into());
    };
    let shards = Shards::new(headers.into_iter().zip(sources.iter()).collect());
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

/// One checkpoint's activation spectra on `eval` and, when given, the held-out loss, its
/// forward pass streamed block by block ([`streamed_activation_spectra`]: one block's
/// weights in memory at a time). `progress` reports each block, then the held-out loss and
/// the spectra; `cancelled` is checked between blocks and layers.
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
    let model = StreamedModel::new(shards, arch)?;
    streamed_activation_spectra(&model, eval, heldout, variants, progress, cancelled).await
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
    let plan = planned(inv);
    let total = plan.len();
    let mut outcomes = Vec::with_capacity(total);
    for (_, c) in &plan {
        let done = outcomes.len();
        let outcome = activation_outcome(
            inv,
            c,
            open,
            eval,
            heldout,
            variants,
            &mut |p| progress(done, total, p),
            cancelled,
        )
        .await;
        let stop = matches!(outcome, Outcome::Cancelled);
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    activation_runs(inv, outcomes)
}

/// [`collect_activation_spectra`] for sources whose reads complete at once (files, natively),
/// the checkpoints spread over [`crate::parallel::map`]; the same runs, checkpoints and
/// failures in the same order, whatever the thread count. `finished(done, total)` is called
/// (from the worker threads) as each checkpoint finishes.
pub fn collect_activation_spectra_blocking<S: AsyncByteSource>(
    inv: &Inventory,
    open: &(dyn Fn(usize) -> Option<S> + Sync),
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    finished: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<ActivationRun>, Vec<SpectraFailure>) {
    let plan = planned(inv);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = crate::parallel::map(&plan, |(_, c)| {
        let outcome = block_on(activation_outcome(
            inv,
            c,
            open,
            eval,
            heldout,
            variants,
            &mut |_| {},
            &|| false,
        ));
        finished(
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            plan.len(),
        );
        outcome
    });
    activation_runs(inv, outcomes)
}

/// Loads checkpoint `c` and takes its activation spectra ([`checkpoint_activation_spectra`]).
#[allow(clippy::too_many_arguments)]
async fn activation_outcome<S: AsyncByteSource>(
    inv: &Inventory,
    c: &CheckpointRef,
    open: &dyn Fn(usize) -> Option<S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(Progress),
    cancelled: &dyn Fn() -> bool,
) -> Outcome<ActivationSpectra> {
    let Some(Recognition::Known(arch)) = &inv.files[c.file].recognition else {
        return Outcome::NotRecognised;
    };
    let Some((headers, sources)) = open_checkpoint(inv, c.file, open) else {
        return Outcome::Failed("its file is no longer readable".into());
    };
    let shards = Shards::new(headers.into_iter().zip(sources.iter()).collect());
    match checkpoint_activation_spectra(&shards, arch, eval, heldout, variants, progress, cancelled)
        .await
    {
        Ok(spectra) => Outcome::Done(spectra),
        Err(ActivationError::Cancelled) => Outcome::Cancelled,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn activation_runs(
    inv: &Inventory,
    outcomes: Vec<Outcome<ActivationSpectra>>,
) -> (Vec<ActivationRun>, Vec<SpectraFailure>) {
    let (runs, failures) = assemble(inv, outcomes);
    let runs = runs
        .into_iter()
        .map(|(color, run, checkpoints)| ActivationRun {
            run: run.name.clone(),
            color,
            checkpoints: checkpoints
                .into_iter()
                .map(|(c, spectra)| ActivationCheckpoint {
                    path: c.path.clone(),
                    step: c.step,
                    tokens: c.tokens,
                    spectra,
                })
                .collect(),
        })
        .collect();
    (runs, failures)
}
