//! Work that a page worker does for one checkpoint, described as plain data so
//! it can cross a `postMessage`: which files it reads (sent along as Blobs),
//! what was learnt of them at inspection, what to compute, and the result.
//!
//! A job carries the checkpoint's parsed headers, its recognised architecture
//! and its token batches ([`CheckpointJob::plan`]), so a worker parses nothing
//! again: its only reads are the tensors' bytes, each once (the weight spectra
//! are taken from the forward pass's own reads, and the NaN/Inf check happens as
//! they go by). Run names and training points stay with the caller, who knows
//! the user's renames.

use super::activations::{
    streamed_activation_spectra, ActivationSpectra, KeyVariant, Progress, Stage,
};
use super::importance::{gamma_vs_svd, layer_pr_with_ci, Importance, LayerPr};
use super::surgery::{has_key_norm, run_sweep_on, Strategy, SurgeryResult, SweepOptions};
use super::weights::{weight_spectra_after, ModelSpectra, Shards, WeightError, WeightTap};
use crate::formats::safetensors::Header;
use crate::formats::tokens::TokenBatch;
use crate::inventory::batches::misfit;
use crate::inventory::{Content, Inventory};
use crate::model::arch::{Architecture, Recognition};
pub use crate::model::backend::cpu_label;
use crate::model::backend::ForwardBackend;
use crate::model::forward::{ForwardError, ModelWeights, StreamedModel};
pub use crate::model::tensors::NonFinite;
use crate::source::AsyncByteSource;
use serde::{Deserialize, Serialize};

/// Why a checkpoint job could not be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the job names {named} files but {came} came with it")]
    FilesMismatch { named: usize, came: usize },
    #[error("its architecture is not recognised")]
    NotRecognised,
    #[error("its file is no longer readable")]
    Unreadable,
    #[error("{0} is not a readable token batch")]
    NotABatch(String),
    /// A batch that does not fit the model (an id beyond its vocabulary).
    #[error("{0}")]
    Misfit(String),
    #[error("the surgery basis and its loss must come from different batches: choose another held-out batch")]
    SameBatchFile,
    #[error("the eval and held-out batches hold the same tokens (content digest {digest}…): the surgery basis and its loss must come from different batches; choose another held-out batch")]
    SameTokens { digest: String },
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

/// What to compute for a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobKind {
    /// Singular values and metrics of every W_k / W_q head.
    ModelSpectra,
    /// The weight spectra, then the forward pass on the eval batch: K/Q
    /// activation spectra (all variants) and, with a held-out batch, its loss.
    /// `eval` and `heldout` are paths among the job's batches; K is taken at each of
    /// `variants` (every one unless the caller asks for fewer).
    WeightsAndActivations {
        eval: String,
        heldout: Option<String>,
        #[serde(default = "every_variant")]
        variants: Vec<KeyVariant>,
    },
    /// Figures 3–5 for one checkpoint: K PR per layer with a bootstrap CI
    /// over eval sequences, γ-vs-SVD importance, and the surgery sweep (basis
    /// from `eval`, loss on `heldout` — never the same batch).
    Study {
        eval: String,
        heldout: String,
        options: StudyOptions,
    },
}

fn every_variant() -> Vec<KeyVariant> {
    KeyVariant::ALL.to_vec()
}

/// Settings of a [`JobKind::Study`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyOptions {
    /// Surgery fractions, strategies and random seeds (γ is dropped for a
    /// model without a key norm, and the output says so).
    pub sweep: SweepOptions,
    /// Bootstrap resamples for Figure 3's intervals.
    pub n_boot: usize,
    /// Permutations for the Spearman p-value of Figure 5.
    pub n_perm: usize,
}

impl Default for StudyOptions {
    fn default() -> Self {
        Self {
            sweep: SweepOptions::default(),
            n_boot: 1000,
            n_perm: 10_000,
        }
    }
}

/// Figures 3–5's numbers for one checkpoint; each part can fail alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyOutput {
    pub layers: Result<Vec<LayerPr>, String>,
    pub importance: Result<Importance, String>,
    pub surgery: Result<SurgeryResult, String>,
    /// Where the forward passes ran (as [`JobOutput::WeightsAndActivations`]'s `engine`).
    #[serde(default)]
    pub engine: String,
}

