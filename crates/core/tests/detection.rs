//! Detection that does not guess (issue 19, item 3): every file of the
//! fixture folder — checkpoints, token batches, logs, configs, and the files
//! that are none of these (`expected/*.json`, `manifest.json`,
//! `replicates/stats.json`, `pt/manifest.json`, READMEs) — is inspected with
//! its name and without it, and gets the kind it is, the same both ways.
//! A file that is no format rankscope reads says so with the reason.

use rankscope_core::inventory::{inspect_file, FileKind, Status};
use rankscope_core::source::{block_on, FileSource};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What each fixture file is. PyTorch files (`.pt`, `pytorch_model.bin`)
/// are read by a reader being added beside this work: until it lands they
/// are "not a format rankscope reads", after it they are checkpoints; either
/// way never a log, config or token batch.
fn expected(rel: &str) -> &'static [FileKind] {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".pt") || name == "pytorch_model.bin" {
        return &[FileKind::Checkpoint, FileKind::Unknown];
    }
    if name.ends_with(".safetensors") {
        return if name.contains("tokens") && !name.starts_with("ckpt_") {
            &[FileKind::TokenBatch]
        } else {
            &[FileKind::Checkpoint]
        };
    }
    if name == "config.json" {
        return &[FileKind::ModelConfig];
    }
    if name.ends_with("metrics.jsonl") || name.ends_with("results.json") || name.ends_with(".log") {
        return &[FileKind::RunLog];
    }
    // expected/*.json, manifest.json, stats.json, README.md, stories260K.bin.
    &[FileKind::Unknown]
}

#[test]
fn every_fixture_file_gets_its_kind_with_and_without_its_name() {
    let root = Path::new(FIXTURES);
    let mut all = Vec::new();
    files_under(root, &mut all);
    assert!(all.len() >= 100, "only {} fixture files", all.len());
    let must_cover = [
        "expected/stories260K.json",
        "expected/A1.json",
        "manifest.json",
        "replicates/stats.json",
        "pt/manifest.json",
    ];
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        seen.push(rel.clone());
        let src = FileSource::open(path).expect("open");
        let dir = rel.rsplit_once('/').map_or("", |x| x.0);
        let want = expected(&rel);
        let mut kinds = Vec::new();
        for shown in [rel.clone(), format!("{dir}/file"), "file".to_string()] {
            let entry = block_on(inspect_file(&shown, &src, &mut |_| {}));
            if !want.contains(&entry.kind) {
                failures.push(format!(
                    "{rel} as {shown:?}: {:?}, want one of {want:?} ({:?})",
                    entry.kind, entry.messages
                ));
            }
            if entry.kind == FileKind::Unknown {
                let said = entry
                    .messages
                    .iter()
                    .any(|m| m.contains("not a format rankscope reads"));
                if !(entry.status == Status::Error && said) {
                    failures.push(format!(
                        "{rel} as {shown:?}: unknown without saying why: {:?}",
                        entry.messages
                    ));
                }
            }
            kinds.push(entry.kind);
        }
        if kinds.windows(2).any(|w| w[0] != w[1]) {
            failures.push(format!("{rel}: kind depends on the name: {kinds:?}"));
        }
    }
    for f in must_cover {
        assert!(seen.iter().any(|s| s == f), "{f} is not in the fixtures");
    }
    assert!(
        failures.is_empty(),
        "{} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The issue's case: `expected/stories260K.json` holds an `input_ids` array
/// among many other keys; it is a results file, not a token batch.
#[test]
fn a_results_file_with_input_ids_is_not_a_token_batch() {
    let path = Path::new(FIXTURES).join("expected/stories260K.json");
    let src = FileSource::open(&path).unwrap();
    let entry = block_on(inspect_file("expected/stories260K.json", &src, &mut |_| {}));
    assert_eq!(entry.kind, FileKind::Unknown);
    assert!(
        entry.messages[0].contains("\"input_ids\" among other keys"),
        "{:?}",
        entry.messages
    );
    // A tokenizer's output is one.
    let tok = br#"{"input_ids": [[1, 2, 3], [4, 5, 6]], "attention_mask": [[1, 1, 1], [1, 1, 0]]}"#
        .to_vec();
    let entry = block_on(inspect_file("batch.json", &tok, &mut |_| {}));
    assert_eq!(
        (entry.kind, entry.detail.as_deref()),
        (FileKind::TokenBatch, Some("[2, 3] ids ≤ 6"))
    );
    // A bare array of numbers is not positive evidence of anything.
    let flat = b"[1, 2, 3]".to_vec();
    let entry = block_on(inspect_file("numbers.json", &flat, &mut |_| {}));
    assert_eq!(entry.kind, FileKind::Unknown);
    assert!(
        entry.messages[0].contains("a JSON array of integers, but a token batch is"),
        "{:?}",
        entry.messages
    );
}
