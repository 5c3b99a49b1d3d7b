//! No silent empty answers: a lone Hugging Face checkpoint (`model.safetensors`
//! with its `config.json` beside it, no training point) is analysed as a
//! one-checkpoint run by `spectra`, `probe` and `figure waterfall`; a
//! trajectory of it, and any command given files with no checkpoint among
//! them, exit non-zero and say why, naming the files. PyTorch checkpoints go
//! through the same commands (`inspect` shows the config read from the pickle;
//! `scatter` gives the same numbers as the safetensors twin).

mod common;
use common::{rankscope, FIXTURES};
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_lone_hf_checkpoint_is_a_one_checkpoint_run() {
    let model = format!("{FIXTURES}/stories260K/model.safetensors");
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");

    let (ok, out, err) = rankscope(&["spectra", &model, "--json"]);
    assert!(ok, "{err}");
    let v = json(&out);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{out}");
    let ckpt = &runs[0]["checkpoints"][0];
    assert_eq!(ckpt["path"], "model.safetensors");
    assert_eq!(ckpt["tokens"], serde_json::Value::Null);
    assert_eq!(
        ckpt["spectra"]["layers"].as_array().unwrap().len(),
        5,
        "the 5 layers config.json gives"
    );

    let (ok, out, err) = rankscope(&["probe", "--eval", &eval, &model, "--json"]);
    assert!(ok, "{err}");
    let v = json(&out);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{out}");
    let layers = runs[0]["checkpoints"][0]["spectra"]["layers"]
        .as_array()
        .unwrap();
    assert_eq!(layers.len(), 5);

    let svg = std::env::temp_dir().join(format!("rankscope_lone_{}.svg", std::process::id()));
    let (ok, _, err) = rankscope(&[
        "figure",
        "waterfall",
        &model,
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(
        !drawn.contains("no drawable data") && !drawn.contains(">no data<"),
        "{drawn}"
    );

    // `inspect` says what happened.
    let (ok, out, _) = rankscope(&["inspect", &model]);
    assert!(ok);
    assert!(
        out.contains("no training point") && out.contains("one-checkpoint run"),
        "{out}"
    );
}

#[test]
fn a_trajectory_without_training_points_is_an_error_that_says_so() {
    let model = format!("{FIXTURES}/stories260K/model.safetensors");
    let (ok, out, err) = rankscope(&["figure", "trajectory", &model, "--json"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("model.safetensors has no training token count")
            && err.contains("figure waterfall"),
        "{err}"
    );
}

#[test]
fn files_with_nothing_to_analyse_exit_non_zero_naming_them() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let llama2c = format!("{FIXTURES}/stories260K/stories260K.bin");
    let a2 = format!("{FIXTURES}/pt/A2_final_shared_storage.pt");
    for (args, named) in [
        (
            vec!["spectra", eval.as_str(), llama2c.as_str()],
            vec!["eval_tokens.safetensors", "stories260K.bin"],
        ),
        (
            vec!["probe", "--eval", eval.as_str(), llama2c.as_str(), "--json"],
            vec!["stories260K.bin"],
        ),
        (
            vec!["figure", "waterfall", eval.as_str(), "--json"],
            vec!["eval_tokens.safetensors"],
        ),
        (
            vec!["figure", "trajectory", llama2c.as_str(), "--json"],
            vec!["stories260K.bin"],
        ),
        (
            vec!["spectra", a2.as_str(), "--json"],
            vec!["A2_final_shared_storage.pt"],
        ),
    ] {
        let (ok, out, err) = rankscope(&args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.is_empty(), "{args:?} printed an answer: {out}");
        assert!(err.contains("nothing to analyse"), "{args:?}: {err}");
        for name in named {
            assert!(
                err.contains(&format!("{name}: ")),
                "{args:?}: {name} not named in {err}"
            );
        }
    }
    let (_, _, err) = rankscope(&["spectra", &a2]);
    assert!(
        err.contains(
            "A2_final_shared_storage.pt: a checkpoint whose architecture is not recognised"
        ) && err.contains("add config.json"),
        "{err}"
    );
    let (_, _, err) = rankscope(&["spectra", &llama2c]);
    assert!(
        err.contains("stories260K.bin: not a format rankscope reads"),
        "{err}"
    );
}

#[test]
fn inspect_shows_the_config_read_from_the_pickle() {
    let (ok, out, err) = rankscope(&["inspect", &format!("{FIXTURES}/pt/A1_final_model.pt")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("config from the checkpoint's pickled configs.llm_config.LLMConfig"),
        "{out}"
    );
    assert!(
        out.contains("reference · 4 layers · d_model 64 · 4 heads / 2 kv · d_k 16 · QK-norm"),
        "{out}"
    );
    assert!(
        out.contains("state dict under `model_state_dict`") && out.contains("val_loss 1.7282"),
        "{out}"
    );
    let (ok, out, _) = rankscope(&["inspect", &format!("{FIXTURES}/pt/A1_final_legacy.pt")]);
    assert!(ok);
    assert!(out.contains("torch.save (legacy format)"), "{out}");
}

#[test]
fn scatter_of_a_pt_file_equals_its_safetensors_twin() {
    let eval = format!("{FIXTURES}/eval_tokens.safetensors");
    let (ok_pt, pt, err) = rankscope(&[
        "scatter",
        "--eval",
        &eval,
        &format!("{FIXTURES}/pt/C2_final_f16_views.pt"),
        "--json",
    ]);
    assert!(ok_pt, "{err}");
    let (ok_st, st, err) = rankscope(&[
        "scatter",
        "--eval",
        &eval,
        &format!("{FIXTURES}/runs/C2/ckpt_tokens_327680.safetensors"),
        "--json",
    ]);
    assert!(ok_st, "{err}");
    let (mut a, mut b) = (json(&pt), json(&st));
    // Only the file and run names differ.
    for v in [&mut a, &mut b] {
        strip_names(v);
    }
    assert_eq!(a, b);
}

fn strip_names(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for key in [
                "path",
                "file",
                "run",
                "checkpoint",
                "caption",
                "sources",
                "title",
            ] {
                m.remove(key);
            }
            m.values_mut().for_each(strip_names);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_names),
        _ => {}
    }
}
