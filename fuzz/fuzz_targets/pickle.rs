//! The pickle reader (`formats::pytorch::pickle::parse`) on raw bytes: it must
//! build data or say why not, never panic, never allocate past its caps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::pytorch::pickle;

fuzz_target!(|data: &[u8]| {
    if let Ok((value, used)) = pickle::parse(data) {
        assert!(used <= data.len());
        let _ = value.describe();
        let _ = value.to_json();
    }
});
