//! One analysis pipeline for the page and the CLI: a [`Plan`] turns the inventory and the
//! user's choices (which batches each run uses, which checkpoint Figures 3–5 look at) into
//! checkpoint jobs, each with a stable key; the caller runs them on the executor it has (the
//! page's worker pool, the CLI's `--threads` pool through [`run_blocking`], one thread through
//! [`run`]); and [`Results`] folds each finished job into the runs the figures read.
//!
//! A job's run is its index in the inventory (also its palette colour); names are looked up
//! only when results are assembled, so a result never holds a name a rename could leave stale.

use super::activations::{ActivationCheckpoint, ActivationRun, ActivationSpectra, KeyVariant};
use super::jobs::{
    run_checkpoint_job_on, CheckpointJob, ForwardEngine, JobKind, JobOutput, NonFinite,
    StudyOptions, StudyOutput,
};
use super::surgery::{SurgeryResult, SweepShare};
use super::trajectory::{CheckpointSel, CheckpointSpectra, RunSpectra};
use super::weights::ModelSpectra;
use crate::formats::tokens::TokenBatch;
use crate::inventory::batches::RunBatches;
use crate::inventory::{CheckpointRef, Inventory};
use crate::model::arch::Recognition;
use crate::source::{block_on, AsyncByteSource};
use serde::{Deserialize, Serialize};

/// A checkpoint whose spectra could not be computed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectraFailure {
    pub path: String,
    pub message: String,
}

/// The token batches one run's forward passes use, by path, with their ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTokens {
    pub eval: Option<(String, TokenBatch)>,
    pub heldout: Option<(String, TokenBatch)>,
}

impl RunTokens {
    /// The batches `batches` matched for `run` (the page: `inventory::batches::run_batches`),
    /// their ids as inspection read them from the inventory.
    pub fn matched(inv: &Inventory, batches: &[RunBatches], run: &str) -> Self {
        let read = |path: Option<&String>| {
            let path = path?;
            Some((path.clone(), inv.token_batch(path)?.clone()))
        };
        let Some(b) = batches.iter().find(|b| b.run == run) else {
            return Self::default();
        };
        Self {
            eval: read(b.eval.as_ref().map(|x| &x.path)),
            heldout: read(b.heldout.as_ref().map(|x| &x.path)),
        }
    }
}

/// One job of a [`Plan`] and where its result goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    /// The run's index in the inventory: its id, and its palette colour.
    pub run: usize,
    pub checkpoint: CheckpointRef,
    pub job: CheckpointJob,
}

impl PlannedJob {
    /// The job's stable key: two jobs with the same key are the same work on the same files
    /// (the page keeps finished jobs by it, so dropping one more file recomputes only what it
    /// changes).
    pub fn key(&self) -> String {
        serde_json::to_string(&self.job).unwrap_or_default()
    }

    /// Every file the job reads: its tensor files, then its batches (a file dropped again
    /// evicts the jobs that read it).
    pub fn reads(&self) -> Vec<String> {
        let batches = self.job.batches.iter().map(|(p, _)| p.clone());
        self.job.files.iter().cloned().chain(batches).collect()
    }
}

/// The jobs an analysis needs, in run order and each run's training order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub jobs: Vec<PlannedJob>,
    /// Checkpoints that could not be planned, with why. A checkpoint whose architecture is
    /// not recognised is left out silently: the inventory already says why.
    pub failures: Vec<SpectraFailure>,
}

