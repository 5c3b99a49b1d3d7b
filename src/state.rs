//! The page's shared state (a Leptos context) and the one action that changes
//! it: inspecting picked files, one after another, into the inventory.

use crate::status::{classify_engine, Engine, JobsProgress, RunnerNote};
use crate::view_state::{FigureRuns, ViewState};
use crate::web::files::PickedFile;
use crate::web::sources::{FileHandle, Source};
use crate::web::worker_pool::{self, Runner, Task};
use leptos::prelude::*;
use leptos::task::spawn_local;
use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::jobs::{JobKind, JobOutput, NonFinite, StudyOptions};
use rankscope_core::analysis::pipeline::{Plan, Results, RunTokens, SpectraFailure};
use rankscope_core::analysis::trajectory::CheckpointSel;
use rankscope_core::analysis::trajectory::RunSpectra;
use rankscope_core::inventory::batches::{run_batches, BatchChoice, RunBatches};
use rankscope_core::inventory::CheckpointRef;
use rankscope_core::inventory::{inspect_file, Inventory};
use rankscope_core::session::{Session, SessionError, SessionLog};
use rankscope_core::share::SourceFile;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// A file waiting for, or under, inspection.
#[derive(Clone, PartialEq)]
pub struct Pending {
    pub id: u64,
    pub path: String,
    pub size: u64,
    /// 0..=1 while reading; shown as the row's progress bar.
    pub progress: RwSignal<f64>,
}

/// The files the user gave and what they are: the inventory, its runs and their names, the
/// batches chosen for them, and the reading of files while it runs.
#[derive(Clone, Copy)]
pub struct Workspace {
    pub inventory: RwSignal<Inventory>,
    pub pending: RwSignal<Vec<Pending>>,
    /// Run renames the user made, applied to files that arrive later too.
    pub renames: RwSignal<BTreeMap<String, String>>,
    /// Set by the Cancel button; the queue stops before its next file.
    pub cancel: RwSignal<bool>,
    /// A one-line message above the table (errors of the drop itself, cancels).
    pub notice: RwSignal<Option<String>>,
    /// One line per event of the last drop that the user must know of
    /// (each session opened or refused, files of the same path): all kept.
    pub notices: RwSignal<Vec<String>>,
    /// The user's choice of token batches, by run name (unchosen roles are
    /// matched by `inventory::batches`: folder, then name, then fit).
    pub batch_choices: RwSignal<BTreeMap<String, BatchChoice>>,
    /// The example study's download while it runs (bytes received).
    pub example_progress: RwSignal<Option<crate::web::files::Download>>,
    /// The files by path: handles only (a `File` or a URL is not its bytes),
    /// so tensors can be read again by byte range.
    handles: StoredValue<HashMap<String, FileHandle>, LocalStorage>,
    next_id: StoredValue<u64>,
}

/// What has been computed from the workspace, and how far the running analysis is.
#[derive(Clone, Copy)]
pub struct Analysis {
    /// Weight spectra of every recognised checkpoint, per run (Figures 1–2).
    pub spectra: RwSignal<Vec<RunSpectra>>,
    pub spectra_failures: RwSignal<Vec<SpectraFailure>>,
    /// The checkpoint jobs while they run: counts, the running jobs' stages
    /// and shares, for the progress bar and the time left.
    pub spectra_progress: RwSignal<Option<JobsProgress>>,
    /// Whether the running analysis computes activation spectra: Figure 1
    /// waits for them instead of showing the weights meanwhile.
    pub expecting_activations: RwSignal<bool>,
    /// Activation spectra (K/Q on the eval batch) and held-out loss, per run,
    /// when an eval token batch is in the inventory.
    pub activations: RwSignal<Vec<ActivationRun>>,
    /// The batches each run's last analysis used (captions and exports name them).
    pub batches: RwSignal<Vec<RunBatches>>,
    /// Figures 3–5: per run, the study job's output at the chosen checkpoint.
    pub study: RwSignal<Vec<StudyRun>>,
    /// Figures 3–5's jobs while they run (one per run; the surgery sweep reports per pass).
    pub study_progress: RwSignal<Option<JobsProgress>>,
    /// Where the last analysis ran (workers or the main thread) and how much it reused.
    pub spectra_runner: RwSignal<Option<RunnerNote>>,
    /// Run forward passes on WebGPU where a worker can open an adapter (the user may turn it off).
    pub use_gpu: RwSignal<bool>,
    /// Where the forward passes of the last analysis ran, with how many
    /// checkpoints ran on each engine (one status line per engine).
    pub forward_engine: RwSignal<BTreeMap<Engine, usize>>,
    /// Finished checkpoint jobs by their job (as JSON), with the files each
    /// read: dropping one more file recomputes only what it changes. A file
    /// dropped again under the same path evicts the jobs that read it.
    job_cache: StoredValue<HashMap<String, (Vec<String>, JobOutput)>, LocalStorage>,
    /// Bumped on every new batch; a spectra run that sees a newer one stops.
    generation: StoredValue<u64>,
}

