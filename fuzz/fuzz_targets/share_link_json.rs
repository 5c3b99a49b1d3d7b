//! Share-link decoder, structured: the input is the link's JSON, deflated and
//! base64url-encoded behind `figure=v1.`, so the JSON/figure layer is reached.
#![no_main]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rankscope_core::share::{decode_link, encode_link};

fuzz_target!(|data: &[u8]| {
    let packed = miniz_oxide::deflate::compress_to_vec(data, 1);
    let link = format!("figure=v1.{}", URL_SAFE_NO_PAD.encode(packed));
    if let Ok(figure) = decode_link(&link) {
        let _ = decode_link(&encode_link(&figure));
    }
});
