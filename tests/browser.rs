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
    // Inspection reads the header only (the tensors are read once, by the analysis), so
    // its progress may be a single step; it never goes back and ends at 1.
    assert!(
        !seen.is_empty() && seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&1.0),
        "progress {seen:?}"
    );
}

// Status lines (src/status.rs): said once, in a browser user's terms.
mod status {
    use rankscope_app::status::*;
    use rankscope_core::analysis::pipeline::SpectraFailure;
    use std::collections::BTreeMap;
    use wasm_bindgen_test::*;

    const NO_ADAPTER: &str = "CPU (WebAssembly) (no GPU adapter found (no adapter); natively, install a Vulkan driver (e.g. mesa-vulkan-drivers for lavapipe); in the browser, WebGPU must be enabled)";

    #[wasm_bindgen_test]
    fn engines_are_read_in_a_browser_users_terms() {
        assert_eq!(
            classify_engine("GPU: llvmpipe (WebGPU)", true, true),
            Engine::Gpu("llvmpipe (WebGPU)".into())
        );
        assert_eq!(
            classify_engine("CPU (WebAssembly)", false, true),
            Engine::Cpu(CpuReason::Chosen)
        );
        assert_eq!(
            classify_engine(NO_ADAPTER, true, false),
            Engine::Cpu(CpuReason::NotOffered)
        );
        assert_eq!(
            classify_engine(NO_ADAPTER, true, true),
            Engine::Cpu(CpuReason::NoAdapter)
        );
        assert_eq!(
            classify_engine(
                "CPU (WebAssembly) (the GPU failed: out of memory; natively, install X)",
                true,
                true
            ),
            Engine::Cpu(CpuReason::Other("the GPU failed: out of memory".into()))
        );
    }

    #[wasm_bindgen_test]
    fn one_line_per_engine_with_counts() {
        let mut counts = BTreeMap::new();
        for _ in 0..36 {
            *counts
                .entry(classify_engine(NO_ADAPTER, true, false))
                .or_insert(0) += 1;
        }
        let lines = engine_lines(&counts);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].text,
            "CPU (WebAssembly): 36 checkpoints; WebGPU not offered by this browser"
        );
        assert!(lines[0].how_to.is_some());
        assert!(!lines[0].text.contains("Vulkan"));
        counts.insert(Engine::Gpu("Apple M2 (WebGPU)".into()), 1);
        let lines = engine_lines(&counts);
        assert_eq!(
            lines[0].text, "GPU Apple M2 (WebGPU): 1 checkpoint",
            "GPU first"
        );
        let note = RunnerNote {
            workers: Some(4),
            computed: 12,
            reused: 24,
            main_thread_why: None,
        };
        assert_eq!(note.line(), "CPU (WebAssembly), 4 Web Workers: 12 checkpoints; 24 unchanged checkpoints' results reused");
    }

    #[wasm_bindgen_test]
    fn failures_with_one_message_are_said_once() {
        let f = |p: &str, m: &str| SpectraFailure {
            path: p.into(),
            message: m.into(),
        };
        let groups = group_failures(&[
            f("a", "activations: x"),
            f("b", "other"),
            f("c", "activations: x"),
        ]);
        assert_eq!(
            groups,
            vec![
                ("activations: x".into(), vec!["a".into(), "c".into()]),
                ("other".into(), vec!["b".into()])
            ]
        );
    }

    #[wasm_bindgen_test]
    fn progress_fraction_and_time_left() {
        let mut p = JobsProgress::new("t", ("checkpoint", "checkpoints"), 4, 0.0);
        assert_eq!(p.fraction(), 0.0);
        p.report(
            0,
            "A1",
            "forward pass on the eval batch: sequence 1 of 4",
            0.5,
            1000.0,
        );
        p.report(1, "A2", "weight spectra: layer 1 of 4", 0.5, 1000.0);
        assert_eq!(p.fraction(), 0.25);
        assert_eq!(
            p.stages_now(),
            vec![
                "forward pass on the eval batch".to_string(),
                "weight spectra".to_string()
            ]
        );
        // A stage restarting at 0 does not move the bar back.
        p.report(0, "A1", "held-out loss: sequence 0 of 4", 0.1, 2000.0);
        assert_eq!(p.fraction(), 0.25);
        p.finish(0);
        p.finish(1);
        assert_eq!(
            (p.finished, p.fraction(), p.count_text()),
            (2, 0.5, "2 of 4 checkpoints done".to_string())
        );
        // Half done in 10 s: about 10 s left.
        assert_eq!(p.time_left_ms(10_000.0), Some(10_000.0));
        assert_eq!(time_left_text(p.time_left_ms(10_000.0)), "about 10 s left");
        assert_eq!(time_left_text(Some(200_000.0)), "about 3 min left");
        assert_eq!(time_left_text(Some(3_900_000.0)), "about 1 h 5 min left");
        assert_eq!(time_left_text(None), "estimating the time left");
        assert_eq!(time_left_ms(0.5, 500.0), None, "too soon to say");
    }
}
