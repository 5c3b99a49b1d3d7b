//! The forward pass on more model families against Hugging Face `transformers`
//! (`tests/data/families/<case>/`, made by `scripts/reference/make_family_cases.py`):
//! GPT-2, Qwen2 (q/k/v biases), Qwen3 (per-head q_norm/k_norm, head_dim ≠ d_model/heads),
//! Mistral (sliding window 6 < T = 16) and a Llama base model saved without `model.`.
//! Weights are BF16 as stored; both sides compute in f32 from the upcast weights.
//!
//! Tolerances (measured worst: logits 1.3e-6, K/Q 6.8e-7): logits 2e-5 absolute (max |logit| ≈ 2.8
//! here; the fixtures README allows 1e-4); K and Q per head 1e-5 × max(1, max |entry| of that head).
//! Each case prints its worst errors.

use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::{read_header, Header};
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Architecture, Family, Recognition, RopeScaling};
use rankscope_core::model::forward::{ForwardError, ModelWeights};
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/families");
const LOGIT_TOL: f64 = 2e-5;
const KQ_TOL: f64 = 1e-5;

fn config(case: &str) -> Value {
    let path = format!("{DATA}/{case}/config.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn open(path: &str) -> (FileSource, Header) {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = read_header(&src).unwrap_or_else(|e| panic!("{path}: {e}"));
    (src, header)
}

fn recognition(case: &str, config: &Value) -> Recognition {
    let (_, header) = open(&format!("{DATA}/{case}/model.safetensors"));
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    recognise(&tensors, &header.metadata, Some(config))
}

fn arch_of(case: &str, config: &Value) -> Architecture {
    match recognition(case, config) {
        Recognition::Known(arch) => arch,
        Recognition::Unknown { reason, .. } => panic!("{case} not recognised: {reason}"),
    }
}

fn load(case: &str, arch: &Architecture) -> Result<ModelWeights, ForwardError> {
    let (src, header) = open(&format!("{DATA}/{case}/model.safetensors"));
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        arch,
        &mut |_| {},
    ))
}

/// The expected tensors of a case: (data as f32, shape) by name, and the token batch.
struct Expected {
    src: FileSource,
    header: Header,
    batch: TokenBatch,
}

impl Expected {
    fn open(case: &str) -> Self {
        let path = format!("{DATA}/{case}/expected.safetensors");
        let (src, header) = open(&path);
        let batch = parse_tokens_safetensors(&src).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self { src, header, batch }
    }

    fn tensor(&self, name: &str) -> Vec<f32> {
        block_on(Shards::single(&self.header, &self.src).read_tensor_f32(name))
            .unwrap_or_else(|e| panic!("expected tensor {name}: {e}"))
            .0
    }
}

/// Largest |a − b| over two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .fold(0.0, f64::max)
}

/// Runs a case: logits of every sequence, K (and raw K with a key norm) per kv-head and Q per
/// head, each against transformers. Returns the worst logit error.
fn check_case(case: &str, arch: &Architecture) -> f64 {
    let model = load(case, arch).unwrap_or_else(|e| panic!("{case}: load: {e}"));
    let expected = Expected::open(case);
    let batch = &expected.batch;
    let want_logits = expected.tensor("logits");
    let per_seq = batch.seq_len * arch.vocab;
    assert_eq!(
        want_logits.len(),
        batch.batch * per_seq,
        "{case}: logits shape"
    );
    let mut worst_logit = 0.0f64;
    for b in 0..batch.batch {
        let got = model
            .forward(
                batch.row(b),
                &mut rankscope_core::model::forward::NoProbe,
                None,
            )
            .unwrap_or_else(|e| panic!("{case}: forward: {e}"));
        let err = max_abs_diff(&got.data, &want_logits[b * per_seq..(b + 1) * per_seq]);
        assert!(
            err <= LOGIT_TOL,
            "{case}: sequence {b} logits differ by {err:e} > {LOGIT_TOL:e}"
        );
        worst_logit = worst_logit.max(err);
    }

    let keys = model
        .collect_keys(batch, None)
        .unwrap_or_else(|e| panic!("{case}: keys: {e}"));
    let mut worst_kq = 0.0f64;
    let mut check = |what: String, got: &[f32], want: &[f32]| {
        let scale = want.iter().fold(1.0f64, |m, &v| m.max(f64::from(v).abs()));
        let err = max_abs_diff(got, want) / scale;
        assert!(
            err <= KQ_TOL,
            "{case}: {what} differs by {err:e} (relative to max |entry|)"
        );
        worst_kq = worst_kq.max(err);
    };
    for l in 0..arch.n_layers {
        for h in 0..arch.n_kv_heads {
            check(
                format!("K layer {l} kv-head {h}"),
                keys.keys(l, h),
                &expected.tensor(&format!("k.{l}.{h}")),
            );
            if arch.qk_norm {
                check(
                    format!("raw K layer {l} kv-head {h}"),
                    keys.raw_keys(l, h),
                    &expected.tensor(&format!("k_raw.{l}.{h}")),
                );
            }
        }
        for h in 0..arch.n_heads {
            check(
                format!("Q layer {l} head {h}"),
                keys.queries(l, h),
                &expected.tensor(&format!("q.{l}.{h}")),
            );
        }
    }
    println!("{case}: worst |Δ logit| {worst_logit:e}, worst K/Q error {worst_kq:e} (relative to max |entry|)");
    worst_logit
}

