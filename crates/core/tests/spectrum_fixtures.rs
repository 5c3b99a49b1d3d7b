//! The spectral engine against the oracle fixtures (`shared/fixtures/README.md`).
//!
//! 1. Metrics from the reference's own singular values (numpy f64 SVD) must
//!    reproduce every stored metric to 1e-9 relative (r90 exactly), and the
//!    per-layer means (`*_mean`, `k_pr_mean`).
//! 2. W_k singular values recomputed from the checkpoint weights themselves
//!    (F32, BF16, F16 as stored) must match `wk_heads[h].sv` to 1e-6 relative,
//!    with `spectral_norm` and `log10_fro2`.

use std::collections::HashMap;

use rankscope_core::analysis::spectrum::{
    mean_metrics, metrics_from_singular_values, singular_values_f32, weight_metrics, MeanMetrics,
    SpectrumMetrics,
};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];
const METRIC_REL_TOL: f64 = 1e-9;
const WEIGHT_SV_REL_TOL: f64 = 1e-6;

fn load_json(relative: &str) -> Value {
    let path = format!("{FIXTURES}/{relative}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
    let ok = if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= rel * want.abs()
    };
    assert!(
        ok,
        "{what}: got {got}, want {want} (rel err {:e})",
        ((got - want) / want).abs()
    );
}

