//! The core in WebAssembly, in headless Chromium: the same inventory as the
//! native tests, and a >4 GB file on a 32-bit target. Run by scripts/test.sh:
//! `cargo test -p rankscope-core --target wasm32-unknown-unknown --test web`.
#![cfg(target_arch = "wasm32")]

use rankscope_core::formats::safetensors as st;
use rankscope_core::inventory::{inspect_file, Content, FileKind, Inventory, Status};
use rankscope_core::source::{block_on, ByteSource};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const B1_FINAL: &[u8] =
    include_bytes!("../../../../shared/fixtures/runs/B1/ckpt_tokens_327680.safetensors");
const C1_FIRST: &[u8] =
    include_bytes!("../../../../shared/fixtures/runs/C1/ckpt_tokens_0.safetensors");
const EVAL: &[u8] = include_bytes!("../../../../shared/fixtures/eval_tokens.safetensors");
const A1_LOG: &[u8] = include_bytes!("../../../../shared/fixtures/runs/A1/metrics.jsonl");
const HELDOUT: &[u8] = include_bytes!("../../../../shared/fixtures/heldout_tokens.safetensors");
const B1_EXPECTED: &str = include_str!("../../../../shared/fixtures/expected/B1.json");

#[wasm_bindgen_test]
fn inventory_matches_native() {
    let files = vec![
        block_on(inspect_file(
            "runs/B1/ckpt_tokens_327680.safetensors",
            &B1_FINAL,
            &mut |_| {},
        )),
        block_on(inspect_file(
            "runs/C1/ckpt_tokens_0.safetensors",
            &C1_FIRST,
            &mut |_| {},
        )),
        block_on(inspect_file("eval_tokens.safetensors", &EVAL, &mut |_| {})),
        block_on(inspect_file("runs/A1/metrics.jsonl", &A1_LOG, &mut |_| {})),
    ];
    let inv = Inventory::link(files);
    let b1 = &inv.files[0];
    assert_eq!(b1.kind, FileKind::Checkpoint);
    assert_eq!(b1.overall_status(), Status::Ok, "{:?}", b1.all_messages());
    assert_eq!(
        (b1.run.as_deref(), b1.step, b1.tokens),
        (Some("B1"), Some(320), Some(327680))
    );
    assert_eq!(b1.dtype.as_deref(), Some("BF16"));
    assert!(
        b1.architecture
            .as_deref()
            .is_some_and(|a| a.contains("4 layers")),
        "{:?}",
        b1.architecture
    );
    let c1 = &inv.files[1];
    assert_eq!(
        (c1.run.as_deref(), c1.tokens, c1.dtype.as_deref()),
        (Some("C1"), Some(0), Some("F16"))
    );
    let eval = &inv.files[2];
    assert_eq!(eval.kind, FileKind::TokenBatch);
    match &eval.content {
        Content::TokenBatch(b) => assert_eq!(
            (b.batch, b.seq_len, b.max_id().is_some_and(|m| m < 256)),
            (4, 128, true)
        ),
        other => panic!("eval tokens parsed as {other:?}"),
    }
    let log = &inv.files[3];
    assert_eq!(
        (log.kind, log.run.as_deref()),
        (FileKind::RunLog, Some("A1"))
    );
    match &log.content {
        Content::RunLog(series) => assert_eq!(series[0].len(), 320),
        other => panic!("log parsed as {other:?}"),
    }
}

/// A 5 GiB file that is a header followed by zeros: on wasm32 `usize` is 32
/// bits, so offsets past 4 GiB must stay `u64` all the way to the read.
struct FiveGiB {
    header: Vec<u8>,
}

impl ByteSource for FiveGiB {
    fn len(&self) -> u64 {
        5 << 30
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        if offset < self.header.len() as u64 {
            let start = offset as usize;
            let end = (start + len).min(self.header.len());
            out[..end - start].copy_from_slice(&self.header[start..end]);
        }
        Ok(out)
    }
}