/// The page's state: the workspace and the analysis (each also provided as a context of its
/// own, for components that read only one), the reader's view, and the actions that span
/// them (reading files, analysing them, renaming a run, sessions).
#[derive(Clone, Copy)]
pub struct AppState {
    pub workspace: Workspace,
    pub analysis: Analysis,
    /// The loss-curve section's settings as a session stores them (written by
    /// the section on every change).
    pub loss_view: RwSignal<serde_json::Value>,
    /// Set when a session is opened: the section applies it and clears it.
    pub loss_view_restore: RwSignal<Option<serde_json::Value>>,
    /// How the reader looks at the figures (log axes, zoom, the runs each shows): kept here
    /// too so a rename and a session reach it; the page provides it as its own context.
    pub view: ViewState,
}

impl Workspace {
    pub fn use_context() -> Self {
        expect_context::<Workspace>()
    }
}

impl Analysis {
    pub fn use_context() -> Self {
        expect_context::<Analysis>()
    }
}

impl AppState {
    pub fn new() -> Self {
        Self {
            workspace: Workspace {
                inventory: RwSignal::new(Inventory::default()),
                pending: RwSignal::new(Vec::new()),
                renames: RwSignal::new(BTreeMap::new()),
                cancel: RwSignal::new(false),
                notice: RwSignal::new(None),
                notices: RwSignal::new(Vec::new()),
                batch_choices: RwSignal::new(BTreeMap::new()),
                example_progress: RwSignal::new(None),
                handles: StoredValue::new_local(HashMap::new()),
                next_id: StoredValue::new(0),
            },
            analysis: Analysis {
                spectra: RwSignal::new(Vec::new()),
                spectra_failures: RwSignal::new(Vec::new()),
                spectra_progress: RwSignal::new(None),
                expecting_activations: RwSignal::new(false),
                activations: RwSignal::new(Vec::new()),
                batches: RwSignal::new(Vec::new()),
                study: RwSignal::new(Vec::new()),
                study_progress: RwSignal::new(None),
                spectra_runner: RwSignal::new(None),
                use_gpu: RwSignal::new(true),
                forward_engine: RwSignal::new(BTreeMap::new()),
                job_cache: StoredValue::new_local(HashMap::new()),
                generation: StoredValue::new(0),
            },
            loss_view: RwSignal::new(serde_json::Value::Null),
            loss_view_restore: RwSignal::new(None),
            view: ViewState::new(),
        }
    }

    /// Turns WebGPU forward passes on or off and recomputes (results computed the other way
    /// are not reused, so the figures show what the user chose).
    pub fn set_use_gpu(self, on: bool) {
        self.analysis.use_gpu.set(on);
        self.analysis.job_cache.update_value(HashMap::clear);
        spawn_local(self.compute_spectra());
    }

    /// The file at `path` (a handle; its bytes are read by range).
    pub fn handle(self, path: &str) -> Option<FileHandle> {
        self.workspace.handles.with_value(|b| b.get(path).cloned())
    }

    /// The handles of a job's tensor files, in its order; `None` when one is gone.
    fn handles_of(self, files: &[String]) -> Option<Vec<FileHandle>> {
        self.workspace
            .handles
            .with_value(|b| files.iter().map(|p| b.get(p).cloned()).collect())
    }

    /// The URLs of the files opened from URLs, in the inventory's order ("Link to this view"
    /// names them, so the link reopens them).
    pub fn opened_urls(self) -> Vec<String> {
        let paths: Vec<String> = self
            .workspace
            .inventory
            .with_untracked(|inv| inv.files.iter().map(|f| f.path.clone()).collect());
        self.workspace.handles.with_value(|h| {
            paths
                .iter()
                .filter_map(|p| h.get(p).and_then(|f| f.url().map(String::from)))
                .collect()
        })
    }

    pub fn use_context() -> Self {
        expect_context::<AppState>()
    }

