//! safetensors: header (`read_header`) over an in-memory file, then every tensor
//! the header lists read by byte range and decoded (bounded by size).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::safetensors as st;

/// Tensors larger than this are not decoded (the input itself is small, so a
/// valid range is small too; this only bounds work on huge claimed shapes).
const MAX_DECODE_BYTES: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let file: Vec<u8> = data.to_vec();
    let Ok(header) = st::read_header(&file) else {
        return;
    };
    let _ = header.dtypes();
    let _ = header.data_start();
    for t in &header.tensors {
        let _ = t.numel();
        let range = t.byte_range();
        if range.end.saturating_sub(range.start) > MAX_DECODE_BYTES {
            continue;
        }
        let _ = header.tensor(&t.name);
        if let Ok(bytes) = st::read_tensor_bytes(&file, t) {
            let _ = st::decode_f32(&bytes, t.dtype);
            let _ = st::decode_f64(&bytes, t.dtype);
            let _ = st::decode_i64(&bytes, t.dtype);
            let scan = st::scan_values(&bytes, t.dtype);
            let _ = scan.non_finite();
        }
        let _ = st::read_tensor_f32(&file, t);
        let _ = st::read_tensor_f64(&file, t);
    }
});
