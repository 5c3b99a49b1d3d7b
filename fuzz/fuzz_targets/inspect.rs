//! The whole-file inspector (dispatch by content): the first byte picks the
//! file name (only a hint to the sniffer), the rest is the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::inventory::inspect_file;
use rankscope_core::source::block_on;

const NAMES: [&str; 10] = [
    "model.safetensors",
    "runs/A1/ckpt_tokens_20480.safetensors",
    "heldout_tokens.safetensors",
    "tokens.npy",
    "tokens.json",
    "metrics.jsonl",
    "runs/A1/results.json",
    "events.out.tfevents.1700000000.host",
    "train.log",
    "blob",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[(sel as usize) % NAMES.len()];
    let file: Vec<u8> = rest.to_vec();
    let entry = block_on(inspect_file(name, &file, &mut |p| {
        assert!((0.0..=1.0).contains(&p) || p.is_nan())
    }));
    let _ = entry.overall_status();
    let _ = entry.all_messages();
});