#[test]
fn gpt2_matches_transformers() {
    let cfg = config("gpt2");
    let arch = arch_of("gpt2", &cfg);
    assert_eq!(arch.family, Family::Gpt2);
    assert!(arch.no_forward_pass.is_none(), "{:?}", arch.no_forward_pass);
    assert!(arch
        .layers
        .iter()
        .all(|l| l.biases.q.is_some() && l.biases.attn_norm.is_some()));
    check_case("gpt2", &arch);
}

#[test]
fn qwen2_with_qkv_biases_matches_transformers() {
    let cfg = config("qwen2");
    let arch = arch_of("qwen2", &cfg);
    assert_eq!(
        (arch.family, arch.n_heads, arch.n_kv_heads),
        (Family::Llama, 4, 2)
    );
    let b = &arch.layers[0].biases;
    assert!(b.q.is_some() && b.k.is_some() && b.v.is_some() && b.o.is_none());
    assert!(!arch.tied_lm_head);
    check_case("qwen2", &arch);
}

#[test]
fn qwen3_with_per_head_qk_norm_matches_transformers() {
    let cfg = config("qwen3");
    let arch = arch_of("qwen3", &cfg);
    assert!(arch.qk_norm);
    assert_eq!(
        (arch.d_k, arch.d_model),
        (32, 64),
        "head_dim from the config"
    );
    check_case("qwen3", &arch);
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    let cfg = config("mistral");
    let arch = arch_of("mistral", &cfg);
    assert!(arch.layers.iter().all(|l| l.window == Some(6)));
    check_case("mistral", &arch);

    // The window matters at T = 16: without it the logits are not transformers'.
    let mut full = cfg.clone();
    full["sliding_window"] = Value::Null;
    let arch = arch_of("mistral", &full);
    let model = load("mistral", &arch).expect("load");
    let expected = Expected::open("mistral");
    let got = model
        .forward(
            expected.batch.row(0),
            &mut rankscope_core::model::forward::NoProbe,
            None,
        )
        .expect("forward");
    let want = expected.tensor("logits");
    let err = max_abs_diff(&got.data, &want[..got.data.len()]);
    assert!(
        err > 1e-2,
        "without the window the logits still match ({err:e})"
    );
}

#[test]
fn llama_base_model_without_model_prefix_matches_transformers() {
    let cfg = config("llama_noprefix");
    let arch = arch_of("llama_noprefix", &cfg);
    assert_eq!(arch.family, Family::Llama);
    assert_eq!(arch.embedding, "embed_tokens.weight");
    assert!(arch.tied_lm_head && arch.layers[0].w_q.tensor().starts_with("layers.0."));
    check_case("llama_noprefix", &arch);
}

#[test]
fn a_setting_the_pass_lacks_is_named_in_the_summary_and_refused_when_loaded() {
    let mut cfg = config("llama_noprefix");
    cfg["rope_parameters"] = serde_json::json!({
        "rope_type": "longrope", "rope_theta": 10000.0, "factor": 4.0,
        "short_factor": vec![1.0; 8], "long_factor": vec![2.0; 8],
        "original_max_position_embeddings": 16
    });
    let arch = arch_of("llama_noprefix", &cfg);
    let summary = arch.summary();
    assert!(
        summary.contains("no forward pass: config.json asks for RoPE scaling `longrope`"),
        "{summary}"
    );
    match load("llama_noprefix", &arch) {
        Err(e @ ForwardError::Unsupported { .. }) => {
            assert!(e.to_string().contains("longrope"), "{e}")
        }
        other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
    }

    let mut cfg = config("gpt2");
    cfg["activation_function"] = Value::String("quick_gelu".into());
    let arch = arch_of("gpt2", &cfg);
    assert!(
        arch.summary().contains(
            "no forward pass: config.json activation_function `quick_gelu` has no kernel"
        ),
        "{}",
        arch.summary()
    );
}