    /// Queues files for inspection and inspects them in order. A file with
    /// the same path as one already shown replaces it.
    pub fn add_files(self, files: Vec<PickedFile>) {
        if files.is_empty() {
            self.workspace
                .notice
                .set(Some("nothing to read: the drop held no files".into()));
            return;
        }
        self.workspace.cancel.set(false);
        self.workspace.notices.set(duplicate_paths(&files));
        let queued: Vec<(Pending, PickedFile)> = files
            .into_iter()
            .map(|f| {
                let id = self.workspace.next_id.get_value();
                self.workspace.next_id.set_value(id + 1);
                let pending = Pending {
                    id,
                    path: f.path.clone(),
                    size: f.file.size(),
                    progress: RwSignal::new(0.0),
                };
                (pending, f)
            })
            .collect();
        self.workspace
            .pending
            .update(|p| p.extend(queued.iter().map(|(q, _)| q.clone())));
        spawn_local(async move {
            let mut skipped = 0;
            let mut inspected = 0;
            for (pending, file) in queued {
                if self.workspace.cancel.get_untracked() {
                    skipped += 1;
                    self.workspace
                        .pending
                        .update(|p| p.retain(|q| q.id != pending.id));
                    continue;
                }
                self.workspace.handles.update_value(|b| {
                    b.insert(file.path.clone(), file.file.clone());
                });
                self.analysis
                    .job_cache
                    .update_value(|c| c.retain(|_, (files, _)| !files.contains(&file.path)));
                let src = match file.file.open().await {
                    Ok(src) => src,
                    Err(e) => {
                        self.workspace
                            .pending
                            .update(|p| p.retain(|q| q.id != pending.id));
                        self.workspace
                            .notices
                            .update(|n| n.push(format!("{}: {e}", file.path)));
                        continue;
                    }
                };
                // A saved session is opened, not inventoried.
                if let Some(result) = read_session(&src).await {
                    self.workspace
                        .pending
                        .update(|p| p.retain(|q| q.id != pending.id));
                    match result {
                        Ok(session) => self.open_session(session, &file.path),
                        Err(e) => self
                            .workspace
                            .notices
                            .update(|n| n.push(format!("{}: {e}", file.path))),
                    }
                    continue;
                }
                inspected += 1;
                let progress = pending.progress;
                let mut entry = inspect_file(&file.path, &src, &mut |x| progress.set(x)).await;
                if let Some(new) = entry
                    .run
                    .as_ref()
                    .and_then(|r| self.workspace.renames.with_untracked(|m| m.get(r).cloned()))
                {
                    entry.run = Some(new);
                }
                if self
                    .workspace
                    .inventory
                    .with_untracked(|inv| inv.files.iter().any(|f| f.path == entry.path))
                {
                    self.workspace.notices.update(|n| {
                        n.push(format!(
                            "{}: replaces the file of the same path dropped before",
                            entry.path
                        ))
                    });
                }
                self.workspace.inventory.update(|inv| {
                    let mut files = std::mem::take(&mut inv.files);
                    files.retain(|f| f.path != entry.path);
                    files.push(entry);
                    *inv = Inventory::link(files);
                });
                self.workspace
                    .pending
                    .update(|p| p.retain(|q| q.id != pending.id));
            }
            if skipped > 0 {
                self.workspace
                    .notice
                    .set(Some(format!("cancelled: {skipped} file(s) were not read")));
            }
            // A drop of only session files keeps the session's numbers.
            if inspected > 0 && self.workspace.pending.with_untracked(Vec::is_empty) {
                self.compute_spectra().await;
            }
        });
    }

    /// Shows the tensors a job found NaN/±Inf in on the files that hold them (the
    /// analysis checks the values as it reads them; inspection reads headers only).
    fn note_non_finite(self, files: &[String], non_finite: &[NonFinite]) {
        if non_finite.is_empty() {
            return;
        }
        self.workspace.inventory.update(|inv| {
            for (part, path) in files.iter().enumerate() {
                let tensors: Vec<_> = non_finite
                    .iter()
                    .filter(|n| n.part == part)
                    .map(|n| (n.tensor.clone(), n.values))
                    .collect();
                if let Some(entry) = inv.files.iter_mut().find(|f| &f.path == path) {
                    entry.note_non_finite(&tensors);
                }
            }
        });
    }

