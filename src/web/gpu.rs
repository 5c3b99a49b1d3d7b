//! WebGPU for a thread's checkpoint jobs (activation spectra, and Figures 3–5: the eval pass
//! and the surgery sweep): the adapter is opened once per worker (or once on
//! the main thread), on the first job that asks for it, and kept; where there is none, the
//! engine runs the forward passes on the CPU and its label says why.

use super::sources::Source;
use rankscope_core::analysis::jobs::{
    run_checkpoint_job, run_checkpoint_job_on, CheckpointJob, JobOutput,
};
use rankscope_gpu::GpuEngine;
use std::rc::Rc;

thread_local! {
    static ENGINE: std::cell::RefCell<Option<Rc<GpuEngine>>> = const { std::cell::RefCell::new(None) };
}

/// Runs a checkpoint job on this thread: its forward passes on this thread's GPU engine
/// when `gpu`, else on the CPU. What a worker and the main-thread fallback both do.
pub async fn run_job(
    job: &CheckpointJob,
    sources: &[Source],
    gpu: bool,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<JobOutput, String> {
    // The message crosses a postMessage: a string from here on.
    if gpu {
        run_checkpoint_job_on(job, sources, &*engine().await, progress).await
    } else {
        run_checkpoint_job(job, sources, progress).await
    }
    .map_err(|e| e.to_string())
}

/// This thread's engine, opening the GPU on first use.
async fn engine() -> Rc<GpuEngine> {
    if let Some(engine) = ENGINE.with(|e| e.borrow().clone()) {
        return engine;
    }
    let engine = Rc::new(GpuEngine::new().await);
    ENGINE.with(|e| *e.borrow_mut() = Some(engine.clone()));
    engine
}
