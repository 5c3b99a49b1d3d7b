//! `rankscope probe` prints the activation spectra and held-out loss of the
//! fixtures' checkpoints, equal to `expected/<RUN>.json` within the README's tolerances.

mod common;
use common::{rankscope, FIXTURES};
fn probe(args: &[&str]) -> (bool, String, String) {
    rankscope(&[&["probe"], args].concat())
}

fn expected(run: &str) -> serde_json::Value {
    let path = format!("{FIXTURES}/expected/{run}.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("expected JSON")).expect("parse")
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn json_matches_the_fixture_for_a_bf16_run() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let heldout = format!("{FIXTURES}/heldout_tokens.safetensors");
    let ckpt = format!("{FIXTURES}/runs/B1/ckpt_tokens_327680.safetensors");
    let (ok, stdout, stderr) = probe(&[
        "--eval",
        &eval,
        "--heldout",
        &heldout,
        &ckpt,
        "--json",
        "--variant",
        "post_norm",
        "--variant",
        "centered",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(v["variants"], serde_json::json!(["post_norm", "centered"]));
    assert_eq!(
        (v["eval"]["batch"].as_u64(), v["eval"]["seq_len"].as_u64()),
        (Some(4), Some(128))
    );
    let c = &v["runs"][0]["checkpoints"][0];
    assert_eq!(c["tokens"], 327680);
    let want = &expected("B1")["checkpoints"][5];
    let loss = c["spectra"]["heldout_loss"]
        .as_f64()
        .expect("held-out loss");
    assert!(
        (loss - want["val_loss"].as_f64().expect("val_loss")).abs() <= 1e-4,
        "{loss}"
    );

    for (l, layer) in want["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        let got = &c["spectra"]["layers"][l];
        for (i, (variant, want_heads)) in [
            ("post_norm", &layer["k_heads"]),
            ("centered", &layer["k_variants"]["centered"]["heads"]),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(got["k"][i]["variant"], *variant);
            for (h, w) in want_heads.as_array().expect("heads").iter().enumerate() {
                let g = &got["k"][i]["heads"][h];
                let pr = g["metrics"]["spectrum"]["pr"].as_f64().expect("pr");
                assert!(
                    rel(pr, w["pr"].as_f64().expect("pr")) <= 1e-4,
                    "L{l} {variant} K{h} PR {pr}"
                );
                assert_eq!(
                    g["metrics"]["spectrum"]["r90"], w["r90"],
                    "L{l} {variant} K{h} r90"
                );
                let s1 = g["singular_values"][0].as_f64().expect("σ_1");
                assert!(
                    rel(s1, w["sv"][0].as_f64().expect("σ_1")) <= 1e-4,
                    "L{l} {variant} K{h} σ_1 {s1}"
                );
            }
        }
        let q0 = got["q_heads"][3]["metrics"]["spectrum"]["pr"]
            .as_f64()
            .expect("Q PR");
        assert!(
            rel(q0, layer["q_heads"][3]["pr"].as_f64().expect("pr")) <= 1e-4,
            "L{l} Q3 PR {q0}"
        );
    }
}

#[test]
fn table_output_of_a_folder_and_bad_arguments() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let (ok, stdout, stderr) = probe(&["--eval", &eval, &format!("{FIXTURES}/runs/A2"), "--quiet"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("run A2") && stdout.contains("ckpt_tokens_327680"),
        "{stdout}"
    );
    // A2's final layer-0 K0 PR, as printed with 4 decimals.
    let want = expected("A2")["checkpoints"][5]["layers"][0]["k_heads"][0]["pr"]
        .as_f64()
        .expect("pr");
    assert!(
        stdout.contains(&format!("PR {want:>7.4}")),
        "PR {want:.4} not in the table"
    );
    assert!(stdout.contains("held-out loss –"));

    let (ok, _, stderr) = probe(&[&format!("{FIXTURES}/runs/A2")]);
    assert!(!ok && stderr.contains("--eval"), "{stderr}");
    let (ok, _, stderr) = probe(&["--eval", &eval, "--variant", "sideways", FIXTURES]);
    assert!(!ok && stderr.contains("unknown variant"), "{stderr}");
    let (ok, _, stderr) = probe(&[
        "--eval",
        &format!("{FIXTURES}/runs/A2/metrics.jsonl"),
        FIXTURES,
    ]);
    assert!(!ok && stderr.contains("not a token batch"), "{stderr}");
}
