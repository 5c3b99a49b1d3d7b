//! Weight spectra through the real pipeline (header → architecture → W_k
//! blocks read by byte range → f64 SVD) against the user's reference numbers
//! in `expected/<RUN>.json`, for F32, BF16 (`_orig_mod.`) and F16 checkpoints.
//! Tolerance: fixtures README, "W_k spectra (weights only): 1e-6 relative".

use rankscope_core::analysis::trajectory::{
    checkpoint_value, layer_value, LayerSel, Matrix, Metric,
};
use rankscope_core::analysis::weights::{weight_spectra, ModelSpectra, Shards};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

mod common;
use common::{fixture_job, FIXTURES};

fn spectra_of(path: &str) -> ModelSpectra {
    let src = FileSource::open(path).expect("open checkpoint");
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("{path} not recognised")
    };
    block_on(weight_spectra(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("weight spectra")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() < 1e-12
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        v => v.as_f64().expect("number"),
    }
}

#[test]
fn wk_spectra_match_the_reference_for_every_run_and_checkpoint() {
    let mut blocks = 0;
    for run in ["A1", "A2", "B1", "B2", "C1", "C2"] {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURES}/expected/{run}.json"))
                .expect("expected json"),
        )
        .expect("parse expected");
        for ckpt in expected["checkpoints"].as_array().expect("checkpoints") {
            let file = ckpt["file"].as_str().expect("file");
            let name = file.rsplit('/').next().expect("file name");
            let ws = spectra_of(&format!("{FIXTURES}/runs/{run}/{name}"));
            for (l, layer) in ckpt["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .enumerate()
            {
                for (h, head) in layer["wk_heads"]
                    .as_array()
                    .expect("wk_heads")
                    .iter()
                    .enumerate()
                {
                    let got = &ws.layers[l].k_heads[h];
                    let want: Vec<f64> =
                        head["sv"].as_array().expect("sv").iter().map(num).collect();
                    assert_eq!(got.singular_values.len(), want.len());
                    for (i, (g, w)) in got.singular_values.iter().zip(&want).enumerate() {
                        assert!(
                            close(*g, *w, 1e-6),
                            "{run} {name} layer {l} kv-head {h} σ_{i}: {g} vs {w}"
                        );
                    }
                    let m = &got.metrics;
                    assert!(
                        close(m.spectral_norm, num(&head["spectral_norm"]), 1e-6),
                        "{run} {name} L{l} H{h} spectral norm"
                    );
                    assert!(
                        close(m.log10_fro2, num(&head["log10_fro2"]), 1e-6),
                        "{run} {name} L{l} H{h} log10_fro2"
                    );
                    assert!(
                        close(m.spectrum.pr, num(&head["pr"]), 1e-6),
                        "{run} {name} L{l} H{h} PR"
                    );
                    assert_eq!(
                        m.spectrum.r90 as f64,
                        num(&head["r90"]),
                        "{run} {name} L{l} H{h} r90"
                    );
                    assert!(
                        close(m.spectrum.cond, num(&head["cond"]), 1e-6),
                        "{run} {name} L{l} H{h} cond"
                    );
                    blocks += 1;
                }
                // The layer value is the mean over kv-heads, as the reference's wk_mean.
                for (metric, key) in [
                    (Metric::Pr, "pr"),
                    (Metric::Erank, "erank"),
                    (Metric::StableRank, "stable_rank"),
                    (Metric::R90, "r90"),
                ] {
                    let got = layer_value(&ws, l, Matrix::K, metric).expect("layer value");
                    assert!(
                        close(got, num(&layer["wk_mean"][key]), 1e-6),
                        "{run} {name} L{l} mean {key}: {got}"
                    );
                }
                // γ of the key and query norms, as stored.
                match (&ws.layers[l].gamma_k, layer["gamma"].as_array()) {
                    (Some(g), Some(want)) => {
                        for (a, b) in g.iter().zip(want) {
                            assert!(close(*a as f64, num(b), 1e-7), "{run} {name} L{l} γ");
                        }
                    }
                    (None, None) => {}
                    (got, want) => panic!("{run} {name} L{l}: γ {got:?} vs expected {want:?}"),
                }
                assert_eq!(
                    ws.layers[l].gamma_q.is_some(),
                    layer["gamma_q"].is_array(),
                    "{run} γ_q presence"
                );
            }
            let mean =
                checkpoint_value(&ws, LayerSel::Mean, Matrix::K, Metric::Pr).expect("mean PR");
            let want = ckpt["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .map(|l| num(&l["wk_mean"]["pr"]))
                .sum::<f64>()
                / 4.0;
            assert!(close(mean, want, 1e-6), "{run} {name} mean over layers");
        }
    }
    assert_eq!(
        blocks,
        6 * 6 * 4 * 2,
        "every W_k block of every checkpoint checked"
    );
}

