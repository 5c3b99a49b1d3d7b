//! A pool of Web Workers (one per core, at most [`MAX_WORKERS`]) that run
//! checkpoint jobs off the main thread, so the page stays responsive.
//!
//! Each worker loads `worker_loader.js` (Trunk's shim for the `worker`
//! binary) and says "ready"; jobs are then pulled from a shared queue, so
//! checkpoints spread over the workers. Cancelling terminates the workers at
//! once (a job mid-layer stops too). Where workers cannot start (no worker
//! script, e.g. in the wasm unit tests), jobs run on the main thread with the
//! same core code.

use super::blob_source::BlobSource;
use futures::channel::oneshot;
use js_sys::{Array, Object, Reflect};
use rankscope_core::analysis::jobs::{CheckpointJob, JobOutput};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

/// More workers than this would each hold a model's layer in memory for
/// little gain.
pub const MAX_WORKERS: usize = 4;
const WORKER_SCRIPT: &str = "./worker_loader.js";

/// A job and the Blobs of its files (in `job.files` order).
pub struct Task {
    pub job: CheckpointJob,
    pub blobs: Vec<web_sys::Blob>,
    /// Run the job's forward passes on WebGPU where the worker can open an adapter.
    pub gpu: bool,
}

type Progress = Rc<dyn Fn(usize, &str, f64)>;
/// A running job's progress report: (line, fraction done).
type Report = Box<dyn Fn(&str, f64)>;
type Reply = oneshot::Sender<Result<String, String>>;

