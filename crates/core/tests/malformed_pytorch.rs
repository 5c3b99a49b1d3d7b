//! The hostile and broken PyTorch checkpoints of `tests/malformed/pytorch/`
//! (written by `make_corpus.py` with CPython's pickle and zipfile): every
//! file gets the error `EXPECTED.tsv` names — pickles that would run
//! `os.system`, `builtins.eval` or `subprocess.Popen` in Python are refused by
//! name, nothing is ever run — both from the reader and through the
//! inventory, and no file or prefix of one makes anything panic.

use rankscope_core::formats::pytorch::read_checkpoint;
use rankscope_core::inventory::{inspect_file, Status};
use rankscope_core::source::block_on;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/malformed/pytorch");

/// (file, expected substring of the error)
fn expected() -> Vec<(String, String)> {
    let tsv =
        std::fs::read_to_string(Path::new(CORPUS).join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad EXPECTED.tsv line: {l:?}");
            assert_eq!(cols[1], "pytorch", "{l:?}");
            (cols[0].to_owned(), cols[2].to_owned())
        })
        .collect()
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(CORPUS).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_hostile_checkpoint_gets_its_message() {
    let cases = expected();
    assert!(
        cases.len() >= 15,
        "the corpus should hold at least 15 files"
    );
    let mut failures = Vec::new();
    for (file, want) in &cases {
        let bytes = read(file);
        match catch_unwind(AssertUnwindSafe(|| block_on(read_checkpoint(&bytes)))) {
            Err(_) => failures.push(format!("{file}: panicked")),
            Ok(Ok(_)) => failures.push(format!("{file}: read without an error")),
            Ok(Err(e)) if e.to_string().contains(want.as_str()) => {}
            Ok(Err(e)) => failures.push(format!(
                "{file}: expected {want:?}, got {:?}",
                e.to_string()
            )),
        }
        // The inventory says the same, names the format, and keeps nothing to analyse.
        let entry = block_on(inspect_file(file, &bytes, &mut |_| {}));
        let messages = entry.all_messages().join("; ");
        if entry.status != Status::Error
            || !messages.contains(want.as_str())
            || !messages.starts_with("PyTorch checkpoint: ")
        {
            failures.push(format!(
                "{file}: inventory said {:?} {messages:?}",
                entry.status
            ));
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
        if name != "EXPECTED.tsv" && name != "make_corpus.py" {
            assert!(listed.contains(&name), "{name} is not in EXPECTED.tsv");
        }
    }
}

/// Every prefix of every corpus file, and every single-byte change of the
/// small ones, read without a panic.
#[test]
fn cut_and_flipped_files_never_panic() {
    let mut panicked = Vec::new();
    for (file, _) in expected() {
        let bytes = read(&file);
        let mut inputs: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        if bytes.len() <= 1024 {
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0xFF;
                inputs.push(b);
            }
        }
        for input in inputs {
            if catch_unwind(AssertUnwindSafe(|| block_on(read_checkpoint(&input)))).is_err() {
                panicked.push(format!("{file} ({} bytes)", input.len()));
            }
        }
    }
    assert!(panicked.is_empty(), "panicked on:\n{}", panicked.join("\n"));
}