impl Plan {
    /// Figures 1–2: every recognised checkpoint of every run. A run with an eval batch in
    /// `tokens(run name)` gets its forward pass (activation spectra of `variants`, and with a
    /// held-out batch its loss); the others their weight spectra alone.
    pub fn spectra(
        inv: &Inventory,
        tokens: &dyn Fn(&str) -> RunTokens,
        variants: &[KeyVariant],
    ) -> Self {
        let mut plan = Self::default();
        for (run, group) in inv.runs.iter().enumerate() {
            let RunTokens { eval, heldout } = tokens(&group.name);
            let kind = match &eval {
                Some((eval, _)) => JobKind::WeightsAndActivations {
                    eval: eval.clone(),
                    heldout: heldout.as_ref().map(|(p, _)| p.clone()),
                    variants: variants.to_vec(),
                },
                None => JobKind::ModelSpectra,
            };
            let batches: Vec<(String, TokenBatch)> = eval.into_iter().chain(heldout).collect();
            for c in known_checkpoints(inv, run) {
                plan.push(inv, run, c, kind.clone(), &batches);
            }
        }
        plan
    }

    /// Figures 3–5: one study job per run, at checkpoint `at` of the run's recognised ones.
    /// A run without both an eval and a held-out batch is left out (the caller says which).
    pub fn study(
        inv: &Inventory,
        tokens: &dyn Fn(&str) -> RunTokens,
        at: CheckpointSel,
        options: &StudyOptions,
    ) -> Self {
        let mut plan = Self::default();
        for (run, group) in inv.runs.iter().enumerate() {
            let known = known_checkpoints(inv, run);
            let chosen = match at {
                CheckpointSel::Final => known.last(),
                CheckpointSel::Index(i) => known.get(i.min(known.len().saturating_sub(1))),
            };
            let Some(c) = chosen else { continue };
            let RunTokens {
                eval: Some(eval),
                heldout: Some(heldout),
            } = tokens(&group.name)
            else {
                continue;
            };
            let kind = JobKind::Study {
                eval: eval.0.clone(),
                heldout: heldout.0.clone(),
                options: options.clone(),
            };
            plan.push(inv, run, c, kind, &[eval, heldout]);
        }
        plan
    }

    /// Splits each study job's surgery sweep into `shares` jobs ([`SweepShare`]; the first also
    /// does Figures 3 and 5), so that idle workers can take part of a run's sweep; [`Results`]
    /// joins them. Other jobs stay as they are.
    pub fn share_sweeps(&mut self, shares: usize) {
        let mut jobs = Vec::with_capacity(self.jobs.len() * shares.max(1));
        for planned in std::mem::take(&mut self.jobs) {
            if !matches!(planned.job.kind, JobKind::Study { .. }) {
                jobs.push(planned);
                continue;
            }
            for share in SweepShare::all(shares) {
                let mut planned = planned.clone();
                if let JobKind::Study { options, .. } = &mut planned.job.kind {
                    options.sweep.share = share;
                }
                jobs.push(planned);
            }
        }
        self.jobs = jobs;
    }

    fn push(
        &mut self,
        inv: &Inventory,
        run: usize,
        c: &CheckpointRef,
        kind: JobKind,
        batches: &[(String, TokenBatch)],
    ) {
        match CheckpointJob::plan_with_batches(inv, c.file, kind, batches) {
            Ok(job) => self.jobs.push(PlannedJob {
                run,
                checkpoint: c.clone(),
                job,
            }),
            Err(e) => self.failures.push(SpectraFailure {
                path: c.path.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Whether any job runs a forward pass (Figure 1 then waits for the activation spectra).
    pub fn has_forward_passes(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| !matches!(j.job.kind, JobKind::ModelSpectra))
    }
}

/// A run's checkpoints whose architecture is recognised, in training order.
fn known_checkpoints(inv: &Inventory, run: usize) -> Vec<&CheckpointRef> {
    inv.runs[run]
        .checkpoints
        .iter()
        .filter(|c| matches!(inv.files[c.file].recognition, Some(Recognition::Known(_))))
        .collect()
}

/// What folding one job added besides its numbers, for the caller to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    /// Where its forward passes ran (the engine's label), when it ran any.
    pub engine: Option<String>,
    /// Tensors whose bytes hold NaN or ±Inf (`part` indexes the job's files).
    pub non_finite: Vec<NonFinite>,
}

/// The results of a plan's jobs as they finish, in the plan's order whatever order they
/// finish in; what the figures read is assembled from them ([`Results::weight_runs`],
/// [`Results::activation_runs`], [`Results::study_runs`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Per job: its run, its checkpoint, and its share of a study's sweep (`None`: not a
    /// study job).
    slots: Vec<(usize, CheckpointRef, Option<SweepShare>)>,
    weights: Vec<Option<ModelSpectra>>,
    activations: Vec<Option<ActivationSpectra>>,
    studies: Vec<Option<Result<StudyOutput, String>>>,
    /// The plan's failures, then each failed job's, in the order they were folded.
    pub failures: Vec<SpectraFailure>,
}

impl Results {
    pub fn new(plan: &Plan) -> Self {
        let n = plan.jobs.len();
        Self {
            slots: plan
                .jobs
                .iter()
                .map(|j| {
                    let share = match &j.job.kind {
                        JobKind::Study { options, .. } => Some(options.sweep.share),
                        _ => None,
                    };
                    (j.run, j.checkpoint.clone(), share)
                })
                .collect(),
            weights: vec![None; n],
            activations: vec![None; n],
            studies: vec![None; n],
            failures: plan.failures.clone(),
        }
    }

