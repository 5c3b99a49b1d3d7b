//! The forward pass against the user's PyTorch reference (`shared/fixtures`):
//! final-checkpoint logits, held-out loss and K/Q spectra at every checkpoint
//! of every run (F32, BF16 with `_orig_mod.`, F16), and stories260K (Llama
//! layout, rotate-half RoPE, SwiGLU, GQA 8/4). Tolerances: fixtures README,
//! "Recommended tolerances". Each test prints the worst error it saw.

use rankscope_core::analysis::spectrum::{metrics_from_singular_values, singular_values_f32};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::{
    ForwardError, KeyCollector, KeyTransform, ModelWeights, NoProbe, Probe,
};
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];

fn json(relative: &str) -> Value {
    let path = format!("{FIXTURES}/{relative}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(path: &str, config: Option<&Value>) -> ModelWeights {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, config) else {
        panic!("{path} not recognised")
    };
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |_| {},
    ))
    .expect("load weights")
}

fn tokens(name: &str) -> TokenBatch {
    let src = FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens");
    parse_tokens_safetensors(&src).expect("parse tokens")
}

fn checkpoint_path(run: &str, ckpt: &Value) -> String {
    let file = ckpt["file"].as_str().expect("file");
    format!(
        "{FIXTURES}/runs/{run}/{}",
        file.rsplit('/').next().expect("name")
    )
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-300)
}

/// Worst error seen for one quantity, with where.
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, err: f64, tol: f64, what: impl FnOnce() -> String) {
        let what = what();
        assert!(err <= tol, "{what}: error {err:e} > {tol:e}");
        if err > self.0 {
            *self = Worst(err, what);
        }
    }
}

/// Compares the singular values and PR of a `[rows, d_k]` matrix with an
/// expected `{sv, pr}` head; returns (worst σ rel error, PR rel error).
fn check_spectrum(
    data: &[f32],
    d_k: usize,
    want: &Value,
    sv_worst: &mut Worst,
    pr_worst: &mut Worst,
    what: &str,
) {
    let rows = data.len() / d_k;
    let sv = singular_values_f32(data, rows, d_k).expect("svd");
    let want_sv = floats(&want["sv"]);
    assert_eq!(sv.len(), want_sv.len(), "{what}: number of σ");
    for (i, (g, w)) in sv.iter().zip(&want_sv).enumerate() {
        sv_worst.see(rel(*g, *w), 1e-4, || format!("{what} σ_{i} ({g} vs {w})"));
    }
    let pr = metrics_from_singular_values(&sv).expect("metrics").pr;
    let want_pr = want["pr"].as_f64().expect("pr");
    pr_worst.see(rel(pr, want_pr), 1e-4, || {
        format!("{what} PR ({pr} vs {want_pr})")
    });
}

