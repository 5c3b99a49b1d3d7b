//! `rankscope collapse` on the fixtures: onset, steepest drop, sudden/gradual and recovery of the
//! K PR trajectory, against values computed by hand (Python) from `expected/*.json`'s `mean_k_pr`.

mod common;
use common::{rankscope, FIXTURES};
use serde_json::Value;

fn collapse(args: &[&str]) -> (bool, String, String) {
    rankscope(&[&["collapse"], args].concat())
}

#[test]
fn times_the_fixture_runs() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let (a1, b1, b2) = (
        format!("{FIXTURES}/runs/A1"),
        format!("{FIXTURES}/runs/B1"),
        format!("{FIXTURES}/runs/B2"),
    );
    let (ok, stdout, stderr) = collapse(&["--eval", &eval, &a1, &b1, &b2, "--json"]);
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    // (run, steepest share of the total drop, index of the minimum, last − minimum), from expected/*.json.
    let want = [
        ("A1", 1.0, 1, 2.7300401699294774),
        ("B1", 0.9224066788624912, 3, 1.839047045349453),
        ("B2", 0.974343538318076, 2, 1.4730689968693442),
    ];
    for (t, (run, share, min_index, recovery)) in
        v["runs"].as_array().expect("runs").iter().zip(want)
    {
        assert_eq!(t["run"], run);
        assert_eq!(t["onset"]["tokens"], 20480, "{run}");
        assert_eq!(t["pattern"], "sudden", "{run}");
        assert_eq!(
            (
                t["steepest"]["from"]["tokens"].as_u64(),
                t["steepest"]["to"]["tokens"].as_u64()
            ),
            (Some(0), Some(20480))
        );
        assert!(
            (t["steepest"]["share"].as_f64().unwrap() - share).abs() < 1e-4,
            "{run}: {}",
            t["steepest"]
        );
        assert_eq!(t["minimum"]["index"], min_index, "{run}");
        assert!(
            (t["recovery"].as_f64().unwrap() - recovery).abs() < 1e-4 * recovery,
            "{run}: {}",
            t["recovery"]
        );
    }
    assert!(v["rule"].as_str().unwrap().contains("≤ (1 − 0.3)"));
    // Loss plateaus of runs/A1/metrics.jsonl, as a separate Python implementation of the same rule
    // finds them: only the warm-up's first steps (lr 0 at step 1), which the 0 → 20480 drop spans.
    let a1 = &v["runs"][0]["loss_plateaus"];
    assert_eq!(a1["log"], "A1/metrics.jsonl");
    let p = &a1["plateaus"][0];
    assert_eq!(
        (
            p["plateau"]["start_tokens"].as_f64(),
            p["plateau"]["end_tokens"].as_f64()
        ),
        (Some(1024.0), Some(3072.0))
    );
    assert_eq!(
        p["steepest_drop"],
        serde_json::json!({ "when": "overlaps", "tokens": 2048.0 })
    );
    assert_eq!(a1["plateaus"].as_array().map(Vec::len), Some(1));
}

#[test]
fn refuses_a_metric_that_does_not_fall_with_collapse() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let a1 = format!("{FIXTURES}/runs/A1/ckpt_tokens_0.safetensors");
    let (ok, _, stderr) = collapse(&["--eval", &eval, &a1, "--metric", "cond"]);
    assert!(!ok && stderr.contains("`cond` is not one"), "{stderr}");
    let (ok, stdout, stderr) = collapse(&["--eval", &eval, &a1]);
    assert!(
        !ok && stdout.contains("A1: not timed: run `A1` has 1 checkpoint(s)"),
        "{stdout}\n{stderr}"
    );
}
