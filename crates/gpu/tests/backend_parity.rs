//! The core's shared backend test body (`crates/core/tests/backend_body/mod.rs`, run on the CPU
//! by the core's `backend_cpu.rs`) on the GPU backend (`GpuModel`, lavapipe in CI): the held-out
//! loss reduced on the GPU and a surgery sweep with the key edits applied on the GPU, against the
//! user's reference and against the CPU backend's sweep, within the fixtures' loss tolerance
//! (1e-4 nats). A machine without a GPU adapter FAILS this test.
//!
//! `cargo test -p rankscope-gpu --test backend_parity -- --nocapture` prints the differences and
//! the time of a held-out pass with and without a key edit on each backend.

#![cfg(not(target_arch = "wasm32"))]

use std::time::Instant;

use rankscope_core::analysis::surgery::{SurgeryPlan, SweepOptions};
use rankscope_core::model::backend::ForwardBackend;
use rankscope_core::source::block_on;
use rankscope_gpu::GpuModel;

#[path = "../../core/tests/backend_body/mod.rs"]
mod backend_body;
use backend_body::{check_backend, final_checkpoint, tokens, LOSS_TOL, RUNS};

mod common;
use common::gpu;

#[test]
fn the_gpu_backend_gives_the_cpu_and_reference_losses_and_errors() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    for run in RUNS {
        let (last, model) = final_checkpoint(run);
        let gpu_model = GpuModel::upload(gpu(), &model).expect("upload");
        let (cpu, cpu_ref) = check_backend(&model, run, &last, &eval, &heldout);
        let (got, gpu_ref) = check_backend(&gpu_model, run, &last, &eval, &heldout);
        let mut worst = (got.baseline - cpu.baseline).abs();
        let pairs = [
            (got.svd.as_ref(), cpu.svd.as_ref()),
            (got.gamma.as_ref(), cpu.gamma.as_ref()),
            (
                got.random.as_ref().map(|r| &r.mean),
                cpu.random.as_ref().map(|r| &r.mean),
            ),
        ];
        for (g, c) in pairs {
            assert_eq!(g.is_some(), c.is_some(), "{run}: the same curves");
            for (a, b) in g.into_iter().flatten().zip(c.into_iter().flatten()) {
                assert!((a - b).abs() <= LOSS_TOL, "{run}: GPU {a} vs CPU {b}");
                worst = worst.max((a - b).abs());
            }
        }
        println!(
            "{run}: worst |Δ loss| GPU vs CPU {worst:e}; against the reference GPU {gpu_ref:e}, CPU {cpu_ref:e}"
        );

        // One held-out pass with and without an edit (the SVD projector at p = 0.5) on each.
        let mut options = SweepOptions::for_model(&model);
        options.seeds = 1;
        let plan = block_on(SurgeryPlan::build(&model, &eval, &options)).expect("plan");
        let edit = plan.edit_removing(options.strategies[0], plan.d_k / 2, 0);
        let time = |backend: &dyn Fn(bool) -> f64| {
            let started = Instant::now();
            let plain = backend(false);
            let t_plain = started.elapsed();
            let started = Instant::now();
            let edited = backend(true);
            (plain, edited, t_plain, started.elapsed())
        };
        let on_cpu = time(&|e| {
            block_on(ForwardBackend::mean_cross_entropy(
                &model,
                &heldout,
                e.then_some(&edit),
            ))
            .expect("CPU")
        });
        let on_gpu = time(&|e| {
            block_on(ForwardBackend::mean_cross_entropy(
                &gpu_model,
                &heldout,
                e.then_some(&edit),
            ))
            .expect("GPU")
        });
        assert!(
            (on_cpu.1 - on_gpu.1).abs() <= LOSS_TOL,
            "{run}: edited pass"
        );
        println!(
            "{run}: held-out pass, plain / with the SVD edit at p = 0.5: CPU {:.2?} / {:.2?}, GPU ({}) {:.2?} / {:.2?}",
            on_cpu.2,
            on_cpu.3,
            gpu().adapter_summary(),
            on_gpu.2,
            on_gpu.3
        );
    }
}
