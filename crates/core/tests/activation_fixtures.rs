//! Activation spectra (`analysis::activations`) against the user's PyTorch
//! reference (`shared/fixtures/expected/*.json`): every checkpoint of every
//! run (F32; BF16 with `_orig_mod.`; F16; with and without QK-norm), K per
//! kv-head in all four variants and Q per query head — singular values, PR,
//! PR_eig, r90 (exact), cond, erank, stable rank — the layer means, the
//! held-out loss, and stories260K (Llama layout). Also the inventory driver
//! (progress, cancel) and the figure captions. Tolerances: fixtures README,
//! "Recommended tolerances". `forward_fixtures.rs` checks the forward pass
//! itself (logits, surgery); this file checks the API the page and CLI call.

use rankscope_core::analysis::activations::streamed_activation_spectra_within;
use rankscope_core::analysis::activations::{
    activation_spectra, activation_spectra_from_grams, activation_spectra_within,
    ActivationSpectra, KeyVariant, Progress, Stage,
};
use rankscope_core::analysis::pipeline::collect_activation_spectra;
use rankscope_core::analysis::spectrum::mean_metrics;
use rankscope_core::analysis::study_figures::heldout_loss_figure;
use rankscope_core::analysis::trajectory::{
    checkpoint_value, trajectory_figure_from, waterfall_figure_from, CheckpointSel, LayerSel,
    Matrix, Metric, SpectraSource, TrainingAxis,
};
use rankscope_core::analysis::weights::{HeadSpectrum, Shards};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::inventory::{inspect_file, Inventory};
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::model::forward::{ModelWeights, StreamedModel};
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;
use std::cell::Cell;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
const RUNS: [&str; 6] = ["A1", "A2", "B1", "B2", "C1", "C2"];
/// K/Q singular values and ratio metrics, f32 forward + f64 SVD (README).
const TOL: f64 = 1e-4;

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
    parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).expect("open tokens"))
        .expect("tokens")
}

fn checkpoint_path(run: &str, ckpt: &Value) -> String {
    let file = ckpt["file"].as_str().expect("file");
    format!(
        "{FIXTURES}/runs/{run}/{}",
        file.rsplit('/').next().expect("name")
    )
}

fn f(v: &Value) -> f64 {
    match v.as_str() {
        Some("inf") => f64::INFINITY,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

fn rel(got: f64, want: f64) -> f64 {
    if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs().max(1e-300)
    }
}

/// Worst relative error seen, with where; asserts each against [`TOL`].
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, got: f64, want: f64, what: impl FnOnce() -> String) {
        let err = rel(got, want);
        let what = what();
        assert!(
            err <= TOL,
            "{what}: {got} vs {want}, relative error {err:e} > {TOL:e}"
        );
        if err > self.0 {
            *self = Worst(err, what);
        }
    }
}

/// Compares every head of `got` with the expected `[{sv, pr, pr_eig, r90, cond, erank, stable_rank}]`.
fn check_heads(
    got: &[HeadSpectrum],
    want: &Value,
    sv: &mut Worst,
    metrics: &mut Worst,
    what: &str,
) {
    let want = want.as_array().expect("heads");
    assert_eq!(got.len(), want.len(), "{what}: number of heads");
    for (h, (g, w)) in got.iter().zip(want).enumerate() {
        let ws = w["sv"].as_array().expect("sv");
        assert_eq!(g.singular_values.len(), ws.len(), "{what}{h}: number of σ");
        for (i, (a, b)) in g.singular_values.iter().zip(ws).enumerate() {
            sv.see(*a, f(b), || format!("{what}{h} σ_{i}"));
        }
        let m = &g.metrics.spectrum;
        assert_eq!(
            m.r90 as u64,
            w["r90"].as_u64().expect("r90"),
            "{what}{h} r90"
        );
        for (name, got) in [
            ("pr", m.pr),
            ("pr_eig", m.pr_eig),
            ("cond", m.cond),
            ("erank", m.erank),
            ("stable_rank", m.stable_rank),
        ] {
            metrics.see(got, f(&w[name]), || format!("{what}{h} {name}"));
        }
    }
}