    /// Folds in job `i`'s result (`Err`: the job failed or was cancelled, with why).
    pub fn fold(&mut self, i: usize, result: Result<JobOutput, String>) -> Folded {
        let Some((_, c, study)) = self.slots.get(i) else {
            return Folded::default();
        };
        let (path, study) = (c.path.clone(), study.is_some());
        let mut folded = Folded::default();
        // A study job that came back without its study (its architecture unrecognised by the
        // worker) is the run's failure, said in its Figures 3–5 entry.
        let result = match result {
            Ok(JobOutput::Study(_)) | Err(_) => result,
            Ok(_) if study => Err("the checkpoint's architecture is not recognised".into()),
            Ok(_) => result,
        };
        match result {
            Ok(JobOutput::ModelSpectra {
                weights,
                non_finite,
            }) => {
                self.weights[i] = Some(weights);
                folded.non_finite = non_finite;
            }
            Ok(JobOutput::WeightsAndActivations {
                weights,
                activations,
                engine,
                non_finite,
            }) => {
                self.weights[i] = Some(weights);
                folded.non_finite = non_finite;
                folded.engine = (!engine.is_empty()).then_some(engine);
                match activations {
                    Ok(a) => self.activations[i] = Some(a),
                    Err(e) => self.failures.push(SpectraFailure {
                        path,
                        message: format!("activations: {e}"),
                    }),
                }
            }
            Ok(JobOutput::Study(out)) => {
                folded.engine = (!out.engine.is_empty()).then(|| out.engine.clone());
                self.studies[i] = Some(Ok(*out));
            }
            // Not recognised: the inventory already says why.
            Ok(JobOutput::NotRecognised) => {}
            Err(message) => {
                // A run's Figures 3–5 entry says why it has no numbers.
                if study {
                    self.studies[i] = Some(Err(message.clone()));
                }
                self.failures.push(SpectraFailure { path, message });
            }
        }
        folded
    }

    /// The weight spectra done so far, per run in plan order (`name(run)`: the run's name now).
    pub fn weight_runs(&self, name: &dyn Fn(usize) -> String) -> Vec<RunSpectra> {
        self.assemble(&self.weights, name, |c, spectra| CheckpointSpectra {
            path: c.path.clone(),
            step: c.step,
            tokens: c.tokens,
            spectra,
        })
        .into_iter()
        .map(|(color, run, checkpoints)| RunSpectra {
            run,
            color,
            checkpoints,
        })
        .collect()
    }

