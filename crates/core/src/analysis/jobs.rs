//! Work that a page worker does for one checkpoint, described as plain data so
//! it can cross a `postMessage`: which files it needs (sent along as Blobs),
//! what to compute, and the result.
//!
//! A worker gets no inventory: it inspects the few files of its job (headers
//! only, microseconds) and links them, so architecture recognition is the same
//! code as on the main thread. Run names and training points stay with the
//! caller, who knows the user's renames.

use super::activations::{ActivationSpectra, KeyVariant, Progress};
use super::collect::{checkpoint_activation_spectra, checkpoint_weight_spectra, open_checkpoint};
use super::weights::{Shards, WeightSpectra};
use crate::inventory::{inspect_file, Content, FileKind, Inventory};
use crate::model::arch::Recognition;
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};

/// What to compute for a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Singular values and metrics of every W_k / W_q head.
    WeightSpectra,
    /// The weight spectra, then the forward pass on the eval batch: K/Q
    /// activation spectra (all variants) and, with a held-out batch, its loss.
    /// `eval` and `heldout` are paths among the job's files.
    WeightsAndActivations { eval: String, heldout: Option<String> },
}

/// One checkpoint's job. `files[i]` is the path of the i-th Blob sent with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointJob {
    /// The checkpoint's path: a `.safetensors` file or a sharded model's index.
    pub checkpoint: String,
    pub files: Vec<String>,
    pub kind: JobKind,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobOutput {
    WeightSpectra(WeightSpectra),
    /// Activations can fail where weights do not (a token id beyond the
    /// vocabulary, an architecture the forward pass does not run): the
    /// weight spectra are kept either way.
    WeightsAndActivations { weights: WeightSpectra, activations: Result<ActivationSpectra, String> },
    /// The architecture was not recognised; the inventory says why.
    NotRecognised,
}

/// Which files of `inv` the job for `inv.files[checkpoint]` needs: the
/// checkpoint (and its shards), the model configs beside it, and the token
/// batches named in `extra`.
pub fn job_files(inv: &Inventory, checkpoint: usize, extra: &[&str]) -> Vec<usize> {
    let mut files = vec![checkpoint];
    files.extend(extra.iter().filter_map(|p| inv.files.iter().position(|f| f.path == *p)));
    files.extend(inv.shards_of(checkpoint));
    let dir = inv
        .files
        .get(checkpoint)
        .map(|f| crate::inventory::naming::parent_dir(&f.path));
    files.extend(
        inv.files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.kind == FileKind::ModelConfig
                    && Some(crate::inventory::naming::parent_dir(&f.path)) == dir
            })
            .map(|(i, _)| i),
    );
    files
}

