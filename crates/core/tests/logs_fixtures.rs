//! Every fixture run log, parsed, against counts and values read from the
//! files themselves (`head`/`tail`/`grep`), plus tiny synthetic files of each
//! format with exact expected series, and detection with and without the file
//! name (speedscope's golden-test idea).

use rankscope_core::formats::logs::{self, tfevents, LogFormat, Series};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];

fn read(rel: &str) -> (String, Vec<u8>) {
    let path = Path::new(FIXTURES).join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        path.file_name().unwrap().to_string_lossy().into_owned(),
        bytes,
    )
}

fn parse_one(rel: &str) -> Series {
    let (name, bytes) = read(rel);
    let mut all = logs::parse(&name, &bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(all.len(), 1, "{rel}");
    all.remove(0)
}

fn present(s: &Series, name: &str) -> Vec<f64> {
    s.metric(name)
        .unwrap_or_else(|| panic!("no metric {name}"))
        .iter()
        .flatten()
        .copied()
        .collect()
}

/// Asserts that `detect` gives `expected` with the real name and with none.
fn assert_detects(name: &str, bytes: &[u8], expected: LogFormat) {
    let head = &bytes[..bytes.len().min(logs::HEAD_LEN)];
    assert_eq!(
        logs::detect(name, head),
        Some(expected),
        "{name} with its name"
    );
    assert_eq!(
        logs::detect("", head),
        Some(expected),
        "{name} without a name"
    );
}

#[test]
fn metrics_jsonl_of_every_run() {
    // (run, n_params, first loss, last loss, val_loss at step 25, at step 320)
    let expected = [
        (
            "A1",
            197312,
            5.482927680015564,
            1.8140468001365662,
            3.187494750159707,
            1.728235446689381,
        ),
        (
            "A2",
            197184,
            5.482451915740967,
            1.885190188884735,
            3.191662483731648,
            1.889149908698516,
        ),
        (
            "B1",
            197312,
            5.482927680015564,
            2.5356672406196594,
            3.2189097651440313,
            2.417719808973484,
        ),
        (
            "B2",
            197184,
            5.482451915740967,
            2.4971737265586853,
            3.2370636719015535,
            2.4340840008716023,
        ),
        (
            "C1",
            197312,
            5.519146084785461,
            0.24252456054091454,
            3.444145379644413,
            5.859166213974032,
        ),
        (
            "C2",
            197312,
            5.316624879837036,
            1.5530758500099182,
            3.3199222891764903,
            2.540033344776101,
        ),
    ];
    for (run, n_params, first, last, val25, val320) in expected {
        let rel = format!("runs/{run}/metrics.jsonl");
        let s = parse_one(&rel);
        assert_eq!(s.format, LogFormat::Jsonl);
        assert_eq!(s.len(), 320, "{rel}");
        assert_eq!(s.constants["n_params"], n_params, "{rel}");
        assert_eq!(s.constants["batch_size"], 8, "{rel}");
        assert_eq!(s.constants["run"], run, "{rel}");
        assert_eq!(s.constants["total_steps"], 320, "{rel}");
        assert!(s.warnings.is_empty(), "{rel}: {:?}", s.warnings);
        for m in ["grad_norm", "lr", "loss"] {
            assert!(
                s.metric(m).unwrap().iter().all(Option::is_some),
                "{rel}: {m} missing on a row"
            );
        }
        let val = s.metric("val_loss").unwrap();
        for (i, step) in s.step.iter().enumerate() {
            let step = step.expect("every row has a step");
            assert_eq!(step, (i + 1) as f64);
            assert_eq!(s.tokens[i], Some(step * 1024.0));
            let has_val = (step as u64).is_multiple_of(25) || step == 320.0;
            assert_eq!(val[i].is_some(), has_val, "{rel}: val_loss at step {step}");
        }
        let loss = present(&s, "loss");
        assert_eq!((loss[0], loss[319]), (first, last), "{rel}");
        assert_eq!(s.points("val_loss")[0], (25.0, val25), "{rel}");
        assert_eq!(
            *s.points("val_loss").last().unwrap(),
            (320.0, val320),
            "{rel}"
        );
        assert_eq!(present(&s, "val_loss").len(), 13, "{rel}");
        assert_eq!(
            s.metric("val_loss_in_domain").is_some(),
            run.starts_with('C'),
            "{rel}"
        );
    }
}

#[test]
fn results_json_of_every_run() {
    // (run, mean_pr[0], mean_pr[5], val_loss[1], val_loss[5], has γ); val_loss[5] equals
    // metrics.jsonl's step-320 val_loss only for the F32 runs (A1, A2), see fixtures/README.
    let expected = [
        (
            "A1",
            11.47586178779602,
            7.2569082379341125,
            3.207115446492838,
            1.728235446689381,
            true,
        ),
        (
            "A2",
            11.422767043113708,
            6.737811088562012,
            3.209567044783794,
            1.889149908698516,
            false,
        ),
        (
            "B1",
            11.475866675376892,
            3.2536834478378296,
            3.2503240549461925,
            2.4177398085897406,
            true,
        ),
        (
            "B2",
            11.422780513763428,
            2.727259933948517,
            3.248477010357608,
            2.43427695798814,
            false,
        ),
        (
            "C1",
            11.475900292396545,
            7.084072053432465,
            3.5152177917774865,
            5.85844543621766,
            true,
        ),
        (
            "C2",
            11.475900292396545,
            7.892544776201248,
            3.347248055518799,
            2.5400088633139744,
            true,
        ),
    ];
    for (run, pr0, pr5, val1, val5, gamma) in expected {
        let rel = format!("runs/{run}/results.json");
        let s = parse_one(&rel);
        assert_eq!(s.format, LogFormat::StudyResults);
        assert_eq!(s.run.as_deref(), Some(run));
        assert_eq!(s.len(), 6);
        let tokens: Vec<f64> = s.tokens.iter().map(|t| t.unwrap()).collect();
        assert_eq!(tokens, [0.0, 20480.0, 40960.0, 81920.0, 163840.0, 327680.0]);
        let val = s.metric("val_loss").unwrap();
        assert_eq!(val[0], None, "{rel}: val_loss[0] is null");
        assert_eq!((val[1], val[5]), (Some(val1), Some(val5)), "{rel}");
        assert_eq!(s.metric("loss").unwrap()[0], None);
        let pr = s.metric("mean_pr").unwrap();
        assert_eq!((pr[0], pr[5]), (Some(pr0), Some(pr5)), "{rel}");
        let layers = s
            .metric_names()
            .iter()
            .filter(|m| m.starts_with("layer_pr/"))
            .count();
        assert_eq!(layers, 4, "{rel}");
        let cv = s
            .metric_names()
            .iter()
            .filter(|m| m.starts_with("gamma_cv/"))
            .count();
        assert_eq!(cv, if gamma { 4 } else { 0 }, "{rel}");
        assert_eq!(s.constants.contains_key("gamma_final"), gamma, "{rel}");
        if gamma {
            assert_eq!(
                s.constants["gamma_final"]["0"].as_array().unwrap().len(),
                16
            );
        }
        assert_eq!(s.points_vs_tokens("val_loss").len(), 5);
    }
}

#[test]
fn user_study_results() {
    for (file, tag, val_last, gamma) in [
        ("QK_results.json", "QK", 3.4398874640464783, true),
        ("NoQK_results.json", "NoQK", 3.5048571825027466, false),
    ] {
        let s = parse_one(&format!("logs/user-study/{file}"));
        assert_eq!(s.run.as_deref(), Some(tag));
        assert_eq!(s.len(), 26);
        assert_eq!(s.tokens[25], Some(49152000.0));
        let layers = s
            .metric_names()
            .iter()
            .filter(|m| m.starts_with("layer_pr/"))
            .count();
        assert_eq!(layers, 32, "{file}");
        assert_eq!(s.metric("val_loss").unwrap()[0], None);
        assert_eq!(s.metric("val_loss").unwrap()[25], Some(val_last));
        assert_eq!(s.constants.contains_key("gamma_final"), gamma);
        if gamma {
            assert_eq!(
                s.constants["gamma_final"]["31"].as_array().unwrap().len(),
                128
            );
        }
    }
}

#[test]
fn modded_nanogpt_logs() {
    // (file, rows = lines, val_loss points, first, last, total_steps)
    let expected = [
        ("adamh_seed1.log", 4915, 40, 10.82584, 3.27637, 4875),
        ("adamh_seed2.log", 4915, 40, 10.82584, 3.27482, 4875),
        ("muonh_seed1.log", 3353, 28, 10.82584, 3.27906, 3325),
        ("muonh_seed2.log", 3353, 28, 10.82584, 3.27796, 3325),
        (
            "track1_2024-10-10_muon.log",
            6251,
            51,
            10.9264,
            3.2785,
            6200,
        ),
    ];
    for (file, rows, n_val, first, last, total) in expected {
        let s = parse_one(&format!("logs/modded-nanogpt/{file}"));
        assert_eq!(s.format, LogFormat::TextKv);
        assert_eq!(s.len(), rows, "{file}");
        assert_eq!(s.constants["total_steps"], total, "{file}");
        let val = s.points("val_loss");
        assert_eq!(val.len(), n_val, "{file}");
        assert_eq!(val[0], (0.0, first), "{file}");
        assert_eq!(*val.last().unwrap(), (total as f64, last), "{file}");
        assert!(s.warnings.is_empty(), "{file}: {:?}", s.warnings);
    }
    let s = parse_one("logs/modded-nanogpt/track1_2024-10-10_muon.log");
    let train = s.points("train_loss");
    assert_eq!(train.len(), 6200);
    assert_eq!((train[0], train[6199]), ((1.0, 10.9184), (6200.0, 3.2533)));
    assert_eq!(s.metric("train_time_ms").unwrap()[0], Some(285.0));
    // `step_avg:nanms` is a NaN written by the log: kept as a value, not drawn.
    assert!(s.metric("step_avg_ms").unwrap()[0].unwrap().is_nan());
    let s = parse_one("logs/modded-nanogpt/muonh_seed1.log");
    assert_eq!(s.metric("train_time_s").unwrap()[1], Some(178.564));
    assert_eq!(s.metric("step_avg_ms").unwrap()[1], Some(178564.12));
}

fn fixture_logs() -> Vec<(String, LogFormat)> {
    let mut out = Vec::new();
    for run in RUNS {
        out.push((format!("runs/{run}/metrics.jsonl"), LogFormat::Jsonl));
        out.push((format!("runs/{run}/results.json"), LogFormat::StudyResults));
    }
    for f in ["QK_results.json", "NoQK_results.json"] {
        out.push((format!("logs/user-study/{f}"), LogFormat::StudyResults));
    }
    let dir = PathBuf::from(FIXTURES).join("logs/modded-nanogpt");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        out.push((format!("logs/modded-nanogpt/{name}"), LogFormat::TextKv));
    }
    out
}