    /// The activation spectra done so far, per run (as [`Results::weight_runs`]).
    pub fn activation_runs(&self, name: &dyn Fn(usize) -> String) -> Vec<ActivationRun> {
        self.assemble(&self.activations, name, |c, spectra| ActivationCheckpoint {
            path: c.path.clone(),
            step: c.step,
            tokens: c.tokens,
            spectra,
        })
        .into_iter()
        .map(|(color, run, checkpoints)| ActivationRun {
            run,
            color,
            checkpoints,
        })
        .collect()
    }

    /// Figures 3–5's outputs so far: (run, its checkpoint, the study or why it failed).
    /// A run's study is there once every share of its sweep is: the first share's output
    /// with the other shares' passes joined into its surgery (or the first failure among them).
    pub fn study_runs(&self) -> Vec<(usize, CheckpointRef, Result<StudyOutput, String>)> {
        let mut runs = Vec::new();
        for ((run, c, share), study) in self.slots.iter().zip(&self.studies) {
            let (Some(SweepShare { index: 0, .. }), Some(study)) = (share, study) else {
                continue;
            };
            let others: Vec<&Option<Result<StudyOutput, String>>> = (self.slots.iter())
                .zip(&self.studies)
                .filter(|((r, other, s), _)| {
                    r == run && other.path == c.path && s.is_some_and(|s| s.index > 0)
                })
                .map(|(_, other)| other)
                .collect();
            if others.iter().any(|other| other.is_none()) {
                continue;
            }
            let mut study = study.clone();
            if let Ok(out) = &mut study {
                for other in others.into_iter().flatten() {
                    join_share(&mut out.surgery, other);
                }
            }
            runs.push((*run, c.clone(), study));
        }
        runs
    }

    /// Groups the finished slots of `values` by run, in plan order.
    fn assemble<T: Clone, C>(
        &self,
        values: &[Option<T>],
        name: &dyn Fn(usize) -> String,
        checkpoint: impl Fn(&CheckpointRef, T) -> C,
    ) -> Vec<(usize, String, Vec<C>)> {
        let mut runs: Vec<(usize, String, Vec<C>)> = Vec::new();
        for ((run, c, _), value) in self.slots.iter().zip(values) {
            let Some(value) = value else { continue };
            let point = checkpoint(c, value.clone());
            match runs.iter_mut().find(|r| r.0 == *run) {
                Some(r) => r.2.push(point),
                None => runs.push((*run, name(*run), vec![point])),
            }
        }
        runs
    }
}

/// Joins one more share of a sweep (a study job's output, or why it failed) into `surgery`.
fn join_share(surgery: &mut Result<SurgeryResult, String>, share: &Result<StudyOutput, String>) {
    let theirs = match share {
        Ok(out) => out.surgery.as_ref().map_err(Clone::clone),
        Err(e) => Err(e.clone()),
    };
    match (surgery.as_mut(), theirs) {
        (Ok(mine), Ok(theirs)) => mine.merge(theirs),
        (Ok(_), Err(e)) => *surgery = Err(e),
        (Err(_), _) => {}
    }
}

/// Runs `plan`'s jobs one after another on this thread, the forward passes on `engine`.
/// `open(path)` gives a file's source; `progress(done, total, line)` gets each job's stage.
/// When `cancelled()` turns true between jobs the next one is listed as "cancelled" and the
/// rest are not run.
pub async fn run<S: AsyncByteSource>(
    plan: &Plan,
    open: &dyn Fn(&str) -> Option<S>,
    engine: &impl ForwardEngine,
    progress: &mut dyn FnMut(usize, usize, &str),
    cancelled: &dyn Fn() -> bool,
) -> Results {
    let mut results = Results::new(plan);
    let total = plan.jobs.len();
    for (i, planned) in plan.jobs.iter().enumerate() {
        if cancelled() {
            results.fold(i, Err("cancelled".into()));
            break;
        }
        let result = run_one(planned, open, engine, &mut |line| progress(i, total, line)).await;
        results.fold(i, result);
    }
    results
}

/// Runs `plan`'s jobs natively on [`crate::parallel::map`] (the CLI's `--threads` pool; its
/// files' reads complete at once) on the CPU, and folds them in plan order: the same results
/// whatever the thread count. `finished(done, total)` is called (from the worker threads) as
/// each job ends.
pub fn run_blocking<S: AsyncByteSource>(
    plan: &Plan,
    open: &(dyn Fn(&str) -> Option<S> + Sync),
    finished: &(dyn Fn(usize, usize) + Sync),
) -> Results {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = plan.jobs.len();
    let outcomes = crate::parallel::map(&plan.jobs, |planned| {
        let result = block_on(run_one(planned, open, &super::jobs::CpuEngine, &mut |_| {}));
        finished(
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            total,
        );
        result
    });
    let mut results = Results::new(plan);
    for (i, result) in outcomes.into_iter().enumerate() {
        results.fold(i, result);
    }
    results
}

/// One job over its files' sources.
async fn run_one<S: AsyncByteSource>(
    planned: &PlannedJob,
    open: &dyn Fn(&str) -> Option<S>,
    engine: &impl ForwardEngine,
    progress: &mut dyn FnMut(&str),
) -> Result<JobOutput, String> {
    let Some(sources) = planned
        .job
        .files
        .iter()
        .map(|p| open(p))
        .collect::<Option<Vec<S>>>()
    else {
        return Err("its file is no longer readable".into());
    };
    run_checkpoint_job_on(&planned.job, &sources, engine, &mut |line, _| {
        progress(line)
    })
    .await
    .map_err(|e| e.to_string())
}

/// The weight spectra of every recognised checkpoint of `inv`, planned and run as the page
/// and the CLI do, one after another on this thread (`open(i)`: the source of `inv.files[i]`).
pub async fn collect_weight_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    open: &dyn Fn(usize) -> Option<S>,
) -> (Vec<RunSpectra>, Vec<SpectraFailure>) {
    let plan = Plan::spectra(inv, &|_| RunTokens::default(), &[]);
    let results = run(
        &plan,
        &by_index(inv, open),
        &super::jobs::CpuEngine,
        &mut |_, _, _| {},
        &|| false,
    )
    .await;
    (results.weight_runs(&run_name(inv)), results.failures)
}

