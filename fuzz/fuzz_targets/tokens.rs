//! Token batches: the first byte picks the reader (safetensors `input_ids`,
//! `.npy`, JSON); the rest is the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rankscope_core::formats::tokens;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let result = match sel % 3 {
        0 => tokens::parse_tokens_safetensors(&rest.to_vec()),
        1 => tokens::parse_npy(rest),
        _ => tokens::parse_tokens_json(rest),
    };
    match result {
        Ok(batch) => {
            let _ = batch.max_id();
            for vocab in [0usize, 1, 256, 50_257] {
                let _ = batch.check_vocab(vocab);
            }
            if batch.batch > 0 {
                let _ = batch.row(0);
                let _ = batch.row(batch.batch - 1);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
