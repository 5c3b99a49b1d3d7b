//! `--threads N`: every command that analyses checkpoints gives byte-identical output (same
//! numbers, same order) on 1 thread and on several, over a folder of 36 fixture checkpoints
//! (6 runs × 6); and a bad `--threads` is refused with a message.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn rankscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rankscope"))
        .args(args)
        .output()
        .expect("run rankscope")
}

/// stdout of `args` with `--threads n`, which must succeed.
fn with_threads(args: &[&str], n: &str) -> String {
    let mut all = args.to_vec();
    all.extend(["--threads", n]);
    let out = rankscope(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn same_on_1_and_4_threads(args: &[&str]) -> String {
    let one = with_threads(args, "1");
    assert!(one.len() > 100, "{args:?} printed almost nothing: {one}");
    assert!(
        one == with_threads(args, "4"),
        "{args:?}: 4 threads gave other output than 1"
    );
    one
}

#[test]
fn spectra_and_probe_of_a_folder_are_the_same_on_any_thread_count() {
    let runs = format!("{FIXTURES}/runs");
    let out = same_on_1_and_4_threads(&["spectra", &runs, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["A1", "A2", "B1", "B2", "C1", "C2"]);
    assert_eq!(
        v["runs"][0]["checkpoints"]
            .as_array()
            .expect("checkpoints")
            .len(),
        6
    );

    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let heldout = format!("{FIXTURES}/heldout_tokens.safetensors");
    let out = same_on_1_and_4_threads(&[
        "probe",
        "--eval",
        &eval,
        "--heldout",
        &heldout,
        &runs,
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let total: usize = v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["checkpoints"].as_array().expect("c").len())
        .sum();
    assert_eq!(total, 36);
}

#[test]
fn study_commands_are_the_same_on_any_thread_count() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let heldout = format!("{FIXTURES}/heldout_tokens.safetensors");
    let (a1, b2) = (
        format!("{FIXTURES}/runs/A1/ckpt_tokens_327680.safetensors"),
        format!("{FIXTURES}/runs/B2/ckpt_tokens_327680.safetensors"),
    );
    same_on_1_and_4_threads(&[
        "figure", "layers", "--eval", &eval, &a1, &b2, "--boot", "300", "--json",
    ]);
    same_on_1_and_4_threads(&[
        "surgery",
        "--eval",
        &eval,
        "--heldout",
        &heldout,
        &a1,
        "--seeds",
        "3",
        "--json",
    ]);
    same_on_1_and_4_threads(&[
        "scatter",
        "--eval",
        &eval,
        &a1,
        "--permutations",
        "500",
        "--json",
    ]);
}

#[test]
fn a_bad_thread_count_is_refused() {
    for bad in [
        &["spectra", "x", "--threads", "0"][..],
        &["spectra", "x", "--threads", "many"],
        &["spectra", "x", "--threads"],
    ] {
        let out = rankscope(bad);
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--threads"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