#[test]
fn wq_blocks_have_the_query_head_layout() {
    let ws = spectra_of(&format!(
        "{FIXTURES}/runs/A1/ckpt_tokens_327680.safetensors"
    ));
    assert_eq!(ws.layers.len(), 4);
    for layer in &ws.layers {
        assert_eq!((layer.k_heads.len(), layer.q_heads.len()), (2, 4));
        for h in layer.q_heads.iter().chain(&layer.k_heads) {
            assert_eq!(
                h.singular_values.len(),
                16,
                "d_k × d_model block has d_k singular values"
            );
            assert!(h.singular_values.windows(2).all(|w| w[0] >= w[1]));
        }
    }
}

#[test]
fn stories260k_llama_wk_matches_the_reference() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/expected/stories260K.json"))
            .expect("expected json"),
    )
    .expect("parse");
    let path = format!("{FIXTURES}/stories260K/model.safetensors");
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/stories260K/config.json")).expect("config"),
    )
    .expect("parse");
    let src = FileSource::open(&path).expect("open");
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, Some(&config)) else {
        panic!("not recognised")
    };
    let ws = block_on(weight_spectra(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("spectra");
    let layers = expected["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 5);
    let mut checked = 0;
    for (l, layer) in layers.iter().enumerate() {
        for (h, head) in layer["wk_heads"]
            .as_array()
            .expect("wk_heads")
            .iter()
            .enumerate()
        {
            let want: Vec<f64> = head["sv"].as_array().expect("sv").iter().map(num).collect();
            for (g, w) in ws.layers[l].k_heads[h].singular_values.iter().zip(&want) {
                assert!(close(*g, *w, 1e-6), "stories260K L{l} H{h}: {g} vs {w}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

/// The page's workers compute a checkpoint from a job (files sent as Blobs):
/// the result must be the one the main thread would compute, for a single
/// file and for a model with `config.json` beside it.
#[test]
fn a_worker_job_gives_the_same_spectra_as_the_direct_path() {
    use rankscope_core::analysis::jobs::{run_checkpoint_job, CheckpointJob, JobKind, JobOutput};
    let b1 = "runs/B1/ckpt_tokens_327680.safetensors";
    let (job, sources) = fixture_job(&[b1], b1, JobKind::ModelSpectra);
    assert_eq!(job.files, [b1]);
    let mut lines = Vec::new();
    let out = block_on(run_checkpoint_job(&job, &sources, &mut |line, _| {
        lines.push(line.to_string())
    }))
    .expect("job runs");
    assert_eq!(
        out,
        JobOutput::ModelSpectra {
            weights: spectra_of(&format!("{FIXTURES}/{b1}")),
            non_finite: Vec::new(),
        }
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("weight spectra: layer 4 of 4")
    );

    // A file that is no checkpoint gets no job, and says why.
    let inv = common::inventory_of(&["eval_tokens.safetensors"]);
    let err = CheckpointJob::plan(&inv, 0, JobKind::ModelSpectra).unwrap_err();
    assert_eq!(err.to_string(), "its architecture is not recognised");

    // Hugging Face Llama: the architecture recognised with the config beside the
    // weights travels with the job (the config itself does not).
    let model = "stories260K/model.safetensors";
    let (job, sources) = fixture_job(
        &[model, "stories260K/config.json"],
        model,
        JobKind::ModelSpectra,
    );
    assert_eq!(job.files, [model]);
    match block_on(run_checkpoint_job(&job, &sources, &mut |_, _| {})).expect("job runs") {
        JobOutput::ModelSpectra { weights, .. } => assert_eq!(weights.layers.len(), 5),
        other => panic!("stories260K: {other:?}"),
    }
}

/// The full job (weights, then the forward pass on the eval batch) in a
/// worker gives the reference K PR and held-out loss of B1's final checkpoint.
#[test]
fn a_worker_job_with_an_eval_batch_gives_the_reference_activations() {
    use rankscope_core::analysis::activations::KeyVariant;
    use rankscope_core::analysis::jobs::{run_checkpoint_job, JobKind, JobOutput};
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/expected/B1.json")).unwrap(),
    )
    .unwrap();
    let last = expected["checkpoints"]
        .as_array()
        .unwrap()
        .last()
        .expect("final checkpoint");
    let ckpt = format!(
        "runs/B1/{}",
        last["file"].as_str().unwrap().rsplit('/').next().unwrap()
    );
    let (job, sources) = fixture_job(
        &[
            &ckpt,
            "eval_tokens.safetensors",
            "heldout_tokens.safetensors",
        ],
        &ckpt,
        JobKind::WeightsAndActivations {
            eval: "eval_tokens.safetensors".into(),
            heldout: Some("heldout_tokens.safetensors".into()),
            variants: KeyVariant::ALL.to_vec(),
        },
    );
    let mut stages = Vec::new();
    let out = block_on(run_checkpoint_job(&job, &sources, &mut |line, _| {
        stages.push(line.to_string())
    }))
    .expect("job runs");
    let JobOutput::WeightsAndActivations {
        weights,
        activations,
        engine,
        non_finite,
    } = out
    else {
        panic!("{out:?}")
    };
    // Taken from the forward pass's reads, the weight spectra are the direct path's.
    assert_eq!(weights, spectra_of(&format!("{FIXTURES}/{ckpt}")));
    assert_eq!(non_finite, []);
    let act = activations.expect("activations");
    let loss = act.heldout_loss.expect("held-out loss");
    assert!(
        (loss - num(&last["val_loss"])).abs() <= 1e-4,
        "{loss} vs {}",
        last["val_loss"]
    );
    let ws = act.spectra(KeyVariant::PostNorm).expect("default variant");
    let pr = checkpoint_value(&ws, LayerSel::Mean, Matrix::K, Metric::Pr).unwrap();
    assert!(
        close(pr, num(&last["mean_k_pr"]), 1e-4),
        "mean K PR {pr} vs {}",
        last["mean_k_pr"]
    );
    assert!(
        stages.iter().any(|s| s.contains("held-out loss")),
        "{stages:?}"
    );
    assert_eq!(engine, "CPU (native)");

    // A job naming an eval batch it was not given keeps the weights and says why.
    let mut missing = job.clone();
    missing.batches.clear();
    let out = block_on(run_checkpoint_job(&missing, &sources, &mut |_, _| {})).expect("job runs");
    let JobOutput::WeightsAndActivations {
        activations: Err(why),
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(
        why.contains("eval_tokens.safetensors is not a readable token batch"),
        "{why}"
    );
}

/// Figures 3–5 as a worker computes them: B1's final checkpoint's surgery
/// losses and Spearman ρ are the reference's; A2 (no key norm) sweeps no γ.
#[test]
fn a_study_job_reproduces_the_reference_surgery_and_importance() {
    use rankscope_core::analysis::jobs::{run_checkpoint_job, JobKind, JobOutput, StudyOptions};
    let mut options = StudyOptions {
        n_boot: 50,
        ..StudyOptions::default()
    };
    options.sweep.seeds = 2;
    for run in ["B1", "A2"] {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURES}/expected/{run}.json")).unwrap(),
        )
        .unwrap();
        let last = expected["checkpoints"].as_array().unwrap().last().unwrap();
        let ckpt = format!(
            "runs/{run}/{}",
            last["file"].as_str().unwrap().rsplit('/').next().unwrap()
        );
        let (job, sources) = fixture_job(
            &[
                &ckpt,
                "eval_tokens.safetensors",
                "heldout_tokens.safetensors",
            ],
            &ckpt,
            JobKind::Study {
                eval: "eval_tokens.safetensors".into(),
                heldout: "heldout_tokens.safetensors".into(),
                options: options.clone(),
            },
        );
        let out = block_on(run_checkpoint_job(&job, &sources, &mut |_, _| {})).expect("job runs");
        let JobOutput::Study(study) = out else {
            panic!("{run}: {out:?}")
        };
        let surgery = study.surgery.expect("surgery");
        let want = &last["final"]["surgery"];
        for (i, got) in surgery.svd.as_ref().unwrap().iter().enumerate() {
            assert!(
                (got - num(&want["svd"][i])).abs() <= 1e-4,
                "{run} svd[{i}] {got}"
            );
        }
        for (seed, losses) in surgery.random.as_ref().unwrap().losses.iter().enumerate() {
            for (i, got) in losses.iter().enumerate() {
                assert!(
                    (got - num(&want["random"]["losses"][seed][i])).abs() <= 1e-4,
                    "{run} random[{seed}][{i}] {got}"
                );
            }
        }
        let layers = study.layers.expect("layer PR");
        assert_eq!(layers.len(), 4);
        assert!(
            layers
                .iter()
                .all(|l| l.pr.lo <= l.pr.value && l.pr.value <= l.pr.hi),
            "{layers:?}"
        );
        let importance = study.importance.expect("importance");
        match run {
            "B1" => {
                assert_eq!(surgery.gamma.as_ref().unwrap().len(), 10);
                let rho = importance.overall.as_ref().unwrap().rho;
                assert!(
                    (rho - num(&last["final"]["gamma_vs_svd"]["overall"]["rho"])).abs() <= 1e-6,
                    "ρ {rho}"
                );
            }
            _ => {
                assert_eq!(surgery.gamma, None, "no key norm, no γ sweep");
                assert!(!importance.has_key_norm);
            }
        }
    }
}
