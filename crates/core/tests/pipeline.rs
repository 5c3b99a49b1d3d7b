//! The analysis pipeline the page and the CLI share (`analysis::pipeline`): planned from the 36
//! fixture checkpoints and both token batches as the page plans them (batches matched by
//! name), run one job after another and on the `--threads` pool, folded in any order, and
//! named at assembly — checked against the user's own numbers (`expected/<RUN>.json`).

mod common;

use common::{fixture, inventory_of};
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::jobs::{
    run_checkpoint_job, CpuEngine, JobKind, JobOutput, StudyOptions,
};
use rankscope_core::analysis::pipeline::{run, run_blocking, Plan, Results, RunTokens};
use rankscope_core::analysis::trajectory::{
    checkpoint_value, CheckpointSel, LayerSel, Matrix, Metric,
};
use rankscope_core::inventory::batches::{run_batches, RunBatches};
use rankscope_core::inventory::Inventory;
use rankscope_core::source::block_on;
use std::collections::{BTreeMap, BTreeSet};

const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];
const TOKENS: [u64; 6] = [0, 20480, 40960, 81920, 163840, 327680];

fn paths() -> Vec<String> {
    let mut paths: Vec<String> = RUNS
        .iter()
        .flat_map(|r| {
            TOKENS
                .iter()
                .map(move |t| format!("runs/{r}/ckpt_tokens_{t}.safetensors"))
        })
        .collect();
    paths.push("eval_tokens.safetensors".into());
    paths.push("heldout_tokens.safetensors".into());
    paths
}

/// The 36 fixture checkpoints and both batches, inspected, with each run's batches matched by
/// name (as the page matches them).
fn fixture_study() -> (Inventory, Vec<RunBatches>) {
    let paths = paths();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let inv = inventory_of(&refs);
    let batches = run_batches(&inv, &BTreeMap::new());
    (inv, batches)
}

fn expected(run: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(&format!("expected/{run}.json"))).expect("expected JSON")
}

#[test]
fn the_plan_runs_the_same_on_one_thread_and_the_pool_and_folds_in_any_order() {
    let (inv, batches) = fixture_study();
    let tokens = |run: &str| RunTokens::matched(&inv, &batches, run);
    let plan = Plan::spectra(&inv, &tokens, &[KeyVariant::PostNorm]);

    // One job per checkpoint, each with its forward pass on the batches matched by name, and
    // a key of its own.
    assert!(plan.failures.is_empty(), "{:?}", plan.failures);
    assert_eq!(plan.jobs.len(), 36);
    assert!(plan.has_forward_passes());
    let keys: BTreeSet<String> = plan.jobs.iter().map(|j| j.key()).collect();
    assert_eq!(keys.len(), 36, "every job has its own key");
    for j in &plan.jobs {
        match &j.job.kind {
            JobKind::WeightsAndActivations { eval, heldout, .. } => {
                assert_eq!(eval, "eval_tokens.safetensors");
                assert_eq!(heldout.as_deref(), Some("heldout_tokens.safetensors"));
            }
            other => panic!("{}: {other:?}", j.checkpoint.path),
        }
        assert_eq!(j.reads().len(), 3, "the checkpoint and both batches");
    }

    let open = |path: &str| Some(fixture(path));
    let name = |run: usize| inv.runs[run].name.clone();
    let mut lines = 0;
    let one = block_on(run(
        &plan,
        &open,
        &CpuEngine,
        &mut |_, _, _| lines += 1,
        &|| false,
    ));
    assert!(lines > 36, "each job reports its stages");
    assert!(one.failures.is_empty(), "{:?}", one.failures);
    let pool = run_blocking(&plan, &open, &|_, _| {});
    assert_eq!(one, pool, "one thread and the pool give the same results");

    // The user's numbers: held-out loss and mean K PR of every checkpoint.
    let runs = one.activation_runs(&name);
    assert_eq!(runs.len(), 6);
    for (r, run_name) in runs.iter().zip(RUNS) {
        assert_eq!(r.run, run_name);
        let want = expected(run_name);
        let k = r.run_spectra(KeyVariant::PostNorm);
        for ((c, k), w) in r
            .checkpoints
            .iter()
            .zip(&k.checkpoints)
            .zip(want["checkpoints"].as_array().expect("checkpoints"))
        {
            let loss = c.spectra.heldout_loss.expect("held-out loss");
            assert!(
                (loss - w["val_loss"].as_f64().unwrap()).abs() <= 1e-4,
                "{}",
                c.path
            );
            let pr = checkpoint_value(&k.spectra, LayerSel::Mean, Matrix::K, Metric::Pr).unwrap();
            let want_pr = w["mean_k_pr"].as_f64().unwrap();
            assert!(
                (pr - want_pr).abs() / want_pr <= 1e-4,
                "{}: {pr} vs {want_pr}",
                c.path
            );
        }
    }

    // Folded in reverse (as workers finish in any order), the runs come out the same.
    let mut reversed = Results::new(&plan);
    for i in (0..plan.jobs.len()).rev() {
        let job = &plan.jobs[i].job;
        let sources: Vec<Vec<u8>> = job.files.iter().map(|p| fixture(p)).collect();
        let out = block_on(run_checkpoint_job(job, &sources, &mut |_, _| {}));
        reversed.fold(i, out.map_err(|e| e.to_string()));
    }
    assert_eq!(reversed.weight_runs(&name), one.weight_runs(&name));
    assert_eq!(reversed.activation_runs(&name), runs);

    // Names are looked up when the runs are assembled: a rename is one change, the numbers
    // and colours stay.
    let renamed = one.activation_runs(&|run| {
        if run == 0 {
            "baseline".into()
        } else {
            name(run)
        }
    });
    assert_eq!(renamed[0].run, "baseline");
    assert_eq!(renamed[0].color, runs[0].color);
    assert_eq!(renamed[0].checkpoints, runs[0].checkpoints);
    assert_eq!(renamed[1..], runs[1..]);
}

