//! Every safetensors file of the oracle fixtures (`shared/fixtures`, see its
//! README) is read through our header parser, and a few tensors are checked
//! against the reference values in `expected/<RUN>.json`.

use std::path::{Path, PathBuf};

use rankscope_core::formats::safetensors::{
    read_header, read_tensor_f32, read_tensor_f64, Dtype, Header,
};
use rankscope_core::formats::tokens::parse_tokens_safetensors;
use rankscope_core::source::FileSource;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];
const TOKENS: [u64; 6] = [0, 20480, 40960, 81920, 163840, 327680];

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn header(path: &Path) -> Header {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_header(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_safetensors(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_safetensors(&path, out);
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_header_parses() {
    let mut files = Vec::new();
    all_safetensors(Path::new(FIXTURES), &mut files);
    // 6 runs × 6 checkpoints + 4 token files + stories260K, and the seed
    // replicates (4 runs × 6 checkpoints).
    assert_eq!(files.len(), 65, "{files:?}");
    for f in &files {
        let h = header(f);
        assert_eq!(h.file_len, std::fs::metadata(f).unwrap().len());
        let last = h.tensors.last().unwrap();
        assert_eq!(last.byte_range().end, h.file_len, "{}", f.display());
    }
}

#[test]
fn run_checkpoints_have_the_documented_layout() {
    for run in RUNS {
        for tokens in TOKENS {
            let h = header(&fixture(&format!(
                "runs/{run}/ckpt_tokens_{tokens}.safetensors"
            )));
            let ctx = format!("{run} @ {tokens}");
            let want = match run.as_bytes()[0] {
                b'A' => Dtype::F32,
                b'B' => Dtype::BF16,
                _ => Dtype::F16,
            };
            assert_eq!(h.dtypes(), vec![want], "{ctx}");
            let prefix = if run.starts_with('B') {
                "_orig_mod."
            } else {
                ""
            };
            for t in &h.tensors {
                assert!(t.name.starts_with(prefix), "{ctx}: {}", t.name);
                if prefix.is_empty() {
                    assert!(!t.name.starts_with("_orig_mod."), "{ctx}: {}", t.name);
                }
            }
            assert_eq!(
                h.metadata.get("run").map(String::as_str),
                Some(run),
                "{ctx}"
            );
            assert_eq!(h.metadata.get("tokens"), Some(&tokens.to_string()), "{ctx}");
            assert_eq!(
                h.metadata.get("step"),
                Some(&(tokens / 1024).to_string()),
                "{ctx}"
            );
            let config: serde_json::Value = serde_json::from_str(&h.metadata["config"]).unwrap();
            let qk_norm = matches!(run, "A1" | "B1" | "C1" | "C2");
            assert_eq!(config["use_qk_norm"], qk_norm, "{ctx}");

            for l in 0..4 {
                let qkvo = h
                    .tensor(&format!(
                        "{prefix}transformer_blocks.{l}.attention.qkvo_proj"
                    ))
                    .unwrap();
                assert_eq!(qkvo.shape, vec![192, 64], "{ctx}");
                for norm in ["q_norm", "k_norm"] {
                    let name = format!("{prefix}transformer_blocks.{l}.attention.{norm}.weight");
                    assert_eq!(h.tensor(&name).is_some(), qk_norm, "{ctx}: {name}");
                }
            }
            assert_eq!(h.tensors.len(), if qk_norm { 30 } else { 22 }, "{ctx}");
        }
    }
}

#[test]
fn stories260k_has_47_tensors() {
    let h = header(&fixture("stories260K/model.safetensors"));
    assert_eq!(h.tensors.len(), 47);
    assert_eq!(h.dtypes(), vec![Dtype::F32]);
    assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(
        h.tensor("model.embed_tokens.weight").unwrap().shape,
        vec![512, 64]
    );
    assert!(h.tensor("lm_head.weight").is_none());
}

/// k_norm γ of layer 0 at the final checkpoint, decoded by us, against the
/// reference (stored weights upcast to f32, written as f64).
fn check_final_gamma(run: &str, prefix: &str, dtype: Dtype) {
    let path = fixture(&format!("runs/{run}/ckpt_tokens_327680.safetensors"));
    let src = FileSource::open(&path).unwrap();
    let h = read_header(&src).unwrap();
    let t = h
        .tensor(&format!(
            "{prefix}transformer_blocks.0.attention.k_norm.weight"
        ))
        .unwrap();
    assert_eq!((t.dtype, t.shape.as_slice()), (dtype, [16u64].as_slice()));
    let got = read_tensor_f32(&src, t).unwrap();
    let got64 = read_tensor_f64(&src, t).unwrap();

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("expected/{run}.json"))).unwrap())
            .unwrap();
    let last = expected["checkpoints"].as_array().unwrap().last().unwrap();
    assert_eq!(
        last["file"].as_str().unwrap().rsplit('/').next(),
        Some("ckpt_tokens_327680.safetensors")
    );
    let gamma: Vec<f64> = last["layers"][0]["gamma"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(gamma.len(), 16);
    for (i, ((&g, &x), &x64)) in gamma.iter().zip(&got).zip(&got64).enumerate() {
        assert_eq!(
            f64::from(x),
            x64,
            "{run}[{i}]: f32 and f64 decoding disagree"
        );
        if dtype == Dtype::F32 {
            assert_eq!(x, g as f32, "{run}[{i}]");
        } else {
            let rel = ((f64::from(x) - g) / g).abs();
            assert!(rel <= 1e-7, "{run}[{i}]: {x} vs {g} (rel {rel})");
        }
    }
}

#[test]
fn a1_final_gamma_matches_expected_f32() {
    check_final_gamma("A1", "", Dtype::F32);
}

#[test]
fn b1_final_gamma_matches_expected_bf16() {
    check_final_gamma("B1", "_orig_mod.", Dtype::BF16);
}

#[test]
fn c1_final_gamma_matches_expected_f16() {
    check_final_gamma("C1", "", Dtype::F16);
}

#[test]
fn token_files() {
    let eval =
        parse_tokens_safetensors(&FileSource::open(fixture("eval_tokens.safetensors")).unwrap())
            .unwrap();
    assert_eq!((eval.batch, eval.seq_len, eval.ids.len()), (4, 128, 512));
    assert!(eval.max_id().unwrap() < 256);
    eval.check_vocab(256).unwrap();
    let h = header(&fixture("eval_tokens.safetensors"));
    let t = h.tensor("input_ids").unwrap();
    assert_eq!(
        (t.dtype, t.shape.as_slice()),
        (Dtype::I64, [4u64, 128].as_slice())
    );
    for name in [
        "heldout_tokens",
        "heldout_tokens_simple",
        "heldout_tokens_complex",
    ] {
        let b = parse_tokens_safetensors(
            &FileSource::open(fixture(&format!("{name}.safetensors"))).unwrap(),
        )
        .unwrap();
        assert_eq!((b.batch, b.seq_len), (8, 128), "{name}");
        b.check_vocab(256).unwrap();
    }
}
