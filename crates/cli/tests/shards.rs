//! `--shard I/N` and `rankscope merge`: the shards' session files, merged, are the session of the
//! unsharded analysis, number for number (weight spectra of 12 fixture checkpoints in 3 shards,
//! activation spectra of 6 in 2); and sessions that cannot be joined are refused with the reason.

mod common;
use common::{rankscope, FIXTURES};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rankscope-shards-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn session(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("session written")).expect("JSON")
}

fn run_ok(args: &[&str]) -> String {
    let (ok, _, err) = rankscope(args);
    assert!(ok, "{args:?}: {err}");
    err
}

/// Everything but the shard record: the numbers and the files they came from.
fn content(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("shard");
    v
}

#[test]
fn merged_shards_equal_the_unsharded_session() {
    let d = scratch("equal");
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let (a1, b2) = (format!("{FIXTURES}/runs/A1"), format!("{FIXTURES}/runs/B2"));

    // Weight spectra: 12 checkpoints in 3 shards of 4 (the middle one spans both runs).
    run_ok(&["spectra", &a1, &b2, "--session", &p("all.json")]);
    let mut parts = Vec::new();
    for i in 1..=3 {
        let part = p(&format!("w{i}.json"));
        let err = run_ok(&[
            "spectra",
            &a1,
            &b2,
            &format!("--shard={i}/3"),
            "--session",
            &part,
        ]);
        assert!(
            err.contains(&format!("shard {i}/3: 4 of the 12 checkpoints")),
            "{err}"
        );
        let s = session(Path::new(&part));
        assert_eq!(s["shard"]["index"], i);
        let held: usize = s["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["checkpoints"].as_array().unwrap().len())
            .sum();
        assert_eq!(held, 4);
        parts.push(part);
    }
    // Given out of order: merge puts shards in their order.
    let (ok, out, err) = rankscope(&[
        "merge",
        &parts[2],
        &parts[0],
        &parts[1],
        "-o",
        &p("merged.json"),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("12 checkpoint(s) with weight spectra"),
        "{out}"
    );
    let (all, merged) = (
        session(&d.join("all.json")),
        session(&d.join("merged.json")),
    );
    assert_eq!(all["weights"].as_array().unwrap().len(), 2);
    assert!(all["shard"].is_null() && merged["shard"].is_null());
    assert!(
        content(merged) == content(all),
        "merged weight spectra differ from the unsharded ones"
    );

    // Activation spectra with the held-out loss: 6 checkpoints in 2 shards.
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let heldout = format!("{FIXTURES}/heldout_tokens.safetensors");
    let probe = |extra: &[&str]| {
        let mut args = vec![
            "probe",
            "--eval",
            &eval,
            "--heldout",
            &heldout,
            &a1,
            "--quiet",
        ];
        args.extend(extra);
        run_ok(&args);
    };
    probe(&["--session", &p("probe_all.json")]);
    probe(&["--shard", "1/2", "--session", &p("probe_1.json")]);
    probe(&["--shard", "2/2", "--session", &p("probe_2.json")]);
    run_ok(&[
        "merge",
        &p("probe_1.json"),
        &p("probe_2.json"),
        "-o",
        &p("probe_merged.json"),
    ]);
    let (all, merged) = (
        session(&d.join("probe_all.json")),
        session(&d.join("probe_merged.json")),
    );
    assert_eq!(
        all["activations"][0]["checkpoints"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(all["eval"]["batch"], 4);
    assert!(all["activations"][0]["checkpoints"][5]["spectra"]["heldout_loss"].is_number());
    assert!(
        content(merged) == content(all),
        "merged activation spectra differ from the unsharded ones"
    );

    // A missing shard is said; more shards than checkpoints give empty ones, not errors.
    let (ok, _, err) = rankscope(&["merge", &parts[0], &parts[2], "-o", &p("partial.json")]);
    assert!(ok && err.contains("shard(s) 2/3 not given"), "{err}");
    let err = run_ok(&[
        "spectra",
        &a1,
        "--shard",
        "1/7",
        "--session",
        &p("empty.json"),
    ]);
    assert!(err.contains("shard 1/7: 0 of the 6 checkpoints"), "{err}");
    assert_eq!(
        session(&d.join("empty.json"))["weights"],
        serde_json::json!([])
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn sessions_that_cannot_be_joined_are_refused() {
    let d = scratch("refused");
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let ckpt = format!("{FIXTURES}/runs/A1/ckpt_tokens_0.safetensors");
    let probe = |eval: &str, out: &str| {
        run_ok(&[
            "probe",
            "--eval",
            &format!("{FIXTURES}/{eval}"),
            &ckpt,
            "--quiet",
            "--session",
            &p(out),
        ]);
    };
    probe("eval_tokens.safetensors", "eval.json");
    probe("heldout_tokens.safetensors", "other_eval.json");
    let (ok, _, err) = rankscope(&[
        "merge",
        &p("eval.json"),
        &p("other_eval.json"),
        "-o",
        &p("x.json"),
    ]);
    assert!(
        !ok && err.contains("computed on different eval batches"),
        "{err}"
    );
    assert!(
        err.contains("eval_tokens.safetensors (4×128 tokens, sha256"),
        "{err}"
    );

    // The same checkpoint with other numbers (an edited σ): refused, naming run and checkpoint.
    let mut v = session(&d.join("eval.json"));
    let sv = &mut v["activations"][0]["checkpoints"][0]["spectra"]["layers"][0]["q_heads"][0]
        ["singular_values"][0];
    *sv = serde_json::json!(sv.as_f64().unwrap() * 1.001);
    std::fs::write(d.join("edited.json"), v.to_string()).unwrap();
    let (ok, _, err) = rankscope(&[
        "merge",
        &p("eval.json"),
        &p("edited.json"),
        "-o",
        &p("x.json"),
    ]);
    assert!(!ok && err.contains("both hold the activation spectra of run A1, checkpoint ckpt_tokens_0.safetensors, and the numbers differ"), "{err}");
    // The same numbers twice are kept once.
    let (ok, _, err) = rankscope(&[
        "merge",
        &p("eval.json"),
        &p("eval.json"),
        "-o",
        &p("x.json"),
    ]);
    assert!(ok && err.contains("kept once"), "{err}");

    // Another version.
    let mut v = session(&d.join("eval.json"));
    v["app_version"] = "0.0.1".into();
    std::fs::write(d.join("old.json"), v.to_string()).unwrap();
    let (ok, _, err) = rankscope(&["merge", &p("eval.json"), &p("old.json"), "-o", &p("x.json")]);
    assert!(
        !ok && err.contains("by rankscope 0.0.1") && err.contains("different versions"),
        "{err}"
    );

    // Not a session; a bad --shard.
    let (ok, _, err) = rankscope(&[
        "merge",
        &format!("{FIXTURES}/runs/A1/metrics.jsonl"),
        "-o",
        &p("x.json"),
    ]);
    assert!(
        !ok && err.contains("metrics.jsonl: not a session to merge"),
        "{err}"
    );
    for bad in ["0/3", "4/3", "2", "a/b"] {
        let (ok, _, err) = rankscope(&["spectra", &ckpt, "--shard", bad]);
        assert!(!ok && err.contains("--shard"), "{bad}: {err}");
    }
    std::fs::remove_dir_all(&d).ok();
}