#[wasm_bindgen_test]
fn header_of_a_file_over_4_gib() {
    let total: u64 = 5 << 30;
    let n: u64 = 256; // header bytes, padded with spaces as the format allows
    let data = total - 8 - n;
    let big = data - 8; // a U8 tensor filling all but the last 8 bytes
    let mut json = format!(
        r#"{{"big":{{"dtype":"U8","shape":[{big}],"data_offsets":[0,{big}]}},"tail":{{"dtype":"F32","shape":[2],"data_offsets":[{big},{data}]}}}}"#
    );
    assert!(json.len() as u64 <= n);
    while (json.len() as u64) < n {
        json.push(' ');
    }
    let mut header = n.to_le_bytes().to_vec();
    header.extend_from_slice(json.as_bytes());
    let src = FiveGiB { header };
    let h = st::read_header(&src).expect("header of a 5 GiB file parses on wasm32");
    let tail = h.tensor("tail").expect("tail tensor");
    assert!(
        tail.start > u32::MAX as u64,
        "offset {} is past 4 GiB",
        tail.start
    );
    assert_eq!(tail.start, total - 8);
    assert_eq!(
        st::read_tensor_f32(&src, tail).expect("read past 4 GiB"),
        vec![0.0, 0.0]
    );
}

/// Activation spectra in wasm equal the native ones and the reference: B1's
/// final checkpoint (BF16, `_orig_mod.`), K PR and σ per layer and kv-head
/// within 1e-4 relative, r90 exact, held-out loss within 1e-4 (fixtures README).
#[wasm_bindgen_test]
fn activation_spectra_match_the_reference() {
    use rankscope_core::analysis::activations::streamed_activation_spectra;
    use rankscope_core::analysis::activations::KeyVariant;
    use rankscope_core::analysis::weights::Shards;
    use rankscope_core::formats::tokens::parse_tokens_safetensors;
    use rankscope_core::model::arch::{recognise, Recognition};
    use rankscope_core::model::forward::StreamedModel;

    let header = st::read_header(&B1_FINAL).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("B1 not recognised")
    };
    let eval = parse_tokens_safetensors(&EVAL).expect("eval tokens");
    let heldout = parse_tokens_safetensors(&HELDOUT).expect("held-out tokens");
    let mut steps = 0;
    let shards = Shards::single(&header, &B1_FINAL);
    let model = StreamedModel::new(&shards, &arch).expect("model");
    let got = block_on(streamed_activation_spectra(
        &model,
        &eval,
        Some(&heldout),
        &[KeyVariant::PostNorm],
        &mut |_| steps += 1,
        &|| false,
    ))
    .expect("activation spectra");
    // The streamed pass reports each block once (read and run together), then the spectra,
    // then each held-out sequence.
    assert_eq!(
        steps,
        4 + 4 + 8,
        "streamed blocks, spectra, held-out progress"
    );

    let expected: serde_json::Value = serde_json::from_str(B1_EXPECTED).expect("expected JSON");
    let want = &expected["checkpoints"][5];
    assert_eq!(want["tokens"], 327680);
    let rel = |g: f64, w: f64| (g - w).abs() / w.abs();
    let loss = got.heldout_loss.expect("held-out loss");
    let want_loss = want["val_loss"].as_f64().expect("val_loss");
    assert!(
        (loss - want_loss).abs() <= 1e-4,
        "held-out loss {loss} vs {want_loss}"
    );
    let mut worst = 0.0f64;
    for (l, layer) in want["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        let heads = got.layers[l].k_heads(KeyVariant::PostNorm).expect("K");
        for (h, w) in layer["k_heads"]
            .as_array()
            .expect("k_heads")
            .iter()
            .enumerate()
        {
            let g = &heads[h];
            let pr = g.metrics.spectrum.pr;
            let err = rel(pr, w["pr"].as_f64().expect("pr"));
            assert!(err <= 1e-4, "L{l} K{h} PR {pr} vs {}", w["pr"]);
            assert_eq!(
                g.metrics.spectrum.r90 as u64,
                w["r90"].as_u64().expect("r90"),
                "L{l} K{h} r90"
            );
            for (i, s) in w["sv"].as_array().expect("sv").iter().enumerate() {
                let e = rel(g.singular_values[i], s.as_f64().expect("σ"));
                assert!(e <= 1e-4, "L{l} K{h} σ_{i}");
                worst = worst.max(e);
            }
            worst = worst.max(err);
        }
    }
    wasm_bindgen_test::console_log!(
        "wasm activation spectra: worst K rel error {worst:e}; held-out loss {loss} vs {want_loss}"
    );
}
