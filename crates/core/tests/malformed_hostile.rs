//! The hostile-input corpus (`tests/malformed/hostile/`, written by
//! `make_hostile.py`): whole files recognised only on positive evidence,
//! sessions recognised by their format tag (and truncated, future, damaged
//! ones said to be so), figure links refused when they ask for absurd
//! figures and drawn when they are fine. Every line of `EXPECTED.tsv` gives
//! its outcome, nothing panics, and every file is listed.

use rankscope_core::figures::{svg_to_png, to_svg};
use rankscope_core::inventory::inspect_file;
use rankscope_core::session::read_session;
use rankscope_core::share::decode_link;
use rankscope_core::source::block_on;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/malformed/hostile");

fn cases() -> Vec<(String, String, String)> {
    let tsv =
        std::fs::read_to_string(Path::new(CORPUS).join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad line {l:?}");
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
            )
        })
        .collect()
}

/// The outcome of reading `bytes` as `kind`, as one line of text.
fn outcome(kind: &str, file: &str, bytes: &[u8]) -> String {
    match kind {
        "inventory" => {
            let e = block_on(inspect_file(file, &bytes.to_vec(), &mut |_| {}));
            format!("{}: {}", e.kind.label(), e.messages.join("; "))
        }
        "session" => match block_on(read_session(&bytes.to_vec())) {
            None => "not a session".into(),
            Some(Ok(s)) => format!("session: {} runs", s.weights.len()),
            Some(Err(e)) => e.to_string(),
        },
        "link" => match decode_link(&String::from_utf8_lossy(bytes)) {
            Err(e) => e.to_string(),
            Ok(f) => match to_svg(&f.spec, 800, 500).map(|svg| svg_to_png(&svg, 1.0)) {
                Ok(Ok(_)) => format!("drawn: {}", f.spec.drawn_caption()),
                Ok(Err(e)) | Err(e) => format!("not drawn: {e}"),
            },
        },
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn every_hostile_file_gets_its_outcome() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (file, kind, want) in &cases {
        let bytes =
            std::fs::read(Path::new(CORPUS).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        match catch_unwind(AssertUnwindSafe(|| outcome(kind, file, &bytes))) {
            Err(_) => failures.push(format!("{file}: panicked")),
            Ok(got) if !got.contains(want.as_str()) => {
                failures.push(format!("{file}: expected {want:?}, got {got:?}"))
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_hostile_file_is_listed() {
    let listed: Vec<String> = cases().into_iter().map(|c| c.0).collect();
    for entry in std::fs::read_dir(CORPUS).expect("corpus") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != "EXPECTED.tsv" && name != "make_hostile.py" {
            assert!(listed.contains(&name), "{name} is not in EXPECTED.tsv");
        }
    }
}

/// Every file as every kind, whole and cut at every byte up to 2 KB: errors
/// are fine, panics are not.
#[test]
fn no_hostile_file_panics_any_reader() {
    for (file, _, _) in cases() {
        let bytes = std::fs::read(Path::new(CORPUS).join(&file)).expect("file");
        let cuts: Vec<usize> = (0..bytes.len().min(2048))
            .step_by(7)
            .chain([bytes.len()])
            .collect();
        for end in cuts {
            for kind in ["inventory", "session"] {
                let cut = &bytes[..end];
                let r = catch_unwind(AssertUnwindSafe(|| outcome(kind, &file, cut)));
                assert!(r.is_ok(), "{file} cut at {end} as {kind} panicked");
            }
        }
    }
}
