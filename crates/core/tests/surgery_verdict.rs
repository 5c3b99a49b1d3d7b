//! The surgery verdict on the fixtures' expected surgery losses (`expected/<RUN>.json`,
//! `final.surgery`): areas and the γ − random interval against numpy/SciPy
//! (`numpy.trapezoid(loss − baseline, p)`, `scipy.stats.t.interval(0.95, n − 1, mean, sem)`,
//! computed once and written here), and the plan's rule on each run.

use rankscope_core::analysis::surgery::{RandomLosses, SurgeryResult};
use rankscope_core::analysis::surgery_verdict::{surgery_verdict, SurgeryOutcome};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn sweep(run: &str) -> SurgeryResult {
    let path = format!("{FIXTURES}/expected/{run}.json");
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("expected")).expect("JSON");
    let s = &e["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .last()
        .expect("final")["final"]["surgery"];
    let r = &s["random"];
    SurgeryResult {
        fractions: floats(&s["p"]),
        removed: s["m"]
            .as_array()
            .expect("m")
            .iter()
            .map(|m| m.as_u64().expect("m") as usize)
            .collect(),
        d_k: 16,
        n_layers: 4,
        baseline: s["baseline_val_loss"].as_f64().expect("baseline"),
        svd: Some(floats(&s["svd"])),
        gamma: s["gamma"].as_array().map(|_| floats(&s["gamma"])),
        gamma_order: None,
        random: Some(RandomLosses {
            losses: r["losses"]
                .as_array()
                .expect("losses")
                .iter()
                .map(floats)
                .collect(),
            mean: floats(&r["mean"]),
            min: floats(&r["min"]),
            max: floats(&r["max"]),
            perms: Vec::new(),
        }),
    }
}

#[track_caller]
fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "{what}: got {got}, numpy/SciPy {want}"
    );
}

#[test]
fn areas_interval_and_rule_on_the_fixtures() {
    // (run, A_SVD, A_γ, mean A_random, γ − random 95% interval), from numpy/SciPy.
    let a1 = surgery_verdict(&sweep("A1"), 0.25);
    close("A1 SVD area", a1.areas.svd.unwrap(), 0.033763896212854395);
    close("A1 γ area", a1.areas.gamma.unwrap(), 0.17590103294339693);
    close(
        "A1 random area",
        a1.areas.random_mean.unwrap(),
        0.6398019679209547,
    );
    close("A1 random seed 1", a1.areas.random[1], 0.7099562966852785);
    let [lo, hi] = a1.gamma_minus_random_interval.expect("interval");
    close("A1 γ − random low", lo, -0.5409774605994855);
    close("A1 γ − random high", hi, -0.38682440935563034);
    // γ recovers 76.6% of SVD's advantage over random (≥ 75%), and beats random beyond the seeds' spread.
    assert_eq!(a1.outcome, SurgeryOutcome::ReliableProxy, "{}", a1.sentence);
    assert!(
        a1.sentence
            .starts_with("SVD ≈ γ ≫ random → γ is a reliable proxy (γ recovers 77%"),
        "{}",
        a1.sentence
    );

    let b1 = surgery_verdict(&sweep("B1"), 0.25);
    close("B1 SVD area", b1.areas.svd.unwrap(), 0.0038858807078963505);
    close("B1 γ area", b1.areas.gamma.unwrap(), 0.09321416090779333);
    let [lo, hi] = b1.gamma_minus_random_interval.expect("interval");
    close("B1 γ − random low", lo, -0.10647409516665736);
    close("B1 γ − random high", hi, -0.08200088043565205);
    assert_eq!(b1.outcome, SurgeryOutcome::Inconclusive);
    assert!(
        b1.sentence
            .contains("γ recovers 51% of SVD's advantage over random, between the margins"),
        "{}",
        b1.sentence
    );

    // C1 was trained on other text: pruning lowers its held-out loss, so there is no advantage to share.
    let c1 = surgery_verdict(&sweep("C1"), 0.25);
    close(
        "C1 random area",
        c1.areas.random_mean.unwrap(),
        -0.14974292356881763,
    );
    assert_eq!(c1.outcome, SurgeryOutcome::Inconclusive);
    assert!(
        c1.sentence
            .contains("SVD pruning does not raise the loss less than random"),
        "{}",
        c1.sentence
    );

    let a2 = surgery_verdict(&sweep("A2"), 0.25);
    assert_eq!(
        (a2.outcome, a2.sentence.as_str()),
        (
            SurgeryOutcome::Inconclusive,
            "no γ strategy (the model has no key norm)"
        )
    );
}
