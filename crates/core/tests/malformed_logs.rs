//! The malformed run-log corpus (`tests/malformed/logs/`): every file gets the
//! error (or, where the data still reads, the warning) that `EXPECTED.tsv`
//! names, and nothing panics.

use rankscope_core::formats::logs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/malformed/logs");

fn expected() -> Vec<(String, String)> {
    let tsv =
        std::fs::read_to_string(Path::new(CORPUS).join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, want) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {l:?}"));
            (file.to_owned(), want.to_owned())
        })
        .collect()
}

#[test]
fn every_malformed_log_gets_its_message() {
    let cases = expected();
    assert!(cases.len() >= 8, "the corpus should hold at least 8 files");
    let mut failures = Vec::new();
    for (file, want) in &cases {
        let bytes =
            std::fs::read(Path::new(CORPUS).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = catch_unwind(AssertUnwindSafe(|| logs::parse(file, &bytes)));
        let messages: Vec<String> = match got {
            Err(_) => {
                failures.push(format!("{file}: panicked"));
                continue;
            }
            Ok(Err(e)) => vec![e.to_string()],
            Ok(Ok(all)) => all.iter().flat_map(|s| s.warnings.clone()).collect(),
        };
        if !messages.iter().any(|m| m.contains(want.as_str())) {
            failures.push(format!("{file}: expected {want:?}, got {messages:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_corpus_file_is_listed() {
    let listed: Vec<String> = expected().into_iter().map(|(f, _)| f).collect();
    for entry in std::fs::read_dir(CORPUS).expect("corpus folder") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != "EXPECTED.tsv" {
            assert!(listed.contains(&name), "{name} is not in EXPECTED.tsv");
        }
    }
}

/// Every prefix of every corpus file and of a real fixture parses or errors
/// without panicking (a log read while it is written can end anywhere).
#[test]
fn truncations_never_panic() {
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (file, _) in expected() {
        inputs.push((
            file.clone(),
            std::fs::read(Path::new(CORPUS).join(&file)).expect("corpus file"),
        ));
    }
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
    let results = std::fs::read(Path::new(fixtures).join("runs/A1/results.json")).expect("fixture");
    inputs.push(("results.json".into(), results[..2000].to_vec()));
    for (name, bytes) in inputs {
        for end in 0..=bytes.len() {
            let cut = &bytes[..end];
            for n in [name.as_str(), ""] {
                let r = catch_unwind(|| logs::parse(n, cut));
                assert!(r.is_ok(), "{name} cut at {end} panicked");
            }
        }
    }
}