#[test]
fn detection_with_and_without_the_name() {
    for (rel, format) in fixture_logs() {
        let (name, bytes) = read(&rel);
        assert_detects(&name, &bytes, format);
    }
    for (name, bytes, format) in synthetic_files() {
        assert_detects(name, &bytes, format);
    }
    // Not logs.
    let (_, st) = read("eval_tokens.safetensors");
    assert_eq!(
        logs::detect(
            "eval_tokens.safetensors",
            &st[..st.len().min(logs::HEAD_LEN)]
        ),
        None
    );
    assert_eq!(
        logs::detect("", b"just some prose\nwith no numbers\n"),
        None
    );
}

// ---- synthetic files -------------------------------------------------------

const CSV: &str = "step,loss,lr,note\n0,3.5,0.001,start\n10,3.25,,\n20,3.0,0.0005,end\n";
const WANDB: &str = "\"Step\",\"A1 - loss\",\"A1 - loss__MIN\",\"A1 - loss__MAX\",\"B2 - loss\"\n\
                     0,3.5,3.4,3.6,4.0\n\
                     10,,,,3.8\n\
                     20,3.0,2.9,3.1,\n";
const LLMC: &str = "s:0 tel:10.9\ns:0 trl:10.98 lr:0.0006 norm:1.2\ns:1 trl:9.5 lr:0.0006 norm:2.5\nwarning: something odd\n";
const METRICS_JSON: &str = r#"{"final_metrics": {"val_loss": 6.4}, "tokens_seen": 1001472,
  "history": {"steps": [0, 50, 489], "val_losses": [11.2, 8.5, 6.4], "learning_rates": [0.0, 0.0118, 0.0012]}}"#;

