//! `rankscope surgery`, `scatter` and `figure layers` against the fixtures.

use serde_json::Value;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn rankscope(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rankscope"))
        .args(args)
        .output()
        .expect("run rankscope");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn expected(run: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{FIXTURES}/expected/{run}.json")).expect("expected");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .last()
        .expect("final")["final"]
        .clone()
}

#[test]
fn surgery_json_matches_the_reference_at_half_pruned() {
    let (eval, heldout) = (
        format!("{FIXTURES}/eval_tokens.safetensors"),
        format!("{FIXTURES}/heldout_tokens.safetensors"),
    );
    let ckpt = format!("{FIXTURES}/runs/B1/ckpt_tokens_327680.safetensors");
    let svg = std::env::temp_dir().join("rankscope_cli_surgery_b1.svg");
    let out = rankscope(&[
        "surgery",
        "--eval",
        &eval,
        "--heldout",
        &heldout,
        &ckpt,
        "--fractions",
        "0,0.5",
        "--seeds",
        "2",
        "--json",
        "--svg",
        svg.to_str().expect("path"),
    ]);
    let got: Value = serde_json::from_str(&out).expect("json output");
    let want = expected("B1");
    let s = &got["surgery"];
    assert_eq!(got["run"], "B1");
    assert_eq!(s["removed"], serde_json::json!([0, 8]));
    for key in ["svd", "gamma"] {
        let (g, w) = (
            s[key][1].as_f64().expect("loss"),
            want["surgery"][key][5].as_f64().expect("loss"),
        );
        assert!((g - w).abs() < 1e-4, "{key}: {g} vs {w}");
    }
    let (g, w) = (
        s["random"]["losses"][1][1].as_f64().unwrap(),
        want["surgery"]["random"]["losses"][1][5].as_f64().unwrap(),
    );
    assert!((g - w).abs() < 1e-4, "random seed 1: {g} vs {w}");
    // The verdict's areas over p ∈ [0, 0.5]: one trapezoid, (loss(0.5) − loss(0))·0.5/2, from the reference losses.
    let base = want["surgery"]["baseline_val_loss"].as_f64().unwrap();
    for key in ["svd", "gamma"] {
        let area = (want["surgery"][key][5].as_f64().unwrap() - base) * 0.25;
        let got_area = got["verdict"]["areas"][key].as_f64().expect("area");
        assert!(
            (got_area - area).abs() < 1e-4,
            "{key} area: {got_area} vs {area}"
        );
    }
    assert_eq!(
        got["verdict"]["areas"]["random"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(
        got["verdict"]["sentence"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{}",
        got["verdict"]
    );
    assert!(std::fs::read_to_string(&svg)
        .expect("svg written")
        .contains("<svg"));
}

#[test]
fn scatter_and_layer_figure() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let ckpt = format!("{FIXTURES}/runs/C1/ckpt_tokens_327680.safetensors");
    let out = rankscope(&[
        "scatter",
        "--eval",
        &eval,
        &ckpt,
        "--permutations",
        "1000",
        "--json",
    ]);
    let got: Value = serde_json::from_str(&out).expect("json");
    let w = expected("C1")["gamma_vs_svd"]["overall"]["rho"]
        .as_f64()
        .unwrap();
    let g = got["gamma_vs_svd"]["overall"]["rho"].as_f64().unwrap();
    assert!((g - w).abs() < 1e-6, "ρ {g} vs {w}");

    let text = rankscope(&[
        "scatter",
        "--eval",
        &eval,
        &format!("{FIXTURES}/runs/A2/ckpt_tokens_327680.safetensors"),
    ]);
    assert!(text.contains("no key norm"), "{text}");

    let c2 = format!("{FIXTURES}/runs/C2/ckpt_tokens_327680.safetensors");
    let out = rankscope(&[
        "figure", "layers", "--eval", &eval, &ckpt, &c2, "--boot", "50", "--json",
    ]);
    let spec: Value = serde_json::from_str(&out).expect("spec");
    assert_eq!(spec["kind"], "LayerBars");
    assert_eq!(spec["series"].as_array().unwrap().len(), 2);
}
