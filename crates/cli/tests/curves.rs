//! Issue 18 on the command line: `rankscope consolidation`, `rankscope
//! curves`, the residual's threshold flags and default reference, the health
//! timeline's actions, and `surgery` refusing a held-out batch with the eval
//! batch's content.

mod common;
use common::{rankscope, FIXTURES};
use std::path::PathBuf;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data");

fn data(name: &str) -> String {
    format!("{DATA}/{name}")
}

fn nanogpt(name: &str) -> String {
    format!("{FIXTURES}/logs/modded-nanogpt/{name}.log")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankscope-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn consolidation_json_alerts_and_settings() {
    let log = data("consolidation_lambda.jsonl");
    let (ok, stdout, stderr) = rankscope(&["consolidation", &log, "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let curve = &v["runs"][0]["curve"];
    // C = g² by construction (tests/data/make_losscurve_logs.py): alerts at the hand-computed steps.
    let alerts: Vec<(String, f64)> = curve["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["step"].as_f64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("sharp_minimum", 30.0),
        ("sharp_drop", 50.0),
        ("grokking_threshold", 120.0),
        ("stuck", 180.0),
        ("kramers_escape", 180.0),
    ];
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    for (kind, step) in want {
        assert!(
            alerts.contains(&(kind.to_string(), step)),
            "{kind} at {step}: {alerts:?}"
        );
    }
    assert_eq!(v["config"]["near_one"], 0.5);

    // Settings: a micro-batch of 2 doubles σ², halving C (1.2 → 0.6 at step 120); B = 8 doubles C.
    let (ok, stdout, stderr) = rankscope(&[
        "consolidation",
        &log,
        "--convention",
        "micro:2",
        "--batch-size",
        "8",
        "--near-one",
        "0.2",
        "--window",
        "4",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let p = v["runs"][0]["curve"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["step"] == 120.0)
        .unwrap()
        .clone();
    assert!((p["c"].as_f64().unwrap() - 1.2).abs() < 1e-9, "{p}");
    assert_eq!(v["config"]["window"], 4);
    assert_eq!(
        v["runs"][0]["curve"]["bounds"]["near_one"],
        serde_json::json!([0.8, 1.2])
    );

    // Text, with a figure.
    let dir = temp_dir("consolidation");
    let svg = dir.join("c.svg");
    let (ok, stdout, stderr) = rankscope(&["consolidation", &log, "--svg", svg.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("alert at step 50: C fell 67 %"), "{stdout}");
    assert!(stdout.contains("α_opt = 2D/λ_max"), "{stdout}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    std::fs::remove_dir_all(&dir).ok();

    // Bad settings and an impossible warm-up are refused with a message.
    let (ok, _, stderr) = rankscope(&["consolidation", &log, "--convention", "micro:x"]);
    assert!(!ok && stderr.contains("micro:N"), "{stderr}");
    let a1 = format!("{FIXTURES}/runs/A1/metrics.jsonl");
    let (ok, stdout, stderr) = rankscope(&["consolidation", &a1, "--noise", "warmup"]);
    assert!(
        !ok && stdout.contains("no row up to step 16 (the warm-up) logs `grad_var`"),
        "{stdout} {stderr}"
    );
    let (ok, stdout, stderr) = rankscope(&["consolidation", &a1, "--noise", "warmup:25"]);
    assert!(
        ok && stdout.contains("D estimated once from the warm-up (steps ≤ 25"),
        "{stdout} {stderr}"
    );
}

#[test]
fn curves_draw_the_page_figures_to_svg_png_and_csv() {
    let dir = temp_dir("curves");
    let (svg, png, csv) = (dir.join("l.svg"), dir.join("l.png"), dir.join("l.csv"));
    let a1 = format!("{FIXTURES}/runs/A1/metrics.jsonl");
    let b1 = format!("{FIXTURES}/runs/B1/metrics.jsonl");
    let (ok, stdout, stderr) = rankscope(&[
        "curves",
        &a1,
        &b1,
        "--metric",
        "loss",
        "--x",
        "cumlr",
        "--smooth",
        "0.5",
        "--svg",
        svg.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("loss vs cumulative lr Σlr, 2 run(s)") && stdout.contains("β = 0.5"),
        "{stdout}"
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("series,cumulative lr Σlr,loss"));
    // 320 raw + 320 smoothed points per run, every one drawn (fewer than 4·500 per series).
    assert_eq!(lines.count(), 4 * 320);
    // Step 1's lr is 0: Σlr = 0 on the first raw row.
    assert!(
        text.lines().nth(1).unwrap().starts_with("A1 (raw),0,"),
        "{}",
        text.lines().nth(1).unwrap()
    );

    // Other figures of the page: geometry, health, residual (default reference), by --figure.
    let (ok, stdout, stderr) = rankscope(&[
        "curves",
        &data("deq_geometry.jsonl"),
        "--figure",
        "geometry",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let spec: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(spec["y"]["range"], serde_json::json!([-1.05, 1.05]));
    let (ok, stdout, stderr) = rankscope(&[
        "curves",
        &data("rlan_collapse.jsonl"),
        "--figure",
        "health",
        "--json",
    ]);
    assert!(ok && stdout.contains("lora_norm kill"), "{stderr}");
    let (ok, stdout, stderr) = rankscope(&[
        "curves",
        &nanogpt("muonh_seed1"),
        &nanogpt("adamh_seed1"),
        "--figure",
        "residual",
        "--metric",
        "val_loss",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("reference muonh_seed1"), "{stdout}");

    let (ok, _, stderr) = rankscope(&[
        "curves",
        &a1,
        "--x",
        "epochs",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("--x takes step, tokens, progress, cumlr, reltime or wall"),
        "{stderr}"
    );
    let (ok, _, stderr) = rankscope(&["curves", &a1]);
    assert!(
        !ok && stderr.contains("say where the figure goes"),
        "{stderr}"
    );
    let (ok, _, stderr) = rankscope(&["curves", &a1, "--metric", "nope", "--json"]);
    assert!(!ok && stderr.contains("no `nope`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn residual_thresholds_are_flags_and_the_reference_defaults_to_a_comparable_run() {
    let (ok, stdout, stderr) = rankscope(&[
        "residual",
        "--reference",
        &nanogpt("muonh_seed1"),
        &nanogpt("muonh_seed2"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["runs"][0]["flags"].as_array().unwrap().is_empty());
    // The same pair with a near-zero tolerance on the window's fit: non-collapse is flagged, with the manual's causes.
    let (ok, stdout, stderr) = rankscope(&[
        "residual",
        "--reference",
        &nanogpt("muonh_seed1"),
        &nanogpt("muonh_seed2"),
        "--window-rms",
        "0.00001",
        "--non-collapse-rms",
        "0.00001",
        "--spike-k",
        "7",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["thresholds"]["window_rms"], 0.00001);
    assert_eq!(v["thresholds"]["spike_k"], 7.0);
    let flags = v["runs"][0]["flags"].as_array().unwrap();
    let nc = flags
        .iter()
        .find(|f| f["pattern"] == "non_collapse")
        .expect("non-collapse flagged");
    assert!(
        nc["causes"].to_string().contains("tokens-per-parameter"),
        "{nc}"
    );
    assert!(
        nc["remediations"]
            .to_string()
            .contains("recalibrate τ ∝ TPP"),
        "{nc}"
    );
    assert!(
        nc["evidence"].as_str().unwrap().contains("the reference τ"),
        "{nc}"
    );
    // Without --reference: the first of the comparable runs with val_loss.
    let (ok, stdout, stderr) = rankscope(&[
        "residual",
        &nanogpt("muonh_seed1"),
        &nanogpt("muonh_seed2"),
        &nanogpt("adamh_seed1"),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(chosen: muonh_seed1"), "{stdout}");
    assert!(stdout.contains("thresholds: drift slope 0.02"), "{stdout}");
    let (ok, _, stderr) = rankscope(&["residual", &nanogpt("muonh_seed1"), "--drift-slope", "x"]);
    assert!(
        !ok && stderr.contains("invalid value 'x' for '--drift-slope <DRIFT_SLOPE>'"),
        "{stderr}"
    );
}

#[test]
fn health_timeline_of_the_rlan_log_names_actions() {
    let (ok, stdout, stderr) = rankscope(&["health", &data("rlan_collapse.jsonl")]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rlan ("), "{stdout}");
    assert!(
        stdout.contains("Kill lora_norm kill [lora_norm]: first at step 7"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "EarlyStop lora_norm_ema early stop [lora_norm_ema]: first at step 7 (value 1.7), until step 9 (3 firing(s), 2 steps in all)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("action: early stop"), "{stdout}");
    assert!(
        stdout.contains("Abort NaN batches per epoch [nan_batches]: first at step 8"),
        "{stdout}"
    );
}

#[test]
fn surgery_refuses_a_heldout_batch_with_the_eval_batch_content() {
    let dir = temp_dir("surgery-same");
    let copy = dir.join("heldout_copy.safetensors");
    std::fs::copy(format!("{FIXTURES}/eval_tokens.safetensors"), &copy).unwrap();
    let ckpt = format!("{FIXTURES}/runs/B1/ckpt_tokens_327680.safetensors");
    let (ok, _, stderr) = rankscope(&[
        "surgery",
        "--eval",
        &format!("{FIXTURES}/eval_tokens.safetensors"),
        "--heldout",
        copy.to_str().unwrap(),
        &ckpt,
    ]);
    assert!(
        !ok,
        "a copy of the eval batch under another name must be refused"
    );
    assert!(
        stderr.contains("the eval and held-out batches hold the same tokens"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
