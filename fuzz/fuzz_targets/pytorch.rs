//! PyTorch checkpoints (`formats::pytorch::read_checkpoint`: the zip directory
//! by byte range, data.pkl, the legacy format) over an in-memory file, then
//! every located tensor read (bounded by size) as the analyses read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::{pytorch, safetensors as st};
use rankscope_core::source::block_on;

/// Tensors larger than this are not read (the input is small, so a valid range is too).
const MAX_READ_BYTES: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let file: Vec<u8> = data.to_vec();
    let Ok(ckpt) = block_on(pytorch::read_checkpoint(&file)) else {
        return;
    };
    for t in &ckpt.header.tensors {
        let range = t.byte_range();
        assert!(
            range.end <= file.len() as u64,
            "tensor {} outside the file",
            t.name
        );
        if range.end - range.start > MAX_READ_BYTES || t.numel() > MAX_READ_BYTES {
            continue;
        }
        if let Ok(bytes) = st::read_tensor_bytes(&file, t) {
            let _ = st::scan_values(&bytes, t.dtype);
        }
        let _ = st::read_tensor_f32(&file, t);
    }
});