fn sv_of(head: &Value, what: &str) -> Vec<f64> {
    head["sv"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no sv"))
        .iter()
        .map(|v| v.as_f64().unwrap_or_else(|| panic!("{what}: sv entry {v}")))
        .collect()
}

/// Checks one head's stored metrics (deserialised through our own serde, so
/// `"inf"` conds are exercised) against ours from its singular values.
fn check_head(head: &Value, what: &str) -> SpectrumMetrics {
    let want: SpectrumMetrics =
        serde_json::from_value(head.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got =
        metrics_from_singular_values(&sv_of(head, what)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got.r90, want.r90, "{what}: r90");
    assert_close(got.pr, want.pr, METRIC_REL_TOL, &format!("{what}: pr"));
    assert_close(
        got.pr_eig,
        want.pr_eig,
        METRIC_REL_TOL,
        &format!("{what}: pr_eig"),
    );
    assert_close(
        got.cond,
        want.cond,
        METRIC_REL_TOL,
        &format!("{what}: cond"),
    );
    assert_close(
        got.erank,
        want.erank,
        METRIC_REL_TOL,
        &format!("{what}: erank"),
    );
    assert_close(
        got.stable_rank,
        want.stable_rank,
        METRIC_REL_TOL,
        &format!("{what}: stable_rank"),
    );
    if head.get("spectral_norm").is_some() {
        let w = weight_metrics(&sv_of(head, what)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_close(
            w.spectral_norm,
            head["spectral_norm"].as_f64().expect("number"),
            METRIC_REL_TOL,
            what,
        );
        assert_close(
            w.log10_fro2,
            head["log10_fro2"].as_f64().expect("number"),
            METRIC_REL_TOL,
            what,
        );
        assert_eq!(w.alpha, None, "{what}: 16 eigenvalues are too few for α");
    }
    got
}

/// Checks every head of a group and the group's stored mean; returns the head count.
fn check_group(heads: &Value, mean: &Value, what: &str) -> usize {
    let heads = heads
        .as_array()
        .unwrap_or_else(|| panic!("{what}: heads not an array"));
    let metrics: Vec<SpectrumMetrics> = heads
        .iter()
        .enumerate()
        .map(|(h, head)| check_head(head, &format!("{what} head {h}")))
        .collect();
    let want: MeanMetrics =
        serde_json::from_value(mean.clone()).unwrap_or_else(|e| panic!("{what} mean: {e}"));
    let got = mean_metrics(&metrics).unwrap_or_else(|| panic!("{what}: no heads"));
    for (g, w, name) in [
        (got.pr, want.pr, "pr"),
        (got.pr_eig, want.pr_eig, "pr_eig"),
        (got.r90, want.r90, "r90"),
        (got.cond, want.cond, "cond"),
        (got.erank, want.erank, "erank"),
        (got.stable_rank, want.stable_rank, "stable_rank"),
    ] {
        assert_close(g, w, METRIC_REL_TOL, &format!("{what} mean {name}"));
    }
    metrics.len()
}

/// Checks K, Q, W_k and K variants of one layer; returns the number of heads checked.
fn check_layer(layer: &Value, what: &str) -> usize {
    let mut count = check_group(&layer["k_heads"], &layer["k_mean"], &format!("{what} k"));
    let k_pr_mean = layer["k_pr_mean"].as_f64().expect("k_pr_mean");
    assert_close(
        layer["k_mean"]["pr"].as_f64().expect("pr"),
        k_pr_mean,
        METRIC_REL_TOL,
        &format!("{what} k_pr_mean"),
    );
    count += check_group(&layer["q_heads"], &layer["q_mean"], &format!("{what} q"));
    count += check_group(&layer["wk_heads"], &layer["wk_mean"], &format!("{what} wk"));
    if let Some(variants) = layer.get("k_variants").and_then(Value::as_object) {
        for (name, v) in variants {
            count += check_group(
                &v["heads"],
                &v["mean"],
                &format!("{what} k_variants.{name}"),
            );
        }
    }
    count
}

#[test]
fn metrics_from_reference_singular_values() {
    let mut heads = 0;
    for run in RUNS {
        let expected = load_json(&format!("expected/{run}.json"));
        let checkpoints = expected["checkpoints"].as_array().expect("checkpoints");
        assert_eq!(checkpoints.len(), 6, "{run}");
        for ckpt in checkpoints {
            let step = &ckpt["step"];
            for layer in ckpt["layers"].as_array().expect("layers") {
                heads += check_layer(
                    layer,
                    &format!("{run} step {step} layer {}", layer["layer"]),
                );
            }
        }
    }
    // 6 runs × 6 checkpoints × 4 layers × (2 K + 4 Q + 2 W_k + 3·2 K variants).
    assert_eq!(heads, 6 * 6 * 4 * 14);
}

#[test]
fn metrics_from_stories260k_singular_values() {
    let expected = load_json("expected/stories260K.json");
    let layers = expected["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 5);
    let heads: usize = layers
        .iter()
        .map(|l| check_layer(l, &format!("stories260K layer {}", l["layer"])))
        .sum();
    assert_eq!(heads, 5 * (4 + 8 + 4));
}

/// A decoded tensor: shape and values upcast to f32.
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// TEST-ONLY safetensors reader (the app's real one lives in `formats`):
/// u64 LE header length n, JSON header, data offsets relative to 8 + n.
fn read_safetensors(relative: &str) -> HashMap<String, Tensor> {
    let path = format!("{FIXTURES}/{relative}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: HashMap<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).expect("header JSON");
    let data = &bytes[8 + n..];
    let mut tensors = HashMap::new();
    for (name, info) in header.into_iter().filter(|(k, _)| k != "__metadata__") {
        let shape = info["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let offsets: Vec<usize> = info["data_offsets"]
            .as_array()
            .expect("offsets")
            .iter()
            .map(|o| o.as_u64().expect("offset") as usize)
            .collect();
        let raw = &data[offsets[0]..offsets[1]];
        let values = match info["dtype"].as_str().expect("dtype") {
            "F32" => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            "BF16" => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            "F16" => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            _ => continue, // I64 token ids etc.: not needed here
        };
        tensors.insert(
            name,
            Tensor {
                shape,
                data: values,
            },
        );
    }
    tensors
}

/// Compares the σ of `rows` consecutive rows starting at `first_row` of a
/// row-major `[.., cols]` weight to a stored `wk_heads[h]` entry.
fn check_weight_block(weight: &Tensor, first_row: usize, rows: usize, head: &Value, what: &str) {
    let cols = weight.shape[1];
    let block = &weight.data[first_row * cols..(first_row + rows) * cols];
    let got = singular_values_f32(block, rows, cols).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = sv_of(head, what);
    assert_eq!(got.len(), want.len(), "{what}: number of singular values");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(*g, *w, WEIGHT_SV_REL_TOL, &format!("{what}: σ_{i}"));
    }
    let metrics = weight_metrics(&got).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(
        metrics.spectral_norm,
        head["spectral_norm"].as_f64().expect("number"),
        WEIGHT_SV_REL_TOL,
        &format!("{what}: spectral_norm"),
    );
    assert_close(
        metrics.log10_fro2,
        head["log10_fro2"].as_f64().expect("number"),
        WEIGHT_SV_REL_TOL,
        &format!("{what}: log10_fro2"),
    );
}

#[test]
fn wk_spectra_from_checkpoint_weights() {
    const D_K: usize = 16;
    const Q_ROWS: usize = 64;
    let mut blocks = 0;
    for run in RUNS {
        let expected = load_json(&format!("expected/{run}.json"));
        let prefix = if run.starts_with('B') {
            "_orig_mod."
        } else {
            ""
        };
        for ckpt in expected["checkpoints"].as_array().expect("checkpoints") {
            let file = ckpt["file"].as_str().expect("file");
            let tensors = read_safetensors(file);
            for layer in ckpt["layers"].as_array().expect("layers") {
                let l = layer["layer"].as_u64().expect("layer index");
                let name = format!("{prefix}transformer_blocks.{l}.attention.qkvo_proj");
                let weight = tensors
                    .get(&name)
                    .unwrap_or_else(|| panic!("{file}: no {name}"));
                assert_eq!(weight.shape, [192, 64], "{file}: {name}");
                for (h, head) in layer["wk_heads"]
                    .as_array()
                    .expect("wk_heads")
                    .iter()
                    .enumerate()
                {
                    check_weight_block(
                        weight,
                        Q_ROWS + h * D_K,
                        D_K,
                        head,
                        &format!("{file} layer {l} W_k head {h}"),
                    );
                    blocks += 1;
                }
            }
        }
    }
    assert_eq!(blocks, 6 * 6 * 4 * 2);
}

#[test]
fn wk_spectra_from_stories260k_weights() {
    // k_proj [4 kv-heads × 8, 64]; HF's per-head row permutation leaves σ unchanged.
    const HEAD_DIM: usize = 8;
    let expected = load_json("expected/stories260K.json");
    let tensors = read_safetensors("stories260K/model.safetensors");
    let mut blocks = 0;
    for layer in expected["layers"].as_array().expect("layers") {
        let l = layer["layer"].as_u64().expect("layer index");
        let name = format!("model.layers.{l}.self_attn.k_proj.weight");
        let weight = tensors.get(&name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(weight.shape, [32, 64], "{name}");
        for (h, head) in layer["wk_heads"]
            .as_array()
            .expect("wk_heads")
            .iter()
            .enumerate()
        {
            check_weight_block(
                weight,
                h * HEAD_DIM,
                HEAD_DIM,
                head,
                &format!("stories260K layer {l} W_k head {h}"),
            );
            blocks += 1;
        }
    }
    assert_eq!(blocks, 5 * 4);
}
