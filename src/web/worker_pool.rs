//! A pool of Web Workers (one per core, at most [`MAX_WORKERS`]) that run
//! checkpoint jobs off the main thread, so the page stays responsive.
//!
//! The workers live for the session: each loads `worker_loader.js` (Trunk's
//! shim for the `worker` binary) once and says "ready", and later analyses
//! reuse it — its compiled module and the GPU adapter it opened
//! (src/web/gpu.rs) included. A batch's jobs are pulled from a shared queue,
//! so checkpoints spread over the workers, and each result is handed on as it
//! arrives. Cancelling terminates the workers that are running a job (the only
//! way to stop a job mid-layer); idle ones stay. Where workers cannot start,
//! jobs run on the main thread in the worker's own module (`worker.js` +
//! `worker_bg.wasm`, loaded as a script on first need): the analysis code is in
//! that module only, so the page's module stays small.

use super::sources::FileHandle;
use futures::channel::oneshot;
use js_sys::{Array, Function, Object, Promise, Reflect};
use rankscope_core::analysis::jobs::{CheckpointJob, JobOutput};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{MessageEvent, Worker};

/// More workers than this would each hold a model's layer in memory for
/// little gain.
pub const MAX_WORKERS: usize = 4;
const WORKER_SCRIPT: &str = "./worker_loader.js";

/// A job and the handles of its files (in `job.files` order): Blobs, or URLs
/// the worker reads by range itself.
pub struct Task {
    pub job: CheckpointJob,
    pub files: Vec<FileHandle>,
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
    crashed: Rc<Cell<bool>>,
    /// The batch this worker works for now; `None` when idle.
    lease: Cell<Option<u64>>,
    /// Its WebAssembly memory after its last job, in bytes.
    memory: Rc<Cell<f64>>,
    progress: Rc<RefCell<Option<Report>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
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