/// An event file: a file_version event, then `loss` (simple_value) and
/// `lr` (TF2 tensor) at steps 1 and 2 as separate events, and an image-like
/// non-scalar tensor.
fn tfevents_file() -> Vec<u8> {
    use prost::Message;
    let scalar = |tag: &str, v: f32| tfevents::SummaryValue {
        tag: tag.into(),
        simple_value: Some(v),
        tensor: None,
    };
    let tensor = |tag: &str, vals: Vec<f32>| tfevents::SummaryValue {
        tag: tag.into(),
        simple_value: None,
        tensor: Some(tfevents::TensorProto {
            dtype: 1,
            float_val: vals,
            ..Default::default()
        }),
    };
    let event = |step: i64, wall: f64, values: Vec<tfevents::SummaryValue>| tfevents::Event {
        wall_time: wall,
        step,
        file_version: None,
        summary: Some(tfevents::Summary { value: values }),
    };
    let events = [
        tfevents::Event {
            wall_time: 100.0,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        },
        event(1, 101.0, vec![scalar("loss", 2.5)]),
        event(1, 101.5, vec![tensor("lr", vec![0.25])]),
        event(
            2,
            102.0,
            vec![scalar("loss", 2.0), tensor("weights", vec![1.0, 2.0])],
        ),
        event(2, 102.5, vec![tensor("lr", vec![0.125])]),
    ];
    let mut out = Vec::new();
    for e in events {
        tfevents::write_record(&mut out, &e.encode_to_vec());
    }
    out
}

