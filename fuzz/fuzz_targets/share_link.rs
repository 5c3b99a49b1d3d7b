//! Share-link decoder on arbitrary text (bytes → lossy UTF-8).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::share::{decode_link, encode_link};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(figure) = decode_link(&text) {
        // Whatever decodes must re-encode and decode again.
        let _ = decode_link(&encode_link(&figure));
    }
});