        let memory = Rc::new(Cell::new(0.0));
        let (w, p, m) = (waiting.clone(), progress.clone(), memory.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data();
            let kind = field(&data, "type").as_string().unwrap_or_default();
            let result = match kind.as_str() {
                "ready" => Ok(String::new()),
                "done" => {
                    if let Some(bytes) = field(&data, "memory").as_f64() {
                        m.set(bytes);
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
        let (w, crashed) = (waiting.clone(), Rc::new(Cell::new(false)));
        let c = crashed.clone();
        // A worker whose script fails to load fires a plain `Event`, not an `ErrorEvent`:
        // its `message` is read as a property that may be missing (reading it through
        // `ErrorEvent::message` threw, and the pool then waited for ever).
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
            ev.prevent_default();
            c.set(true);
            let what = js_sys::Reflect::get(&ev, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the worker could not be loaded".to_string());
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
            lease: Cell::new(None),
            memory,
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

    /// Whether a job (or the worker's start) waits for its reply now.
    fn in_flight(&self) -> bool {
        self.waiting.borrow().is_some()
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
        let files: Array = task.files.iter().map(FileHandle::to_js).collect();
        let msg = Object::new();
        let _ = Reflect::set(&msg, &"id".into(), &0.into());
        let _ = Reflect::set(&msg, &"job".into(), &job.into());
        let _ = Reflect::set(&msg, &"files".into(), &files);
        let _ = Reflect::set(&msg, &"gpu".into(), &task.gpu.into());
        let (tx, rx) = oneshot::channel();
        *self.waiting.borrow_mut() = Some(tx);
        *self.progress.borrow_mut() = Some(report);
        if let Err(e) = self.worker.post_message(&msg) {
            self.waiting.borrow_mut().take();
            return Err(format!("{e:?}"));
        }
        let reply = rx.await.unwrap_or_else(|_| Err("cancelled".into()));
        *self.progress.borrow_mut() = None;
        let text = reply?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the worker's result could not be read: {e}"))
    }
}

thread_local! {
    /// Every worker of the session, idle or running a job: started when a
    /// batch needs them and kept (with its compiled module and its GPU
    /// adapter) until cancelling stops its job, it crashes, or its memory grew
    /// past [`RETIRE_BYTES`].
    static POOL: RefCell<Vec<Rc<PoolWorker>>> = const { RefCell::new(Vec::new()) };
    /// The running batch: [`cancel`] and every new batch move it on, and a
    /// loop of an older batch stops before its next job.
    static BATCH: Cell<u64> = const { Cell::new(0) };
}

/// WebAssembly memory only grows: a worker that needed more than this for a
/// big model is let go after its batch, so the tab does not keep it for the
/// session (the next batch starts a fresh one).
const RETIRE_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;

fn batch() -> u64 {
    BATCH.with(Cell::get)
}

/// Stops every running job now; their results come back as "cancelled" and
/// queued jobs are not started. A running job can only be stopped by
/// terminating its worker; idle workers stay for the next batch.
pub fn cancel() {
    BATCH.with(|b| b.set(b.get() + 1));
    let stopped: Vec<Rc<PoolWorker>> = POOL.with(|p| {
        let mut pool = p.borrow_mut();
        let (running, idle): (Vec<_>, Vec<_>) = pool.drain(..).partition(|w| w.in_flight());
        *pool = idle;
        running
    });
    for w in &stopped {
        w.stop();
    }
    // The idle ones are free for the next batch (their old batch's loop ends
    // without touching them again).
    POOL.with(|p| p.borrow().iter().for_each(|w| w.lease.set(None)));
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

/// `n` workers for batch `batch`: the pool's idle ones first, then new ones
/// (started together). Fewer when workers fail to start, with the reason.
async fn lease(n: usize, batch: u64) -> (Vec<Rc<PoolWorker>>, String) {
    let mut leased: Vec<Rc<PoolWorker>> = POOL.with(|p| {
        p.borrow()
            .iter()
            .filter(|w| w.lease.get().is_none() && !w.crashed.get())
            .take(n)
            .cloned()
            .collect()
    });
    for w in &leased {
        w.lease.set(Some(batch));
    }
    let mut why_not = String::new();
    let starts = (leased.len()..n).map(|_| PoolWorker::start());
    for started in futures::future::join_all(starts).await {
        match started {
            Ok(w) => {
                let w = Rc::new(w);
                w.lease.set(Some(batch));
                POOL.with(|p| p.borrow_mut().push(w.clone()));
                leased.push(w);
            }
            Err(e) => why_not = e,
        }
    }
    (leased, why_not)
}

/// Gives a worker back to the pool after its batch, or lets it go when it
/// crashed, grew too big, or is one too many (batches that overlapped while
/// workers started).
fn release(worker: &Rc<PoolWorker>, batch: u64) {
    if worker.lease.get().is_some_and(|b| b != batch) {
        return; // freed by a cancel and already working for a newer batch
    }
    worker.lease.set(None);
    let too_many = POOL.with(|p| p.borrow().len()) > MAX_WORKERS;
    if worker.crashed.get() || worker.memory.get() > RETIRE_BYTES || too_many {
        POOL.with(|p| p.borrow_mut().retain(|w| !Rc::ptr_eq(w, worker)));
        worker.stop();
    }
}

/// Runs every task, each once, on the session's workers (or the main thread
/// when no worker starts). One batch at a time: a running batch is
/// cancelled first. `progress(i, line, fraction)` reports task i;
/// `done(i, result)` is called as each finishes, so results show as they come.
pub async fn run_tasks(
    tasks: Vec<Task>,
    progress: Progress,
    done: Rc<dyn Fn(usize, Result<JobOutput, String>)>,
    started: impl Fn(&Runner),
) {
    if tasks.is_empty() {
        return;
    }
    cancel();
    let this = batch();
    let current = move || batch() == this;
    let (workers, why_not) = lease(pool_size(tasks.len()), this).await;
    let tasks = Rc::new(tasks);
    let queue = Rc::new(RefCell::new((0..tasks.len()).collect::<VecDeque<usize>>()));
    if !current() {
        // Cancelled while the workers started: they wait, idle, for the next batch.
        workers.iter().for_each(|w| release(w, this));
    } else if workers.is_empty() {
        started(&Runner::MainThread(why_not));
        run_on_main_thread(&tasks, &queue, &progress, &done, current).await;
    } else {
        started(&Runner::Workers(workers.len()));
        let loops = workers.into_iter().map(|worker| {
            let (tasks, queue, progress, done) =
                (tasks.clone(), queue.clone(), progress.clone(), done.clone());
            async move {
                while current() {
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
                release(&worker, this);
            }
        });
        futures::future::join_all(loops).await;
    }
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
    queue: &RefCell<VecDeque<usize>>,
    progress: &Progress,
    done: &Rc<dyn Fn(usize, Result<JobOutput, String>)>,
    current: impl Fn() -> bool,
) {
    while current() {
        let Some(i) = queue.borrow_mut().pop_front() else {
            break;
        };
        let p = progress.clone();
        let result = run_here(&tasks[i], move |line, f| p(i, line, f)).await;
        done(i, result);
    }
}

#[wasm_bindgen(inline_js = r#"
let loading = null;
export function worker_module() {
  if (!loading) loading = new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = './worker.js';
    script.onload = () => wasm_bindgen({ module_or_path: './worker_bg.wasm' }).then(() => resolve(wasm_bindgen), reject);
    script.onerror = () => { loading = null; reject(new Error('./worker.js could not be loaded')); };
    document.head.appendChild(script);
  });
  return loading;
}
"#)]
extern "C" {
    /// The worker's module (`worker.js`'s `wasm_bindgen` with its exports), loaded on this thread once.
    fn worker_module() -> Promise;
}

/// Runs one task on the main thread through the worker module's `run_job_here`.
async fn run_here(task: &Task, report: impl Fn(&str, f64) + 'static) -> Result<JobOutput, String> {
    let text = |e: JsValue| {
        e.as_string()
            .or_else(|| {
                e.dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
            })
            .unwrap_or_else(|| format!("{e:?}"))
    };
    let module = JsFuture::from(worker_module())
        .await
        .map_err(|e| format!("the analysis module could not be loaded: {}", text(e)))?;
    let run: Function = Reflect::get(&module, &"run_job_here".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("the analysis module has no run_job_here")?;
    let job = serde_json::to_string(&task.job).map_err(|e| e.to_string())?;
    let files: Array = task.files.iter().map(FileHandle::to_js).collect();
    let on_progress =
        Closure::<dyn Fn(String, f64)>::new(move |line: String, f: f64| report(&line, f));
    let args = Array::of4(&job.into(), &files, &task.gpu.into(), on_progress.as_ref());
    let promise: Promise = run
        .apply(&JsValue::NULL, &args)
        .map_err(text)?
        .dyn_into()
        .map_err(|_| "run_job_here did not return a promise")?;
    let output = JsFuture::from(promise).await.map_err(text)?;
    serde_json::from_str(&output.as_string().unwrap_or_default())
        .map_err(|e| format!("the analysis module's result could not be read: {e}"))
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