    /// Opens files served over HTTP (a `#src=` link, the URL box, a shared
    /// figure's sources): each URL is asked for its size and Range support,
    /// those that open are inspected like dropped files, and each that does
    /// not gets a message naming it.
    pub fn open_urls(self, urls: Vec<String>) {
        self.workspace.cancel.set(false);
        self.workspace.notice.set(Some(format!(
            "asking the server{} for {} file{}…",
            if urls.len() == 1 { "" } else { "s" },
            urls.len(),
            if urls.len() == 1 { "" } else { "s" }
        )));
        spawn_local(async move {
            let (files, problems) = crate::web::files::open_urls(&urls).await;
            self.workspace.notice.set(None);
            if !files.is_empty() {
                self.add_files(files);
            }
            self.workspace.notices.update(|n| n.extend(problems));
        });
    }

    /// Weight spectra of every recognised checkpoint (after each batch of
    /// files), on the worker pool: one job per checkpoint, reading only the
    /// W_k/W_q blocks and norms' γ by byte range. Figures fill in as
    /// checkpoints finish.
    pub async fn compute_spectra(self) {
        worker_pool::cancel(); // a previous batch's jobs are superseded
        let generation = self.next_generation();
        let inventory = self.workspace.inventory.get_untracked();
        let batches = run_batches(&inventory, &self.workspace.batch_choices.get_untracked());
        self.analysis.batches.set(batches.clone());
        // The core's planner, as the CLI's: one job per recognised checkpoint, carrying the
        // headers, architecture and batches inspection found (the worker gets the Blobs of the
        // tensor files only).
        let plan = Plan::spectra(
            &inventory,
            &|run| RunTokens::matched(&inventory, &batches, run),
            &KeyVariant::ALL,
        );
        let names = self.names_of(&inventory);
        let mut results = Results::new(&plan);
        // Per job that can run: its plan index, its key (the job as JSON, made once) and its task.
        let mut tasks = Vec::new();
        for (i, planned) in plan.jobs.iter().enumerate() {
            match self.handles_of(&planned.job.files) {
                Some(files) => tasks.push((
                    i,
                    planned.key(),
                    Task {
                        job: planned.job.clone(),
                        files,
                        gpu: self.analysis.use_gpu.get_untracked(),
                    },
                )),
                None => {
                    results.fold(i, Err("its file is no longer readable".into()));
                }
            }
        }
        let total = tasks.len();
        let any_eval = plan.has_forward_passes();
        self.analysis.spectra.set(Vec::new());
        self.analysis.activations.set(Vec::new());
        self.analysis.forward_engine.set(BTreeMap::new());
        self.analysis.spectra_failures.set(results.failures.clone());
        self.analysis
            .expecting_activations
            .set(any_eval && total > 0);
        if total == 0 {
            self.analysis.spectra_progress.set(None);
            return;
        }
        let current = move || self.analysis.generation.get_value() == generation;
        let plan = Rc::new(plan);
        let results = Rc::new(RefCell::new(results));
        // Jobs finished before (same key: same files, same kind) are not run again.
        let (cached, to_run): (Vec<_>, Vec<_>) = tasks
            .into_iter()
            .partition(|(_, key, _)| self.analysis.job_cache.with_value(|c| c.contains_key(key)));
        let title = if any_eval {
            "Weight spectra, then forward passes on the eval batch (activation spectra and held-out loss)"
        } else {
            "Weight spectra (no eval batch: no forward passes)"
        };
        let gpu_asked = self.analysis.use_gpu.get_untracked();
        let webgpu_offered = webgpu_offered();
        let mut jobs = JobsProgress::new(title, ("checkpoint", "checkpoints"), total, now_ms());
        // Reused results count as done from the start, and do not speed up the estimate.
        jobs.total -= cached.len();
        self.analysis.spectra_progress.set(Some(jobs));

        let spectra_progress = self.analysis.spectra_progress;
        let (progress_plan, progress_names) = (plan.clone(), names.clone());
        let progress = Rc::new(move |i: usize, line: &str, f: f64| {
            if current() {
                let planned = &progress_plan.jobs[i];
                let label = checkpoint_label(&progress_names(planned.run), &planned.checkpoint);
                spectra_progress.update(|p| {
                    if let Some(p) = p {
                        p.report(i, &label, line, f, now_ms());
                    }
                });
            }
        });
        let done = {
            let (plan, results) = (plan.clone(), results.clone());
            move |i: usize, result: Result<JobOutput, String>, fresh: bool| {
                if !current() {
                    return;
                }
                if fresh {
                    spectra_progress.update(|p| {
                        if let Some(p) = p {
                            p.finish(i);
                        }
                    });
                }
                let folded = results.borrow_mut().fold(i, result);
                self.note_non_finite(&plan.jobs[i].job.files, &folded.non_finite);
                if let Some(engine) = folded.engine {
                    let engine = classify_engine(&engine, gpu_asked, webgpu_offered);
                    self.analysis
                        .forward_engine
                        .update(|e| *e.entry(engine).or_insert(0) += 1);
                }
                let results = results.borrow();
                self.analysis.spectra.set(results.weight_runs(&names));
                self.analysis
                    .activations
                    .set(results.activation_runs(&names));
                self.analysis.spectra_failures.set(results.failures.clone());
            }
        };
        let reused = cached.len();
        for (i, key, _) in cached {
            if let Some(out) = self
                .analysis
                .job_cache
                .with_value(|c| c.get(&key).map(|(_, out)| out.clone()))
            {
                done(i, Ok(out), false);
            }
        }
        if to_run.is_empty() {
            self.analysis.spectra_progress.set(None);
            self.analysis.expecting_activations.set(false);
            self.analysis.spectra_runner.set(Some(RunnerNote {
                reused,
                ..RunnerNote::default()
            }));
            return;
        }
        // The pool numbers its tasks 0..; map them back to the plan's jobs, and keep what
        // succeeds for the next batch.
        let (slots, to_run): (Vec<(usize, String)>, Vec<Task>) = to_run
            .into_iter()
            .map(|(i, key, task)| ((i, key), task))
            .unzip();
        let slots = Rc::new(slots);
        let computed = slots.len();
        let progress = {
            let slots = slots.clone();
            Rc::new(move |j: usize, line: &str, f: f64| progress(slots[j].0, line, f))
        };
        let job_cache = self.analysis.job_cache;
        let done = Rc::new(move |j: usize, result: Result<JobOutput, String>| {
            let (i, key) = &slots[j];
            if let (Ok(out), true) = (&result, current()) {
                job_cache.update_value(|c| {
                    c.insert(key.clone(), (plan.jobs[*i].reads(), out.clone()));
                });
            }
            done(*i, result, true);
        });
        let runner_line = self.analysis.spectra_runner;
        worker_pool::run_tasks(to_run, progress, done, |r| {
            let note = match r {
                Runner::Workers(n) => RunnerNote {
                    workers: Some(*n),
                    computed,
                    reused,
                    ..RunnerNote::default()
                },
                Runner::MainThread(why) => RunnerNote {
                    main_thread_why: Some(why.clone()),
                    computed,
                    reused,
                    ..RunnerNote::default()
                },
            };
            runner_line.set(Some(note));
        })
        .await;
        if current() {
            self.analysis.spectra_progress.set(None);
            self.analysis.expecting_activations.set(false);
        }
    }