#[test]
fn final_logits_match_the_reference_for_every_run() {
    let eval = tokens("eval_tokens.safetensors");
    let mut worst = Worst::default();
    for run in RUNS {
        let expected = json(&format!("expected/{run}.json"));
        let last = expected["checkpoints"]
            .as_array()
            .expect("checkpoints")
            .last()
            .expect("a checkpoint")
            .clone();
        let model = load(&checkpoint_path(run, &last), None);
        let want = &last["final"]["logits_first16"];
        let ids: Vec<u32> = want["input_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(ids, eval.row(0), "{run}: logits are of eval sequence 0");
        let logits = model
            .forward(eval.row(0), &mut NoProbe, None)
            .expect("forward");
        assert_eq!((logits.positions, logits.vocab), (128, 256));
        for (t, row) in want["values"]
            .as_array()
            .expect("values")
            .iter()
            .enumerate()
        {
            for (v, (g, w)) in logits.row(t).iter().zip(floats(row)).enumerate() {
                worst.see((f64::from(*g) - w).abs(), 1e-4, || {
                    format!("{run} logit [{t}, {v}] ({g} vs {w})")
                });
            }
        }
    }
    println!("worst |Δ logit| (runs): {:e} at {}", worst.0, worst.1);
}

#[test]
fn heldout_loss_and_qk_spectra_match_every_checkpoint() {
    let started = std::time::Instant::now();
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    assert_eq!(
        (eval.batch, eval.seq_len, heldout.batch, heldout.seq_len),
        (4, 128, 8, 128)
    );
    let [mut loss, mut k_sv, mut k_pr, mut q_sv, mut q_pr, mut raw_sv, mut raw_pr, mut rope_sv, mut rope_pr] =
        std::array::from_fn(|_| Worst::default());
    let mut checkpoints = 0;
    for run in RUNS {
        let expected = json(&format!("expected/{run}.json"));
        for ckpt in expected["checkpoints"].as_array().expect("checkpoints") {
            let name = checkpoint_path(run, ckpt);
            let model = load(&name, None);
            let d_k = model.arch().d_k;
            let got = model.mean_cross_entropy(&heldout, None).expect("loss");
            let want = ckpt["val_loss"].as_f64().expect("val_loss");
            loss.see((got - want).abs(), 1e-4, || {
                format!("{name} val_loss ({got} vs {want})")
            });

            let collected = model.collect_keys(&eval, None).expect("keys");
            assert_eq!(collected.rows(), 512);
            for (l, layer) in ckpt["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .enumerate()
            {
                let at = |what: &str, h: usize| format!("{name} L{l} {what}{h}");
                for (h, head) in layer["k_heads"]
                    .as_array()
                    .expect("k_heads")
                    .iter()
                    .enumerate()
                {
                    check_spectrum(
                        collected.keys(l, h),
                        d_k,
                        head,
                        &mut k_sv,
                        &mut k_pr,
                        &at("K", h),
                    );
                }
                for (h, head) in layer["q_heads"]
                    .as_array()
                    .expect("q_heads")
                    .iter()
                    .enumerate()
                {
                    check_spectrum(
                        collected.queries(l, h),
                        d_k,
                        head,
                        &mut q_sv,
                        &mut q_pr,
                        &at("Q", h),
                    );
                }
                let variants = &layer["k_variants"];
                for (h, head) in variants["raw"]["heads"]
                    .as_array()
                    .expect("raw")
                    .iter()
                    .enumerate()
                {
                    check_spectrum(
                        collected.raw_keys(l, h),
                        d_k,
                        head,
                        &mut raw_sv,
                        &mut raw_pr,
                        &at("raw K", h),
                    );
                }
                for (h, head) in variants["post_rope"]["heads"]
                    .as_array()
                    .expect("post_rope")
                    .iter()
                    .enumerate()
                {
                    check_spectrum(
                        collected.post_rope_keys(l, h),
                        d_k,
                        head,
                        &mut rope_sv,
                        &mut rope_pr,
                        &at("post-RoPE K", h),
                    );
                }
            }
            checkpoints += 1;
        }
    }
    assert_eq!(checkpoints, 36);
    for (what, w) in [
        ("|Δ val_loss|", &loss),
        ("K σ rel", &k_sv),
        ("K PR rel", &k_pr),
        ("Q σ rel", &q_sv),
        ("Q PR rel", &q_pr),
        ("raw K σ rel", &raw_sv),
        ("raw K PR rel", &raw_pr),
        ("post-RoPE K σ rel", &rope_sv),
        ("post-RoPE K PR rel", &rope_pr),
    ] {
        println!("worst {what}: {:e} at {}", w.0, w.1);
    }
    println!("36 checkpoints in {:.2?}", started.elapsed());
}

fn stories() -> (ModelWeights, Value) {
    let config = json("stories260K/config.json");
    (
        load(
            &format!("{FIXTURES}/stories260K/model.safetensors"),
            Some(&config),
        ),
        json("expected/stories260K.json"),
    )
}

#[test]
fn stories260k_logits_and_spectra_match_transformers() {
    let (model, expected) = stories();
    let ids: Vec<u32> = expected["input_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    assert_eq!(ids.len(), 64);
    let mut collected = KeyCollector::new(model.arch(), ids.len());
    let logits = model.forward(&ids, &mut collected, None).expect("forward");
    assert_eq!((logits.positions, logits.vocab), (64, 512));
    let mut worst = Worst::default();
    for (t, row) in expected["logits"]["values"]
        .as_array()
        .expect("values")
        .iter()
        .enumerate()
    {
        for (v, (g, w)) in logits.row(t).iter().zip(floats(row)).enumerate() {
            worst.see((f64::from(*g) - w).abs(), 2e-4, || {
                format!("stories260K logit [{t}, {v}] ({g} vs {w})")
            });
        }
    }
    let [mut k_sv, mut k_pr, mut q_sv, mut q_pr] = std::array::from_fn(|_| Worst::default());
    for (l, layer) in expected["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        for (h, head) in layer["k_heads"]
            .as_array()
            .expect("k_heads")
            .iter()
            .enumerate()
        {
            check_spectrum(
                collected.keys(l, h),
                8,
                head,
                &mut k_sv,
                &mut k_pr,
                &format!("stories260K L{l} K{h}"),
            );
        }
        for (h, head) in layer["q_heads"]
            .as_array()
            .expect("q_heads")
            .iter()
            .enumerate()
        {
            check_spectrum(
                collected.queries(l, h),
                8,
                head,
                &mut q_sv,
                &mut q_pr,
                &format!("stories260K L{l} Q{h}"),
            );
        }
    }
    println!(
        "worst |Δ logit| (stories260K): {:e} at {}",
        worst.0, worst.1
    );
    for (what, w) in [
        ("K σ rel", &k_sv),
        ("K PR rel", &k_pr),
        ("Q σ rel", &q_sv),
        ("Q PR rel", &q_pr),
    ] {
        println!("stories260K worst {what}: {:e} at {}", w.0, w.1);
    }
}

/// An identity written as arithmetic (x·1), so the hook really runs.
struct Identity;
impl KeyTransform for Identity {
    fn apply(&self, _: usize, _: usize, keys: &mut [f32]) {
        keys.iter_mut().for_each(|k| *k *= 1.0);
    }
}

/// Zeroes every key: attention becomes a plain causal mean of the values.
struct ZeroKeys;
impl KeyTransform for ZeroKeys {
    fn apply(&self, _: usize, _: usize, keys: &mut [f32]) {
        keys.fill(0.0);
    }
}

#[test]
fn identity_key_transform_gives_bit_identical_logits() {
    let mut rng = fastrand::Rng::with_seed(7);
    let models = [
        load(
            &format!("{FIXTURES}/runs/B1/ckpt_tokens_327680.safetensors"),
            None,
        ),
        stories().0,
    ];
    for model in &models {
        let vocab = model.arch().vocab as u32;
        for _ in 0..8 {
            let ids: Vec<u32> = (0..rng.usize(1..150)).map(|_| rng.u32(0..vocab)).collect();
            let plain = model.forward(&ids, &mut NoProbe, None).expect("forward");
            let same = model
                .forward(&ids, &mut NoProbe, Some(&Identity))
                .expect("forward");
            let bits = |l: &[f32]| l.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain.data), bits(&same.data), "{} tokens", ids.len());
            let zeroed = model
                .forward(&ids, &mut NoProbe, Some(&ZeroKeys))
                .expect("forward");
            assert!(
                ids.len() == 1 || zeroed.data != plain.data,
                "the hook changes the model"
            );
        }
    }
}

/// Run A1's last checkpoint.
fn a1_final() -> ModelWeights {
    load(
        &format!("{FIXTURES}/runs/A1/ckpt_tokens_327680.safetensors"),
        None,
    )
}

/// Row `b` of `batch` as a batch of its own.
fn sequence(batch: &TokenBatch, b: usize) -> TokenBatch {
    TokenBatch {
        batch: 1,
        seq_len: batch.seq_len,
        ids: batch.row(b).to_vec(),
    }
}

/// The probe sees exactly what the surgery hook left, and the batch
/// collector stacks sequences in row order b·T + t.
#[test]
fn probe_sees_transformed_keys_stacked_in_batch_order() {
    let model = a1_final();
    let eval = tokens("eval_tokens.safetensors");
    let all = model.collect_keys(&eval, None).expect("batch");
    let one = model
        .collect_keys(&sequence(&eval, 2), None)
        .expect("row 2");
    let (arch, rows) = (model.arch(), 128 * 16);
    for l in 0..arch.n_layers {
        for h in 0..arch.n_kv_heads {
            assert_eq!(
                &all.keys(l, h)[2 * rows..3 * rows],
                one.keys(l, h),
                "L{l} K{h}"
            );
        }
        for h in 0..arch.n_heads {
            assert_eq!(
                &all.queries(l, h)[2 * rows..3 * rows],
                one.queries(l, h),
                "L{l} Q{h}"
            );
        }
    }
    let zeroed = model.collect_keys(&eval, Some(&ZeroKeys)).expect("zeroed");
    assert!(zeroed.keys(1, 0).iter().all(|&k| k == 0.0));
    assert!(
        zeroed.raw_keys(1, 0).iter().any(|&k| k != 0.0),
        "raw keys are before the hook"
    );
}

/// A pass without logits stops its last block once Q and K are probed; a full pass (with the
/// output head) probes the very same values in every layer, the last included.
#[test]
fn a_pass_without_logits_probes_what_a_full_pass_probes() {
    let model = a1_final();
    let eval = tokens("eval_tokens.safetensors");
    let arch = model.arch();
    let mut full = KeyCollector::new(arch, eval.seq_len);
    model
        .forward(eval.row(1), &mut full, None)
        .expect("full pass");
    let probed = model
        .collect_keys(&sequence(&eval, 1), None)
        .expect("pass without logits");
    for l in 0..arch.n_layers {
        for h in 0..arch.n_kv_heads {
            assert_eq!(probed.keys(l, h), full.keys(l, h), "L{l} K{h}");
            assert_eq!(probed.raw_keys(l, h), full.raw_keys(l, h), "L{l} raw K{h}");
            assert_eq!(
                probed.post_rope_keys(l, h),
                full.post_rope_keys(l, h),
                "L{l} rotated K{h}"
            );
        }
        for h in 0..arch.n_heads {
            assert_eq!(probed.queries(l, h), full.queries(l, h), "L{l} Q{h}");
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let model = load(
        &format!("{FIXTURES}/runs/C1/ckpt_tokens_0.safetensors"),
        None,
    );
    let err = model
        .forward(&[1, 2, 256, 3], &mut NoProbe, None)
        .expect_err("id 256 ≥ vocab 256");
    assert!(
        matches!(
            err,
            ForwardError::TokenOutOfVocab {
                id: 256,
                position: 2,
                vocab: 256,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("position 2"), "{err}");
    let batch = TokenBatch {
        batch: 2,
        seq_len: 2,
        ids: vec![1, 2, 3, 300],
    };
    let err = model
        .mean_cross_entropy(&batch, None)
        .expect_err("300 ≥ vocab");
    assert!(
        matches!(
            err,
            ForwardError::TokenOutOfVocab {
                id: 300,
                sequence: 1,
                position: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        model.forward(&[], &mut NoProbe, None),
        Err(ForwardError::EmptySequence)
    ));
    let ragged = TokenBatch {
        batch: 2,
        seq_len: 3,
        ids: vec![1, 2, 3, 4, 5],
    };
    assert!(matches!(
        model.mean_cross_entropy(&ragged, None),
        Err(ForwardError::MalformedBatch { ids: 5, .. })
    ));
    let none = TokenBatch {
        batch: 0,
        seq_len: 3,
        ids: vec![],
    };
    assert!(matches!(
        model.mean_cross_entropy(&none, None),
        Err(ForwardError::EmptySequence)
    ));
    let short = TokenBatch {
        batch: 1,
        seq_len: 1,
        ids: vec![5],
    };
    assert!(matches!(
        model.mean_cross_entropy(&short, None),
        Err(ForwardError::TooShortForLoss(1))
    ));

    // A probe that is inactive is never called.
    struct Panicky;
    impl Probe for Panicky {
        fn keys(&mut self, _: usize, _: usize, _: &[f32], _: &[f32], _: &[f32]) {
            panic!("called")
        }
        fn queries(&mut self, _: usize, _: usize, _: &[f32]) {
            panic!("called")
        }
        fn active(&self) -> bool {
            false
        }
    }
    model
        .forward(&[1, 2, 3], &mut Panicky, None)
        .expect("forward");
}

/// Loading checks every weight by name and shape against the architecture.
#[test]
fn loading_names_the_missing_or_misshapen_tensor() {
    let path = format!("{FIXTURES}/runs/A1/ckpt_tokens_0.safetensors");
    let src = FileSource::open(&path).expect("open");
    let header = read_header(&src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else {
        panic!("not recognised")
    };
    let try_load = |arch: &rankscope_core::model::arch::Architecture| {
        block_on(ModelWeights::load(
            &Shards::single(&header, &src),
            arch,
            &mut |_| {},
        ))
    };
    let mut progress = Vec::new();
    block_on(ModelWeights::load(
        &Shards::single(&header, &src),
        &arch,
        &mut |p| progress.push(p),
    ))
    .expect("loads as recognised");
    assert_eq!(progress, [0.25, 0.5, 0.75, 1.0]);

    let mut missing = arch.clone();
    missing.layers[2].k_norm = Some("transformer_blocks.2.attention.k_norm.gamma".into());
    let err = try_load(&missing).expect_err("missing");
    assert!(
        matches!(&err, ForwardError::MissingTensor(n) if n.ends_with("k_norm.gamma")),
        "{err}"
    );

    let mut wide = arch.clone();
    wide.d_ff = 512;
    let err = try_load(&wide).expect_err("d_ff 512");
    assert_eq!(
        err.to_string(),
        "tensor `transformer_blocks.0.feed_forward.up_proj.weight` has shape [256, 64], expected [512, 64]"
    );

    // A recognised model whose config asks for what the pass lacks is refused before any read.
    let mut scaled = arch.clone();
    scaled.no_forward_pass = Some("config.json asks for RoPE scaling `yarn`".into());
    let err = try_load(&scaled).expect_err("unsupported");
    assert!(
        matches!(
            &err,
            ForwardError::Unsupported {
                family: "reference",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the forward pass cannot run this reference model: config.json asks for RoPE scaling `yarn`"
    );
}

/// Zeroes the listed key coordinates of each layer (all its kv-heads); rows of 16 (the runs' d_k).
struct ZeroCoordinates(Vec<Vec<usize>>);
impl KeyTransform for ZeroCoordinates {
    fn apply(&self, layer: usize, _: usize, keys: &mut [f32]) {
        for row in keys.chunks_exact_mut(16) {
            self.0[layer].iter().for_each(|&d| row[d] = 0.0);
        }
    }
}

/// k ← k·P per (layer, kv-head), P = V_r V_rᵀ built in f64, applied in f32.
struct Project {
    projectors: Vec<Vec<f32>>,
    n_kv: usize,
    d_k: usize,
}
impl KeyTransform for Project {
    fn apply(&self, layer: usize, kv_head: usize, keys: &mut [f32]) {
        let p = &self.projectors[layer * self.n_kv + kv_head];
        let mut out = vec![0.0f32; self.d_k];
        for row in keys.chunks_exact_mut(self.d_k) {
            for (j, o) in out.iter_mut().enumerate() {
                *o = row
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| k * p[i * self.d_k + j])
                    .sum();
            }
            row.copy_from_slice(&out);
        }
    }
}

fn usize_lists(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

/// The surgery hook sits where the reference edits keys (the k_norm output,
/// before RoPE): the held-out losses of all three strategies of
/// `final.surgery` are reproduced at every prune fraction.
#[test]
fn key_surgery_reproduces_the_reference_losses() {
    use rankscope_core::analysis::spectrum::{matrix_from_row_major_f32, right_singular_vectors};
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let [mut svd_worst, mut gamma_worst, mut random_worst] =
        std::array::from_fn(|_| Worst::default());
    for run in RUNS {
        let expected = json(&format!("expected/{run}.json"));
        let last = expected["checkpoints"]
            .as_array()
            .expect("checkpoints")
            .last()
            .expect("final")
            .clone();
        let surgery = &last["final"]["surgery"];
        let model = load(&checkpoint_path(run, &last), None);
        let arch = model.arch().clone();
        let (d_k, n_kv, n_layers) = (arch.d_k, arch.n_kv_heads, arch.n_layers);
        let ms = usize_lists(&surgery["m"]);
        let keys = model.collect_keys(&eval, None).expect("keys");
        let bases: Vec<_> = (0..n_layers * n_kv)
            .map(|i| {
                let m = matrix_from_row_major_f32(keys.keys(i / n_kv, i % n_kv), keys.rows(), d_k)
                    .expect("K");
                right_singular_vectors(&m).expect("svd").1
            })
            .collect();
        for (i, &m) in ms.iter().enumerate() {
            let r = d_k - m;
            let projectors = bases
                .iter()
                .map(|v| {
                    (0..d_k * d_k)
                        .map(|ij| {
                            (0..r)
                                .map(|c| v[(ij / d_k, c)] * v[(ij % d_k, c)])
                                .sum::<f64>() as f32
                        })
                        .collect()
                })
                .collect();
            let got = model
                .mean_cross_entropy(
                    &heldout,
                    Some(&Project {
                        projectors,
                        n_kv,
                        d_k,
                    }),
                )
                .expect("svd loss");
            let want = surgery["svd"][i].as_f64().expect("svd");
            svd_worst.see((got - want).abs(), 1e-4, || {
                format!("{run} SVD m={m} ({got} vs {want})")
            });

            if surgery["gamma"].is_array() {
                let order = &surgery["gamma_order"];
                let zero = (0..n_layers)
                    .map(|l| usize_lists(&order[l.to_string()])[..m].to_vec())
                    .collect();
                let got = model
                    .mean_cross_entropy(&heldout, Some(&ZeroCoordinates(zero)))
                    .expect("γ loss");
                let want = surgery["gamma"][i].as_f64().expect("gamma");
                gamma_worst.see((got - want).abs(), 1e-4, || {
                    format!("{run} γ m={m} ({got} vs {want})")
                });
            }
            let random = &surgery["random"];
            for (s, losses) in random["losses"]
                .as_array()
                .expect("losses")
                .iter()
                .enumerate()
            {
                let perms = &random["perms"][s.to_string()];
                let zero = (0..n_layers)
                    .map(|l| usize_lists(&perms[l.to_string()])[..m].to_vec())
                    .collect();
                let got = model
                    .mean_cross_entropy(&heldout, Some(&ZeroCoordinates(zero)))
                    .expect("random loss");
                let want = losses[i].as_f64().expect("loss");
                random_worst.see((got - want).abs(), 1e-4, || {
                    format!("{run} random seed {s} m={m} ({got} vs {want})")
                });
            }
        }
    }
    for (what, w) in [
        ("SVD", &svd_worst),
        ("γ", &gamma_worst),
        ("random", &random_worst),
    ] {
        println!("worst |Δ surgery loss| {what}: {:e} at {}", w.0, w.1);
    }
}
