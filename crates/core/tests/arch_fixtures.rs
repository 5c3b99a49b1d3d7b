//! Architecture recognition on the fixture checkpoints and on synthetic name lists.

use std::collections::BTreeMap;
use std::io::Read;

use rankscope_core::model::arch::{
    recognise, Architecture, Family, Recognition, Rope, WeightLoc, HEADS_UNKNOWN,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];
const TOKENS: [u64; 6] = [0, 20480, 40960, 81920, 163840, 327680];

type Tensors = Vec<(String, Vec<u64>)>;

/// Test-only: the tensor names/shapes and `__metadata__` of a safetensors file (header only).
fn read_header(path: &str) -> (Tensors, BTreeMap<String, String>) {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut len = [0u8; 8];
    file.read_exact(&mut len).unwrap();
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    file.read_exact(&mut header).unwrap();
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).unwrap();
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    for (name, value) in header {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value).unwrap();
        } else {
            let shape = value["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            tensors.push((name, shape));
        }
    }
    (tensors, metadata)
}

fn known(r: Recognition) -> Architecture {
    match r {
        Recognition::Known(arch) => arch,
        Recognition::Unknown { reason, .. } => panic!("not recognised: {reason}"),
    }
}

fn unknown_reason(r: Recognition) -> String {
    match r {
        Recognition::Known(arch) => panic!("unexpectedly recognised: {}", arch.summary()),
        Recognition::Unknown { reason, .. } => reason,
    }
}

fn rows(tensor: &str, start: usize, end: usize) -> WeightLoc {
    WeightLoc::Rows {
        tensor: tensor.to_string(),
        start,
        end,
    }
}

fn ckpt(run: &str, tokens: u64) -> String {
    format!("{FIXTURES}/runs/{run}/ckpt_tokens_{tokens}.safetensors")
}

#[test]
fn every_fixture_checkpoint_is_the_reference_model() {
    for run in RUNS {
        let qk = !matches!(run, "A2" | "B2");
        let prefix = if run.starts_with('B') {
            "_orig_mod."
        } else {
            ""
        };
        for tokens in TOKENS {
            let (tensors, metadata) = read_header(&ckpt(run, tokens));
            let a = known(recognise(&tensors, &metadata, None));
            let ctx = format!("{run} @ {tokens}");
            assert_eq!(a.family, Family::Reference, "{ctx}");
            assert_eq!(
                (
                    a.n_layers,
                    a.d_model,
                    a.n_heads,
                    a.n_kv_heads,
                    a.d_k,
                    a.vocab,
                    a.d_ff
                ),
                (4, 64, 4, 2, 16, 256, 256),
                "{ctx}"
            );
            assert_eq!(a.qk_norm, qk, "{ctx}");
            assert_eq!(a.rope, Rope::InterleavedPairs, "{ctx}");
            assert_eq!(a.rope_theta, 10000.0, "{ctx}");
            assert_eq!(a.norm_eps, f32::EPSILON as f64, "{ctx}");
            assert_eq!(a.source_of_heads, "metadata config", "{ctx}");
            assert!(a.tied_lm_head, "{ctx}");
            assert_eq!(
                a.embedding,
                format!("{prefix}token_embedding.weight"),
                "{ctx}"
            );
            assert_eq!(a.lm_head, a.embedding, "{ctx}");
            assert_eq!(
                a.final_norm.as_deref(),
                Some(format!("{prefix}norm.weight").as_str()),
                "{ctx}"
            );
            assert!(
                a.unused.is_empty() && a.other.is_empty(),
                "{ctx}: {:?}",
                a.unused
            );
            if prefix.is_empty() {
                assert_eq!(a.prefix_removed, None, "{ctx}");
            } else {
                assert_eq!(a.prefix_removed.as_deref(), Some("_orig_mod."), "{ctx}");
            }
            // Every name in the architecture is as stored, so it exists in the file.
            let stored: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            for layer in &a.layers {
                for loc in [&layer.w_q, &layer.w_k, &layer.w_v, &layer.w_o] {
                    assert!(stored.contains(&loc.tensor()), "{ctx}: {}", loc.tensor());
                }
                let names = layer
                    .mlp
                    .iter()
                    .chain(&layer.q_norm)
                    .chain(&layer.k_norm)
                    .chain(&layer.attn_norm)
                    .chain(&layer.mlp_norm);
                for name in names {
                    assert!(stored.contains(&name.as_str()), "{ctx}: {name}");
                }
                assert_eq!(layer.k_norm.is_some(), qk, "{ctx}");
            }
            for l in 0..4 {
                let qkvo = format!("{prefix}transformer_blocks.{l}.attention.qkvo_proj");
                for h in 0..2 {
                    assert_eq!(
                        a.w_k_head(l, h),
                        rows(&qkvo, 64 + 16 * h, 64 + 16 * h + 16),
                        "{ctx}"
                    );
                }
                assert_eq!(a.w_q_head(l, 3), rows(&qkvo, 48, 64), "{ctx}");
                assert_eq!(a.layers[l].w_o, rows(&qkvo, 128, 192), "{ctx}");
                assert_eq!(a.layers[l].w_v, rows(&qkvo, 96, 128), "{ctx}");
            }
            assert_eq!(a.kv_head_of(3), 1);
            assert_eq!(a.kv_head_of(1), 0);
            assert_eq!(a.try_w_k_head(0, 2), None);
            assert_eq!(a.try_w_k_head(4, 0), None);
        }
    }
}

