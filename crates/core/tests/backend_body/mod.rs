//! One test body for every `ForwardBackend` (the CPU's `ModelWeights` in `backend_cpu.rs`,
//! rankscope-gpu's `GpuModel` on lavapipe in its `tests/backend_parity.rs`, which includes this
//! file): the held-out loss and a surgery sweep (SVD, γ, random) against the user's PyTorch
//! reference (`expected/<RUN>.json`: `val_loss`, `final.surgery`), the identity edit, and the
//! errors every backend must give for the same bad batches. Tolerances: fixtures README
//! (losses 1e-4 absolute). The sweep is kept small (p = 0, 0.3, 0.7; two random seeds: nine
//! passes over the 8 × 128 held-out batch) so that a software GPU runs it in seconds.
#![allow(dead_code)] // each runner uses its own part

use rankscope_core::analysis::surgery::{
    has_key_norm, run_sweep_on, Strategy, SurgeryPlan, SurgeryResult, SweepOptions,
};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::backend::ForwardBackend;
use rankscope_core::model::forward::{ForwardError, ModelWeights};
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
/// One run with a key norm (γ swept) and one without.
pub const RUNS: [&str; 2] = ["B1", "A2"];
/// Indices of the swept fractions among the reference's p = i/10.
pub const FRACTIONS: [usize; 3] = [0, 3, 7];
pub const SEEDS: usize = 2;
/// Losses, nats, absolute (fixtures README).
pub const LOSS_TOL: f64 = 1e-4;

/// The final checkpoint of `run`: its expected values and the model.
pub fn final_checkpoint(run: &str) -> (Value, ModelWeights) {
    let path = format!("{FIXTURES}/expected/{run}.json");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("expected json"))
            .expect("json");
    let last = expected["checkpoints"]
        .as_array()
        .and_then(|c| c.last())
        .expect("a final checkpoint")
        .clone();
    let name = last["file"]
        .as_str()
        .expect("file")
        .rsplit('/')
        .next()
        .expect("name");
    let path = format!("{FIXTURES}/runs/{run}/{name}");
    let src = FileSource::open(&path).expect("open checkpoint");
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("{path} not recognised")
    };
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load weights");
    (last, model)
}

pub fn tokens(name: &str) -> TokenBatch {
    let src = FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens");
    parse_tokens_safetensors(&src).expect("tokens")
}

fn close(got: f64, want: f64, what: impl FnOnce() -> String) -> f64 {
    let err = (got - want).abs();
    assert!(err <= LOSS_TOL, "{}: {got} vs {want}, |Δ| {err:e}", what());
    err
}

/// Every check of this file on `backend` (the final checkpoint of `run`, whose reference values
/// are `last`); returns the sweep, for comparing backends with each other, and the worst
/// |Δ loss| against the reference.
pub fn check_backend(
    backend: &impl ForwardBackend,
    run: &str,
    last: &Value,
    eval: &TokenBatch,
    heldout: &TokenBatch,
) -> (SurgeryResult, f64) {
    let want = &last["final"]["surgery"];
    let mut worst = 0.0f64;
    let engine = backend.engine();

    // The held-out loss.
    let loss = block_on(backend.mean_cross_entropy(heldout, None)).expect("held-out loss");
    worst = worst.max(close(loss, last["val_loss"].as_f64().unwrap(), || {
        format!("{run} on {engine}: val_loss")
    }));

    // The sweep: γ offered iff the model has a key norm, as in the reference.
    let mut options = SweepOptions::for_model(backend);
    assert_eq!(
        has_key_norm(backend),
        want["gamma"].is_array(),
        "{run}: key norm"
    );
    options.fractions = FRACTIONS.iter().map(|&i| i as f64 / 10.0).collect();
    options.seeds = SEEDS;
    let mut announced = 0;
    let got = block_on(run_sweep_on(
        backend,
        eval,
        heldout,
        &options,
        &mut |_| announced += 1,
        &|| false,
    ))
    .unwrap_or_else(|e| panic!("{run} on {engine}: sweep: {e}"));
    // The baseline, then per fraction with m > 0: SVD, γ (when swept) and each seed.
    let per_fraction = 1 + usize::from(got.gamma.is_some()) + SEEDS;
    assert_eq!(
        announced,
        1 + (FRACTIONS.len() - 1) * per_fraction,
        "{run}: one announcement per pass"
    );
    assert_eq!(
        got.baseline, loss,
        "{run} on {engine}: the baseline is the held-out loss"
    );
    worst = worst.max(close(
        got.baseline,
        want["baseline_val_loss"].as_f64().unwrap(),
        || format!("{run} on {engine}: baseline"),
    ));
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let curves = [
        ("SVD", got.svd.as_ref(), &want["svd"]),
        ("γ", got.gamma.as_ref(), &want["gamma"]),
    ];
    for (name, curve, reference) in curves {
        let Some(curve) = curve else {
            assert!(reference.is_null(), "{run}: {name} swept in the reference");
            continue;
        };
        let reference = floats(reference);
        for (k, &i) in FRACTIONS.iter().enumerate() {
            worst = worst.max(close(curve[k], reference[i], || {
                format!("{run} on {engine}: {name} p = {}", got.fractions[k])
            }));
        }
    }
    let random = got.random.as_ref().expect("random swept");
    for (s, reference) in want["random"]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .take(SEEDS)
        .enumerate()
    {
        let reference = floats(reference);
        for (k, &i) in FRACTIONS.iter().enumerate() {
            worst = worst.max(close(random.losses[s][k], reference[i], || {
                format!(
                    "{run} on {engine}: random seed {s} p = {}",
                    got.fractions[k]
                )
            }));
        }
    }

    // Removing nothing is the identity: the mask edit with m = 0 gives the baseline.
    let plan = block_on(SurgeryPlan::build(backend, eval, &options)).expect("plan");
    let identity = plan.edit_removing(Strategy::Random, 0, 0);
    let same = block_on(backend.mean_cross_entropy(heldout, Some(&identity))).expect("identity");
    assert!(
        (same - loss).abs() <= 1e-9,
        "{run} on {engine}: the identity edit changed the loss: {same} vs {loss}"
    );

    // The same bad batches give the same errors on every backend.
    let short = TokenBatch {
        batch: 2,
        seq_len: 1,
        ids: vec![1, 2],
    };
    assert!(matches!(
        block_on(backend.mean_cross_entropy(&short, None)),
        Err(ForwardError::TooShortForLoss(1))
    ));
    let vocab = backend.arch().vocab as u32;
    let beyond = TokenBatch {
        batch: 2,
        seq_len: 3,
        ids: vec![1, 2, 3, 4, vocab, 5],
    };
    assert!(
        matches!(
            block_on(backend.mean_cross_entropy(&beyond, None)),
            Err(ForwardError::TokenOutOfVocab {
                sequence: 1,
                position: 1,
                ..
            })
        ),
        "{run} on {engine}: an id beyond the vocabulary"
    );
    let ragged = TokenBatch {
        batch: 2,
        seq_len: 3,
        ids: vec![1, 2, 3, 4],
    };
    assert!(matches!(
        block_on(backend.collect_keys(&ragged, &mut |_| true)),
        Err(ForwardError::MalformedBatch { ids: 4, .. })
    ));
    (got, worst)
}