fn variant(s: &ActivationSpectra, l: usize, v: KeyVariant) -> &[HeadSpectrum] {
    s.layers[l]
        .k_heads(v)
        .unwrap_or_else(|| panic!("variant {v} computed"))
}

#[test]
fn activation_spectra_and_heldout_loss_match_every_checkpoint() {
    let started = std::time::Instant::now();
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let [mut sv, mut metrics, mut means, mut loss] = std::array::from_fn(|_| Worst::default());
    let mut checkpoints = 0;
    for run in RUNS {
        let expected = json(&format!("expected/{run}.json"));
        for ckpt in expected["checkpoints"].as_array().expect("checkpoints") {
            let name = checkpoint_path(run, ckpt);
            let model = load(&name, None);
            let mut seen = Vec::new();
            let got = activation_spectra(
                &model,
                &eval,
                Some(&heldout),
                &[],
                &mut |p| seen.push(p),
                &|| false,
            )
            .expect("activation spectra");
            // Progress: 4 eval sequences, 4 layers, 8 held-out sequences, in that order.
            let stages: Vec<Stage> = seen.iter().map(|p| p.stage).collect();
            assert_eq!(stages.len(), 16, "{name}: {seen:?}");
            assert_eq!(
                seen[5],
                Progress {
                    stage: Stage::Spectra,
                    done: 2,
                    total: 4
                }
            );
            assert_eq!(
                (got.eval_batch, got.eval_seq_len, got.d_k, got.d_model),
                (4, 128, 16, 64)
            );

            let want_loss = f(&ckpt["val_loss"]);
            let got_loss = got.heldout_loss.expect("held-out loss");
            assert!(
                (got_loss - want_loss).abs() <= 1e-4,
                "{name} val_loss {got_loss} vs {want_loss}"
            );
            loss.see(got_loss, want_loss, || format!("{name} val_loss"));

            for (l, layer) in ckpt["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .enumerate()
            {
                let at = |what: &str| format!("{run}@{} L{l} {what}", ckpt["tokens"]);
                check_heads(
                    variant(&got, l, KeyVariant::PostNorm),
                    &layer["k_heads"],
                    &mut sv,
                    &mut metrics,
                    &at("K"),
                );
                check_heads(
                    &got.layers[l].q_heads,
                    &layer["q_heads"],
                    &mut sv,
                    &mut metrics,
                    &at("Q"),
                );
                for (v, key) in [
                    (KeyVariant::Raw, "raw"),
                    (KeyVariant::PostRope, "post_rope"),
                    (KeyVariant::Centered, "centered"),
                ] {
                    let want = &layer["k_variants"][key]["heads"];
                    check_heads(
                        variant(&got, l, v),
                        want,
                        &mut sv,
                        &mut metrics,
                        &at(&format!("{key} K")),
                    );
                }
                // The layer's value is the mean over heads (METRICS.md), as `k_mean`.
                let per_head: Vec<_> = variant(&got, l, KeyVariant::PostNorm)
                    .iter()
                    .map(|h| h.metrics.spectrum.clone())
                    .collect();
                let mean = mean_metrics(&per_head).expect("heads");
                for (name, g) in [
                    ("pr", mean.pr),
                    ("r90", mean.r90),
                    ("erank", mean.erank),
                    ("cond", mean.cond),
                ] {
                    means.see(g, f(&layer["k_mean"][name]), || {
                        at(&format!("k_mean.{name}"))
                    });
                }
            }
            // The mean over layers of the layers' mean K PR, through the study's own aggregation.
            let ws = got.spectra(KeyVariant::PostNorm).expect("default variant");
            let mean_pr =
                checkpoint_value(&ws, LayerSel::Mean, Matrix::K, Metric::Pr).expect("mean PR");
            means.see(mean_pr, f(&ckpt["mean_k_pr"]), || {
                format!("{name} mean_k_pr")
            });
            checkpoints += 1;
        }
    }
    assert_eq!(checkpoints, 36);
    for (what, w) in [
        ("σ rel", &sv),
        ("metric rel", &metrics),
        ("layer-mean rel", &means),
        ("val_loss rel", &loss),
    ] {
        println!("worst {what}: {:e} at {}", w.0, w.1);
    }
    println!(
        "36 checkpoints (forward, 4 K variants + Q, held-out loss) in {:.2?}",
        started.elapsed()
    );
}

#[test]
fn stories260k_activation_spectra_match_transformers() {
    let config = json("stories260K/config.json");
    let model = load(
        &format!("{FIXTURES}/stories260K/model.safetensors"),
        Some(&config),
    );
    let expected = json("expected/stories260K.json");
    let ids: Vec<u32> = expected["input_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    let eval = TokenBatch {
        batch: 1,
        seq_len: ids.len(),
        ids,
    };
    let got = activation_spectra(
        &model,
        &eval,
        None,
        &[KeyVariant::PostNorm],
        &mut |_| {},
        &|| false,
    )
    .expect("spectra");
    assert_eq!(got.heldout_loss, None);
    assert!(
        got.layers[0].k_heads(KeyVariant::Raw).is_none(),
        "only the variants asked for"
    );
    assert!(got.spectra(KeyVariant::Centered).is_none());
    let [mut sv, mut metrics] = std::array::from_fn(|_| Worst::default());
    for (l, layer) in expected["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .enumerate()
    {
        check_heads(
            variant(&got, l, KeyVariant::PostNorm),
            &layer["k_heads"],
            &mut sv,
            &mut metrics,
            &format!("L{l} K"),
        );
        check_heads(
            &got.layers[l].q_heads,
            &layer["q_heads"],
            &mut sv,
            &mut metrics,
            &format!("L{l} Q"),
        );
        let k_pr = checkpoint_value(
            &got.spectra(KeyVariant::PostNorm).expect("K"),
            LayerSel::Layer(l),
            Matrix::K,
            Metric::Pr,
        );
        metrics.see(k_pr.expect("layer PR"), f(&layer["k_pr_mean"]), || {
            format!("L{l} k_pr_mean")
        });
    }
    let mean = checkpoint_value(
        &got.spectra(KeyVariant::PostNorm).expect("K"),
        LayerSel::Mean,
        Matrix::K,
        Metric::Pr,
    );
    metrics.see(mean.expect("mean"), f(&expected["mean_k_pr"]), || {
        "mean_k_pr".into()
    });
    println!(
        "stories260K worst σ rel {:e} at {}; metric rel {:e} at {}",
        sv.0, sv.1, metrics.0, metrics.1
    );
}

/// The inventory driver: a run folder plus the eval batch, every checkpoint
/// in training order, the figures' captions naming the activation variant,
/// and cancellation part-way.
#[test]
fn inventory_driver_reports_progress_and_can_be_cancelled() {
    let dir = format!("{FIXTURES}/runs/B1");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("run folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    paths.sort();
    let files = paths
        .iter()
        .map(|p| {
            let shown = format!("B1/{}", p.file_name().expect("name").to_string_lossy());
            block_on(inspect_file(
                &shown,
                &FileSource::open(p).expect("open"),
                &mut |_| {},
            ))
        })
        .collect();
    let inv = Inventory::link(files);
    let open = |i: usize| paths.get(i).and_then(|p| FileSource::open(p).ok());
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");

    let mut lines = Vec::new();
    let (runs, failures) = block_on(collect_activation_spectra(
        &inv,
        &open,
        &eval,
        Some(&heldout),
        &[KeyVariant::PostNorm, KeyVariant::PostRope],
        &mut |done, total, p| lines.push(format!("{done}/{total} {p}")),
        &|| false,
    ));
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let tokens: Vec<_> = run.checkpoints.iter().map(|c| c.tokens).collect();
    assert_eq!(tokens, [0, 20480, 40960, 81920, 163840, 327680].map(Some));
    assert!(
        lines.contains(&"0/6 forward pass, weights read block by block: layer 2 of 4".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"5/6 held-out loss: sequence 8 of 8".to_string()),
        "{lines:?}"
    );
    let expected = json("expected/B1.json");
    for (c, want) in run
        .checkpoints
        .iter()
        .zip(expected["checkpoints"].as_array().expect("checkpoints"))
    {
        let got = c.spectra.heldout_loss.expect("loss");
        assert!((got - f(&want["val_loss"])).abs() <= 1e-4);
    }
    // Figure 1 with the held-out loss as its metric: one point per checkpoint at its tokens,
    // the user's own val_loss within the fixtures' tolerance.
    let fig = heldout_loss_figure(&runs, TrainingAxis::Tokens, "heldout_tokens.safetensors");
    assert_eq!(fig.series.len(), 1);
    let points = &fig.series[0].points;
    assert_eq!(points.len(), 6);
    for (p, want) in points
        .iter()
        .zip(expected["checkpoints"].as_array().expect("checkpoints"))
    {
        assert_eq!(p[0], f(&want["tokens"]));
        assert!((p[1] - f(&want["val_loss"])).abs() <= 1e-4);
    }
    assert!(
        fig.caption.contains("heldout_tokens.safetensors"),
        "{}",
        fig.caption
    );
    assert!(
        !fig.caption.contains("have no held-out loss"),
        "{}",
        fig.caption
    );

    let runs_k = [run.run_spectra(KeyVariant::PostRope)];
    assert_eq!(runs_k[0].checkpoints.len(), 6);
    let source = SpectraSource::Activations(KeyVariant::PostRope);
    let fig = trajectory_figure_from(
        source,
        &runs_k,
        LayerSel::Mean,
        Matrix::K,
        Metric::Pr,
        TrainingAxis::Tokens,
    );
    let caption = serde_json::to_string(&fig).expect("spec");
    assert!(
        caption.contains("K = W_k·X on the eval batch (per kv-head, after k_norm and RoPE)"),
        "{caption}"
    );
    let fig = waterfall_figure_from(
        source,
        &runs_k,
        CheckpointSel::Final,
        LayerSel::Layer(1),
        Matrix::Q,
        None,
        true,
    );
    let caption = serde_json::to_string(&fig).expect("spec");
    assert!(
        caption.contains("Q = W_q·X on the eval batch (per query head, after q_norm, before RoPE)"),
        "{caption}"
    );
    assert!(
        run.run_spectra(KeyVariant::Raw).checkpoints.is_empty(),
        "raw was not computed"
    );

    // Cancel once the second checkpoint's forward pass has started: it finishes, and the
    // third is the one listed as cancelled (cancellation is asked between checkpoints).
    let started = Cell::new(0);
    let (runs, failures) = block_on(collect_activation_spectra(
        &inv,
        &open,
        &eval,
        None,
        &[],
        &mut |done, _, line| {
            if line.starts_with("forward pass") {
                started.set(done + 1);
            }
        },
        &|| started.get() >= 2,
    ));
    assert_eq!(runs[0].checkpoints.len(), 2);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].message, "cancelled");
    assert_eq!(failures[0].path, "B1/ckpt_tokens_40960.safetensors");

    // A bad eval batch is a clear error per checkpoint, not a panic.
    let bad = TokenBatch {
        batch: 1,
        seq_len: 3,
        ids: vec![1, 999, 2],
    };
    let (runs, failures) = block_on(collect_activation_spectra(
        &inv,
        &open,
        &bad,
        None,
        &[],
        &mut |_, _, _| {},
        &|| false,
    ));
    assert!(runs.is_empty());
    assert_eq!(failures.len(), 6);
    assert!(
        failures[0].message.contains("token id 999"),
        "{}",
        failures[0].message
    );
}

#[test]
fn bad_batches_and_cancellation_are_errors() {
    use rankscope_core::analysis::activations::{heldout_loss, ActivationError};
    use rankscope_core::model::forward::ForwardError;
    let model = load(
        &format!("{FIXTURES}/runs/A2/ckpt_tokens_0.safetensors"),
        None,
    );
    let run = |eval: &TokenBatch, heldout: Option<&TokenBatch>, cancel: bool| {
        activation_spectra(&model, eval, heldout, &[], &mut |_| {}, &|| cancel)
    };
    let ragged = TokenBatch {
        batch: 2,
        seq_len: 3,
        ids: vec![1, 2, 3, 4],
    };
    assert!(matches!(
        run(&ragged, None, false),
        Err(ActivationError::Forward(ForwardError::MalformedBatch {
            ids: 4,
            ..
        }))
    ));
    let empty = TokenBatch {
        batch: 0,
        seq_len: 3,
        ids: vec![],
    };
    assert!(matches!(
        run(&empty, None, false),
        Err(ActivationError::Forward(ForwardError::EmptySequence))
    ));
    let ok = TokenBatch {
        batch: 1,
        seq_len: 4,
        ids: vec![1, 2, 3, 4],
    };
    assert!(matches!(
        run(&ok, None, true),
        Err(ActivationError::Cancelled)
    ));
    let short = TokenBatch {
        batch: 2,
        seq_len: 1,
        ids: vec![5, 6],
    };
    let err =
        run(&ok, Some(&short), false).expect_err("1-token held-out sequences have no targets");
    assert!(
        matches!(
            err,
            ActivationError::Forward(ForwardError::TooShortForLoss(1))
        ),
        "{err}"
    );
    let loss = heldout_loss(&model, &ok, &mut |_| {}, &|| false).expect("loss");
    assert!(loss.is_finite() && loss > 0.0);
}

/// Past the block budget the spectra come from per-head Gram matrices summed sequence by
/// sequence (`activation_spectra_from_grams`, what a batch too large to hold takes); they equal
/// the block path's, also on B1 at 40960 tokens, where collapsing heads' Grams are not trusted
/// and a second pass fetches just their blocks.
#[test]
fn gram_path_matches_the_block_path() {
    let eval = tokens("eval_tokens.safetensors");
    for name in [
        "B1/ckpt_tokens_40960.safetensors",
        "B1/ckpt_tokens_327680.safetensors",
    ] {
        let model = load(&format!("{FIXTURES}/runs/{name}"), None);
        let blocks = activation_spectra(&model, &eval, None, &[], &mut |_| {}, &|| false)
            .expect("block path");
        let mut progress = Vec::new();
        let (grams, routes) =
            activation_spectra_from_grams(&model, &eval, &[], &mut |p| progress.push(p), &|| false)
                .expect("Gram path");
        let within = activation_spectra_within(&model, &eval, None, &[], 0, &mut |_| {}, &|| false)
            .expect("budget 0");
        assert_eq!(within, grams, "{name}: a zero budget takes the Gram path");
        let forward_steps = progress
            .iter()
            .filter(|p| p.stage == Stage::EvalForward)
            .count();
        let passes = if routes.from_block > 0 { 2 } else { 1 };
        assert_eq!(forward_steps, passes * eval.batch, "{name}: {routes:?}");
        let (mut worst_sv, mut worst_metric) = (0.0f64, 0.0f64);
        for (lg, lb) in grams.layers.iter().zip(&blocks.layers) {
            let mut pairs: Vec<(&HeadSpectrum, &HeadSpectrum)> = Vec::new();
            for v in KeyVariant::ALL {
                pairs.extend(
                    lg.k_heads(v)
                        .expect("variant")
                        .iter()
                        .zip(lb.k_heads(v).expect("variant")),
                );
            }
            pairs.extend(lg.q_heads.iter().zip(&lb.q_heads));
            pairs.extend(
                lg.q_centered
                    .iter()
                    .flatten()
                    .zip(lb.q_centered.iter().flatten()),
            );
            for (g, b) in pairs {
                let top = b.singular_values[0];
                for (x, y) in g.singular_values.iter().zip(&b.singular_values) {
                    worst_sv = worst_sv.max((x - y).abs() / top);
                }
                let (m, n) = (&g.metrics.spectrum, &b.metrics.spectrum);
                for (x, y) in [
                    (m.pr, n.pr),
                    (m.pr_eig, n.pr_eig),
                    (m.cond, n.cond),
                    (m.erank, n.erank),
                ] {
                    worst_metric = worst_metric.max(rel(x, y));
                }
                assert_eq!(m.r90, n.r90);
            }
        }
        println!(
            "{name}: {} spectra from Grams, {} from blocks; worst |Δσ|/σ_max {worst_sv:.1e}, worst metric rel {worst_metric:.1e}",
            routes.from_gram, routes.from_block
        );
        assert!(
            worst_sv <= 1e-9 && worst_metric <= 1e-6,
            "{name}: σ {worst_sv:e}, metrics {worst_metric:e}"
        );
        if name.contains("40960") {
            assert!(
                routes.from_gram > 0 && routes.from_block > 0,
                "{name}: both routes, {routes:?}"
            );
        }
    }
}

/// The streamed pass (one block's weights in memory at a time, the eval and held-out batches
/// through each block together) gives the loaded model's numbers bit for bit: the block route
/// and the Gram route (budget 0, with its second pass), with the held-out loss, on a reference
/// checkpoint (BF16, `_orig_mod.`, QK-norm) and on stories260K (Llama layout).
#[test]
fn streamed_pass_equals_the_loaded_model_bit_for_bit() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    let stories_config = json("stories260K/config.json");
    for (path, config) in [
        (
            format!("{FIXTURES}/runs/B1/ckpt_tokens_40960.safetensors"),
            None,
        ),
        (
            format!("{FIXTURES}/runs/C2/ckpt_tokens_327680.safetensors"),
            None,
        ),
        (
            format!("{FIXTURES}/stories260K/model.safetensors"),
            Some(&stories_config),
        ),
    ] {
        let src = FileSource::open(&path).expect("open");
        let header = read_header(&src).expect("header");
        let tensors: Vec<_> = header
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        let Recognition::Known(arch) = recognise(&tensors, &header.metadata, config) else {
            panic!("{path} not recognised")
        };
        let shards = Shards::single(&header, &src);
        let streamed = StreamedModel::new(&shards, &arch).expect("streamed");
        let loaded = block_on(streamed.load(&mut |_| {})).expect("load");
        // stories260K's vocabulary is 512: keep the ids below it.
        let fit = |b: &TokenBatch| TokenBatch {
            batch: b.batch.min(4),
            seq_len: b.seq_len.min(64),
            ids: (0..b.batch.min(4))
                .flat_map(|r| b.row(r)[..b.seq_len.min(64)].to_vec())
                .map(|id| id % arch.vocab as u32)
                .collect(),
        };
        let (eval, heldout) = (fit(&eval), fit(&heldout));
        for budget in [usize::MAX, 0] {
            let want = activation_spectra_within(
                &loaded,
                &eval,
                Some(&heldout),
                &[],
                budget,
                &mut |_| {},
                &|| false,
            )
            .expect("loaded");
            let mut layers_seen = Vec::new();
            let got = block_on(streamed_activation_spectra_within(
                &streamed,
                &eval,
                Some(&heldout),
                &[],
                budget,
                &mut |p| {
                    if p.stage == Stage::Streaming {
                        layers_seen.push(p.done)
                    }
                },
                &|| false,
            ))
            .expect("streamed");
            // The Gram route, with a zero budget, may stream a second pass.
            assert!(layers_seen.len().is_multiple_of(arch.n_layers) && !layers_seen.is_empty());
            assert_eq!(got, want, "{path}: budget {budget}");
            assert!(got.heldout_loss.expect("loss").is_finite());
        }
    }
}
