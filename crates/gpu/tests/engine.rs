//! [`GpuEngine`] as a page worker uses it: a whole checkpoint job (weights, then the forward
//! passes on the GPU) gives the CPU job's numbers within the fixtures' tolerances and says
//! where it ran. A machine without a GPU adapter FAILS this test (lavapipe in CI).

#![cfg(not(target_arch = "wasm32"))]

use rankscope_core::analysis::activations::{ActivationSpectra, KeyVariant};
use rankscope_core::analysis::jobs::{
    run_checkpoint_job, run_checkpoint_job_on, CheckpointJob, JobKind, JobOutput,
};
use rankscope_core::analysis::weights::ModelSpectra;
use rankscope_gpu::GpuEngine;

mod common;
use common::FIXTURES;

const CHECKPOINT: &str = "runs/B1/ckpt_tokens_327680.safetensors";
const EVAL: &str = "eval_tokens.safetensors";
const HELDOUT: &str = "heldout_tokens.safetensors";

/// The engine a page worker makes, and its adapter's name; no adapter fails the test.
fn gpu_engine() -> (GpuEngine, String) {
    let engine = pollster::block_on(GpuEngine::new());
    let adapter = engine
        .adapter()
        .unwrap_or_else(|why| panic!("no GPU adapter ({why}): install mesa-vulkan-drivers"));
    (engine, adapter)
}

/// B1's final checkpoint's job as the page plans it (from the inventory of the dropped
/// checkpoint and batches), with the bytes of its tensor files.
fn planned_job(kind: JobKind) -> (CheckpointJob, Vec<Vec<u8>>) {
    let read = |p: &str| std::fs::read(format!("{FIXTURES}/{p}")).unwrap();
    let inv = rankscope_core::inventory::Inventory::link(
        [CHECKPOINT, EVAL, HELDOUT]
            .iter()
            .map(|p| {
                pollster::block_on(rankscope_core::inventory::inspect_file(
                    p,
                    &read(p),
                    &mut |_| {},
                ))
            })
            .collect(),
    );
    let job = CheckpointJob::plan(&inv, 0, kind).expect("a job");
    let sources = job.files.iter().map(|p| read(p)).collect();
    (job, sources)
}

