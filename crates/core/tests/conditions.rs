//! Seeds stated by the files themselves: a `seed` entry in a checkpoint's safetensors `__metadata__`
//! and a `seed` field of a JSONL log header reach the conditions, and beat the name's marker.

use rankscope_core::analysis::conditions::{group_conditions, run_seeds, SeedSource};
use rankscope_core::inventory::{inspect_file, Inventory};
use rankscope_core::source::block_on;
use std::collections::HashMap;

fn checkpoint(run: &str, seed: Option<&str>) -> Vec<u8> {
    let data = vec![0u8; 16];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data)
        .expect("view");
    let mut meta = HashMap::from([
        ("run".to_string(), run.to_string()),
        ("step".to_string(), "5".to_string()),
    ]);
    if let Some(s) = seed {
        meta.insert("seed".into(), s.into());
    }
    safetensors::serialize(vec![("w", view)], Some(meta)).expect("serialize")
}

#[test]
fn seeds_come_from_metadata_then_log_header_then_name() {
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "x/model_step_5.safetensors",
            checkpoint("base_seed3", Some("17")),
        ),
        ("y/model_step_5.safetensors", checkpoint("base_seed4", None)),
        (
            "logs/base_seed4/metrics.jsonl",
            b"{\"header\": true, \"seed\": 23}\n{\"step\": 1, \"loss\": 2.5}\n".to_vec(),
        ),
        ("z/model_step_5.safetensors", checkpoint("base_seed5", None)),
    ];
    let entries = files
        .iter()
        .map(|(p, bytes)| block_on(inspect_file(p, bytes, &mut |_| {})))
        .collect();
    let inv = Inventory::link(entries);
    let seeds = run_seeds(&inv);
    let by_run = |r: &str| {
        seeds
            .iter()
            .find(|s| s.run == r)
            .unwrap_or_else(|| panic!("{r} in {seeds:?}"))
            .clone()
    };
    assert_eq!(
        (by_run("base_seed3").seed, by_run("base_seed3").seed_from),
        (Some(17), SeedSource::Metadata)
    );
    assert_eq!(
        (by_run("base_seed4").seed, by_run("base_seed4").seed_from),
        (Some(23), SeedSource::Log)
    );
    assert_eq!(
        (by_run("base_seed5").seed, by_run("base_seed5").seed_from),
        (None, SeedSource::Unknown)
    );
    let conditions = group_conditions(&seeds, &[]).expect("by name");
    assert_eq!(conditions.len(), 1);
    let c = &conditions[0];
    assert_eq!(c.name, "base");
    let seeds: Vec<(Option<u64>, SeedSource)> =
        c.runs.iter().map(|r| (r.seed, r.seed_from)).collect();
    assert_eq!(
        seeds,
        [
            (Some(17), SeedSource::Metadata),
            (Some(23), SeedSource::Log),
            (Some(5), SeedSource::Name)
        ]
    );
}