/// One checkpoint's job, planned from the inventory ([`CheckpointJob::plan`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointJob {
    /// The checkpoint's path: a `.safetensors`/PyTorch file or a sharded model's index.
    pub checkpoint: String,
    /// The files that hold its tensors (the file itself, or the shards), in the order
    /// their sources (Blobs) come with the job.
    pub files: Vec<String>,
    /// `files[i]`'s header (tensor names, dtypes, byte ranges), parsed at inspection.
    pub headers: Vec<Header>,
    /// The architecture recognised at inspection (with the config beside it).
    pub arch: Architecture,
    /// The token batches `kind` names, by path, as inspection read them.
    pub batches: Vec<(String, TokenBatch)>,
    pub kind: JobKind,
}

impl CheckpointJob {
    /// The job for checkpoint `inv.files[checkpoint]`: its tensor files with their headers,
    /// its architecture, and the token batches `kind` names, all as inspection found them in
    /// the inventory.
    pub fn plan(inv: &Inventory, checkpoint: usize, kind: JobKind) -> Result<Self, JobError> {
        let batches: Vec<(String, TokenBatch)> = kind
            .batch_paths()
            .into_iter()
            .filter_map(|path| Some((path.clone(), inv.token_batch(path)?.clone())))
            .collect();
        Self::plan_with_batches(inv, checkpoint, kind, &batches)
    }

    /// [`CheckpointJob::plan`] with the token batches given (by path, as `kind` names them):
    /// the CLI's `--eval` file need not be among the inventory's files.
    pub fn plan_with_batches(
        inv: &Inventory,
        checkpoint: usize,
        kind: JobKind,
        given: &[(String, TokenBatch)],
    ) -> Result<Self, JobError> {
        let entry = inv.files.get(checkpoint).ok_or(JobError::Unreadable)?;
        let Some(Recognition::Known(arch)) = &entry.recognition else {
            return Err(JobError::NotRecognised);
        };
        let parts: Vec<usize> = match &entry.content {
            Content::ShardIndex(_) => inv.shards_of(checkpoint),
            _ => vec![checkpoint],
        };
        let mut files = Vec::with_capacity(parts.len());
        let mut headers = Vec::with_capacity(parts.len());
        for &i in &parts {
            let Content::Checkpoint { header, .. } = &inv.files[i].content else {
                return Err(JobError::Unreadable);
            };
            files.push(inv.files[i].path.clone());
            headers.push(header.clone());
        }
        // A batch that is missing or unreadable is the activations' failure, said when the
        // job runs; the weight spectra do not need it.
        let mut batches: Vec<(String, TokenBatch)> = Vec::new();
        for path in kind.batch_paths() {
            if let Some(b) = given.iter().find(|(p, _)| p == path) {
                if !batches.iter().any(|(p, _)| p == path) {
                    batches.push(b.clone());
                }
            }
        }
        Ok(Self {
            checkpoint: entry.path.clone(),
            files,
            headers,
            arch: arch.clone(),
            batches,
            kind,
        })
    }

    /// The token batch at `path` that came with the job.
    fn batch(&self, path: &str) -> Result<&TokenBatch, JobError> {
        self.batches
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b)
            .ok_or_else(|| JobError::NotABatch(path.to_string()))
    }
}

impl JobKind {
    /// The paths of the token batches this kind reads.
    fn batch_paths(&self) -> Vec<&String> {
        match self {
            JobKind::ModelSpectra => Vec::new(),
            JobKind::WeightsAndActivations { eval, heldout, .. } => {
                std::iter::once(eval).chain(heldout).collect()
            }
            JobKind::Study { eval, heldout, .. } => vec![eval, heldout],
        }
    }
}

/// A finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobOutput {
    ModelSpectra {
        weights: ModelSpectra,
        /// Tensors whose bytes read hold NaN or ±Inf (`part` indexes the job's `files`).
        #[serde(default)]
        non_finite: Vec<NonFinite>,
    },
    /// Activations can fail where weights do not (a token id beyond the
    /// vocabulary, an architecture the forward pass does not run): the
    /// weight spectra are kept either way.
    WeightsAndActivations {
        weights: ModelSpectra,
        activations: Result<ActivationSpectra, String>,
        /// Where the forward passes ran, as the page shows it ("CPU (WebAssembly)",
        /// "WebGPU: <adapter>", or the CPU with the reason WebGPU was not used).
        #[serde(default)]
        engine: String,
        /// As for [`JobOutput::ModelSpectra`]: the forward pass read every weight it uses.
        #[serde(default)]
        non_finite: Vec<NonFinite>,
    },
    Study(Box<StudyOutput>),
    /// The architecture was not recognised; the inventory says why.
    NotRecognised,
}