#[test]
fn summary_reads_as_documented() {
    let (tensors, metadata) = read_header(&ckpt("A1", 0));
    let a = known(recognise(&tensors, &metadata, None));
    assert_eq!(
        a.summary(),
        "reference · 4 layers · d_model 64 · 4 heads / 2 kv · d_k 16 · QK-norm · vocab 256 · context 128"
    );
    let (tensors, metadata) = read_header(&ckpt("B2", 0));
    let a = known(recognise(&tensors, &metadata, None));
    assert_eq!(
        a.summary(),
        "reference · 4 layers · d_model 64 · 4 heads / 2 kv · d_k 16 · no QK-norm · vocab 256 · context 128"
    );
}

#[test]
fn without_metadata_no_qk_norm_means_unknown_heads() {
    for run in ["A2", "B2"] {
        let (tensors, _) = read_header(&ckpt(run, 327680));
        let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), None));
        assert!(reason.contains(HEADS_UNKNOWN), "{run}: {reason}");
        assert!(
            reason.contains("n_heads cannot be told from shapes alone"),
            "{run}: {reason}"
        );
    }
}

#[test]
fn without_metadata_heads_come_from_the_k_norm_shape() {
    for run in ["A1", "B1"] {
        let (tensors, _) = read_header(&ckpt(run, 327680));
        let a = known(recognise(&tensors, &BTreeMap::new(), None));
        assert_eq!(
            (a.n_heads, a.n_kv_heads, a.d_k, a.d_ff, a.vocab),
            (4, 2, 16, 256, 256),
            "{run}"
        );
        assert_eq!(a.source_of_heads, "k_norm shape");
        assert!(a.qk_norm);
    }
}

#[test]
fn reference_config_json_is_used_when_metadata_is_absent() {
    let (tensors, metadata) = read_header(&ckpt("A2", 0));
    let config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    let a = known(recognise(&tensors, &BTreeMap::new(), Some(&config)));
    assert_eq!((a.n_heads, a.n_kv_heads, a.d_k), (4, 2, 16));
    assert_eq!(a.source_of_heads, "config.json");
}

#[test]
fn reference_config_that_disagrees_with_shapes_is_unknown_with_both_numbers() {
    let (tensors, metadata) = read_header(&ckpt("A1", 0));
    let mut config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    config["n_kv_heads"] = 4.into();
    let mut bad = metadata.clone();
    bad.insert("config".into(), config.to_string());
    let reason = unknown_reason(recognise(&tensors, &bad, None));
    assert!(
        reason.contains("n_kv_heads 4")
            && reason.contains("[192, 64]")
            && reason.contains("[256, 64]"),
        "{reason}"
    );

    let mut config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    config["n_layers"] = 6.into();
    bad.insert("config".into(), config.to_string());
    let reason = unknown_reason(recognise(&tensors, &bad, None));
    assert!(
        reason.contains("n_layers 6") && reason.contains("gives 4"),
        "{reason}"
    );

    // use_qk_norm false on a checkpoint that has k_norm.
    let mut config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    config["use_qk_norm"] = false.into();
    bad.insert("config".into(), config.to_string());
    let reason = unknown_reason(recognise(&tensors, &bad, None));
    assert!(reason.contains("use_qk_norm false"), "{reason}");
}

