//! A sharded model end to end: A1's final checkpoint split into two shards
//! and a Hugging Face style index. The inventory links the shards to their
//! index, recognises the architecture over the union of their tensors, and the
//! weight spectra equal those of the unsharded file. A missing shard is named.

use rankscope_core::analysis::pipeline::collect_weight_spectra;
use rankscope_core::formats::safetensors::{read_header, read_tensor_bytes};
use rankscope_core::inventory::{inspect_file, FileKind, Inventory, Status};
use rankscope_core::source::{block_on, FileSource};
use safetensors::tensor::TensorView;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

/// Writes `model-0000{1,2}-of-00002.safetensors` and the index into `dir`.
fn write_shards(dir: &Path) {
    let src = FileSource::open(format!("{FIXTURES}/runs/A1/ckpt_tokens_327680.safetensors"))
        .expect("open");
    let header = read_header(&src).expect("header");
    let mut weight_map = BTreeMap::new();
    #[allow(clippy::type_complexity)] // (name, bytes, shape) per shard
    let mut shards: [Vec<(String, Vec<u8>, Vec<usize>)>; 2] = [Vec::new(), Vec::new()];
    for (i, t) in header.tensors.iter().enumerate() {
        let bytes = read_tensor_bytes(&src, t).expect("tensor bytes");
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        shards[i % 2].push((t.name.clone(), bytes, shape));
        weight_map.insert(
            t.name.clone(),
            format!("model-0000{}-of-00002.safetensors", i % 2 + 1),
        );
    }
    for (k, tensors) in shards.iter().enumerate() {
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"),
                )
            })
            .collect();
        let meta: HashMap<String, String> = header.metadata.clone().into_iter().collect();
        let bytes = safetensors::serialize(views, Some(meta)).expect("serialize shard");
        std::fs::write(
            dir.join(format!("model-0000{}-of-00002.safetensors", k + 1)),
            bytes,
        )
        .expect("write shard");
    }
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
        .expect("write index");
}

fn inventory_of(dir: &Path, names: &[&str]) -> (Inventory, Vec<PathBuf>) {
    let mut real = Vec::new();
    let entries = names
        .iter()
        .map(|n| {
            let p = dir.join(n);
            let src = FileSource::open(&p).expect("open");
            real.push(p);
            block_on(inspect_file(&format!("sharded-A1/{n}"), &src, &mut |_| {}))
        })
        .collect();
    (Inventory::link(entries), real)
}

#[test]
fn shards_are_one_model() {
    let dir = std::env::temp_dir().join(format!("rankscope-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_shards(&dir);
    let names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ];
    let (inv, real) = inventory_of(&dir, &names);

    let index = inv
        .files
        .iter()
        .find(|f| f.kind == FileKind::ShardIndex)
        .expect("index entry");
    assert_eq!(
        index.overall_status(),
        Status::Ok,
        "{:?}",
        index.all_messages()
    );
    assert!(
        index
            .architecture
            .as_deref()
            .is_some_and(|a| a.contains("4 layers") && a.contains("QK-norm")),
        "{:?}",
        index.architecture
    );
    assert_eq!(
        (index.run.as_deref(), index.tokens, index.n_tensors),
        (Some("A1"), Some(327680), Some(30))
    );
    // One run, one checkpoint: the index stands for the model; shards are its parts.
    assert_eq!(inv.runs.len(), 1);
    assert_eq!(inv.runs[0].checkpoints.len(), 1);
    assert!(inv
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Checkpoint)
        .all(|f| f.notes.iter().any(|n| n.text.contains("shard of"))));

    // Spectra through the shards equal the unsharded checkpoint's.
    let (runs, failures) = block_on(collect_weight_spectra(&inv, &|i| {
        real.get(i).and_then(|p| FileSource::open(p).ok())
    }));
    assert!(failures.is_empty(), "{failures:?}");
    let sharded = &runs[0].checkpoints[0].spectra;
    let whole_dir = std::env::temp_dir().join(format!("rankscope-whole-{}", std::process::id()));
    std::fs::create_dir_all(&whole_dir).expect("temp dir");
    std::fs::copy(
        format!("{FIXTURES}/runs/A1/ckpt_tokens_327680.safetensors"),
        whole_dir.join("ckpt.safetensors"),
    )
    .expect("copy");
    let (inv_whole, real_whole) = inventory_of(&whole_dir, &["ckpt.safetensors"]);
    let (runs_whole, _) = block_on(collect_weight_spectra(&inv_whole, &|i| {
        real_whole.get(i).and_then(|p| FileSource::open(p).ok())
    }));
    assert_eq!(sharded, &runs_whole[0].checkpoints[0].spectra);

    // Without its second shard the index says which one is missing.
    let (inv, _) = inventory_of(&dir, &[names[0], names[2]]);
    let index = inv
        .files
        .iter()
        .find(|f| f.kind == FileKind::ShardIndex)
        .expect("index entry");
    assert_eq!(index.overall_status(), Status::Warning);
    assert!(
        index
            .all_messages()
            .iter()
            .any(|m| m.contains("missing shards: model-00002-of-00002.safetensors")),
        "{:?}",
        index.all_messages()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&whole_dir);
}

/// Shard names with a folder part in the index (`sub/model-00001-….safetensors`)
/// match the dropped shards by their last component, beside the index or in
/// that folder, as `formats::sharded` says; they used to be reported missing.
#[test]
fn shard_names_with_a_folder_part_match_by_last_component() {
    let dir = std::env::temp_dir().join(format!("rankscope-shards-sub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_shards(&dir);
    let index_path = dir.join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    for v in index["weight_map"].as_object_mut().unwrap().values_mut() {
        *v = serde_json::json!(format!("sub/{}", v.as_str().unwrap()));
    }
    std::fs::write(&index_path, index.to_string()).unwrap();
    let names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ];
    let (inv, real) = inventory_of(&dir, &names);
    let idx = inv
        .files
        .iter()
        .find(|f| f.kind == FileKind::ShardIndex)
        .expect("index entry");
    assert_eq!(idx.overall_status(), Status::Ok, "{:?}", idx.all_messages());
    assert!(
        idx.architecture
            .as_deref()
            .is_some_and(|a| a.contains("4 layers")),
        "{:?}",
        idx.architecture
    );
    let (runs, failures) = block_on(collect_weight_spectra(&inv, &|i| {
        real.get(i).and_then(|p| FileSource::open(p).ok())
    }));
    assert!(failures.is_empty() && runs.len() == 1, "{failures:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