#[test]
fn study_plans_need_both_batches_and_take_the_chosen_checkpoint() {
    let (inv, batches) = fixture_study();
    let options = StudyOptions::default();
    let plan = Plan::study(
        &inv,
        &|run| RunTokens::matched(&inv, &batches, run),
        CheckpointSel::Index(2),
        &options,
    );
    assert_eq!(plan.jobs.len(), 6, "one study job per run");
    for j in &plan.jobs {
        assert_eq!(j.checkpoint.tokens, Some(40960));
        assert!(matches!(j.job.kind, JobKind::Study { .. }));
    }
    // Without a held-out batch no run can have Figures 3–5: nothing is planned, and the
    // caller says which runs were left out.
    let eval_only = Plan::study(
        &inv,
        &|run| RunTokens {
            heldout: None,
            ..RunTokens::matched(&inv, &batches, run)
        },
        CheckpointSel::Final,
        &options,
    );
    assert!(eval_only.jobs.is_empty());
    // A job whose file cannot be opened is a failure named by its checkpoint.
    let one = Plan {
        jobs: vec![plan.jobs[0].clone()],
        failures: Vec::new(),
    };
    let results = run_blocking(&one, &|_: &str| None::<Vec<u8>>, &|_, _| {});
    assert_eq!(results.failures.len(), 1);
    assert_eq!(results.failures[0].path, plan.jobs[0].checkpoint.path);
    assert_eq!(
        results.study_runs().len(),
        1,
        "the run's Figures 3–5 entry says why"
    );
    assert!(results.study_runs()[0].2.is_err());
    // A study job that comes back without its study is the run's failure too, not silence.
    let mut results = Results::new(&one);
    results.fold(0, Ok(JobOutput::NotRecognised));
    let runs = results.study_runs();
    assert_eq!(
        runs[0].2.as_ref().unwrap_err(),
        "the checkpoint's architecture is not recognised"
    );
    assert_eq!(results.failures.len(), 1);
}

/// A run's surgery sweep split into shares (the page's idle workers each take one) gives the
/// same Figures 3–5 as the whole sweep in one job, folded in any order; a run's study shows
/// only once every share is in, and a failed share is its surgery's failure.
#[test]
fn a_sweep_split_into_shares_joins_to_the_whole_sweep() {
    let (inv, batches) = fixture_study();
    // One run (B1), a small sweep: 3 fractions × SVD, γ and 2 random seeds = 8 passes.
    let tokens = |run: &str| match run {
        "B1" => RunTokens::matched(&inv, &batches, run),
        _ => RunTokens::default(),
    };
    let mut options = StudyOptions {
        n_boot: 20,
        n_perm: 20,
        ..StudyOptions::default()
    };
    options.sweep.fractions = vec![0.0, 0.25, 0.5];
    options.sweep.seeds = 2;
    let whole = Plan::study(&inv, &tokens, CheckpointSel::Final, &options);
    let mut split = whole.clone();
    split.share_sweeps(3);
    assert_eq!((whole.jobs.len(), split.jobs.len()), (1, 3));
    let keys: BTreeSet<String> = split.jobs.iter().map(|j| j.key()).collect();
    assert_eq!(keys.len(), 3, "each share is its own job");
    let spectra = Plan::spectra(&inv, &tokens, &[KeyVariant::PostNorm]);
    let mut shared = spectra.clone();
    shared.share_sweeps(3);
    assert_eq!(shared, spectra, "only study jobs are split");

    let open = |path: &str| Some(fixture(path));
    let want = run_blocking(&whole, &open, &|_, _| {}).study_runs();
    assert_eq!(want.len(), 1);
    let surgery = want[0].2.as_ref().unwrap().surgery.as_ref().unwrap();
    let random = surgery.random.as_ref().unwrap();
    assert!(surgery.svd.as_ref().unwrap().iter().all(|l| l.is_finite()));
    assert!(random.losses.iter().flatten().all(|l| l.is_finite()));

    let outputs: Vec<Result<JobOutput, String>> = split
        .jobs
        .iter()
        .map(|p| {
            let sources: Vec<Vec<u8>> = p.job.files.iter().map(|f| fixture(f)).collect();
            let out = block_on(run_checkpoint_job(&p.job, &sources, &mut |_, _| {}))
                .map_err(|e| e.to_string());
            // As a worker posts it: JSON, where the passes another share ran are NaN.
            let json = serde_json::to_string(&out).expect("to JSON");
            serde_json::from_str(&json).expect("the page reads a share's output back")
        })
        .collect();
    // Folded last share first: nothing shows until the first share is in as well.
    let mut results = Results::new(&split);
    for i in [2, 1, 0] {
        assert!(
            results.study_runs().is_empty(),
            "a run shows once all its shares are in"
        );
        results.fold(i, outputs[i].clone());
    }
    assert_eq!(
        results.study_runs(),
        want,
        "the shares join to the whole sweep"
    );

    // A share that failed (cancelled, a worker lost) fails the run's surgery, not Figure 3.
    let mut results = Results::new(&split);
    results.fold(0, outputs[0].clone());
    results.fold(1, Err("cancelled".into()));
    results.fold(2, outputs[2].clone());
    let runs = results.study_runs();
    let study = runs[0].2.as_ref().unwrap();
    assert_eq!(study.surgery.as_ref().unwrap_err(), "cancelled");
    assert!(study.layers.is_ok());
}