#[test]
fn gpt2_refuses_sequences_longer_than_its_positions() {
    let arch = arch_of("gpt2", &config("gpt2"));
    let model = load("gpt2", &arch).expect("load");
    let ids = vec![1u32; 33]; // n_positions 32
    match model.forward(&ids, &mut rankscope_core::model::forward::NoProbe, None) {
        Err(ForwardError::TooManyPositions { len: 33, max: 32 }) => {}
        other => panic!("expected TooManyPositions, got {:?}", other.map(|_| ())),
    }
}

/// The inventory of a folder's `model.safetensors` and `config.json`: the checkpoint's entry.
fn inventory_entry(dir: &std::path::Path) -> rankscope_core::inventory::FileEntry {
    use rankscope_core::inventory::{inspect_file, Inventory};
    let entries = ["model.safetensors", "config.json"]
        .iter()
        .map(|name| {
            let src = FileSource::open(dir.join(name)).expect("open");
            block_on(inspect_file(&format!("case/{name}"), &src, &mut |_| {}))
        })
        .collect();
    let inv = Inventory::link(entries);
    inv.files
        .into_iter()
        .find(|f| f.path == "case/model.safetensors")
        .expect("checkpoint entry")
}

#[test]
fn the_inventory_names_the_family_and_says_when_there_is_no_forward_pass() {
    use rankscope_core::inventory::Status;
    let entry = inventory_entry(std::path::Path::new(&format!("{DATA}/qwen3")));
    let summary = entry.architecture.clone().unwrap_or_default();
    assert!(
        summary.starts_with("llama · 2 layers · d_model 64 · 4 heads / 2 kv · d_k 32 · QK-norm"),
        "{summary}"
    );
    assert!(!summary.contains("no forward pass"), "{summary}");

    // The same weights with a config asking for llama3 RoPE scaling.
    let dir = std::env::temp_dir().join(format!("rankscope-family-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(
        format!("{DATA}/llama_noprefix/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .expect("copy");
    let mut cfg = config("llama_noprefix");
    cfg["rope_parameters"]["rope_type"] = Value::String("longrope".into());
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("write config");
    let entry = inventory_entry(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let summary = entry.architecture.clone().unwrap_or_default();
    assert!(
        summary.contains("· no forward pass: config.json asks for RoPE scaling `longrope`"),
        "{summary}"
    );
    assert!(
        entry.notes.iter().any(|n| n.level == Status::Warning
            && n.text.contains("the forward pass cannot run it")
            && n.text.contains("weight spectra only")),
        "{:?}",
        entry.notes.iter().map(|n| &n.text).collect::<Vec<_>>()
    );
}

/// Which layers get a window follows transformers 5's rules per model type.
#[test]
fn sliding_windows_follow_the_config_as_transformers_reads_it() {
    let windows = |edit: &dyn Fn(&mut Value)| {
        let mut cfg = config("qwen2");
        edit(&mut cfg);
        arch_of("qwen2", &cfg)
            .layers
            .iter()
            .map(|l| l.window)
            .collect::<Vec<_>>()
    };
    // As saved: use_sliding_window false, layer_types all full.
    assert_eq!(windows(&|_| {}), [None, None]);
    // Qwen2 without layer_types: windows from max_window_layers on.
    assert_eq!(
        windows(&|c| {
            c.as_object_mut().unwrap().remove("layer_types");
            c["use_sliding_window"] = Value::Bool(true);
            c["sliding_window"] = 4.into();
            c["max_window_layers"] = 1.into();
        }),
        [None, Some(4)]
    );
    // layer_types decides where given.
    assert_eq!(
        windows(&|c| {
            c["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
            c["sliding_window"] = 5.into();
        }),
        [Some(5), None]
    );
    // LlamaModel has no window whatever the config carries; MistralModel ignores layer_types.
    assert_eq!(
        windows(&|c| {
            c["model_type"] = "llama".into();
            c["sliding_window"] = 4.into();
            c["layer_types"] = serde_json::json!(["sliding_attention", "sliding_attention"]);
        }),
        [None, None]
    );
    assert_eq!(
        windows(&|c| {
            c["model_type"] = "mistral".into();
            c["sliding_window"] = 3.into();
        }),
        [Some(3), Some(3)]
    );
    // A sliding layer without a size is an error that names the field.
    let mut cfg = config("qwen2");
    cfg["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
    match recognition("qwen2", &cfg) {
        Recognition::Unknown { reason, .. } => {
            assert!(reason.contains("no sliding_window size"), "{reason}")
        }
        Recognition::Known(_) => panic!("recognised without a window size"),
    }
}

/// Logits of sequence 0 of `case` from `arch`: what a changed setting is measured by.
fn first_logits(case: &str, arch: &Architecture, len: usize) -> Vec<f32> {
    let model = load(case, arch).expect("load");
    let expected = Expected::open(case);
    model
        .forward(
            &expected.batch.row(0)[..len],
            &mut rankscope_core::model::forward::NoProbe,
            None,
        )
        .expect("forward")
        .data
}

/// A RoPE-scaling case matches transformers, and the scaling matters: the same weights
/// without it give other logits.
fn check_rope_case(case: &str, want: RopeScaling) {
    let arch = arch_of(case, &config(case));
    assert_eq!(arch.rope_scaling, want, "{case}");
    assert!(arch.no_forward_pass.is_none(), "{:?}", arch.no_forward_pass);
    assert!(
        arch.summary()
            .contains(&format!("RoPE scaling {}", want.label())),
        "{}",
        arch.summary()
    );
    check_case(case, &arch);

    let expected = Expected::open(case);
    let t = expected.batch.seq_len;
    let mut plain = arch.clone();
    plain.rope_scaling = RopeScaling::None;
    let err = max_abs_diff(
        &first_logits(case, &plain, t),
        &expected.tensor("logits")[..t * arch.vocab],
    );
    assert!(
        err > 1e-3,
        "{case}: without the scaling the logits still match ({err:e})"
    );
}

#[test]
fn rope_scaling_linear_from_an_old_style_config_matches_transformers() {
    // config.json has `rope_scaling: {"type": "linear", ...}` and a top-level rope_theta.
    let cfg = config("llama_rope_linear");
    assert!(cfg.get("rope_parameters").is_none() && cfg["rope_scaling"]["type"] == "linear");
    check_rope_case("llama_rope_linear", RopeScaling::Linear { factor: 4.0 });
}

#[test]
fn rope_scaling_dynamic_matches_transformers_past_and_within_the_trained_length() {
    let case = "llama_rope_dynamic";
    let want = RopeScaling::Dynamic {
        factor: 2.0,
        max_positions: 8,
    };
    check_rope_case(case, want);
    // Within max_position_embeddings (8 tokens) dynamic scaling is a no-op: transformers'
    // logits of the first 8 tokens alone, with and without the scaling.
    let expected = Expected::open(case);
    let short = expected.tensor("logits_short");
    let arch = arch_of(case, &config(case));
    let mut plain = arch.clone();
    plain.rope_scaling = RopeScaling::None;
    let per_seq = 8 * arch.vocab;
    for a in [&arch, &plain] {
        let err = max_abs_diff(&first_logits(case, a, 8), &short[..per_seq]);
        assert!(err <= LOGIT_TOL, "{case}: short logits differ by {err:e}");
    }
}

#[test]
fn rope_scaling_llama3_matches_transformers_in_all_three_bands() {
    check_rope_case(
        "llama_rope_llama3",
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_positions: 64,
        },
    );
}

#[test]
fn rope_scaling_yarn_matches_transformers() {
    check_rope_case(
        "llama_rope_yarn",
        RopeScaling::Yarn {
            factor: 4.0,
            original_max_positions: 2048,
            beta_fast: 32.0,
            beta_slow: 1.0,
            truncate: true,
            attention_factor: 0.1 * 4f64.ln() + 1.0,
        },
    );
}

/// Parameters a scaling needs but the config lacks are named; the weights stay readable.
#[test]
fn rope_scaling_with_missing_parameters_says_which() {
    let mut cfg = config("llama_rope_llama3");
    cfg["rope_parameters"]
        .as_object_mut()
        .unwrap()
        .remove("low_freq_factor");
    let arch = arch_of("llama_rope_llama3", &cfg);
    assert_eq!(
        arch.no_forward_pass.as_deref(),
        Some("config.json RoPE scaling `llama3` lacks `low_freq_factor`")
    );
    let mut cfg = config("llama_rope_dynamic");
    cfg.as_object_mut()
        .unwrap()
        .remove("max_position_embeddings");
    let arch = arch_of("llama_rope_dynamic", &cfg);
    assert_eq!(
        arch.no_forward_pass.as_deref(),
        Some("config.json RoPE scaling `dynamic` needs max_position_embeddings > 0")
    );
}

/// Meta's original layout (`consolidated.00.pth` + `params.json`) of a transformers Llama:
/// the inventory reads params.json as its config, and the pass, run on Meta's weights with
/// interleaved-pair RoPE, gives transformers' logits and loss. K and Q per head come out in
/// Meta's coordinates (see `model/arch/meta.rs`): transformers' columns permuted within the
/// head, so equal after un-permuting, and with the same singular values as they are.
#[test]
fn meta_consolidated_pth_with_params_json_matches_transformers() {
    use rankscope_core::analysis::spectrum::singular_values_f32;
    use rankscope_core::formats::pytorch::read_checkpoint;
    use rankscope_core::inventory::{inspect_file, FileKind, Inventory, Status};
    let case = "llama_meta";
    let dir = format!("{DATA}/{case}");
    let entries = ["consolidated.00.pth", "params.json"]
        .iter()
        .map(|name| {
            let src = FileSource::open(format!("{dir}/{name}")).expect("open");
            block_on(inspect_file(&format!("case/{name}"), &src, &mut |_| {}))
        })
        .collect();
    let inv = Inventory::link(entries);
    let params = inv
        .files
        .iter()
        .find(|f| f.path == "case/params.json")
        .unwrap();
    assert_eq!(params.kind, FileKind::ModelConfig);
    assert_eq!(
        params.detail.as_deref(),
        Some("Meta Llama params (dim, n_layers, n_heads)")
    );
    let ckpt = inv
        .files
        .iter()
        .find(|f| f.path == "case/consolidated.00.pth")
        .unwrap();
    assert!(
        !ckpt
            .notes
            .iter()
            .any(|n| n.level != Status::Ok && n.text.contains("architecture")),
        "{:?}",
        ckpt.notes.iter().map(|n| &n.text).collect::<Vec<_>>()
    );
    let arch = match &ckpt.recognition {
        Some(Recognition::Known(arch)) => arch.clone(),
        other => panic!("not recognised: {other:?}"),
    };
    assert_eq!(arch.family, Family::MetaLlama);
    assert_eq!(
        (
            arch.n_heads,
            arch.n_kv_heads,
            arch.d_k,
            arch.d_ff,
            arch.vocab
        ),
        (4, 2, 16, 128, 128),
        "d_ff from multiple_of 16 and ffn_dim_multiplier 0.75"
    );
    assert_eq!((arch.rope_theta, arch.norm_eps), (500000.0, 1e-5));
    assert_eq!(
        arch.rope_scaling,
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_positions: 8192
        },
        "use_scaled_rope"
    );
    assert_eq!(arch.unused, ["rope.freqs"]);
    assert!(
        arch.summary().starts_with("meta-llama · 2 layers"),
        "{}",
        arch.summary()
    );

    let path = format!("{dir}/consolidated.00.pth");
    let src = FileSource::open(&path).expect("open");
    let pt = block_on(read_checkpoint(&src)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let model = block_on(ModelWeights::load(
        &Shards::single(&pt.header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load");
    let expected = Expected::open(case);
    let batch = &expected.batch;
    let want_logits = expected.tensor("logits");
    let per_seq = batch.seq_len * arch.vocab;
    let mut worst = 0.0f64;
    for b in 0..batch.batch {
        let got = model
            .forward(
                batch.row(b),
                &mut rankscope_core::model::forward::NoProbe,
                None,
            )
            .expect("forward");
        worst = worst.max(max_abs_diff(
            &got.data,
            &want_logits[b * per_seq..(b + 1) * per_seq],
        ));
    }
    assert!(worst <= LOGIT_TOL, "logits differ by {worst:e}");
    let loss = model.mean_cross_entropy(batch, None).expect("loss");
    let want_loss = f64::from(expected.tensor("loss")[0]);
    assert!(
        (loss - want_loss).abs() <= 1e-5,
        "loss {loss} vs transformers {want_loss}"
    );

    // Meta column 2i = HF column i, 2i+1 = HF column d_k/2 + i.
    let d_k = arch.d_k;
    let to_hf = |meta: &[f32]| -> Vec<f32> {
        let mut hf = vec![0.0; meta.len()];
        for (m, h) in meta.chunks_exact(d_k).zip(hf.chunks_exact_mut(d_k)) {
            for i in 0..d_k / 2 {
                h[i] = m[2 * i];
                h[d_k / 2 + i] = m[2 * i + 1];
            }
        }
        hf
    };
    let keys = model.collect_keys(batch, None).expect("keys");
    let rows = batch.batch * batch.seq_len;
    let mut worst_k = 0.0f64;
    let mut worst_sv = 0.0f64;
    for l in 0..arch.n_layers {
        for h in 0..arch.n_kv_heads {
            let want = expected.tensor(&format!("k.{l}.{h}"));
            let scale = want.iter().fold(1.0f64, |m, &v| m.max(f64::from(v).abs()));
            worst_k = worst_k.max(max_abs_diff(&to_hf(keys.keys(l, h)), &want) / scale);
            let got_sv = singular_values_f32(keys.keys(l, h), rows, d_k).expect("svd");
            let want_sv = singular_values_f32(&want, rows, d_k).expect("svd");
            for (g, w) in got_sv.iter().zip(&want_sv) {
                worst_sv = worst_sv.max((g - w).abs() / want_sv[0]);
            }
        }
        for h in 0..arch.n_heads {
            let want = expected.tensor(&format!("q.{l}.{h}"));
            let scale = want.iter().fold(1.0f64, |m, &v| m.max(f64::from(v).abs()));
            worst_k = worst_k.max(max_abs_diff(&to_hf(keys.queries(l, h)), &want) / scale);
        }
    }
    assert!(worst_k <= KQ_TOL, "K/Q differ by {worst_k:e}");
    assert!(
        worst_sv <= KQ_TOL,
        "K spectra differ by {worst_sv:e} of σ_1"
    );
    println!(
        "{case}: worst |Δ logit| {worst:e}, |Δ loss| {:e}, K/Q {worst_k:e}, K spectra {worst_sv:e}",
        (loss - want_loss).abs()
    );
}

/// params.json whose sizes disagree with the tensors names both, and the model-parallel case.
#[test]
fn meta_params_that_disagree_with_the_shapes_are_named() {
    use rankscope_core::formats::pytorch::read_checkpoint;
    let path = format!("{DATA}/llama_meta/consolidated.00.pth");
    let src = FileSource::open(&path).expect("open");
    let pt = block_on(read_checkpoint(&src)).expect("read");
    let tensors: Vec<_> = pt
        .header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let params: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DATA}/llama_meta/params.json")).unwrap(),
    )
    .unwrap();
    let reason = |edit: &dyn Fn(&mut Value)| {
        let mut p = params.clone();
        edit(&mut p);
        match recognise(&tensors, &Default::default(), Some(&p)) {
            Recognition::Unknown { reason, .. } => reason,
            Recognition::Known(_) => panic!("recognised"),
        }
    };
    let r = reason(&|p| p["ffn_dim_multiplier"] = 1.3.into());
    assert!(
        r.contains("params.json gives an MLP hidden size of 224") && r.contains("has 128 rows"),
        "{r}"
    );
    let r = reason(&|p| p["n_kv_heads"] = 4.into());
    assert!(
        r.contains("64 key rows") && r.contains("wk.weight` 32") && r.contains("model-parallel"),
        "{r}"
    );
    // vocab_size −1 (Llama 2's params.json) means "from the tokenizer": the shapes decide.
    let mut p = params.clone();
    p["vocab_size"] = (-1).into();
    assert!(recognise(&tensors, &Default::default(), Some(&p))
        .known()
        .is_some());
    // Without params.json the head count is unknown.
    match recognise(&tensors, &Default::default(), None) {
        Recognition::Unknown { reason, .. } => assert!(reason.contains("params.json"), "{reason}"),
        Recognition::Known(_) => panic!("recognised without params.json"),
    }
}