/// The activation spectra (K at `variants`, and Q) of every recognised checkpoint of `inv`
/// on `eval`, with the held-out loss on `heldout`, as [`collect_weight_spectra`];
/// `progress(done, total, line)` gets each checkpoint's stage, and `cancelled` is asked
/// between checkpoints ([`run`]).
pub async fn collect_activation_spectra<S: AsyncByteSource>(
    inv: &Inventory,
    open: &dyn Fn(usize) -> Option<S>,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
    variants: &[KeyVariant],
    progress: &mut dyn FnMut(usize, usize, &str),
    cancelled: &dyn Fn() -> bool,
) -> (Vec<ActivationRun>, Vec<SpectraFailure>) {
    let tokens = RunTokens {
        eval: Some(("eval batch".into(), eval.clone())),
        heldout: heldout.map(|h| ("held-out batch".into(), h.clone())),
    };
    let plan = Plan::spectra(inv, &|_| tokens.clone(), variants);
    let results = run(
        &plan,
        &by_index(inv, open),
        &super::jobs::CpuEngine,
        progress,
        cancelled,
    )
    .await;
    (results.activation_runs(&run_name(inv)), results.failures)
}

/// `open` by path, for callers that open `inv.files` by index.
fn by_index<'a, S>(
    inv: &'a Inventory,
    open: &'a dyn Fn(usize) -> Option<S>,
) -> impl Fn(&str) -> Option<S> + 'a {
    move |path| open(inv.files.iter().position(|f| f.path == path)?)
}

/// A run's name by its index in `inv`.
fn run_name(inv: &Inventory) -> impl Fn(usize) -> String + '_ {
    |i| inv.runs.get(i).map(|r| r.name.clone()).unwrap_or_default()
}