    /// A new analysis supersedes the running one: jobs that see a newer generation stop
    /// reporting.
    fn next_generation(self) -> u64 {
        let generation = self.analysis.generation.get_value() + 1;
        self.analysis.generation.set_value(generation);
        generation
    }

    /// A run's name now, by its index in `inv` (the inventory an analysis was planned from):
    /// the name it had then, with the user's renames since applied, so results folded after a
    /// rename carry the new name.
    fn names_of(self, inv: &Inventory) -> impl Fn(usize) -> String + Clone + 'static {
        let planned: Rc<Vec<String>> = Rc::new(inv.runs.iter().map(|r| r.name.clone()).collect());
        let renames = self.workspace.renames;
        move |run: usize| {
            let name = planned.get(run).cloned().unwrap_or_default();
            renames
                .with_untracked(|m| m.get(&name).cloned())
                .unwrap_or(name)
        }
    }

    /// Figures 3–5 for every run at one checkpoint (`at`): one study job per
    /// run on the worker pool (model loaded once; K on the eval batch; layer
    /// PR with bootstrap CI; γ-vs-SVD importance; the surgery sweep).
    pub async fn compute_study(self, at: CheckpointSel, options: StudyOptions) {
        let inventory = self.workspace.inventory.get_untracked();
        let batches = run_batches(&inventory, &self.workspace.batch_choices.get_untracked());
        self.analysis.batches.set(batches.clone());
        worker_pool::cancel();
        let generation = self.next_generation();
        let mut plan = Plan::study(
            &inventory,
            &|run| RunTokens::matched(&inventory, &batches, run),
            at,
            &options,
        );
        // Fewer runs than workers: the idle workers each take a share of the runs' surgery
        // sweeps (each loads the model; the results are joined as they come back).
        let shares = worker_pool::pool_size(usize::MAX) / plan.jobs.len().max(1);
        plan.share_sweeps(shares);
        // What the plan left out, in one notice: runs without both batches, and checkpoints
        // that could not be planned, with why.
        let lacking: Vec<&str> = inventory
            .runs
            .iter()
            .filter(|r| batches.iter().any(|b| b.run == r.name))
            .filter(|r| {
                let tokens = RunTokens::matched(&inventory, &batches, &r.name);
                tokens.eval.is_none() || tokens.heldout.is_none()
            })
            .map(|r| r.name.as_str())
            .collect();
        let mut left_out = Vec::new();
        if !lacking.is_empty() {
            left_out.push(format!(
                "Figures 3–5 need an eval batch and a different held-out batch that fit the model; left out: {}",
                lacking.join(", ")
            ));
        }
        if !plan.failures.is_empty() {
            let why: Vec<String> = plan
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.path, f.message))
                .collect();
            left_out.push(format!("Figures 3–5 left out {}", why.join("; ")));
        }
        if !left_out.is_empty() {
            self.workspace.notice.set(Some(left_out.join(". ")));
        }
        let names = self.names_of(&inventory);
        let mut results = Results::new(&plan);
        let mut tasks = Vec::new();
        let mut slots = Vec::new();
        for (i, planned) in plan.jobs.iter().enumerate() {
            let Some(files) = self.handles_of(&planned.job.files) else {
                results.fold(i, Err("its file is no longer readable".into()));
                continue;
            };
            // Study jobs run their eval pass and surgery sweep on WebGPU when the worker has an
            // adapter (and the user did not turn it off), else on the CPU; the output names where.
            tasks.push(Task {
                job: planned.job.clone(),
                files,
                gpu: self.analysis.use_gpu.get_untracked(),
            });
            slots.push(i);
        }
        let total = tasks.len();
        let results = Rc::new(RefCell::new(results));
        let show = {
            let (results, names) = (results.clone(), names.clone());
            move || {
                let runs = results
                    .borrow()
                    .study_runs()
                    .into_iter()
                    .map(|(run, checkpoint, output)| StudyRun {
                        run: names(run),
                        color: run,
                        checkpoint,
                        output,
                    })
                    .collect();
                self.analysis.study.set(runs);
            }
        };
        show();
        if total == 0 {
            return;
        }
        let current = move || self.analysis.generation.get_value() == generation;
        let (plan, slots) = (Rc::new(plan), Rc::new(slots));
        let study_progress = self.analysis.study_progress;
        let (unit, shared) = match shares {
            2.. => (
                ("job", "jobs"),
                format!(", each run's passes shared by {shares} jobs"),
            ),
            _ => (("run", "runs"), String::new()),
        };
        let title = format!("Figures 3–5: model loaded once per {}, K on the eval batch, then the surgery sweep (one forward pass per strategy, fraction and seed){shared}", unit.0);
        study_progress.set(Some(JobsProgress::new(title, unit, total, now_ms())));
        let progress = {
            let (plan, slots, names) = (plan.clone(), slots.clone(), names.clone());
            Rc::new(move |j: usize, line: &str, f: f64| {
                if current() {
                    let planned = &plan.jobs[slots[j]];
                    let mut label = checkpoint_label(&names(planned.run), &planned.checkpoint);
                    if let JobKind::Study { options, .. } = &planned.job.kind {
                        let share = options.sweep.share;
                        if share.of > 1 {
                            label += &format!(" (sweep share {} of {})", share.index + 1, share.of);
                        }
                    }
                    study_progress.update(|p| {
                        if let Some(p) = p {
                            p.report(j, &label, line, f, now_ms());
                        }
                    });
                }
            })
        };
        let done = Rc::new(move |j: usize, result: Result<JobOutput, String>| {
            if !current() {
                return;
            }
            study_progress.update(|p| {
                if let Some(p) = p {
                    p.finish(j);
                }
            });
            results.borrow_mut().fold(slots[j], result);
            show();
        });
        worker_pool::run_tasks(tasks, progress, done, |_| {}).await;
        if current() {
            self.analysis.study_progress.set(None);
        }
    }

    /// Everything computed, as a session file (the files themselves are not in it).
    pub fn session(self) -> Session {
        let files = self.workspace.inventory.with_untracked(|inv| {
            inv.files
                .iter()
                .map(|f| SourceFile {
                    name: f.path.clone(),
                    size: f.size,
                    digest: None,
                    url: self.handle(&f.path).and_then(|h| h.url().map(String::from)),
                })
                .collect()
        });
        let mut s = Session::new(files);
        s.weights = self.analysis.spectra.get_untracked();
        s.activations = self.analysis.activations.get_untracked();
        s.study = self.analysis.study.get_untracked();
        s.failures = self.analysis.spectra_failures.get_untracked();
        s.batches = self.analysis.batches.get_untracked();
        s.logs = self
            .workspace
            .inventory
            .with_untracked(|inv| inv.files.iter().filter_map(SessionLog::of).collect());
        s.renames = self.workspace.renames.get_untracked();
        s.view = serde_json::json!({
            "batch_choices": self.workspace.batch_choices.get_untracked(),
            "figure_runs": self.view.runs.get_untracked(),
            "loss_curves": self.loss_view.get_untracked(),
        });
        s
    }

    /// Replaces the workspace with a saved session's numbers.
    pub fn open_session(self, session: Session, name: &str) {
        worker_pool::cancel();
        self.analysis
            .generation
            .set_value(self.analysis.generation.get_value() + 1);
        self.analysis.spectra_progress.set(None);
        self.analysis.study_progress.set(None);
        let n_runs = session.weights.len().max(session.activations.len());
        let n_ckpts: usize = session.weights.iter().map(|r| r.checkpoints.len()).sum();
        self.analysis.spectra.set(session.weights);
        self.analysis.activations.set(session.activations);
        self.analysis.study.set(session.study);
        self.analysis.spectra_failures.set(session.failures);
        self.analysis.batches.set(session.batches);
        // The logs come back as inventory entries (their runs, their loss curves).
        let n_logs = session.logs.len();
        self.workspace.inventory.set(Inventory::link(
            session.logs.iter().map(SessionLog::entry).collect(),
        ));
        self.workspace.renames.set(session.renames);
        let view = &session.view;
        if let Ok(c) = serde_json::from_value(view["batch_choices"].clone()) {
            self.workspace.batch_choices.set(c);
        }
        if let Ok(runs) = serde_json::from_value::<FigureRuns>(view["figure_runs"].clone()) {
            self.view.runs.set(runs);
        } else if let Ok(hidden) =
            serde_json::from_value::<BTreeSet<String>>(view["hidden_runs"].clone())
        {
            // A session saved before the per-figure pickers: its hidden runs were hidden in
            // Figures 1 and 2.
            let names: BTreeSet<String> = self
                .analysis
                .spectra
                .get_untracked()
                .iter()
                .map(|r| r.run.clone())
                .chain(
                    self.analysis
                        .activations
                        .get_untracked()
                        .iter()
                        .map(|r| r.run.clone()),
                )
                .collect();
            let shown: BTreeSet<String> = names.difference(&hidden).cloned().collect();
            if !hidden.is_empty() {
                self.view.runs.set(
                    ["figure-trajectory", "figure-waterfall"]
                        .into_iter()
                        .map(|id| (id.to_string(), shown.clone()))
                        .collect(),
                );
            }
        }
        if !view["loss_curves"].is_null() {
            self.loss_view_restore
                .set(Some(view["loss_curves"].clone()));
        }
        self.workspace.notices.update(|n| n.push(format!(
            "Opened {name}: a session saved by rankscope {} with {n_runs} run(s), {n_ckpts} checkpoint(s) and {n_logs} log(s), computed from {} file(s) that are not part of it.",
            session.app_version,
            session.files.len()
        )));
    }

    /// Stops reading queued files and the running analysis.
    pub fn cancel_all(self) {
        self.workspace.cancel.set(true);
        if self
            .analysis
            .spectra_progress
            .with_untracked(Option::is_some)
            || self.analysis.study_progress.with_untracked(Option::is_some)
        {
            worker_pool::cancel();
            self.analysis
                .generation
                .set_value(self.analysis.generation.get_value() + 1);
            self.analysis.spectra_progress.set(None);
            self.analysis.study_progress.set(None);
            self.analysis.expecting_activations.set(false);
            self.workspace.notice.set(Some(
                "cancelled: the analysis stopped; figures show the checkpoints done so far".into(),
            ));
        }
    }

    /// Renames a run everywhere at once — the inventory, every computed
    /// result (weights, activations, Figures 3–5), the runs each figure shows and the
    /// renames applied to files dropped later — so figures, legends and exports
    /// show the new name without recomputing anything.
    pub fn rename_run(self, from: String, to: String) {
        let to = to.trim().to_string();
        if to.is_empty() || to == from {
            return;
        }
        self.workspace.renames.update(|m| {
            // Keep chains short: anything that pointed at `from` now points at `to`.
            for v in m.values_mut() {
                if *v == from {
                    v.clone_from(&to);
                }
            }
            m.insert(from.clone(), to.clone());
        });
        self.workspace
            .inventory
            .update(|inv| *inv = std::mem::take(inv).rename_run(&from, &to));
        self.analysis
            .spectra
            .update(|runs| rename_in(runs, &from, &to));
        self.analysis
            .activations
            .update(|runs| rename_in(runs, &from, &to));
        self.analysis
            .study
            .update(|runs| rename_in(runs, &from, &to));
        self.analysis
            .batches
            .update(|runs| rename_in(runs, &from, &to));
        self.workspace.batch_choices.update(|c| {
            if let Some(v) = c.remove(&from) {
                c.insert(to.clone(), v);
            }
        });
        self.view.rename_run(&from, &to);
    }

    pub fn clear(self) {
        self.workspace.cancel.set(true);
        self.workspace.inventory.set(Inventory::default());
        self.workspace.notice.set(None);
        self.workspace.notices.set(Vec::new());
        self.analysis.spectra.set(Vec::new());
        self.analysis.activations.set(Vec::new());
        self.analysis.study.set(Vec::new());
        self.analysis.spectra_failures.set(Vec::new());
        self.analysis.batches.set(Vec::new());
        self.workspace.handles.update_value(HashMap::clear);
        self.analysis.job_cache.update_value(HashMap::clear);
        self.analysis
            .generation
            .set_value(self.analysis.generation.get_value() + 1);
        worker_pool::cancel();
        self.analysis.spectra_progress.set(None);
        self.analysis.study_progress.set(None);
        self.analysis.expecting_activations.set(false);
        self.analysis.forward_engine.set(BTreeMap::new());
        self.analysis.spectra_runner.set(None);
    }
}

