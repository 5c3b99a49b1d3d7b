//! `rankscope residual` and `rankscope health` on the fixture logs.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn rankscope(args: &[String]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rankscope"))
        .args(args)
        .output()
        .expect("run rankscope");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn log(name: &str) -> String {
    format!("{FIXTURES}/logs/modded-nanogpt/{name}.log")
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn residual_json_per_run() {
    // `--reference` takes one log: muonh_seed1 is the reference, the other two are runs.
    let (ok, stdout, stderr) = rankscope(&args(&[
        "residual",
        "--reference",
        &log("muonh_seed1"),
        &log("muonh_seed2"),
        &log("adamh_seed1"),
        "--json",
    ]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(v["metric"], "val_loss");
    assert_eq!(v["reference"]["n_runs"], 1);
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run"], "muonh_seed2");
    assert_eq!(runs[1]["run"], "adamh_seed1");
    for r in runs {
        let s = r["s"].as_f64().expect("S");
        assert!((3.2..3.4).contains(&s), "S = {s}");
        assert!(r["points"].as_array().is_some_and(|p| p.len() >= 28));
        assert!(r["flags"].is_array());
    }
    // Seed against seed: no flag; Adam ends below the Muon shape.
    assert!(
        runs[0]["flags"].as_array().unwrap().is_empty(),
        "{}",
        runs[0]["flags"]
    );
    assert!(runs[1]["final_residual"].as_f64().unwrap() < 0.0);
    let adam_flags: Vec<&str> = runs[1]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pattern"].as_str().unwrap())
        .collect();
    assert!(adam_flags.contains(&"negative_residual"), "{adam_flags:?}");
    assert!(runs[1]["flags"][0]["checks"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
}

#[test]
fn residual_against_the_mean_of_two_references() {
    let refs = format!("{},{}", log("muonh_seed1"), log("muonh_seed2"));
    let (ok, stdout, stderr) = rankscope(&args(&[
        "residual",
        "--reference",
        &refs,
        &log("adamh_seed2"),
        "--window",
        "0.1,0.3",
        "--json",
    ]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["reference"]["n_runs"], 2);
    let s = v["runs"][0]["s"].as_f64().unwrap();
    assert!((s - 3.30421).abs() < 1e-4, "S = {s}");
    // The `--` form: every path up to `--` is a reference.
    let (ok, stdout, stderr) = rankscope(&args(&[
        "residual",
        "--reference",
        &log("muonh_seed1"),
        &log("muonh_seed2"),
        "--",
        &log("adamh_seed2"),
        "--json",
    ]));
    assert!(ok, "{stderr}");
    let w: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(w["runs"][0]["s"], v["runs"][0]["s"]);
    // Text output and a bad argument.
    let (ok, stdout, _) = rankscope(&args(&[
        "residual",
        "--reference",
        &refs,
        &log("adamh_seed1"),
    ]));
    assert!(
        ok && stdout.contains("S = 3.30") && stdout.contains("NegativeResidual"),
        "{stdout}"
    );
    let (ok, _, stderr) = rankscope(&args(&["residual", &log("adamh_seed1")]));
    assert!(!ok && stderr.contains("--reference"), "{stderr}");
}

#[test]
fn health_with_builtin_and_user_rules() {
    let metrics = format!("{FIXTURES}/runs/A1/metrics.jsonl");
    let (ok, stdout, stderr) = rankscope(&args(&["health", &metrics, "--json"]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let run = &v["runs"][0];
    // The fixture log has none of the RLAN metrics: every rule is reported as not applicable.
    let na = run["not_applicable"].as_array().unwrap();
    // Issue 18: the rules read the RLAN report's names, `adapter_norm` being an alias.
    assert!(na.iter().any(|n| n["reason"] == "not applicable (no `lora_norm` (or `adapter_norm`, `lora_weight_norm`) in this log)"), "{na:?}");
    assert!(
        na.iter()
            .any(|n| n["reason"] == "not applicable (no `epoch` in this log)"),
        "{na:?}"
    );

    let dir = std::env::temp_dir().join(format!("rankscope-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.json");
    std::fs::write(&rules, r#"{"rules": [{"name": "grad norm high", "metric": "grad_norm", "comparison": ">", "threshold": 1.0, "level": "critical"}]}"#).unwrap();
    let (ok, stdout, stderr) = rankscope(&args(&[
        "health",
        &metrics,
        "--rules",
        rules.to_str().unwrap(),
        "--json",
    ]));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let e = &v["runs"][0]["events"][0];
    assert_eq!(e["rule"], "grad norm high");
    assert_eq!(e["level"], "critical");
    // Step 1 has grad_norm 1.305 (> 1.0).
    assert_eq!(e["first_step"], 1.0);
    std::fs::remove_dir_all(&dir).ok();
}
