//! Every run-log parser. The first byte picks the route so that each parser is
//! reached directly (not only through content detection):
//!   0..=6  `parse_as(format)` on the rest (JSONL, CSV, W&B CSV, results.json,
//!          metrics.json, TensorBoard, text key:value)
//!   7      TensorBoard with valid CRCs: the rest is cut into records (each
//!          prefixed by a one-byte length) and framed with `write_record`, so
//!          the protobuf layer is reached
//!   8..    `logs::parse(name, rest)` (detection + parser), the name picked by the byte
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::logs::{self, tfevents, LogFormat};

const FORMATS: [LogFormat; 7] = [
    LogFormat::Jsonl,
    LogFormat::Csv,
    LogFormat::WandbCsv,
    LogFormat::StudyResults,
    LogFormat::StudyMetrics,
    LogFormat::TfEvents,
    LogFormat::TextKv,
];

const NAMES: [&str; 8] = [
    "metrics.jsonl",
    "export.csv",
    "runs/A1/results.json",
    "metrics.json",
    "events.out.tfevents.1700000000.host",
    "train.log",
    "notes.txt",
    "blob",
];

fn check(result: Result<Vec<logs::Series>, logs::LogError>) {
    if let Ok(all) = result {
        for s in &all {
            let _ = (s.len(), s.has_steps(), s.has_tokens());
            for name in s.metric_names() {
                let _ = s.metric(name);
                let _ = s.points(name);
                let _ = s.points_vs_tokens(name);
            }
        }
    } else if let Err(e) = result {
        let _ = e.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel {
        0..=6 => check(logs::parse_as(FORMATS[sel as usize], rest)),
        7 => {
            let mut file = Vec::new();
            let mut rest = rest;
            while let Some((&n, tail)) = rest.split_first() {
                let n = (n as usize).min(tail.len());
                tfevents::write_record(&mut file, &tail[..n]);
                rest = &tail[n..];
            }
            let _ = logs::detect("events.out.tfevents.1", &file);
            check(logs::parse_as(LogFormat::TfEvents, &file));
        }
        _ => {
            let name = NAMES[(sel as usize) % NAMES.len()];
            let _ = logs::detect(name, rest);
            check(logs::parse(name, rest));
        }
    }
});