/// One run's Figures 3–5 numbers at the chosen checkpoint (as a session stores it).
pub use rankscope_core::session::StudyRunRecord as StudyRun;

/// A computed result that names its run (so a rename reaches all of them the same way).
trait NamesRun {
    fn run_name(&mut self) -> &mut String;
}

impl NamesRun for RunSpectra {
    fn run_name(&mut self) -> &mut String {
        &mut self.run
    }
}

impl NamesRun for ActivationRun {
    fn run_name(&mut self) -> &mut String {
        &mut self.run
    }
}

impl NamesRun for RunBatches {
    fn run_name(&mut self) -> &mut String {
        &mut self.run
    }
}

impl NamesRun for StudyRun {
    fn run_name(&mut self) -> &mut String {
        &mut self.run
    }
}

fn rename_in<T: NamesRun>(list: &mut [T], from: &str, to: &str) {
    for r in list.iter_mut() {
        if *r.run_name() == from {
            *r.run_name() = to.to_string();
        }
    }
}

/// One notice per path that more than one dropped file has (the last one is kept).
fn duplicate_paths(files: &[PickedFile]) -> Vec<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in files {
        *count.entry(f.path.as_str()).or_insert(0) += 1;
    }
    count
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(p, n)| format!("{p}: {n} dropped files have this path; only the last one is read"))
        .collect()
}

/// Milliseconds since the epoch (`Date.now()`), for elapsed times.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Whether this browser has WebGPU at all (`navigator.gpu`).
fn webgpu_offered() -> bool {
    web_sys::window()
        .map(|w| js_sys::Reflect::has(&w.navigator(), &"gpu".into()).unwrap_or(false))
        .unwrap_or(false)
}

/// A checkpoint as a progress line names it: "A1 · 81920 tokens".
fn checkpoint_label(run: &str, c: &CheckpointRef) -> String {
    match (c.tokens, c.step) {
        (Some(t), _) => format!("{run} · {t} tokens"),
        (None, Some(s)) => format!("{run} · step {s}"),
        _ => format!("{run} · {}", c.path),
    }
}

/// `Some` when the file is a session file (its top-level `format` tag, not
/// the word anywhere in its head): the session, or why it cannot be opened
/// (a size over the limit is refused before the file is read).
async fn read_session(src: &Source) -> Option<Result<Session, SessionError>> {
    rankscope_core::session::read_session(src).await
}
