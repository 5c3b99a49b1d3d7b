//! PyTorch checkpoints (`shared/fixtures/pt/`, written by real PyTorch)
//! through the same paths as safetensors — the inventory recognises them by
//! content and the architecture from their own pickled config (or the
//! shapes), then weight spectra, activation spectra and held-out loss — each
//! against `expected/<RUN>.json` of the safetensors twin `manifest.json`
//! names, with the fixtures README's tolerances: W_k spectra 1e-6 relative,
//! K/Q activation spectra 1e-4 relative, val_loss 1e-4 absolute.
//! stories260K's `pytorch_model.bin` gives exactly its safetensors twin's numbers.

use rankscope_core::analysis::activations::{ActivationRun, KeyVariant};
use rankscope_core::analysis::pipeline::{collect_activation_spectra, collect_weight_spectra};
use rankscope_core::analysis::trajectory::RunSpectra;
use rankscope_core::analysis::weights::HeadSpectrum;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::{parse_tokens_safetensors, TokenBatch};
use rankscope_core::inventory::{inspect_file, Content, FileEntry, Inventory, Status};
use rankscope_core::model::arch::Recognition;
use rankscope_core::source::{block_on, FileSource};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
/// The final checkpoint of every fixture run.
const FINAL_TOKENS: u64 = 327_680;

fn json(relative: &str) -> Value {
    let path = format!("{FIXTURES}/{relative}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn tokens(name: &str) -> TokenBatch {
    parse_tokens_safetensors(&FileSource::open(format!("{FIXTURES}/{name}")).unwrap()).unwrap()
}

/// The inventory of `paths` (relative to the fixtures), as the CLI and page build it.
fn inventory(paths: &[&str]) -> Inventory {
    Inventory::link(inspect(paths))
}

fn inspect(paths: &[&str]) -> Vec<FileEntry> {
    paths
        .iter()
        .map(|p| {
            block_on(inspect_file(
                p,
                &FileSource::open(format!("{FIXTURES}/{p}")).unwrap(),
                &mut |_| {},
            ))
        })
        .collect()
}

/// The twin's own config (its safetensors metadata) as a `config.json`
/// dropped beside `file`: a bare state dict of a model without QK-norm does
/// not say its number of heads, so the user gives it as they would.
fn with_config_beside(file: &str, twin: &str) -> Inventory {
    let header = read_header(&FileSource::open(format!("{FIXTURES}/{twin}")).unwrap()).unwrap();
    let config = header.metadata["config"].as_bytes().to_vec();
    let mut files = inspect(&[file]);
    let beside = format!("{}/config.json", file.rsplit_once('/').unwrap().0);
    files.push(block_on(inspect_file(&beside, &config, &mut |_| {})));
    Inventory::link(files)
}

fn open(inv: &Inventory) -> impl Fn(usize) -> Option<FileSource> + '_ {
    move |i| FileSource::open(format!("{FIXTURES}/{}", inv.files[i].path)).ok()
}

fn weights(inv: &Inventory) -> Vec<RunSpectra> {
    let (runs, failures) = block_on(collect_weight_spectra(inv, &open(inv)));
    assert!(failures.is_empty(), "{failures:?}");
    runs
}

fn activations(
    inv: &Inventory,
    eval: &TokenBatch,
    heldout: Option<&TokenBatch>,
) -> Vec<ActivationRun> {
    let (runs, failures) = block_on(collect_activation_spectra(
        inv,
        &open(inv),
        eval,
        heldout,
        &[KeyVariant::PostNorm],
        &mut |_, _, _| {},
        &|| false,
    ));
    assert!(failures.is_empty(), "{failures:?}");
    runs
}

