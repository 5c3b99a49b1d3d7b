//! The library's surgery sweep and γ-vs-SVD importance against the user's
//! PyTorch reference (`expected/<RUN>.json`, `final.surgery` and
//! `final.gamma_vs_svd`), every run, strategy and fraction; plus the
//! properties that hold for any model. Tolerances: fixtures README.

use rankscope_core::analysis::importance::{
    gamma_vs_svd, layer_pr_with_ci, spearman, DEFAULT_PERMUTATIONS,
};
use rankscope_core::analysis::surgery::{
    default_fractions, dims_removed, run_sweep, Strategy, SurgeryError, SurgeryPlan, SweepOptions,
};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];

fn json(relative: &str) -> Value {
    let path = format!("{FIXTURES}/{relative}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("json")
}

fn load(path: &str) -> ModelWeights {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("{path} not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load weights")
}

fn tokens(name: &str) -> TokenBatch {
    let src = FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens");
    parse_tokens_safetensors(&src).expect("parse tokens")
}

/// (final checkpoint's expected values, model).
fn final_checkpoint(run: &str) -> (Value, ModelWeights) {
    let expected = json(&format!("expected/{run}.json"));
    let last = expected["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .last()
        .expect("final")
        .clone();
    let file = last["file"]
        .as_str()
        .expect("file")
        .rsplit('/')
        .next()
        .expect("name")
        .to_owned();
    (last, load(&format!("{FIXTURES}/runs/{run}/{file}")))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

/// Worst error seen for one quantity, with where; asserts the tolerance.
#[derive(Default)]
struct Worst(f64, String);
impl Worst {
    fn see(&mut self, err: f64, tol: f64, what: impl FnOnce() -> String) {
        let what = what();
        assert!(err <= tol, "{what}: error {err:e} > {tol:e}");
        if err > self.0 || self.1.is_empty() {
            *self = Worst(err, what);
        }
    }
}

#[test]
fn sweep_reproduces_every_reference_surgery_loss() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let [mut base, mut svd, mut gamma, mut random, mut stats] =
        std::array::from_fn(|_| Worst::default());
    for run in RUNS {
        let (last, model) = final_checkpoint(run);
        let want = &last["final"]["surgery"];
        let options = SweepOptions::for_model(&model);
        assert_eq!(
            options.strategies.contains(&Strategy::Gamma),
            want["gamma"].is_array(),
            "{run}: γ offered iff key norm"
        );
        let mut seen = Vec::new();
        let got = run_sweep(
            &model,
            &eval,
            &heldout,
            &options,
            &mut |p| seen.push(p),
            &|| false,
        )
        .expect("sweep");
        assert_eq!(seen.len(), seen.last().expect("progress").total);
        assert_eq!(got.removed, indices(&want["m"]), "{run}: m");
        base.see(
            (got.baseline - want["baseline_val_loss"].as_f64().unwrap()).abs(),
            1e-4,
            || format!("{run} baseline"),
        );
        let d = |g: f64, w: f64| (g - w).abs();
        for (i, w) in floats(&want["svd"]).into_iter().enumerate() {
            let g = got.svd.as_ref().unwrap()[i];
            svd.see(d(g, w), 1e-4, || {
                format!("{run} SVD p={} ({g} vs {w})", got.fractions[i])
            });
        }
        match (&got.gamma, want["gamma"].as_array()) {
            (Some(g), Some(w)) => {
                for (i, w) in w.iter().enumerate() {
                    let (g, w) = (g[i], w.as_f64().unwrap());
                    gamma.see(d(g, w), 1e-4, || {
                        format!("{run} γ p={} ({g} vs {w})", got.fractions[i])
                    });
                }
                let order = got.gamma_order.as_ref().unwrap();
                for (l, o) in order.iter().enumerate() {
                    assert_eq!(
                        o,
                        &indices(&want["gamma_order"][l.to_string()]),
                        "{run} γ order L{l}"
                    );
                }
            }
            (None, None) => {}
            _ => panic!("{run}: γ curve presence differs"),
        }
        let r = got.random.as_ref().expect("random");
        let wr = &want["random"];
        for (s, losses) in wr["losses"].as_array().unwrap().iter().enumerate() {
            for (l, perm) in r.perms[s].iter().enumerate() {
                assert_eq!(
                    perm,
                    &indices(&wr["perms"][s.to_string()][l.to_string()]),
                    "{run} seed {s} layer {l} permutation"
                );
            }
            for (i, w) in floats(losses).into_iter().enumerate() {
                let g = r.losses[s][i];
                random.see(d(g, w), 1e-4, || {
                    format!("{run} random seed {s} p={} ({g} vs {w})", got.fractions[i])
                });
            }
        }
        for (key, v) in [("mean", &r.mean), ("min", &r.min), ("max", &r.max)] {
            for (i, w) in floats(&wr[key]).into_iter().enumerate() {
                stats.see(d(v[i], w), 1e-4, || {
                    format!("{run} random {key} p={}", got.fractions[i])
                });
            }
        }
    }
    for (what, w) in [
        ("baseline", &base),
        ("SVD", &svd),
        ("γ", &gamma),
        ("random", &random),
        ("random mean/min/max", &stats),
    ] {
        println!("worst |Δ loss| {what}: {:e} at {}", w.0, w.1);
    }
}

#[test]
fn importance_reproduces_reference_leverage_and_spearman() {
    let eval = tokens("eval_tokens.safetensors");
    let [mut lev, mut rho, mut p] = std::array::from_fn(|_| Worst::default());
    for run in RUNS {
        let (last, model) = final_checkpoint(run);
        let want = &last["final"]["gamma_vs_svd"];
        let keys = model.collect_keys(&eval, None).expect("keys");
        let got = gamma_vs_svd(&model, &keys, DEFAULT_PERMUTATIONS, 0).expect("importance");
        let has_gamma = !want["overall"].is_null();
        assert_eq!(got.has_key_norm, has_gamma, "{run}: key norm");
        for (l, wl) in want["layers"].as_array().unwrap().iter().enumerate() {
            let gl = &got.layers[l];
            assert_eq!(
                gl.r90_per_head,
                indices(&wl["r90_per_head"]),
                "{run} L{l} r90"
            );
            for (h, wh) in wl["leverage_per_head"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                for (dd, w) in floats(wh).into_iter().enumerate() {
                    let g = gl.leverage_per_head[h][dd];
                    lev.see((g - w).abs(), 1e-4, || {
                        format!("{run} L{l} head {h} d{dd} leverage ({g} vs {w})")
                    });
                }
            }
            if !has_gamma {
                assert!(
                    gl.abs_gamma.is_none() && gl.spearman.is_none() && wl["abs_gamma"].is_null()
                );
                continue;
            }
            for (dd, w) in floats(&wl["abs_gamma"]).into_iter().enumerate() {
                assert_eq!(gl.abs_gamma.as_ref().unwrap()[dd], w, "{run} L{l} |γ_{dd}|");
            }
            let (gs, ws) = (gl.spearman.as_ref().unwrap(), &wl["spearman"]);
            let w = ws["rho"].as_f64().unwrap();
            rho.see((gs.rho - w).abs(), 1e-6, || {
                format!("{run} L{l} ρ ({} vs {w})", gs.rho)
            });
            let w = ws["p_perm"].as_f64().unwrap();
            p.see((gs.p_perm - w).abs(), 1e-12, || {
                format!("{run} L{l} p_perm ({} vs {w})", gs.p_perm)
            });
        }
        if !has_gamma {
            assert!(got.overall.is_none());
            continue;
        }
        let (go, wo) = (got.overall.as_ref().unwrap(), &want["overall"]);
        let w = wo["rho"].as_f64().unwrap();
        rho.see((go.rho - w).abs(), 1e-6, || {
            format!("{run} overall ρ ({} vs {w})", go.rho)
        });
        let w = wo["p_perm"].as_f64().unwrap();
        p.see((go.p_perm - w).abs(), 1e-12, || {
            format!("{run} overall p_perm ({} vs {w})", go.p_perm)
        });
    }
    for (what, w) in [("|Δ leverage|", &lev), ("|Δ ρ|", &rho), ("|Δ p_perm|", &p)] {
        println!("worst {what}: {:e} at {}", w.0, w.1);
    }
}

#[test]
fn zero_fraction_is_the_unpruned_loss_and_full_rank_svd_is_identity() {
    let heldout = tokens("heldout_tokens.safetensors");
    let eval = tokens("eval_tokens.safetensors");
    let (_, model) = final_checkpoint("C1");
    let options = SweepOptions {
        fractions: vec![0.0, 0.5],
        seeds: 2,
        ..SweepOptions::default()
    };
    let got = run_sweep(&model, &eval, &heldout, &options, &mut |_| {}, &|| false).expect("sweep");
    let unpruned = model.mean_cross_entropy(&heldout, None).expect("loss");
    assert_eq!(got.baseline, unpruned);
    assert_eq!(got.svd.as_ref().unwrap()[0], unpruned);
    assert_eq!(got.gamma.as_ref().unwrap()[0], unpruned);
    assert_eq!(got.random.as_ref().unwrap().mean[0], unpruned);
    assert!(got.svd.as_ref().unwrap()[1] != unpruned);

    let plan = SurgeryPlan::new(&model, &eval, &options).expect("plan");
    for (strategy, tol) in [
        (Strategy::Svd, 1e-5),
        (Strategy::Gamma, 0.0),
        (Strategy::Random, 0.0),
    ] {
        let edit = plan.edit_removing(strategy, 0, 1);
        let loss = model
            .mean_cross_entropy(&heldout, Some(&edit))
            .expect("loss");
        assert!(
            (loss - unpruned).abs() <= tol,
            "{strategy:?} at r = d_k: {loss} vs {unpruned}"
        );
    }
}

#[test]
fn gamma_surgery_refuses_models_without_a_key_norm() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let (_, model) = final_checkpoint("A2");
    assert!(!SweepOptions::for_model(&model)
        .strategies
        .contains(&Strategy::Gamma));
    let err = run_sweep(
        &model,
        &eval,
        &heldout,
        &SweepOptions::default(),
        &mut |_| {},
        &|| false,
    )
    .expect_err("no γ");
    assert!(matches!(err, SurgeryError::NoKeyNorm { layer: 0 }), "{err}");
    assert!(err.to_string().contains("key norm"), "{err}");
}

#[test]
fn sweep_options_are_checked_and_cancel_stops_it() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let (_, model) = final_checkpoint("B1");
    let bad = SweepOptions {
        fractions: vec![0.1, 1.5],
        ..SweepOptions::default()
    };
    assert!(
        matches!(run_sweep(&model, &eval, &heldout, &bad, &mut |_| {}, &|| false), Err(SurgeryError::BadFraction(f)) if f == 1.5)
    );
    let mut calls = 0;
    let cancelled = std::cell::Cell::new(0);
    let err = run_sweep(
        &model,
        &eval,
        &heldout,
        &SweepOptions::for_model(&model),
        &mut |_| calls += 1,
        &|| {
            cancelled.set(cancelled.get() + 1);
            cancelled.get() > 3
        },
    )
    .expect_err("cancelled");
    assert!(matches!(err, SurgeryError::Cancelled));
    assert!(calls <= 4, "{calls}");
    assert_eq!(default_fractions().len(), 10);
    assert_eq!(
        (0..10)
            .map(|i| dims_removed(f64::from(i) / 10.0, 16))
            .collect::<Vec<_>>(),
        [0, 2, 3, 5, 6, 8, 10, 11, 13, 14]
    );
    assert_eq!(dims_removed(0.7, 5), 4);
    assert_eq!(dims_removed(0.1, 5), 1);
}

#[test]
fn layer_pr_bootstrap_is_seeded_and_brackets_the_full_batch() {
    let eval = tokens("eval_tokens.safetensors");
    let (last, model) = final_checkpoint("A1");
    let keys = model.collect_keys(&eval, None).expect("keys");
    let a = layer_pr_with_ci(&keys, 4, 2, 128, 200, 0).expect("ci");
    let b = layer_pr_with_ci(&keys, 4, 2, 128, 200, 0).expect("ci");
    assert_eq!(a, b);
    for (l, lp) in a.iter().enumerate() {
        let want = last["layers"][l]["k_pr_mean"].as_f64().expect("k_pr_mean");
        assert!(
            (lp.pr.value - want).abs() / want < 1e-4,
            "L{l} PR {} vs {want}",
            lp.pr.value
        );
        assert!(
            lp.pr.lo <= lp.pr.hi && lp.head_min <= lp.pr.value && lp.pr.value <= lp.head_max,
            "{lp:?}"
        );
    }
    // Spearman of an exact reversal.
    let s = spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0], 100, 0);
    assert!((s.rho + 1.0).abs() < 1e-12);
}
