//! `rankscope inspect --json` prints the inventory the page shows.

mod common;
use common::{rankscope, FIXTURES};
fn inspect(args: &[&str]) -> (bool, String, String) {
    rankscope(&[&["inspect"], args].concat())
}

#[test]
fn json_inventory_of_a_run_folder() {
    let (ok, stdout, stderr) = inspect(&[
        &format!("{FIXTURES}/runs/B1"),
        &format!("{FIXTURES}/eval_tokens.safetensors"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let files = v["files"].as_array().expect("files");
    assert_eq!(files.len(), 9);
    let ckpt = files
        .iter()
        .find(|f| f["path"] == "B1/ckpt_tokens_163840.safetensors")
        .expect("checkpoint row");
    assert_eq!(ckpt["kind"], "checkpoint");
    assert_eq!(ckpt["run"], "B1");
    assert_eq!(ckpt["tokens"], 163840);
    assert_eq!(ckpt["step"], 160);
    assert_eq!(ckpt["dtype"], "BF16");
    assert_eq!(ckpt["n_tensors"], 30);
    assert_eq!(ckpt["status"], "ok");
    assert!(ckpt["architecture"]
        .as_str()
        .expect("architecture")
        .contains("4 heads / 2 kv"));
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["checkpoints"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        v["token_batches"],
        serde_json::json!(["eval_tokens.safetensors"])
    );
}

#[test]
fn table_output_and_bad_arguments() {
    let (ok, stdout, _) = inspect(&[&format!("{FIXTURES}/runs/A2")]);
    assert!(ok);
    assert!(
        stdout.contains("run A2") && stdout.contains("6 checkpoint(s)"),
        "{stdout}"
    );
    let (ok, _, stderr) = inspect(&[]);
    // clap's wording for a missing path and an unknown flag.
    assert!(
        !ok && stderr.contains("required arguments were not provided") && stderr.contains("<PATH>"),
        "{stderr}"
    );
    let (ok, _, stderr) = inspect(&["--frobnicate", FIXTURES]);
    assert!(
        !ok && stderr.contains("unexpected argument '--frobnicate'"),
        "{stderr}"
    );
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let (ok, _, stderr) = inspect(&["/no/such/folder"]);
    assert!(!ok);
    assert!(stderr.contains("/no/such/folder"), "{stderr}");
}

/// Inspection reads headers only; `--values` reads every float tensor for its NaN/±Inf
/// counts (the malformed corpus's `nan_inf.safetensors`: 3 NaN, 1 +Inf, 3 −Inf).
#[test]
fn values_are_counted_only_when_asked() {
    let nan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/malformed/nan_inf.safetensors"
    );
    let message = |args: &[&str]| {
        let (ok, stdout, stderr) = inspect(&[&[nan, "--json"], args].concat());
        assert!(ok, "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
        (
            v["files"][0]["status"].clone(),
            v["files"][0]["messages"].clone(),
        )
    };
    let (status, messages) = message(&[]);
    assert!(
        !messages.to_string().contains("non-finite"),
        "{status} {messages}"
    );
    let (status, messages) = message(&["--values"]);
    assert!(
        messages
            .to_string()
            .contains("non-finite values: 3 NaN, 1 +Inf, 3 −Inf"),
        "{messages}"
    );
    assert_ne!(status, "ok");
}