/// Which [`ForwardBackend`] a job's forward passes run on. The core's own is [`CpuEngine`]; the
/// page plugs in WebGPU (crates/gpu), which falls back to the CPU by itself when it has no
/// adapter. The analysis itself is the backend-generic code (`activations::activation_spectra_on`,
/// [`study_on`]); an engine only chooses the backend and says where the passes ran. Given the
/// model (read as the engine needs it: block by block on the CPU, whole for an upload), it
/// returns the activation spectra and a label of where they were computed.
#[allow(async_fn_in_trait)] // used with concrete types only, on one thread
pub trait ForwardEngine {
    async fn activation_spectra<S: AsyncByteSource>(
        &self,
        model: &StreamedModel<'_, '_, S>,
        eval: &TokenBatch,
        heldout: Option<&TokenBatch>,
        variants: &[KeyVariant],
        progress: &mut dyn FnMut(Progress),
    ) -> (Result<ActivationSpectra, String>, String);

    /// Figures 3–5's passes over `model` (loaded whole): [`study_on`] on this engine's backend.
    /// The CPU's by default.
    async fn study(
        &self,
        model: &ModelWeights,
        eval: &TokenBatch,
        heldout: &TokenBatch,
        options: &StudyOptions,
        progress: &mut dyn FnMut(&str, f64),
    ) -> StudyOutput {
        study_on(model, model, eval, heldout, options, progress).await
    }
}

/// The forward pass on the CPU (`model::forward`): natively, or in WebAssembly; streamed,
/// one block's weights in memory at a time.
pub struct CpuEngine;

impl ForwardEngine for CpuEngine {
    async fn activation_spectra<S: AsyncByteSource>(
        &self,
        model: &StreamedModel<'_, '_, S>,
        eval: &TokenBatch,
        heldout: Option<&TokenBatch>,
        variants: &[KeyVariant],
        progress: &mut dyn FnMut(Progress),
    ) -> (Result<ActivationSpectra, String>, String) {
        let result =
            streamed_activation_spectra(model, eval, heldout, variants, progress, &|| false).await;
        (result.map_err(|e| e.to_string()), cpu_label())
    }
}

/// Runs a job over its files' sources (in `job.files` order; cheap-to-clone
/// handles). `progress` gets a short line ("layer 3 of 22") and the fraction done.
pub async fn run_checkpoint_job<S: AsyncByteSource>(
    job: &CheckpointJob,
    sources: &[S],
    progress: &mut dyn FnMut(&str, f64),
) -> Result<JobOutput, JobError> {
    run_checkpoint_job_on(job, sources, &CpuEngine, progress).await
}