fn num(v: &Value) -> f64 {
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

/// Every head's σ and ratio metrics against `[{sv, pr, r90, …}]`; the worst relative error.
fn check_heads(got: &[HeadSpectrum], want: &Value, tol: f64, what: &str) -> f64 {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: heads");
    let mut worst = 0f64;
    for (h, (g, w)) in got.iter().zip(want).enumerate() {
        let sv = w["sv"].as_array().unwrap();
        assert_eq!(g.singular_values.len(), sv.len(), "{what}{h}");
        let m = &g.metrics.spectrum;
        assert_eq!(m.r90 as u64, w["r90"].as_u64().unwrap(), "{what}{h} r90");
        let pairs = g
            .singular_values
            .iter()
            .zip(sv)
            .map(|(a, b)| (*a, num(b), "σ"))
            .chain([
                (m.pr, num(&w["pr"]), "pr"),
                (m.cond, num(&w["cond"]), "cond"),
            ]);
        for (a, b, name) in pairs {
            let e = rel(a, b);
            assert!(
                e <= tol,
                "{what}{h} {name}: {a} vs {b} (relative {e:e} > {tol:e})"
            );
            worst = worst.max(e);
        }
    }
    worst
}

/// (pt file, run of its safetensors twin)
const FILES: [(&str, &str); 5] = [
    ("pt/A1_final_model.pt", "A1"),
    ("pt/B1_final_bf16.pt", "B1"),
    ("pt/C2_final_f16_views.pt", "C2"),
    ("pt/A2_final_shared_storage.pt", "A2"),
    ("pt/A1_final_legacy.pt", "A1"),
];

#[test]
fn every_pt_file_gives_its_twins_expected_numbers() {
    let manifest = json("pt/manifest.json");
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    for (file, run) in FILES {
        let twin = manifest["files"][file.trim_start_matches("pt/")]["same_tensors_as"]
            .as_str()
            .unwrap();
        assert_eq!(
            twin,
            format!("runs/{run}/ckpt_tokens_{FINAL_TOKENS}.safetensors"),
            "{file}: manifest"
        );
        let expected = json(&format!("expected/{run}.json"));
        let ckpt = expected["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tokens"] == FINAL_TOKENS)
            .unwrap();

        let inv = if file.contains("A2") {
            with_config_beside(file, twin)
        } else {
            inventory(&[file])
        };
        let entry = &inv.files[0];
        assert_eq!(
            entry.overall_status(),
            Status::Ok,
            "{file}: {:?}",
            entry.all_messages()
        );
        assert!(
            matches!(entry.content, Content::Checkpoint { .. }),
            "{file}"
        );
        assert!(
            matches!(entry.recognition, Some(Recognition::Known(_))),
            "{file}: {:?}",
            entry.architecture
        );
        assert_eq!(inv.runs.len(), 1, "{file}: one run");

        let w = weights(&inv);
        let ws = &w[0].checkpoints[0].spectra;
        let mut worst_w = 0f64;
        for (l, layer) in ckpt["layers"].as_array().unwrap().iter().enumerate() {
            worst_w = worst_w.max(check_heads(
                &ws.layers[l].k_heads,
                &layer["wk_heads"],
                1e-6,
                &format!("{file} L{l} W_k"),
            ));
        }

        let a = activations(&inv, &eval, Some(&heldout));
        let got = &a[0].checkpoints[0].spectra;
        let mut worst_a = 0f64;
        for (l, layer) in ckpt["layers"].as_array().unwrap().iter().enumerate() {
            let k = got.layers[l].k_heads(KeyVariant::PostNorm).unwrap();
            worst_a = worst_a.max(check_heads(
                k,
                &layer["k_heads"],
                1e-4,
                &format!("{file} L{l} K"),
            ));
            worst_a = worst_a.max(check_heads(
                &got.layers[l].q_heads,
                &layer["q_heads"],
                1e-4,
                &format!("{file} L{l} Q"),
            ));
        }
        let loss = got.heldout_loss.unwrap();
        let want_loss = num(&ckpt["val_loss"]);
        assert!(
            (loss - want_loss).abs() <= 1e-4,
            "{file}: val_loss {loss} vs {want_loss}"
        );
        println!(
            "{file}: W_k worst rel {worst_w:e}, K/Q worst rel {worst_a:e}, val_loss {loss} vs {want_loss} (|Δ| {:e})",
            (loss - want_loss).abs()
        );
    }
}

#[test]
fn the_users_trainer_dict_gives_config_step_and_metrics() {
    let inv = inventory(&["pt/A1_final_model.pt"]);
    let f = &inv.files[0];
    assert_eq!(f.step, Some(320));
    let detail = f.detail.as_deref().unwrap();
    assert!(
        detail.contains("state dict under `model_state_dict`"),
        "{detail}"
    );
    assert!(
        detail.contains("config from the checkpoint's pickled configs.llm_config.LLMConfig"),
        "{detail}"
    );
    assert!(detail.contains("val_loss 1.7282"), "{detail}");
    let Some(Recognition::Known(arch)) = &f.recognition else {
        panic!("{:?}", f.architecture)
    };
    assert_eq!(
        (arch.n_layers, arch.n_heads, arch.n_kv_heads, arch.d_model),
        (4, 4, 2, 64)
    );
    assert_eq!(arch.prefix_removed.as_deref(), Some("_orig_mod."));
    let Content::Checkpoint { header, .. } = &f.content else {
        panic!()
    };
    let config: Value = serde_json::from_str(&header.metadata["config"]).unwrap();
    assert_eq!(config["use_qk_norm"], Value::Bool(true));
    assert_eq!(config["train_tokens"], 327_680);
}