#[test]
fn reference_tied_head_stored_as_lm_head_only() {
    let (tensors, metadata) = read_header(&ckpt("B1", 0));
    let renamed: Tensors = tensors
        .into_iter()
        .map(|(n, s)| {
            (
                if n == "_orig_mod.token_embedding.weight" {
                    "_orig_mod.lm_head.weight".into()
                } else {
                    n
                },
                s,
            )
        })
        .collect();
    let a = known(recognise(&renamed, &metadata, None));
    assert!(a.tied_lm_head);
    assert_eq!(a.embedding, "_orig_mod.lm_head.weight");
    assert_eq!(a.lm_head, "_orig_mod.lm_head.weight");
    assert_eq!(a.vocab, 256);
}

#[test]
fn reference_with_both_embedding_and_head_is_untied_unless_config_says_tied() {
    let (mut tensors, metadata) = read_header(&ckpt("A1", 0));
    tensors.push(("lm_head.weight".into(), vec![256, 64]));
    let a = known(recognise(&tensors, &metadata, None));
    assert!(!a.tied_lm_head);
    assert_eq!(a.embedding, "token_embedding.weight");
    assert_eq!(a.lm_head, "lm_head.weight");

    let mut config: serde_json::Value = serde_json::from_str(&metadata["config"]).unwrap();
    config["tie_word_embeddings"] = true.into();
    let mut tied = metadata.clone();
    tied.insert("config".into(), config.to_string());
    assert!(known(recognise(&tensors, &tied, None)).tied_lm_head);

    tensors.pop();
    tensors.push(("lm_head.weight".into(), vec![255, 64]));
    let reason = unknown_reason(recognise(&tensors, &metadata, None));
    assert!(
        reason.contains("lm_head.weight") && reason.contains("[255, 64]"),
        "{reason}"
    );
}

#[test]
fn stories260k_is_llama() {
    let dir = format!("{FIXTURES}/stories260K");
    let (tensors, metadata) = read_header(&format!("{dir}/model.safetensors"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/config.json")).unwrap())
            .unwrap();
    let a = known(recognise(&tensors, &metadata, Some(&config)));
    assert_eq!(a.family, Family::Llama);
    assert_eq!(
        (
            a.n_layers,
            a.d_model,
            a.n_heads,
            a.n_kv_heads,
            a.d_k,
            a.vocab,
            a.d_ff
        ),
        (5, 64, 8, 4, 8, 512, 172)
    );
    assert!(!a.qk_norm);
    assert!(a.tied_lm_head);
    assert_eq!(a.lm_head, "model.embed_tokens.weight");
    assert_eq!(a.rope, Rope::RotateHalf);
    assert_eq!((a.rope_theta, a.norm_eps), (10000.0, 1e-5));
    assert_eq!(a.context, Some(512), "max_position_embeddings");
    assert_eq!(a.source_of_heads, "config.json");
    assert_eq!(a.prefix_removed, None);
    assert!(a.unused.is_empty());
    for l in 0..5 {
        let k = format!("model.layers.{l}.self_attn.k_proj.weight");
        for h in 0..4 {
            assert_eq!(a.w_k_head(l, h), rows(&k, 8 * h, 8 * h + 8));
        }
        assert_eq!(
            a.w_q_head(l, 7),
            rows(&format!("model.layers.{l}.self_attn.q_proj.weight"), 56, 64)
        );
        assert_eq!(a.layers[l].mlp.len(), 3);
    }
    assert_eq!(a.kv_head_of(7), 3);
    assert_eq!(a.kv_head_of(2), 1);

    // Without its config, stories260K (no q/k norm) cannot be told.
    let reason = unknown_reason(recognise(&tensors, &metadata, None));
    assert!(reason.contains(HEADS_UNKNOWN), "{reason}");
}

// ---------- synthetic name lists ----------

fn t(name: &str, shape: &[u64]) -> (String, Vec<u64>) {
    (name.to_string(), shape.to_vec())
}

/// A Qwen3-like model: d 32, 4 heads of 16 (q rows 64 ≠ d), 2 kv-heads, q/k norm, untied.
fn qwen3_tensors(layers: usize) -> Tensors {
    let mut v = vec![
        t("model.embed_tokens.weight", &[100, 32]),
        t("model.norm.weight", &[32]),
        t("lm_head.weight", &[100, 32]),
    ];
    for l in 0..layers {
        let p = format!("model.layers.{l}.");
        for (n, s) in [
            ("self_attn.q_proj.weight", &[64u64, 32][..]),
            ("self_attn.k_proj.weight", &[32, 32]),
            ("self_attn.v_proj.weight", &[32, 32]),
            ("self_attn.o_proj.weight", &[32, 64]),
            ("self_attn.q_norm.weight", &[16]),
            ("self_attn.k_norm.weight", &[16]),
            ("mlp.gate_proj.weight", &[96, 32]),
            ("mlp.up_proj.weight", &[96, 32]),
            ("mlp.down_proj.weight", &[32, 96]),
            ("input_layernorm.weight", &[32]),
            ("post_attention_layernorm.weight", &[32]),
        ] {
            v.push(t(&format!("{p}{n}"), s));
        }
    }
    v
}

fn qwen3_config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "qwen3", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "num_hidden_layers": 3, "intermediate_size": 96, "vocab_size": 100,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false
    })
}