/// [`run_checkpoint_job`] with the forward passes of activation jobs on `engine`.
pub async fn run_checkpoint_job_on<S: AsyncByteSource>(
    job: &CheckpointJob,
    sources: &[S],
    engine: &impl ForwardEngine,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<JobOutput, JobError> {
    if sources.len() != job.files.len() || job.headers.len() != job.files.len() {
        return Err(JobError::FilesMismatch {
            named: job.files.len(),
            came: sources.len(),
        });
    }
    let arch = &job.arch;
    let n_layers = arch.n_layers;
    if let JobKind::Study {
        eval,
        heldout,
        options,
    } = &job.kind
    {
        return run_study(job, sources, eval, heldout, options, engine, progress).await;
    }
    // The forward pass reads every W_k and W_q; the tap takes their spectra as they go by,
    // so the weight spectra after it read nothing more (only what the pass did not reach).
    let tap = WeightTap::new(arch);
    let shards = Shards::new(job.headers.iter().zip(sources).collect()).with_tap(&tap);
    let mut engine_label = String::new();
    let activations = match &job.kind {
        JobKind::WeightsAndActivations {
            eval,
            heldout,
            variants,
        } => Some(
            async {
                let eval_path = eval;
                let eval = job.batch(eval)?;
                let heldout_path = heldout.as_deref().unwrap_or_default();
                let heldout = heldout.as_deref().map(|h| job.batch(h)).transpose()?;
                // An id beyond the vocabulary is the batch's fault: say which file.
                if let Some(why) = misfit(eval_path, eval, arch)
                    .or_else(|| heldout.and_then(|h| misfit(heldout_path, h, arch)))
                {
                    return Err(JobError::Misfit(why));
                }
                let mut report = |p: Progress| {
                    let share = job_share(Some(p.stage), p.done as f64 / p.total.max(1) as f64);
                    progress(&p.to_string(), share)
                };
                let model = StreamedModel::new(&shards, arch)?;
                let (result, label) = engine
                    .activation_spectra(&model, eval, heldout, variants, &mut report)
                    .await;
                engine_label = label;
                Ok(result)
            }
            .await
            .unwrap_or_else(|e: JobError| Err(e.to_string())),
        ),
        _ => None,
    };
    let mut weights_progress = |f: f64| {
        let done = (f * n_layers as f64).round() as usize;
        let share = if activations.is_some() {
            job_share(None, f)
        } else {
            f
        };
        progress(
            &format!("weight spectra: layer {done} of {n_layers}"),
            share,
        );
    };
    let weights = weight_spectra_after(&shards, arch, Some(&tap), &mut weights_progress).await?;
    let non_finite = shards.non_finite();
    Ok(match activations {
        None => JobOutput::ModelSpectra {
            weights,
            non_finite,
        },
        Some(activations) => JobOutput::WeightsAndActivations {
            weights,
            activations,
            engine: engine_label,
            non_finite,
        },
    })
}

/// The share of a weights-and-activations job done when `stage` (`None`: the
/// weight spectra, last: taken from the pass's reads, they only assemble) is `f`
/// done: each stage gets a rough share of the job's time (the forward pass the
/// most), so the page's bar moves on and its estimate of the time left means something.
fn job_share(stage: Option<Stage>, f: f64) -> f64 {
    let (start, width) = match stage {
        Some(Stage::Loading) => (0.0, 0.15),
        Some(Stage::EvalForward) => (0.15, 0.55),
        // Loading and the forward pass together.
        Some(Stage::Streaming) => (0.0, 0.7),
        Some(Stage::Spectra) => (0.7, 0.2),
        Some(Stage::HeldOut) => (0.9, 0.08),
        None => (0.98, 0.02),
    };
    start + width * f.clamp(0.0, 1.0)
}

/// The study job: load the model once, then [`ForwardEngine::study`].
#[allow(clippy::too_many_arguments)]
async fn run_study<S: AsyncByteSource>(
    job: &CheckpointJob,
    sources: &[S],
    eval: &str,
    heldout: &str,
    options: &StudyOptions,
    engine: &impl ForwardEngine,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<JobOutput, JobError> {
    if eval == heldout {
        return Err(JobError::SameBatchFile);
    }
    let (eval_path, heldout_path) = (eval, heldout);
    let (eval, heldout) = (job.batch(eval)?, job.batch(heldout)?);
    check_distinct_batches(eval, heldout)?;
    let arch = &job.arch;
    if let Some(why) = misfit(eval_path, eval, arch).or_else(|| misfit(heldout_path, heldout, arch))
    {
        return Err(JobError::Misfit(why));
    }
    let shards = Shards::new(job.headers.iter().zip(sources).collect());
    let n = arch.n_layers;
    let model = ModelWeights::load(&shards, arch, &mut |f| {
        progress(
            &format!(
                "loading weights: layer {} of {n}",
                (f * n as f64).round() as usize
            ),
            0.0,
        )
    })
    .await?;
    Ok(JobOutput::Study(Box::new(
        engine.study(&model, eval, heldout, options, progress).await,
    )))
}

/// Figures 3–5 for one checkpoint with the forward passes on `backend`: collect K on the eval
/// batch, then Figure 3 (layer PR + CI), Figure 5 (importance; the key norms' γ from `model`)
/// and Figure 4 (the surgery sweep, its held-out losses on `backend`).
pub async fn study_on(
    model: &ModelWeights,
    backend: &impl ForwardBackend,
    eval: &TokenBatch,
    heldout: &TokenBatch,
    options: &StudyOptions,
    progress: &mut dyn FnMut(&str, f64),
) -> StudyOutput {
    let arch = backend.arch();
    let n = arch.n_layers;
    let engine = backend.engine();
    // The page's status takes a line's stage from before its first ": ", so the engine is named
    // in words without one ("on the GPU"); the output carries the full label.
    let on = if engine.starts_with("GPU") {
        "on the GPU"
    } else {
        "on the CPU"
    };
    if options.sweep.share.index > 0 {
        // Another worker's share of the surgery sweep: Figures 3 and 5 are share 0's.
        let surgery = study_sweep(backend, eval, heldout, options, on, progress).await;
        let elsewhere = "in the sweep's first share's output";
        return StudyOutput {
            layers: Err(elsewhere.into()),
            importance: Err(elsewhere.into()),
            surgery,
            engine,
        };
    }
    progress(&format!("forward pass on the eval batch {on}"), 0.0);
    let keys = match backend.collect_keys(eval, &mut |_| true).await {
        Ok(keys) => keys,
        Err(e) => {
            let e = e.to_string();
            return StudyOutput {
                layers: Err(e.clone()),
                importance: Err(e.clone()),
                surgery: Err(e),
                engine,
            };
        }
    };
    progress("layer PR with bootstrap intervals", 0.0);
    let layers = layer_pr_with_ci(&keys, n, arch.n_kv_heads, eval.seq_len, options.n_boot, 0)
        .map_err(|e| e.to_string());
    progress("γ vs SVD importance", 0.0);
    let importance = gamma_vs_svd(model, &keys, options.n_perm, 0).map_err(|e| e.to_string());
    drop(keys);
    let surgery = study_sweep(backend, eval, heldout, options, on, progress).await;
    StudyOutput {
        layers,
        importance,
        surgery,
        engine,
    }
}

/// Figure 4's sweep (the share `options.sweep.share` of it) on `backend`, without γ for a model
/// that has no key norm; `on` says where, for the progress lines.
async fn study_sweep(
    backend: &impl ForwardBackend,
    eval: &TokenBatch,
    heldout: &TokenBatch,
    options: &StudyOptions,
    on: &str,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<SurgeryResult, String> {
    let mut sweep = options.sweep.clone();
    if !has_key_norm(backend) {
        sweep.strategies.retain(|s| *s != Strategy::Gamma);
    }
    run_sweep_on(
        backend,
        eval,
        heldout,
        &sweep,
        &mut |p| {
            let f = p.done as f64 / p.total.max(1) as f64;
            progress(
                &format!(
                    "surgery {on}: {} at {:.0}% pruned ({} of {})",
                    p.strategy.label(),
                    p.fraction * 100.0,
                    p.done,
                    p.total
                ),
                f,
            )
        },
        &|| false,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Refuses an eval batch that is also the held-out batch: the surgery's
/// basis comes from the eval batch, so its loss must be measured on other
/// tokens. Compares content digests ([`TokenBatch::content_digest`]), so a
/// copy under another name is refused too.
pub fn check_distinct_batches(eval: &TokenBatch, heldout: &TokenBatch) -> Result<(), JobError> {
    let digest = eval.content_digest();
    if digest == heldout.content_digest() {
        return Err(JobError::SameTokens {
            digest: digest[..12].to_string(),
        });
    }
    Ok(())
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
        .or_else(|| {
            batches
                .iter()
                .find(|p| name(p).contains("eval") && !is_heldout(p))
                .cloned()
        })
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
        let all: Vec<String> = [
            "eval_tokens.safetensors",
            "heldout_tokens.safetensors",
            "heldout_tokens_simple.safetensors",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick_batches(&all, None, None),
            (Some(all[0].clone()), Some(all[1].clone()))
        );
        assert_eq!(
            pick_batches(&all, None, Some(all[2].clone())),
            (Some(all[0].clone()), Some(all[2].clone()))
        );
        // A choice that is not (or no longer) in the inventory falls back to the names.
        assert_eq!(
            pick_batches(&all, Some("gone.npy".into()), None).0,
            Some(all[0].clone())
        );
        // One unnamed batch is the eval batch, and not also the held-out one.
        let one = vec!["batch.npy".to_string()];
        assert_eq!(
            pick_batches(&one, None, Some(one[0].clone())),
            (Some(one[0].clone()), None)
        );
        assert_eq!(pick_batches(&[], None, None), (None, None));
        // Only a held-out batch: no eval batch, so no forward pass.
        assert_eq!(
            pick_batches(&all[1..2], None, None),
            (None, Some(all[1].clone()))
        );
    }

    #[test]
    fn job_round_trips_through_json_and_reports_missing_files() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/runs/B1/ckpt_tokens_0.safetensors"
        );
        let bytes = std::fs::read(path).unwrap();
        let entry = block_on(crate::inventory::inspect_file(
            "B1/ckpt_tokens_0.safetensors",
            &bytes,
            &mut |_| {},
        ));
        let inv = Inventory::link(vec![entry]);
        let job = CheckpointJob::plan(&inv, 0, JobKind::ModelSpectra).unwrap();
        assert_eq!(job.files, ["B1/ckpt_tokens_0.safetensors"]);
        assert_eq!(job.arch.n_layers, 4);
        let back: CheckpointJob =
            serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
        let none: [Vec<u8>; 0] = [];
        let err = block_on(run_checkpoint_job(&job, &none, &mut |_, _| {})).unwrap_err();
        assert!(err.to_string().contains("names 1 files but 0"), "{err}");
    }
}