fn synthetic_files() -> Vec<(&'static str, Vec<u8>, LogFormat)> {
    vec![
        ("train.csv", CSV.as_bytes().to_vec(), LogFormat::Csv),
        (
            "wandb_export.csv",
            WANDB.as_bytes().to_vec(),
            LogFormat::WandbCsv,
        ),
        ("main.log", LLMC.as_bytes().to_vec(), LogFormat::TextKv),
        (
            "metrics.json",
            METRICS_JSON.as_bytes().to_vec(),
            LogFormat::StudyMetrics,
        ),
        (
            "events.out.tfevents.1700000000.host",
            tfevents_file(),
            LogFormat::TfEvents,
        ),
        (
            "log.jsonl",
            b"{\"step\": 1, \"loss\": 2.0}\n".to_vec(),
            LogFormat::Jsonl,
        ),
    ]
}

#[test]
fn synthetic_csv() {
    let s = logs::parse("", CSV.as_bytes()).unwrap();
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!(s.format, LogFormat::Csv);
    assert_eq!(s.run, None);
    assert_eq!(s.step, [Some(0.0), Some(10.0), Some(20.0)]);
    assert_eq!(s.tokens, [None, None, None]);
    assert_eq!(s.metric_names(), ["loss", "lr"]);
    assert_eq!(
        s.metric("loss").unwrap(),
        [Some(3.5), Some(3.25), Some(3.0)]
    );
    assert_eq!(s.metric("lr").unwrap(), [Some(0.001), None, Some(0.0005)]);
}

#[test]
fn synthetic_wandb_two_runs() {
    let all = logs::parse("", WANDB.as_bytes()).unwrap();
    assert_eq!(all.len(), 2);
    let (a, b) = (&all[0], &all[1]);
    assert_eq!(a.format, LogFormat::WandbCsv);
    assert_eq!(a.run.as_deref(), Some("A1"));
    assert_eq!(a.step, [Some(0.0), Some(20.0)]);
    assert_eq!(a.metric_names(), ["loss", "loss__max", "loss__min"]);
    assert_eq!(a.metric("loss").unwrap(), [Some(3.5), Some(3.0)]);
    assert_eq!(a.metric("loss__min").unwrap(), [Some(3.4), Some(2.9)]);
    assert_eq!(a.metric("loss__max").unwrap(), [Some(3.6), Some(3.1)]);
    assert_eq!(b.run.as_deref(), Some("B2"));
    assert_eq!(b.step, [Some(0.0), Some(10.0)]);
    assert_eq!(b.metric_names(), ["loss"]);
    assert_eq!(b.metric("loss").unwrap(), [Some(4.0), Some(3.8)]);
}