#[test]
fn a_bare_state_dict_without_qk_norm_asks_for_its_config() {
    let inv = inventory(&["pt/A2_final_shared_storage.pt"]);
    let messages = inv.files[0].all_messages().join("; ");
    assert!(
        messages.contains("n_heads cannot be told from shapes alone: add config.json"),
        "{messages}"
    );
}

#[test]
fn the_legacy_file_is_read_and_named() {
    let inv = inventory(&["pt/A1_final_legacy.pt"]);
    let detail = inv.files[0].detail.as_deref().unwrap();
    assert!(detail.contains("legacy format"), "{detail}");
}

#[test]
fn stories260k_pytorch_bin_equals_its_safetensors_twin() {
    let eval = tokens("eval_tokens.safetensors");
    let bin = inventory(&[
        "pt/stories260K/pytorch_model.bin",
        "pt/stories260K/config.json",
    ]);
    let st = inventory(&["stories260K/model.safetensors", "stories260K/config.json"]);
    for inv in [&bin, &st] {
        assert!(
            matches!(inv.files[0].recognition, Some(Recognition::Known(_))),
            "{:?}",
            inv.files[0].architecture
        );
    }
    assert_eq!(
        weights(&bin)[0].checkpoints[0].spectra,
        weights(&st)[0].checkpoints[0].spectra
    );
    let (a, b) = (
        activations(&bin, &eval, None),
        activations(&st, &eval, None),
    );
    assert_eq!(a[0].checkpoints[0].spectra, b[0].checkpoints[0].spectra);
}

#[test]
fn a_lone_checkpoint_is_drawn_as_its_per_layer_profile_and_says_why() {
    use rankscope_core::analysis::trajectory::{
        trajectory_figure, LayerSel, Matrix, Metric, TrainingAxis,
    };
    let inv = inventory(&[
        "pt/stories260K/pytorch_model.bin",
        "pt/stories260K/config.json",
    ]);
    let note = inv.files[0].all_messages().join("; ");
    assert!(note.contains("analysed as a one-checkpoint run"), "{note}");
    let runs = weights(&inv);
    let fig = trajectory_figure(
        &runs,
        LayerSel::Mean,
        Matrix::K,
        Metric::Pr,
        TrainingAxis::Tokens,
    );
    assert!(
        fig.caption
            .starts_with("No checkpoint has a training tokens value"),
        "{}",
        fig.caption
    );
    assert!(
        fig.caption.contains("(1 without a training tokens value"),
        "{}",
        fig.caption
    );
    // It is still drawn: its per-layer profile (stories260K has 5 layers), each point the
    // layer's mean K PR over heads.
    assert!(fig.caption.contains("per-layer profile"), "{}", fig.caption);
    assert_eq!(fig.x.label, "layer");
    assert_eq!(fig.series.len(), 1);
    let profile = &fig.series[0].points;
    assert_eq!(profile.len(), 5, "{profile:?}");
    let spectra = &runs[0].checkpoints[0].spectra;
    for (l, p) in profile.iter().enumerate() {
        assert_eq!(p[0], l as f64);
        let want =
            rankscope_core::analysis::trajectory::layer_value(spectra, l, Matrix::K, Metric::Pr)
                .unwrap();
        assert!(
            (p[1] - want).abs() <= 1e-12 * want.abs(),
            "layer {l}: {} vs {want}",
            p[1]
        );
    }
    // With a training point there is no such note.
    let placed = trajectory_figure(
        &weights(&inventory(&["pt/A1_final_model.pt"])),
        LayerSel::Mean,
        Matrix::K,
        Metric::Pr,
        TrainingAxis::Step,
    );
    assert!(
        !placed.caption.contains("No checkpoint"),
        "{}",
        placed.caption
    );
}
