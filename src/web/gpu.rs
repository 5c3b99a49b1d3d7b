//! WebGPU for a thread's checkpoint jobs: the adapter is opened once per worker (or once on
//! the main thread), on the first job that asks for it, and kept; where there is none, the
//! engine runs the forward passes on the CPU and its label says why.

use rankscope_gpu::GpuEngine;
use std::rc::Rc;

thread_local! {
    static ENGINE: std::cell::RefCell<Option<Rc<GpuEngine>>> = const { std::cell::RefCell::new(None) };
}

/// This thread's engine, opening the GPU on first use.
pub async fn engine() -> Rc<GpuEngine> {
    if let Some(engine) = ENGINE.with(|e| e.borrow().clone()) {
        return engine;
    }
    let engine = Rc::new(GpuEngine::new().await);
    ENGINE.with(|e| *e.borrow_mut() = Some(engine.clone()));
    engine
}
