//! A sharded PyTorch model, as `transformers` saves one:
//! `pytorch_model-0000{1,2}-of-00002.bin` and `pytorch_model.bin.index.json`
//! beside `config.json` (stories260K split in two, written with
//! `formats::pytorch::write`). The inventory links the shards to their index
//! as it does for safetensors shards, and the weight spectra equal those of
//! the unsharded `model.safetensors`.

use rankscope_core::analysis::pipeline::collect_weight_spectra;
use rankscope_core::formats::pytorch::write::{write_state_dict, TensorOut};
use rankscope_core::formats::safetensors::{read_header, read_tensor_bytes};
use rankscope_core::inventory::{inspect_file, FileKind, Inventory, Status};
use rankscope_core::model::arch::Recognition;
use rankscope_core::source::{block_on, FileSource};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn write_shards(dir: &Path) {
    let src = FileSource::open(format!("{FIXTURES}/stories260K/model.safetensors")).unwrap();
    let header = read_header(&src).unwrap();
    let mut weight_map = BTreeMap::new();
    let mut shards: [Vec<TensorOut<'_, std::fs::File>>; 2] = [Vec::new(), Vec::new()];
    for (i, t) in header.tensors.iter().enumerate() {
        let bytes = read_tensor_bytes(&src, t).unwrap();
        let file = format!("pytorch_model-0000{}-of-00002.bin", i % 2 + 1);
        weight_map.insert(t.name.clone(), file);
        shards[i % 2].push(TensorOut {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            write: Box::new(move |w: &mut std::fs::File| w.write_all(&bytes)),
        });
    }
    for (k, tensors) in shards.into_iter().enumerate() {
        let file =
            std::fs::File::create(dir.join(format!("pytorch_model-0000{}-of-00002.bin", k + 1)))
                .unwrap();
        write_state_dict(file, "pytorch_model", tensors)
            .unwrap()
            .flush()
            .unwrap();
    }
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": weight_map });
    std::fs::write(dir.join("pytorch_model.bin.index.json"), index.to_string()).unwrap();
    std::fs::copy(
        format!("{FIXTURES}/stories260K/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
}

fn inventory(dir: &Path, names: &[&str], shown_dir: &str) -> Inventory {
    let files = names
        .iter()
        .map(|n| {
            block_on(inspect_file(
                &format!("{shown_dir}/{n}"),
                &FileSource::open(dir.join(n)).unwrap(),
                &mut |_| {},
            ))
        })
        .collect();
    Inventory::link(files)
}

#[test]
fn sharded_bin_files_equal_the_unsharded_model() {
    let dir = std::env::temp_dir().join(format!("rankscope_pt_shards_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_shards(&dir);
    let names = [
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "config.json",
    ];
    let inv = inventory(&dir, &names, "stories260K");
    let index = &inv.files[0];
    assert_eq!(index.kind, FileKind::ShardIndex);
    assert_eq!(
        index.overall_status(),
        Status::Ok,
        "{:?}",
        index.all_messages()
    );
    assert!(
        matches!(index.recognition, Some(Recognition::Known(_))),
        "{:?}",
        index.architecture
    );
    assert_eq!(inv.shards_of(0), vec![1, 2]);
    assert_eq!(inv.runs.len(), 1);
    assert_eq!(
        inv.runs[0].checkpoints.len(),
        1,
        "the shards are one checkpoint"
    );

    let (sharded, failures) = block_on(collect_weight_spectra(&inv, &|i| {
        FileSource::open(dir.join(names[i])).ok()
    }));
    assert!(failures.is_empty(), "{failures:?}");
    let whole_dir = Path::new(FIXTURES).join("stories260K");
    let whole = inventory(
        &whole_dir,
        &["model.safetensors", "config.json"],
        "stories260K",
    );
    let (single, _) = block_on(collect_weight_spectra(&whole, &|i| {
        FileSource::open(whole_dir.join(["model.safetensors", "config.json"][i])).ok()
    }));
    assert_eq!(
        sharded[0].checkpoints[0].spectra,
        single[0].checkpoints[0].spectra
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