/// One worker and what it is waiting for: its "ready", or a job's result.
struct PoolWorker {
    worker: Worker,
    waiting: Rc<RefCell<Option<Reply>>>,
    /// Set when the worker threw (a panic traps the wasm instance): it takes no more jobs.
    crashed: Rc<std::cell::Cell<bool>>,
    progress: Rc<RefCell<Option<Report>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl Drop for PoolWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn field(data: &JsValue, name: &str) -> JsValue {
    Reflect::get(data, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

impl PoolWorker {
    /// Starts a worker and waits for its "ready" (or its load error).
    async fn start() -> Result<PoolWorker, String> {
        let worker = Worker::new(WORKER_SCRIPT).map_err(|e| format!("{e:?}"))?;
        let waiting: Rc<RefCell<Option<Reply>>> = Rc::new(RefCell::new(None));
        let progress: Rc<RefCell<Option<Report>>> = Rc::new(RefCell::new(None));
        let (ready_tx, ready_rx) = oneshot::channel();
        *waiting.borrow_mut() = Some(ready_tx);

        let (w, p) = (waiting.clone(), progress.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data();
            let kind = field(&data, "type").as_string().unwrap_or_default();
            let result = match kind.as_str() {
                "ready" => Ok(String::new()),
                "done" => {
                    if let Some(bytes) = field(&data, "memory").as_f64() {
                        // For memory tests and the curious (DevTools, verbose level).
                        web_sys::console::debug_1(
                            &format!(
                                "rankscope: worker WebAssembly memory after a job: {bytes} bytes"
                            )
                            .into(),
                        );
                    }
                    Ok(field(&data, "output").as_string().unwrap_or_default())
                }
                "error" => Err(field(&data, "message")
                    .as_string()
                    .unwrap_or_else(|| "the worker failed".into())),
                "progress" => {
                    if let Some(report) = p.borrow().as_ref() {
                        report(
                            &field(&data, "line").as_string().unwrap_or_default(),
                            field(&data, "fraction").as_f64().unwrap_or(0.0),
                        );
                    }
                    return;
                }
                _ => return,
            };
            if let Some(reply) = w.borrow_mut().take() {
                let _ = reply.send(result);
            }
        });
        let (w, crashed) = (waiting.clone(), Rc::new(std::cell::Cell::new(false)));
        let c = crashed.clone();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |ev: ErrorEvent| {
            ev.prevent_default();
            c.set(true);
            let what = ev.message();
            let what = if what.is_empty() {
                "the worker could not be loaded".to_string()
            } else {
                what
            };
            if let Some(reply) = w.borrow_mut().take() {
                let _ = reply.send(Err(what));
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let pw = PoolWorker {
            worker,
            waiting,
            crashed,
            progress,
            _on_message: on_message,
            _on_error: on_error,
        };
        match ready_rx.await {
            Ok(Ok(_)) => Ok(pw),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the worker went away".into()),
        }
    }

    /// Terminates the worker; what it was doing comes back as "cancelled".
    fn stop(&self) {
        self.worker.terminate();
        if let Some(reply) = self.waiting.borrow_mut().take() {
            let _ = reply.send(Err("cancelled".into()));
        }
    }

    async fn run(&self, task: &Task, report: Report) -> Result<JobOutput, String> {
        let job = serde_json::to_string(&task.job).map_err(|e| e.to_string())?;
        let blobs: Array = task.blobs.iter().collect();
        let msg = Object::new();
        let _ = Reflect::set(&msg, &"id".into(), &0.into());
        let _ = Reflect::set(&msg, &"job".into(), &job.into());
        let _ = Reflect::set(&msg, &"blobs".into(), &blobs);
        let _ = Reflect::set(&msg, &"gpu".into(), &task.gpu.into());
        let (tx, rx) = oneshot::channel();
        *self.waiting.borrow_mut() = Some(tx);
        *self.progress.borrow_mut() = Some(report);
        self.worker
            .post_message(&msg)
            .map_err(|e| format!("{e:?}"))?;
        let reply = rx.await.unwrap_or_else(|_| Err("cancelled".into()));
        *self.progress.borrow_mut() = None;
        let text = reply?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the worker's result could not be read: {e}"))
    }
}

thread_local! {
    /// Workers of the running batch, so [`cancel`] can stop them.
    static LIVE: RefCell<Vec<Rc<PoolWorker>>> = const { RefCell::new(Vec::new()) };
    /// Set by [`cancel`] for the main-thread fallback, which checks it between jobs.
    static CANCELLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Stops every running job now; their results come back as "cancelled" and
/// queued jobs are not started.
pub fn cancel() {
    CANCELLED.with(|c| c.set(true));
    for w in LIVE.with(|l| std::mem::take(&mut *l.borrow_mut())) {
        w.stop();
    }
}

/// How many workers to use: one per logical core, at least 1, at most
/// [`MAX_WORKERS`] and never more than there are tasks.
pub fn pool_size(tasks: usize) -> usize {
    let cores = web_sys::window()
        .map(|w| w.navigator().hardware_concurrency() as usize)
        .unwrap_or(1);
    cores.clamp(1, MAX_WORKERS).min(tasks.max(1))
}

/// Where the jobs ran: shown in the page.
#[derive(Clone, Debug, PartialEq)]
pub enum Runner {
    Workers(usize),
    MainThread(String),
}

/// Runs every task, each once, on a pool of workers (or the main thread
/// when no worker starts). `progress(i, line, fraction)` reports task i;
/// `done(i, result)` is called as each finishes.
pub async fn run_tasks(
    tasks: Vec<Task>,
    progress: Progress,
    done: Rc<dyn Fn(usize, Result<JobOutput, String>)>,
    started: impl Fn(&Runner),
) {
    if tasks.is_empty() {
        return;
    }
    CANCELLED.with(|c| c.set(false));
    let n = pool_size(tasks.len());
    let mut workers = Vec::new();
    let mut why_not = String::new();
    for _ in 0..n {
        match PoolWorker::start().await {
            Ok(w) => workers.push(Rc::new(w)),
            Err(e) => {
                why_not = e;
                break;
            }
        }
    }
    let tasks = Rc::new(tasks);
    let queue = Rc::new(RefCell::new((0..tasks.len()).collect::<VecDeque<usize>>()));
    if workers.is_empty() {
        started(&Runner::MainThread(why_not));
        run_on_main_thread(&tasks, &progress, &done).await;
        return;
    }
    started(&Runner::Workers(workers.len()));
    LIVE.with(|l| *l.borrow_mut() = workers.clone());
    let loops = workers.into_iter().map(|worker| {
        let (tasks, queue, progress, done) =
            (tasks.clone(), queue.clone(), progress.clone(), done.clone());
        async move {
            loop {
                // A cancelled batch has no live workers: leave the rest queued.
                if !LIVE.with(|l| l.borrow().iter().any(|w| Rc::ptr_eq(w, &worker))) {
                    break;
                }
                let Some(i) = queue.borrow_mut().pop_front() else {
                    break;
                };
                let p = progress.clone();
                let result = worker
                    .run(&tasks[i], Box::new(move |line, f| p(i, line, f)))
                    .await;
                done(
                    i,
                    result.map_err(|e| {
                        if worker.crashed.get() {
                            crash_message(&e, &tasks[i].job.files)
                        } else {
                            e
                        }
                    }),
                );
                if worker.crashed.get() {
                    break;
                }
            }
        }
    });
    futures::future::join_all(loops).await;
    LIVE.with(|l| l.borrow_mut().clear());
    // Left in the queue: cancelled, or every worker crashed.
    for i in queue.borrow_mut().drain(..) {
        done(
            i,
            Err("not computed: the analysis was cancelled or its workers failed".into()),
        );
    }
}

async fn run_on_main_thread(
    tasks: &[Task],
    progress: &Progress,
    done: &Rc<dyn Fn(usize, Result<JobOutput, String>)>,
) {
    for (i, task) in tasks.iter().enumerate() {
        if CANCELLED.with(|c| c.get()) {
            break;
        }
        let sources: Vec<BlobSource> = task.blobs.iter().cloned().map(BlobSource::new).collect();
        let mut report = |line: &str, f: f64| progress(i, line, f);
        let result = super::gpu::run_job(&task.job, &sources, task.gpu, &mut report).await;
        done(i, result);
    }
}

/// What a worker's error event means, naming the job's files. A WebAssembly
/// abort (`unreachable`: Rust's out-of-memory handler aborts; a failed
/// `Memory.grow`) never reaches the panic banner, so it is said here, on the
/// files the job was reading.
fn crash_message(error: &str, files: &[String]) -> String {
    let lower = error.to_ascii_lowercase();
    let what = if lower.contains("unreachable") || lower.contains("memory") {
        "the worker ran out of memory (or aborted) while reading"
    } else {
        "the worker crashed while reading"
    };
    format!("{what} {}: {error}", files.join(", "))
}
