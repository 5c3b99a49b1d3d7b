//! The CLI against hostile folders and names (issue 19): FIFOs and symbolic
//! links to folders are listed as skipped, never opened or followed; names
//! holding terminal escapes are printed escaped; two roots with the same
//! relative paths keep both files; a figure whose values overflow f64 ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `rankscope args…`, killed (and the test failed) after `secs`.
fn rankscope(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rankscope"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rankscope");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("rankscope {args:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh folder under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

const LOG: &str = "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.5}\n";

#[cfg(unix)]
#[test]
fn fifos_and_folder_links_are_skipped_not_followed() {
    let d = scratch("walk");
    std::fs::create_dir_all(d.join("run/sub")).unwrap();
    std::fs::write(d.join("run/metrics.jsonl"), LOG).unwrap();
    let fifo = d.join("run/live.jsonl");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::os::unix::fs::symlink(".", d.join("run/self")).unwrap();
    std::os::unix::fs::symlink("..", d.join("run/sub/up")).unwrap();
    std::os::unix::fs::symlink("metrics.jsonl", d.join("run/alias.jsonl")).unwrap();
    let out = rankscope(&["inspect", d.join("run").to_str().unwrap(), "--json"], 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let files = v["files"].as_array().unwrap();
    let find = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("{p} not listed: {v}"))
    };
    assert_eq!(files.len(), 5, "each file once: {v}");
    assert!(find("run/live.jsonl")["messages"][0]
        .as_str()
        .unwrap()
        .contains("skipped: a FIFO"));
    assert!(find("run/self")["messages"][0]
        .as_str()
        .unwrap()
        .contains("symbolic link to a folder (not followed)"));
    assert!(find("run/sub/up")["messages"][0]
        .as_str()
        .unwrap()
        .contains("not followed"));
    assert_eq!(
        find("run/alias.jsonl")["kind"],
        "run_log",
        "a link to a file is read"
    );
    assert_eq!(find("run/metrics.jsonl")["kind"], "run_log");
}

#[test]
fn names_with_terminal_escapes_are_printed_escaped() {
    let d = scratch("names");
    let evil = "m\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}.jsonl";
    let evil_path = d.join("run").join(evil);
    std::fs::create_dir_all(evil_path.parent().unwrap()).unwrap();
    std::fs::write(&evil_path, LOG).unwrap();
    // A safetensors tensor name with escapes, in an error message.
    let header = "{\"w\\u001b[2J\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend(header.as_bytes());
    st.extend([0u8; 4]);
    std::fs::write(d.join("run/bad.safetensors"), st).unwrap();
    let run = d.join("run");
    for extra in [None, Some("--json")] {
        let mut args = vec!["inspect", run.to_str().unwrap()];
        args.extend(extra);
        let out = rankscope(&args, 60);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "raw control characters printed: {text:?}"
        );
        if extra.is_some() {
            let v: serde_json::Value = serde_json::from_str(&text).expect("still valid JSON");
            assert!(v["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"].as_str().unwrap().ends_with(evil)));
        } else {
            assert!(
                text.contains("m\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{202e}.jsonl"),
                "{text}"
            );
            assert!(
                text.contains("w\\u{1b}[2J"),
                "tensor name escaped in its message: {text}"
            );
        }
    }
    // Errors too.
    let out = rankscope(
        &["inspect", d.join("no\u{1b}[2Jsuch").to_str().unwrap()],
        60,
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains("no\\u{1b}[2Jsuch") && !err.contains('\u{1b}'),
        "{err}"
    );
}

#[test]
fn same_relative_paths_from_two_roots_are_both_kept() {
    let (a, b) = (scratch("two_a"), scratch("two_b"));
    for (root, log) in [(&a, LOG), (&b, "{\"step\": 1, \"loss\": 9.0}\n")] {
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::write(root.join("run/metrics.jsonl"), log).unwrap();
    }
    let out = rankscope(
        &[
            "inspect",
            a.join("run").to_str().unwrap(),
            b.join("run").to_str().unwrap(),
            "--json",
        ],
        60,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let paths: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["run/metrics.jsonl", "run/metrics.jsonl (2)"]);
    let second = &v["files"][1];
    assert_eq!(second["status"], "warning");
    assert!(
        second["messages"][0]
            .as_str()
            .unwrap()
            .contains("another file has the same path run/metrics.jsonl"),
        "{second}"
    );
}

/// The issue's `results.json` with `"mean_pr": [1e308, -1e308]`: the figure
/// command spun for ever; now it writes the SVG.
#[test]
fn trajectory_of_overflowing_values_ends() {
    let d = scratch("overflow");
    std::fs::create_dir_all(d.join("r")).unwrap();
    std::fs::write(d.join("r/results.json"), r#"{"tag": "r", "tokens": [1, 2], "mean_pr": [1e308, -1e308], "loss": [1, 2], "val_loss": [1, 2]}"#).unwrap();
    let svg = d.join("r.svg");
    let out = rankscope(
        &[
            "figure",
            "trajectory",
            d.join("r/results.json").to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        120,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

/// Ids beyond the model's vocabulary are the batch file's fault: the message
/// names the batch, not only the checkpoint.
#[test]
fn probe_blames_the_batch_for_ids_beyond_the_vocabulary() {
    let d = scratch("misfit");
    let batch = d.join("eval_wrong.json");
    std::fs::write(&batch, r#"{"input_ids": [[1, 2, 300, 4]]}"#).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
    let ckpt = format!("{fixtures}/runs/B1/ckpt_tokens_0.safetensors");
    let out = rankscope(&["probe", "--eval", batch.to_str().unwrap(), &ckpt], 120);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!("token batch {}: token id 300 at row 0, column 2 is not below the vocabulary size 256 of this model", batch.display());
    assert!(err.contains(&want), "{err}");
}
