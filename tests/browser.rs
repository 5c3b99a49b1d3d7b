//! The page's browser code in headless Chromium: reading a real `Blob` by
//! byte range, and the whole inspection path over it (JS promises included).
//! Run by scripts/test.sh: `cargo test -p rankscope-app --target wasm32-unknown-unknown --test browser`.
#![cfg(target_arch = "wasm32")]

use rankscope_app::web::blob_source::BlobSource;
use rankscope_core::inventory::{inspect_file, FileKind, Status};
use rankscope_core::AsyncByteSource;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const A2_MID: &[u8] = include_bytes!("../../shared/fixtures/runs/A2/ckpt_tokens_81920.safetensors");

fn blob_of(bytes: &[u8]) -> web_sys::Blob {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    web_sys::Blob::new_with_u8_array_sequence(&parts).expect("Blob from bytes")
}

#[wasm_bindgen_test]
async fn blob_reads_exact_ranges() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let src = BlobSource::new(blob_of(&bytes));
    assert_eq!(src.size(), 10_000);
    assert_eq!(
        src.fetch(300, 5).await.expect("read"),
        bytes[300..305].to_vec()
    );
    assert_eq!(
        src.fetch(9_995, 5).await.expect("read at end"),
        bytes[9_995..].to_vec()
    );
    assert!(
        src.fetch(9_996, 5).await.is_err(),
        "a read past the end is an error, not a short read"
    );
}

#[wasm_bindgen_test]
async fn inspects_a_checkpoint_from_a_blob() {
    let src = BlobSource::new(blob_of(A2_MID));
    let mut seen = Vec::new();
    let entry = inspect_file("runs/A2/ckpt_tokens_81920.safetensors", &src, &mut |p| {
        seen.push(p)
    })
    .await;
    assert_eq!(entry.kind, FileKind::Checkpoint);
    assert_eq!(entry.status, Status::Ok, "{:?}", entry.messages);
    assert_eq!(
        (entry.run.as_deref(), entry.tokens, entry.dtype.as_deref()),
        (Some("A2"), Some(81920), Some("F32"))
    );
    assert!(
        seen.len() > 3 && seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&1.0),
        "progress {seen:?}"
    );
}
