//! Issue 13, "read each checkpoint once": what the page does with a dropped checkpoint —
//! inspection on the main thread, then the worker's job (weight spectra, then activation
//! spectra and the held-out loss on the eval batches) — reads each tensor byte at most once,
//! counted by a byte source that tallies every byte it serves. The NaN/Inf check rides on
//! those reads and still names the tensors.

mod common;

use common::{fixture, inspect, CountingSource};
use rankscope_core::analysis::activations::KeyVariant;
use rankscope_core::analysis::jobs::{run_checkpoint_job, CheckpointJob, JobKind, JobOutput};
use rankscope_core::formats::safetensors::{read_header, Header};
use rankscope_core::inventory::{Content, Inventory, Status};
use rankscope_core::source::block_on;
use std::collections::BTreeSet;

const CKPT: &str = "runs/A1/ckpt_tokens_327680.safetensors";
const EVAL: &str = "eval_tokens.safetensors";
const HELDOUT: &str = "heldout_tokens.safetensors";

fn kind() -> JobKind {
    JobKind::WeightsAndActivations {
        eval: EVAL.into(),
        heldout: Some(HELDOUT.into()),
        variants: KeyVariant::ALL.to_vec(),
    }
}

/// Inspects the checkpoint from `src` and the batches, links them, runs the page's job.
fn drop_and_analyse(src: &CountingSource) -> (Inventory, CheckpointJob, JobOutput) {
    let entries = vec![
        inspect(CKPT, src),
        inspect(EVAL, &fixture(EVAL)),
        inspect(HELDOUT, &fixture(HELDOUT)),
    ];
    let inv = Inventory::link(entries);
    let job = CheckpointJob::plan(&inv, 0, kind()).expect("a job");
    let out = block_on(run_checkpoint_job(
        &job,
        std::slice::from_ref(src),
        &mut |_, _| {},
    ))
    .expect("runs");
    (inv, job, out)
}

#[test]
fn inspection_and_analysis_read_each_tensor_byte_at_most_once() {
    let bytes = fixture(CKPT);
    let header: Header = read_header(&bytes).unwrap();
    let src = CountingSource::new(bytes);

    let inv = Inventory::link(vec![inspect(CKPT, &src)]);
    let data_start = header.data_start() as usize;
    let inspected: u64 = src.reads()[data_start..].iter().map(|&n| n as u64).sum();
    assert_eq!(inspected, 0, "inspection reads the header, no tensor byte");
    assert!(matches!(inv.files[0].content, Content::Checkpoint { .. }));
    src.reset();

    let (_, _, out) = drop_and_analyse(&src);
    let JobOutput::WeightsAndActivations {
        activations,
        non_finite,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    let act = activations.expect("activations");
    assert!(act.heldout_loss.is_some());
    assert_eq!(non_finite, []);

    // The only bytes read twice: the rows of the (tied) embedding the batches' token ids
    // fall in (read in runs of nearby ids), read for the embedding, then with the whole table
    // for the output head — by design, so that the streamed pass does not hold the table
    // through every block (`model/forward/stream.rs`).
    let ids: BTreeSet<u32> = [EVAL, HELDOUT]
        .iter()
        .flat_map(|p| match &inspect(p, &fixture(p)).content {
            Content::TokenBatch(b) => b.ids.clone(),
            _ => panic!("{p}"),
        })
        .collect();
    let reads = src.reads();
    let embedding = header.tensor("token_embedding.weight").expect("embedding");
    let row = (embedding.len / embedding.shape[0]) as usize;
    let mut twice = 0u64;
    let mut tensor_bytes_read = 0u64;
    for t in &header.tensors {
        let bytes = &reads[t.start as usize..(t.start + t.len) as usize];
        assert!(bytes.iter().all(|&n| n >= 1), "`{}` is read", t.name);
        for (i, &n) in bytes.iter().enumerate() {
            tensor_bytes_read += n as u64;
            if n <= 1 {
                continue;
            }
            let allowed = t.name == embedding.name && n == 2;
            assert!(allowed, "byte {i} of `{}` read {n} times", t.name);
            twice += 1;
        }
    }
    let tensor_bytes: u64 = header.tensors.iter().map(|t| t.len).sum();
    println!(
        "inspection + analysis of {CKPT}: {tensor_bytes_read} tensor bytes read for {tensor_bytes} \
         stored ({:.3}×); {twice} bytes ({} of {} embedding rows) read twice, for {} token ids",
        tensor_bytes_read as f64 / tensor_bytes as f64,
        twice / row as u64,
        embedding.shape[0],
        ids.len()
    );
    assert!(twice <= embedding.len);
}

#[test]
fn non_finite_values_are_found_by_the_analysis_read_and_named_per_tensor() {
    // A1's final checkpoint with a NaN and a +Inf in one MLP weight, and a −Inf in the final
    // norm: the weight spectra are fine, the forward pass reads both.
    let mut bytes = fixture(CKPT);
    let header: Header = read_header(&bytes).unwrap();
    let up = header
        .tensor("transformer_blocks.1.feed_forward.up_proj.weight")
        .unwrap()
        .start as usize;
    bytes[up..up + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    bytes[up + 8..up + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let norm = header.tensor("norm.weight").unwrap().start as usize;
    bytes[norm + 4..norm + 8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    let src = CountingSource::new(bytes);

    let (mut inv, job, out) = drop_and_analyse(&src);
    assert_eq!(
        inv.files[0].status,
        Status::Ok,
        "inspection does not read values"
    );
    let JobOutput::WeightsAndActivations { non_finite, .. } = out else {
        panic!("{out:?}")
    };
    let found: Vec<(String, u64, u64, u64)> = non_finite
        .iter()
        .map(|n| {
            (
                job.files[n.part].clone(),
                n.values.nan,
                n.values.pos_inf,
                n.values.neg_inf,
            )
        })
        .collect();
    let named: Vec<&str> = non_finite.iter().map(|n| n.tensor.as_str()).collect();
    assert_eq!(
        named,
        [
            "norm.weight",
            "transformer_blocks.1.feed_forward.up_proj.weight"
        ]
    );
    assert_eq!(
        found,
        [(CKPT.to_string(), 0, 0, 1), (CKPT.to_string(), 1, 1, 0)]
    );

    // The inventory shows them as inspection used to, once however often the analysis runs.
    let tensors: Vec<_> = non_finite
        .iter()
        .map(|n| (n.tensor.clone(), n.values))
        .collect();
    inv.files[0].note_non_finite(&tensors);
    inv.files[0].note_non_finite(&tensors);
    assert_eq!(inv.files[0].status, Status::Warning);
    assert_eq!(
        inv.files[0].messages,
        [
            "non-finite values: 1 NaN, 1 +Inf, 1 −Inf in 2 tensor(s): norm.weight, \
          transformer_blocks.1.feed_forward.up_proj.weight"
        ]
    );
}
