//! Scale: a checkpoint over 4 GiB is inspected and analysed by byte range with
//! bounded memory. The file is B1's final checkpoint (BF16, `_orig_mod.`)
//! behind a 4.5 GiB tensor, so every model tensor sits past 4 GiB; it is
//! written sparse (a hole, not 4.5 GiB of zeros on disk). Its inventory entry,
//! weight spectra, activation spectra and held-out loss must equal those of
//! the original file, and the process's peak resident memory must stay far
//! below the file's size. Alone in its own test binary so the peak is its own.

use rankscope_core::analysis::activations::{activation_spectra, KeyVariant};
use rankscope_core::analysis::pipeline::collect_weight_spectra;
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::parse_tokens_safetensors;
use rankscope_core::inventory::{inspect_file, Inventory, Status};
use rankscope_core::model::arch::Recognition;
use rankscope_core::model::forward::ModelWeights;
use rankscope_core::source::{block_on, FileSource};
use serde_json::{json, Map, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const PADDING: u64 = 9 << 29; // 4.5 GiB

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// `original` with a `PADDING`-byte U8 tensor in front of its data: same
/// tensors and metadata, every offset shifted past 4 GiB. Written with a hole.
fn write_padded(original: &[u8], path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let n = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let header: Map<String, Value> =
        serde_json::from_slice(&original[8..8 + n]).expect("header JSON");
    let mut shifted = Map::new();
    shifted.insert(
        "zz_padding".into(),
        json!({"dtype": "U8", "shape": [PADDING], "data_offsets": [0, PADDING]}),
    );
    for (name, mut info) in header {
        if name != "__metadata__" {
            let offsets = info["data_offsets"].as_array().unwrap();
            let (a, b) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
            info["data_offsets"] = json!([a + PADDING, b + PADDING]);
        }
        shifted.insert(name, info);
    }
    let mut text = serde_json::to_string(&shifted).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let file = std::fs::File::create(path).expect("create the big file");
    let mut head = (text.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(text.as_bytes());
    file.write_all_at(&head, 0).unwrap();
    file.write_all_at(&original[8 + n..], head.len() as u64 + PADDING)
        .unwrap();
}

fn analyse(path: &str) -> (Value, String, String, Option<f64>) {
    let src = FileSource::open(path).expect("open");
    let entry = block_on(inspect_file(
        "runs/B1/ckpt_tokens_327680.safetensors",
        &src,
        &mut |_| {},
    ));
    assert_eq!(
        entry.status,
        Status::Ok,
        "{path}: {:?}",
        entry.all_messages()
    );
    let summary = json!({
        "kind": entry.kind, "run": entry.run, "tokens": entry.tokens, "architecture": entry.architecture,
    });
    let inv = Inventory::link(vec![entry]);
    let (runs, failures) = block_on(collect_weight_spectra(&inv, &|_| {
        FileSource::open(path).ok()
    }));
    assert!(failures.is_empty(), "{path}: {failures:?}");
    let weights = runs[0].checkpoints[0].spectra.clone();
    let Some(Recognition::Known(arch)) = &inv.files[0].recognition else {
        panic!("{path} not recognised")
    };
    let header = read_header(&src).expect("header");
    let model = block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        arch,
        &mut |_| {},
    ))
    .expect("load");
    let tokens = |name: &str| {
        parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).unwrap()).unwrap()
    };
    let (eval, heldout) = (
        tokens("eval_tokens.safetensors"),
        tokens("heldout_tokens.safetensors"),
    );
    let acts = activation_spectra(
        &model,
        &eval,
        Some(&heldout),
        &KeyVariant::ALL,
        &mut |_| {},
        &|| false,
    )
    .expect("activation spectra");
    let loss = acts.heldout_loss;
    (
        summary,
        serde_json::to_string(&weights).unwrap(),
        serde_json::to_string(&acts).unwrap(),
        loss,
    )
}

#[test]
fn a_checkpoint_over_4_gib_is_analysed_by_byte_range_with_bounded_memory() {
    let original_path = format!("{FIXTURES}/runs/B1/ckpt_tokens_327680.safetensors");
    let original = std::fs::read(&original_path).unwrap();
    let dir = std::env::temp_dir().join(format!("rankscope-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("ckpt_tokens_327680.safetensors");
    write_padded(&original, &big);
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > 4 << 30, "{size} bytes");
    let header = read_header(&FileSource::open(&big).unwrap()).expect("header of the big file");
    let first = header
        .tensors
        .iter()
        .filter(|t| t.name != "zz_padding")
        .map(|t| t.start)
        .min()
        .unwrap();
    assert!(
        first > u32::MAX as u64,
        "model tensors start at {first}, past 4 GiB"
    );

    let before = peak_rss();
    let result = analyse(big.to_str().unwrap());
    let growth = peak_rss().saturating_sub(before);
    let _ = std::fs::remove_dir_all(&dir);
    let reference = analyse(&original_path);

    assert_eq!(result.0, reference.0, "inventory entry");
    assert_eq!(result.1, reference.1, "weight spectra");
    assert_eq!(result.2, reference.2, "activation spectra");
    // Anchor to the user's PyTorch numbers, not only to the small file.
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/expected/B1.json")).unwrap(),
    )
    .unwrap();
    let want = expected["checkpoints"].as_array().unwrap().last().unwrap()["val_loss"]
        .as_f64()
        .unwrap();
    let got = result.3.expect("held-out loss");
    assert!(
        ((got - want) / want).abs() < 1e-4,
        "held-out loss {got} vs {want}"
    );
    // Bounded memory: the 4.5 GiB tensor is never read; what is held is the
    // model (≈0.4 MB here) and the forward pass's workspace.
    assert!(
        growth < 256 << 20,
        "peak RSS grew by {} MiB analysing a {} GiB file",
        growth >> 20,
        size >> 30
    );
    eprintln!(
        "{} GiB file: peak RSS grew by {:.1} MiB",
        size as f64 / (1u64 << 30) as f64,
        growth as f64 / (1 << 20) as f64
    );
}
