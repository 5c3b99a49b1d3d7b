//! The inventory of the whole fixture folder, as the page builds it after a
//! drop: every file recognised by content, runs with their token milestones,
//! architectures, dtypes, the `_orig_mod.` prefix, logs and token batches.

use rankscope_core::formats::logs::LogFormat;
use rankscope_core::inventory::{inspect_file, Content, FileEntry, FileKind, Inventory, Status};
use rankscope_core::model::arch::{Family, Recognition};
use rankscope_core::source::{block_on, FileSource};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const MILESTONES: [u64; 6] = [0, 20480, 40960, 81920, 163840, 327680];

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

/// Inspects files, naming each by its path relative to the fixtures folder;
/// `strip_names` hides the file names (content-only recognition).
fn inventory(paths: &[PathBuf], strip_names: bool) -> Inventory {
    let root = Path::new(FIXTURES);
    let entries: Vec<FileEntry> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let rel = p
                .strip_prefix(root)
                .expect("under fixtures")
                .to_string_lossy()
                .replace('\\', "/");
            let shown = if strip_names {
                format!("{}/file{i}", rel.rsplit_once('/').map_or("", |x| x.0))
            } else {
                rel
            };
            let src = FileSource::open(p).expect("open fixture");
            block_on(inspect_file(&shown, &src, &mut |_| {}))
        })
        .collect();
    Inventory::link(entries)
}

fn all_fixture_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for sub in ["runs", "logs", "stories260K"] {
        files_under(&Path::new(FIXTURES).join(sub), &mut all);
    }
    for f in [
        "eval_tokens.safetensors",
        "heldout_tokens.safetensors",
        "heldout_tokens_simple.safetensors",
        "heldout_tokens_complex.safetensors",
    ] {
        all.push(Path::new(FIXTURES).join(f));
    }
    all
}

#[test]
fn every_fixture_file_is_recognised() {
    let inv = inventory(&all_fixture_files(), false);
    for f in &inv.files {
        if f.path.ends_with("stories260K.bin") {
            // llama2.c's own binary format: not read, and it says so.
            assert_eq!((f.kind, f.status), (FileKind::Unknown, Status::Error));
            assert!(f.messages[0].contains("not a format rankscope reads"));
            continue;
        }
        assert_eq!(
            f.overall_status(),
            Status::Ok,
            "{}: {:?}",
            f.path,
            f.all_messages()
        );
    }
    let kind = |p: &str| inv.files.iter().find(|f| f.path == p).map(|f| f.kind);
    assert_eq!(kind("eval_tokens.safetensors"), Some(FileKind::TokenBatch));
    assert_eq!(kind("runs/A1/results.json"), Some(FileKind::RunLog));
    assert_eq!(kind("stories260K/config.json"), Some(FileKind::ModelConfig));
    assert_eq!(inv.token_batches.len(), 4);
}

#[test]
fn runs_checkpoints_dtypes_and_architectures() {
    let inv = inventory(&all_fixture_files(), false);
    let runs = [
        ("A1", "F32", true, ""),
        ("A2", "F32", false, ""),
        ("B1", "BF16", true, "_orig_mod."),
        ("B2", "BF16", false, "_orig_mod."),
        ("C1", "F16", true, ""),
        ("C2", "F16", true, ""),
    ];
    for (name, dtype, qk, prefix) in runs {
        let run = inv
            .runs
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("run {name}"));
        let tokens: Vec<u64> = run
            .checkpoints
            .iter()
            .map(|c| c.tokens.expect("tokens"))
            .collect();
        assert_eq!(tokens, MILESTONES, "{name} milestones in training order");
        let steps: Vec<u64> = run
            .checkpoints
            .iter()
            .map(|c| c.step.expect("step"))
            .collect();
        assert_eq!(
            steps,
            [0, 20, 40, 80, 160, 320],
            "{name} steps from metadata"
        );
        assert_eq!(
            run.logs,
            [
                format!("runs/{name}/metrics.jsonl"),
                format!("runs/{name}/results.json")
            ]
        );
        for c in &run.checkpoints {
            let f = &inv.files[c.file];
            assert_eq!(f.dtype.as_deref(), Some(dtype), "{}", f.path);
            assert_eq!(f.n_tensors, Some(if qk { 30 } else { 22 }), "{}", f.path);
            let Some(Recognition::Known(arch)) = &f.recognition else {
                panic!("{}: {:?}", f.path, f.recognition)
            };
            assert_eq!(arch.family, Family::Reference);
            assert_eq!(
                (
                    arch.n_layers,
                    arch.d_model,
                    arch.n_heads,
                    arch.n_kv_heads,
                    arch.d_k,
                    arch.vocab
                ),
                (4, 64, 4, 2, 16, 256)
            );
            assert_eq!(arch.qk_norm, qk, "{}", f.path);
            assert_eq!(
                arch.prefix_removed.as_deref().unwrap_or(""),
                prefix,
                "{}",
                f.path
            );
            let w_k = arch.w_k_head(3, 1);
            assert_eq!(
                w_k.tensor(),
                format!("{prefix}transformer_blocks.3.attention.qkvo_proj")
            );
        }
    }
    let stories = inv
        .runs
        .iter()
        .find(|r| r.name == "stories260K")
        .expect("stories260K run");
    let f = &inv.files[stories.checkpoints[0].file];
    let Some(Recognition::Known(arch)) = &f.recognition else {
        panic!("stories260K not recognised")
    };
    assert_eq!(
        (
            arch.family,
            arch.n_layers,
            arch.n_heads,
            arch.n_kv_heads,
            arch.d_k,
            arch.vocab
        ),
        (Family::Llama, 5, 8, 4, 8, 512)
    );
}

