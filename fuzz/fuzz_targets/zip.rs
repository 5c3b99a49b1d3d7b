//! The zip container of PyTorch checkpoints alone: `pytorch::zip::read_entries`
//! (end record, zip64, central directory, local headers) over an in-memory
//! file; every entry it accepts must lie inside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::pytorch::zip;
use rankscope_core::source::block_on;

fuzz_target!(|data: &[u8]| {
    let file: Vec<u8> = data.to_vec();
    let _ = zip::looks_like_zip(data);
    let Ok(entries) = block_on(zip::read_entries(&file)) else {
        return;
    };
    for e in &entries {
        let r = e.data_range();
        assert!(
            r.start <= r.end && r.end <= file.len() as u64,
            "entry {} outside the file",
            e.name
        );
        let _ = e.stored();
    }
});