#[test]
fn qwen3_like_with_config() {
    let a = known(recognise(
        &qwen3_tensors(3),
        &BTreeMap::new(),
        Some(&qwen3_config()),
    ));
    assert_eq!(a.family, Family::Llama);
    assert_eq!(
        (
            a.n_layers,
            a.d_model,
            a.n_heads,
            a.n_kv_heads,
            a.d_k,
            a.d_ff,
            a.vocab
        ),
        (3, 32, 4, 2, 16, 96, 100)
    );
    assert!(a.qk_norm && !a.tied_lm_head);
    assert_eq!(a.lm_head, "lm_head.weight");
    assert_eq!((a.rope_theta, a.norm_eps), (1e6, 1e-6));
    assert_eq!(
        a.layers[2].k_norm.as_deref(),
        Some("model.layers.2.self_attn.k_norm.weight")
    );
    assert_eq!(
        a.w_k_head(1, 1),
        rows("model.layers.1.self_attn.k_proj.weight", 16, 32)
    );
    assert_eq!(
        a.w_q_head(1, 3),
        rows("model.layers.1.self_attn.q_proj.weight", 48, 64)
    );
    assert_eq!(a.kv_head_of(1), 0);
    assert_eq!(a.kv_head_of(2), 1);
}

#[test]
fn qwen3_like_without_config_uses_q_norm_shape() {
    let a = known(recognise(&qwen3_tensors(2), &BTreeMap::new(), None));
    assert_eq!((a.n_heads, a.n_kv_heads, a.d_k), (4, 2, 16));
    assert_eq!(a.source_of_heads, "q_norm shape");
}

#[test]
fn ddp_and_compile_prefixes_are_removed_and_kept_in_names() {
    let tensors: Tensors = qwen3_tensors(3)
        .into_iter()
        .map(|(n, s)| (format!("module._orig_mod.{n}"), s))
        .collect();
    let a = known(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert_eq!(a.prefix_removed.as_deref(), Some("module._orig_mod."));
    assert_eq!(a.embedding, "module._orig_mod.model.embed_tokens.weight");
    assert_eq!(
        a.w_k_head(0, 0).tensor(),
        "module._orig_mod.model.layers.0.self_attn.k_proj.weight"
    );
}

#[test]
fn missing_layer_is_named() {
    let tensors: Tensors = qwen3_tensors(4)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("model.layers.2."))
        .collect();
    let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), None));
    assert!(reason.contains("layer 2 is missing"), "{reason}");

    let (tensors, metadata) = read_header(&ckpt("B1", 0));
    let tensors: Tensors = tensors
        .into_iter()
        .filter(|(n, _)| !n.contains("transformer_blocks.2."))
        .collect();
    let reason = unknown_reason(recognise(&tensors, &metadata, None));
    assert!(
        reason.contains("layer 2 is missing")
            && reason.contains("_orig_mod.transformer_blocks.2.*"),
        "{reason}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let tensors: Tensors = qwen3_tensors(3)
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight")
        .collect();
    let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert!(
        reason.contains("`model.layers.1.mlp.up_proj.weight` is missing")
            && reason.contains("[96, 32]"),
        "{reason}"
    );
}