#[test]
fn logs_become_series() {
    let inv = inventory(&all_fixture_files(), false);
    let series = |p: &str| match &inv.files.iter().find(|f| f.path == p).expect(p).content {
        Content::RunLog(s) => s.clone(),
        other => panic!("{p}: {other:?}"),
    };
    let a1 = series("runs/A1/metrics.jsonl");
    assert_eq!(
        (a1.len(), a1[0].format, a1[0].len()),
        (1, LogFormat::Jsonl, 320)
    );
    let loss: Vec<f64> = a1[0]
        .metric("loss")
        .expect("loss")
        .iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(loss.len(), 320);
    assert!(
        loss[0] > loss[319],
        "loss falls: {} → {}",
        loss[0],
        loss[319]
    );
    let results = series("runs/C2/results.json");
    assert_eq!(
        results[0]
            .tokens
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>(),
        MILESTONES.map(|t| t as f64)
    );
    let muon = series("logs/modded-nanogpt/muonh_seed1.log");
    assert_eq!(muon[0].format, LogFormat::TextKv);
    assert_eq!(
        muon[0]
            .metric("val_loss")
            .expect("val_loss")
            .iter()
            .flatten()
            .count(),
        28
    );
    let qk = series("logs/user-study/QK_results.json");
    assert_eq!(
        qk[0]
            .metric_names()
            .iter()
            .filter(|m| m.starts_with("layer_pr/"))
            .count(),
        32
    );
    let run_of = |p: &str| {
        inv.files
            .iter()
            .find(|f| f.path == p)
            .and_then(|f| f.run.clone())
    };
    assert_eq!(
        run_of("logs/user-study/QK_results.json").as_deref(),
        Some("QK"),
        "run from the results.json tag"
    );
    assert_eq!(
        run_of("logs/modded-nanogpt/adamh_seed2.log").as_deref(),
        Some("adamh_seed2")
    );
}

/// Recognition is by content: with every file renamed `fileN`, kinds are the same.
#[test]
fn recognition_does_not_need_file_names() {
    let paths = all_fixture_files();
    let named = inventory(&paths, false);
    let anonymous = inventory(&paths, true);
    for (a, b) in named.files.iter().zip(&anonymous.files) {
        assert_eq!(a.kind, b.kind, "{} vs {}", a.path, b.path);
        assert_eq!(a.dtype, b.dtype, "{}", a.path);
        assert_eq!(a.architecture, b.architecture, "{}", a.path);
        if a.kind == FileKind::Checkpoint && a.path.starts_with("runs/") {
            // Run, step and tokens come from __metadata__, not the name.
            assert_eq!(
                (&a.run, a.step, a.tokens),
                (&b.run, b.step, b.tokens),
                "{}",
                a.path
            );
        }
    }
}

#[test]
fn renaming_a_run_moves_its_checkpoints_and_logs() {
    let mut paths = Vec::new();
    files_under(&Path::new(FIXTURES).join("runs/B2"), &mut paths);
    let inv = inventory(&paths, false).rename_run("B2", "adamw-no-qknorm");
    assert_eq!(inv.runs.len(), 1);
    assert_eq!(inv.runs[0].name, "adamw-no-qknorm");
    assert_eq!(
        (inv.runs[0].checkpoints.len(), inv.runs[0].logs.len()),
        (6, 2)
    );
}