#[test]
fn synthetic_llmc_text() {
    let s = logs::parse("", LLMC.as_bytes()).unwrap().remove(0);
    assert_eq!(s.format, LogFormat::TextKv);
    assert_eq!(s.step, [Some(0.0), Some(0.0), Some(1.0)]);
    assert_eq!(s.metric_names(), ["lr", "norm", "tel", "trl"]);
    assert_eq!(s.metric("tel").unwrap(), [Some(10.9), None, None]);
    assert_eq!(s.metric("trl").unwrap(), [None, Some(10.98), Some(9.5)]);
    assert_eq!(s.metric("lr").unwrap(), [None, Some(0.0006), Some(0.0006)]);
    assert_eq!(s.metric("norm").unwrap(), [None, Some(1.2), Some(2.5)]);
    assert!(s.constants.is_empty());
    assert!(s.warnings.is_empty());
}

#[test]
fn synthetic_metrics_json() {
    let s = logs::parse("", METRICS_JSON.as_bytes()).unwrap().remove(0);
    assert_eq!(s.format, LogFormat::StudyMetrics);
    assert_eq!(s.step, [Some(0.0), Some(50.0), Some(489.0)]);
    assert_eq!(s.metric_names(), ["lr", "val_loss"]);
    assert_eq!(
        s.metric("val_loss").unwrap(),
        [Some(11.2), Some(8.5), Some(6.4)]
    );
    assert_eq!(s.constants["tokens_seen"], 1001472);
    assert_eq!(s.constants["final_metrics"]["val_loss"], 6.4);
}

#[test]
fn synthetic_tfevents_roundtrip() {
    let bytes = tfevents_file();
    let s = logs::parse("", &bytes).unwrap().remove(0);
    assert_eq!(s.format, LogFormat::TfEvents);
    // Events of one step merge into one row.
    assert_eq!(s.step, [Some(1.0), Some(2.0)]);
    assert_eq!(s.metric_names(), ["loss", "lr", "wall_time"]);
    assert_eq!(s.metric("loss").unwrap(), [Some(2.5), Some(2.0)]);
    assert_eq!(s.metric("lr").unwrap(), [Some(0.25), Some(0.125)]);
    assert_eq!(s.metric("wall_time").unwrap(), [Some(101.5), Some(102.5)]);
    assert_eq!(s.warnings, ["non-scalar summaries left out: weights"]);

    // A flipped byte in the data of record 2: an error naming the record and offset.
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        records.push(pos);
        pos += len + 16;
    }
    let mut bad = bytes.clone();
    bad[records[2] + 14] ^= 0x40;
    let e = logs::parse("events.out.tfevents.1", &bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "record 2 at byte {}: bad CRC of the data: the file is corrupted",
            records[2]
        )
    );
    // A flipped byte in a length.
    let mut bad = bytes.clone();
    bad[records[1]] ^= 0x01;
    let e = logs::parse("events.out.tfevents.1", &bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "record 1 at byte {}: bad CRC of the length: the file is corrupted",
            records[1]
        )
    );
    // A cut final record: earlier records kept, with a warning.
    let cut = &bytes[..bytes.len() - 3];
    let s = logs::parse("", cut).unwrap().remove(0);
    assert_eq!(s.step, [Some(1.0), Some(2.0)]);
    assert_eq!(s.metric("lr").unwrap(), [Some(0.25), None]);
    assert!(
        s.warnings.iter().any(|w| w.starts_with("record 4 at byte")),
        "{:?}",
        s.warnings
    );
}

/// Linear-time check for big logs: 10⁶ JSONL lines. Ignored by default (a
/// timing is no unit test); run with `--ignored --nocapture` to see the time.
#[test]
#[ignore]
fn million_line_jsonl() {
    use std::fmt::Write;
    let mut text = String::with_capacity(90_000_000);
    text.push_str("{\"header\": true, \"n_params\": 197312}\n");
    for i in 1..=1_000_000u64 {
        let loss = 5.0 / (1.0 + i as f64 * 1e-4);
        let _ = write!(text, "{{\"step\": {i}, \"tokens\": {}, \"loss\": {loss}, \"lr\": 0.0006, \"grad_norm\": 1.25", i * 1024);
        if i % 25 == 0 {
            let _ = write!(text, ", \"val_loss\": {loss}");
        }
        text.push_str("}\n");
    }
    let start = std::time::Instant::now();
    let s = logs::parse("", text.as_bytes()).unwrap().remove(0);
    let elapsed = start.elapsed();
    eprintln!(
        "parsed {} MB, {} rows in {elapsed:?}",
        text.len() / 1_000_000,
        s.len()
    );
    assert_eq!(s.len(), 1_000_000);
    assert_eq!(s.points("val_loss").len(), 40_000);
}