#[test]
fn misshapen_k_proj_is_named_with_expected_and_found() {
    let tensors: Tensors = qwen3_tensors(3)
        .into_iter()
        .map(|(n, s)| {
            if n == "model.layers.2.self_attn.k_proj.weight" {
                (n, vec![48, 32])
            } else {
                (n, s)
            }
        })
        .collect();
    let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert!(
        reason.contains("model.layers.2.self_attn.k_proj.weight")
            && reason.contains("[48, 32]")
            && reason.contains("expected [32, 32]"),
        "{reason}"
    );
    // Layer 0's k_proj disagreeing with the config names both numbers.
    let tensors: Tensors = qwen3_tensors(3)
        .into_iter()
        .map(|(n, s)| {
            if n == "model.layers.0.self_attn.k_proj.weight" {
                (n, vec![48, 32])
            } else {
                (n, s)
            }
        })
        .collect();
    let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert!(
        reason.contains("= 32 key rows") && reason.contains("[48, 32]"),
        "{reason}"
    );
}

#[test]
fn extra_tensor_inside_a_block_is_not_ignored() {
    let mut tensors = qwen3_tensors(3);
    tensors.push(t("model.layers.1.pre_feedforward_layernorm.weight", &[32]));
    let reason = unknown_reason(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert!(
        reason.contains("model.layers.1.pre_feedforward_layernorm.weight"),
        "{reason}"
    );
    // Projection biases (Qwen2) are allowed and reported with the layer.
    let mut tensors = qwen3_tensors(3);
    tensors.push(t("model.layers.1.self_attn.k_proj.bias", &[32]));
    let a = known(recognise(&tensors, &BTreeMap::new(), Some(&qwen3_config())));
    assert_eq!(a.layers[1].other, ["model.layers.1.self_attn.k_proj.bias"]);
}

fn gpt2_tensors(stem: &str, layers: usize) -> Tensors {
    let d = 48u64;
    let mut v = vec![
        t(&format!("{stem}wte.weight"), &[300, d]),
        t(&format!("{stem}wpe.weight"), &[64, d]),
        t(&format!("{stem}ln_f.weight"), &[d]),
        t(&format!("{stem}ln_f.bias"), &[d]),
    ];
    for l in 0..layers {
        let p = format!("{stem}h.{l}.");
        for (n, s) in [
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("attn.bias", vec![1, 1, 64, 64]),
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, 4 * d]),
            ("mlp.c_fc.bias", vec![4 * d]),
            ("mlp.c_proj.weight", vec![4 * d, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            v.push((format!("{p}{n}"), s));
        }
    }
    v
}

fn gpt2_config() -> serde_json::Value {
    serde_json::json!({ "model_type": "gpt2", "n_embd": 48, "n_head": 3, "n_layer": 2, "vocab_size": 300, "n_positions": 64, "n_inner": null, "layer_norm_epsilon": 1e-5 })
}

#[test]
fn gpt2_with_config_with_and_without_transformer_prefix() {
    for stem in ["", "transformer."] {
        let a = known(recognise(
            &gpt2_tensors(stem, 2),
            &BTreeMap::new(),
            Some(&gpt2_config()),
        ));
        assert_eq!(a.family, Family::Gpt2);
        assert_eq!(
            (
                a.n_layers,
                a.d_model,
                a.n_heads,
                a.n_kv_heads,
                a.d_k,
                a.d_ff,
                a.vocab
            ),
            (2, 48, 3, 3, 16, 192, 300)
        );
        assert_eq!((a.rope, a.qk_norm, a.norm_eps), (Rope::None, false, 1e-5));
        assert!(a.tied_lm_head);
        assert_eq!(a.embedding, format!("{stem}wte.weight"));
        assert_eq!(a.position_embedding, Some(format!("{stem}wpe.weight")));
        assert_eq!(a.context, Some(64), "the rows of wpe");
        assert_eq!(a.other, [format!("{stem}ln_f.bias")]);
        assert!(a.unused.is_empty(), "{:?}", a.unused);
        let c_attn = format!("{stem}h.1.attn.c_attn.weight");
        assert_eq!(
            a.w_k_head(1, 2),
            WeightLoc::Cols {
                tensor: c_attn.clone(),
                start: 48 + 32,
                end: 48 + 48
            }
        );
        assert_eq!(
            a.w_q_head(1, 0),
            WeightLoc::Cols {
                tensor: c_attn.clone(),
                start: 0,
                end: 16
            }
        );
        assert_eq!(
            a.layers[1].w_v,
            WeightLoc::Cols {
                tensor: c_attn,
                start: 96,
                end: 144
            }
        );
        assert_eq!(a.kv_head_of(2), 2);
        assert!(a.layers[0]
            .other
            .contains(&format!("{stem}h.0.attn.c_attn.bias")));
    }
}

#[test]
fn gpt2_without_config_is_unknown() {
    let reason = unknown_reason(recognise(
        &gpt2_tensors("transformer.", 2),
        &BTreeMap::new(),
        None,
    ));
    assert!(reason.contains(HEADS_UNKNOWN), "{reason}");
}

#[test]
fn unrelated_names_are_unknown_and_listed() {
    let tensors = vec![
        t("encoder.conv1.weight", &[16, 3, 3, 3]),
        t("fc.bias", &[10]),
        t("bn.running_mean", &[16]),
    ];
    match recognise(&tensors, &BTreeMap::new(), None) {
        Recognition::Unknown {
            reason,
            tensors: listed,
        } => {
            assert!(reason.starts_with("no known layout: "), "{reason}");
            assert!(
                reason.contains("encoder.conv1.weight") && reason.contains("fc.bias"),
                "{reason}"
            );
            assert_eq!(listed, tensors);
        }
        Recognition::Known(a) => panic!("recognised {}", a.summary()),
    }
    let reason = unknown_reason(recognise(&[], &BTreeMap::new(), None));
    assert!(reason.contains("no tensors"), "{reason}");
}

#[test]
fn odd_input_does_not_panic() {
    // Scalars, huge dims, duplicate names after prefix removal, nonsense configs.
    let cases: Vec<Tensors> = vec![
        vec![
            t("transformer_blocks.0.attention.qkvo_proj", &[]),
            t("token_embedding.weight", &[5]),
        ],
        vec![
            t("transformer_blocks.0.attention.qkvo_proj", &[u64::MAX, 64]),
            t("token_embedding.weight", &[256, 64]),
        ],
        vec![
            t("transformer_blocks.0.attention.qkvo_proj", &[100, 64]),
            t("token_embedding.weight", &[256, 64]),
        ],
        vec![t("transformer_blocks.x.attention.qkvo_proj", &[192, 64])],
        vec![
            t("model.layers.0.self_attn.q_proj.weight", &[64, 64]),
            t(
                "_orig_mod.model.layers.0.self_attn.q_proj.weight",
                &[64, 64],
            ),
        ],
        vec![
            t("h.0.attn.c_attn.weight", &[0, 0]),
            t("wte.weight", &[0, 0]),
        ],
    ];
    let configs = [
        None,
        Some(serde_json::json!({ "n_heads": 0, "n_head": 0, "num_attention_heads": 0 })),
        Some(
            serde_json::json!({ "n_heads": u64::MAX, "d_k": u64::MAX, "n_head": 7, "head_dim": u64::MAX, "num_attention_heads": u64::MAX }),
        ),
        Some(serde_json::json!({ "n_heads": "four", "num_attention_heads": -1, "n_head": 1.5 })),
        Some(serde_json::json!([1, 2])),
    ];
    for tensors in &cases {
        for config in &configs {
            let r = recognise(tensors, &BTreeMap::new(), config.as_ref());
            assert!(
                matches!(r, Recognition::Unknown { .. }),
                "{tensors:?} {config:?}: {r:?}"
            );
        }
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("config".to_string(), "{not json".to_string());
    let (tensors, _) = read_header(&ckpt("A1", 0));
    assert_eq!(
        known(recognise(&tensors, &metadata, None)).source_of_heads,
        "k_norm shape"
    );
}
