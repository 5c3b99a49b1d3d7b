//! Work that a page worker does for one checkpoint, described as plain data so
//! it can cross a `postMessage`: which files it needs (sent along as Blobs),
//! what to compute, and the result.
//!
//! A worker gets no inventory: it inspects the few files of its job (headers
//! only, microseconds) and links them, so architecture recognition is the same
//! code as on the main thread. Run names and training points stay with the
//! caller, who knows the user's renames.

use super::collect::checkpoint_weight_spectra;
use super::weights::WeightSpectra;
use crate::inventory::{inspect_file, FileKind, Inventory};
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};

/// What to compute for a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Singular values and metrics of every W_k / W_q head.
    WeightSpectra,
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
    /// The architecture was not recognised; the inventory says why.
    NotRecognised,
}

/// Which files of `inv` the job for `inv.files[checkpoint]` needs: the
/// checkpoint (and its shards) and the model configs beside it.
pub fn job_files(inv: &Inventory, checkpoint: usize) -> Vec<usize> {
    let mut files = vec![checkpoint];
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
    match job.kind {
        JobKind::WeightSpectra => {
            let n_layers = match &inv.files[index].recognition {
                Some(crate::model::arch::Recognition::Known(arch)) => arch.n_layers,
                _ => 0,
            };
            let mut report = |f: f64| {
                let done = (f * n_layers as f64).round() as usize;
                progress(&format!("layer {done} of {n_layers}"), f);
            };
            let out = checkpoint_weight_spectra(&inv, index, &open, &mut report).await?;
            Ok(out.map_or(JobOutput::NotRecognised, JobOutput::WeightSpectra))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::block_on;

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