/// Runs a job over its files' sources (in `job.files` order; cheap-to-clone
/// handles). `progress`
/// gets a short line ("layer 3 of 22") and the fraction done.
pub async fn run_checkpoint_job<S: AsyncByteSource + Clone>(
    job: &CheckpointJob,
    sources: &[S],
    progress: &mut dyn FnMut(&str, f64),
) -> Result<JobOutput, String> {
    if sources.len() != job.files.len() {
        return Err(format!(
            "the job names {} files but {} came with it",
            job.files.len(),
            sources.len()
        ));
    }
    let mut entries = Vec::with_capacity(sources.len());
    for (path, src) in job.files.iter().zip(sources) {
        entries.push(inspect_file(path, src, &mut |_| {}).await);
    }
    let inv = Inventory::link(entries);
    let index = inv
        .files
        .iter()
        .position(|f| f.path == job.checkpoint)
        .ok_or_else(|| format!("{} is not among the job's files", job.checkpoint))?;
    // Sources are handles (a Blob, an open file), so cloning one is cheap.
    let open = |i: usize| sources.get(i).cloned();
    let n_layers = match &inv.files[index].recognition {
        Some(Recognition::Known(arch)) => arch.n_layers,
        _ => 0,
    };
    let mut weights_progress = |f: f64| {
        let done = (f * n_layers as f64).round() as usize;
        progress(&format!("weight spectra: layer {done} of {n_layers}"), f);
    };
    let Some(weights) = checkpoint_weight_spectra(&inv, index, &open, &mut weights_progress).await? else {
        return Ok(JobOutput::NotRecognised);
    };
    let (eval, heldout) = match &job.kind {
        JobKind::WeightSpectra => return Ok(JobOutput::WeightSpectra(weights)),
        JobKind::WeightsAndActivations { eval, heldout } => (eval, heldout),
    };
    let batch = |path: &str| match inv.files.iter().find(|f| f.path == path).map(|f| &f.content) {
        Some(Content::TokenBatch(b)) => Ok(b),
        _ => Err(format!("{path} is not a readable token batch")),
    };
    let activations = async {
        let eval = batch(eval)?;
        let heldout = heldout.as_deref().map(batch).transpose()?;
        let Some(Recognition::Known(arch)) = &inv.files[index].recognition else { unreachable!("checked above") };
        let (headers, parts) = open_checkpoint(&inv, index, &open).ok_or("its file is no longer readable")?;
        let shards = Shards { parts: headers.into_iter().zip(parts.iter()).collect() };
        let mut report = |p: Progress| progress(&p.to_string(), 0.0);
        checkpoint_activation_spectra(&shards, arch, eval, heldout, &KeyVariant::ALL, &mut report, &|| false)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    Ok(JobOutput::WeightsAndActivations { weights, activations })
}

/// The eval and held-out batches for the forward pass: the user's choice,
/// else by name — a batch named like `eval…` for eval and `heldout…`/`held_out…`
/// for held-out; a single unnamed batch is the eval batch. The same file is
/// never both (the SVD basis and the loss must not come from the same data).
pub fn pick_batches(
    batches: &[String],
    eval_choice: Option<String>,
    heldout_choice: Option<String>,
) -> (Option<String>, Option<String>) {
    let name = |p: &String| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
    let is_heldout = |p: &String| {
        let n = name(p);
        n.contains("heldout") || n.contains("held_out") || n.contains("held-out")
    };
    let valid = |c: Option<String>| c.filter(|c| batches.contains(c));
    let eval = valid(eval_choice)
        .or_else(|| batches.iter().find(|p| name(p).contains("eval") && !is_heldout(p)).cloned())
        .or_else(|| (batches.len() == 1 && !is_heldout(&batches[0])).then(|| batches[0].clone()));
    let heldout = valid(heldout_choice)
        .or_else(|| {
            // Prefer the plain held-out batch over variants like `heldout_tokens_simple`.
            let mut candidates: Vec<&String> = batches.iter().filter(|p| is_heldout(p)).collect();
            candidates.sort_by_key(|p| p.len());
            candidates.first().map(|p| (*p).clone())
        })
        .filter(|h| Some(h) != eval.as_ref());
    (eval, heldout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::block_on;

    #[test]
    fn batches_are_picked_by_name_and_never_both_the_same() {
        let all: Vec<String> = ["eval_tokens.safetensors", "heldout_tokens.safetensors", "heldout_tokens_simple.safetensors"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pick_batches(&all, None, None), (Some(all[0].clone()), Some(all[1].clone())));
        assert_eq!(pick_batches(&all, None, Some(all[2].clone())), (Some(all[0].clone()), Some(all[2].clone())));
        // A choice that is not (or no longer) in the inventory falls back to the names.
        assert_eq!(pick_batches(&all, Some("gone.npy".into()), None).0, Some(all[0].clone()));
        // One unnamed batch is the eval batch, and not also the held-out one.
        let one = vec!["batch.npy".to_string()];
        assert_eq!(pick_batches(&one, None, Some(one[0].clone())), (Some(one[0].clone()), None));
        assert_eq!(pick_batches(&[], None, None), (None, None));
        // Only a held-out batch: no eval batch, so no forward pass.
        assert_eq!(pick_batches(&all[1..2], None, None), (None, Some(all[1].clone())));
    }

    #[test]
    fn job_round_trips_through_json_and_reports_missing_files() {
        let job = CheckpointJob {
            checkpoint: "a.safetensors".into(),
            files: vec!["a.safetensors".into()],
            kind: JobKind::WeightSpectra,
        };
        let back: CheckpointJob =
            serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
        let none: [Vec<u8>; 0] = [];
        let err = block_on(run_checkpoint_job(&job, &none, &mut |_, _| {})).unwrap_err();
        assert!(err.contains("names 1 files but 0"), "{err}");
    }
}