/// A weights-and-activations job's output: on `engine`, or on the CPU when `None`.
fn weights_and_activations(
    job: &CheckpointJob,
    sources: &[Vec<u8>],
    engine: Option<&GpuEngine>,
) -> (ModelSpectra, ActivationSpectra, String) {
    let out = match engine {
        Some(engine) => {
            pollster::block_on(run_checkpoint_job_on(job, sources, engine, &mut |_, _| {}))
        }
        None => pollster::block_on(run_checkpoint_job(job, sources, &mut |_, _| {})),
    };
    match out.expect("job runs") {
        JobOutput::WeightsAndActivations {
            weights,
            activations,
            engine,
            ..
        } => (weights, activations.expect("activations"), engine),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_checkpoint_job_on_the_gpu_matches_the_cpu_job_and_says_where_it_ran() {
    let (engine, adapter) = gpu_engine();
    let kind = JobKind::WeightsAndActivations {
        eval: EVAL.into(),
        heldout: Some(HELDOUT.into()),
        variants: KeyVariant::ALL.to_vec(),
    };
    let (job, sources) = planned_job(kind);
    let run = |gpu: bool| weights_and_activations(&job, &sources, gpu.then_some(&engine));
    let (gpu_weights, gpu, gpu_label) = run(true);
    let (cpu_weights, cpu, cpu_label) = run(false);
    assert_eq!(gpu_label, format!("GPU: {adapter}"));
    assert_eq!(cpu_label, "CPU (native)");
    assert_eq!(
        gpu_weights, cpu_weights,
        "weight spectra do not use the GPU"
    );
    let (g, c) = (gpu.heldout_loss.unwrap(), cpu.heldout_loss.unwrap());
    assert!((g - c).abs() <= 1e-4, "held-out loss {g} vs {c}");
    let mut worst = 0.0f64;
    for variant in KeyVariant::ALL {
        let (gs, cs) = (gpu.spectra(variant).unwrap(), cpu.spectra(variant).unwrap());
        for (gl, cl) in gs.layers.iter().zip(&cs.layers) {
            for (gh, ch) in gl.k_heads.iter().zip(&cl.k_heads) {
                for (a, b) in gh.singular_values.iter().zip(&ch.singular_values) {
                    worst = worst.max((a - b).abs() / b.abs().max(1e-12));
                }
            }
        }
    }
    assert!(
        worst <= 1e-4,
        "K singular values differ by {worst:e} relative"
    );
}

/// A Figures 3–5 job on [`GpuEngine`]: the eval pass and the surgery sweep on the GPU give the
/// CPU job's numbers within the loss tolerance, and the output names the adapter.
#[test]
fn a_study_job_on_the_gpu_matches_the_cpu_job_and_says_where_it_ran() {
    use rankscope_core::analysis::jobs::StudyOptions;
    use rankscope_core::analysis::surgery::SweepOptions;
    let (engine, adapter) = gpu_engine();
    let kind = JobKind::Study {
        eval: EVAL.into(),
        heldout: HELDOUT.into(),
        // Small, for a software GPU: p = 0 and 0.5, one seed, few resamples.
        options: StudyOptions {
            sweep: SweepOptions {
                fractions: vec![0.0, 0.5],
                seeds: 1,
                ..SweepOptions::default()
            },
            n_boot: 20,
            n_perm: 20,
        },
    };
    let (job, sources) = planned_job(kind);
    let run = |gpu: bool| {
        let mut lines = Vec::new();
        let out = if gpu {
            pollster::block_on(run_checkpoint_job_on(
                &job,
                &sources,
                &engine,
                &mut |line, _| lines.push(line.to_string()),
            ))
        } else {
            pollster::block_on(run_checkpoint_job(&job, &sources, &mut |line, _| {
                lines.push(line.to_string())
            }))
        };
        match out.expect("job runs") {
            JobOutput::Study(out) => (*out, lines),
            other => panic!("{other:?}"),
        }
    };
    let (gpu, gpu_lines) = run(true);
    let (cpu, cpu_lines) = run(false);
    assert_eq!(gpu.engine, format!("GPU: {adapter}"));
    assert_eq!(cpu.engine, "CPU (native)");
    assert!(
        gpu_lines
            .iter()
            .any(|l| l.starts_with("surgery on the GPU: ")),
        "{gpu_lines:?}"
    );
    assert!(
        cpu_lines
            .iter()
            .any(|l| l.starts_with("surgery on the CPU: ")),
        "{cpu_lines:?}"
    );
    let (g, c) = (
        gpu.surgery.expect("GPU sweep"),
        cpu.surgery.expect("CPU sweep"),
    );
    let curves = |r: &rankscope_core::analysis::surgery::SurgeryResult| {
        let mut all = vec![r.baseline];
        all.extend(r.svd.iter().flatten());
        all.extend(r.gamma.iter().flatten());
        all.extend(r.random.iter().flat_map(|r| r.mean.iter()));
        all
    };
    let (gc, cc) = (curves(&g), curves(&c));
    assert_eq!(gc.len(), cc.len());
    assert_eq!(
        gc.len(),
        1 + 3 * 2,
        "baseline, then SVD, γ and random at two fractions"
    );
    for (a, b) in gc.iter().zip(&cc) {
        assert!((a - b).abs() <= 1e-4, "GPU {a} vs CPU {b}");
    }
    // Figure 3's and 5's numbers come from the same K (read back from the GPU).
    let (gl, cl) = (
        gpu.layers.expect("GPU layers"),
        cpu.layers.expect("CPU layers"),
    );
    assert_eq!(gl.len(), cl.len());
    for (a, b) in gl.iter().zip(&cl) {
        for (x, y) in [
            (a.pr.value, b.pr.value),
            (a.head_min, b.head_min),
            (a.head_max, b.head_max),
        ] {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs(),
                "layer {}: {x} vs {y}",
                a.layer
            );
        }
    }
}

/// The job of a model past the engine's whole-model limit (set to 0 here, rather than making a
/// model of more than 1 GB) streams its forward passes block by block through the GPU: the label says so,
/// the numbers are the CPU job's, and the weight spectra, taken from the same block reads, are
/// the CPU job's exactly.
#[test]
fn a_job_past_the_whole_model_limit_streams_through_the_gpu_and_says_so() {
    let (engine, adapter) = gpu_engine();
    let engine = engine.with_whole_model_limit(0);
    let kind = JobKind::WeightsAndActivations {
        eval: EVAL.into(),
        heldout: Some(HELDOUT.into()),
        variants: vec![KeyVariant::PostNorm],
    };
    let (job, sources) = planned_job(kind);
    let run = |gpu: bool| weights_and_activations(&job, &sources, gpu.then_some(&engine));
    let (gpu_weights, gpu, label) = run(true);
    let (cpu_weights, cpu, _) = run(false);
    assert!(
        label.starts_with(&format!("GPU: {adapter} (streamed block by block: ")),
        "{label}"
    );
    assert_eq!(gpu_weights, cpu_weights);
    let (g, c) = (gpu.heldout_loss.unwrap(), cpu.heldout_loss.unwrap());
    assert!((g - c).abs() <= 1e-4, "held-out loss {g} vs {c}");
    let (gs, cs) = (
        gpu.spectra(KeyVariant::PostNorm).unwrap(),
        cpu.spectra(KeyVariant::PostNorm).unwrap(),
    );
    let mut worst = 0.0f64;
    for (gl, cl) in gs.layers.iter().zip(&cs.layers) {
        for (gh, ch) in gl.k_heads.iter().zip(&cl.k_heads) {
            for (a, b) in gh.singular_values.iter().zip(&ch.singular_values) {
                worst = worst.max((a - b).abs() / b.abs().max(1e-12));
            }
        }
    }
    println!(
        "{label}: K σ within {worst:e} of the CPU job's, held-out loss {:e}",
        (g - c).abs()
    );
    assert!(
        worst <= 1e-4,
        "K singular values differ by {worst:e} relative"
    );
}
