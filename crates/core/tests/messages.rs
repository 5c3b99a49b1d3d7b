//! Messages that point at the right thing (issue 19): a bad `norm_eps` is
//! named as such, ids beyond a model's vocabulary are the batch file's
//! fault, an oversized session is refused before it is read, a loss caption
//! does not count NaN values as drawn, and token batches go to the model
//! they belong to (nearest folder, then name, only if they fit).

use rankscope_core::analysis::losscurve::figures::{loss_curve_figure, LogRun, LossCurveOptions};
use rankscope_core::formats::logs;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::inventory::batches::{
    match_batches, misfit, name_batches, run_batches, BatchChoice,
};
use rankscope_core::inventory::{inspect_file, FileEntry, Inventory};
use rankscope_core::model::arch::Recognition;
use rankscope_core::session::{read_session, SessionError, MAX_SESSION_BYTES, SESSION_HEAD};
use rankscope_core::source::{block_on, ByteSource, FileSource};
use std::cell::Cell;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn fixture(rel: &str, shown: &str) -> FileEntry {
    let src = FileSource::open(Path::new(FIXTURES).join(rel)).expect("fixture");
    block_on(inspect_file(shown, &src, &mut |_| {}))
}

fn bytes(shown: &str, data: Vec<u8>) -> FileEntry {
    block_on(inspect_file(shown, &data, &mut |_| {}))
}

#[test]
fn a_negative_norm_eps_is_named_in_the_config() {
    let text =
        std::fs::read_to_string(Path::new(FIXTURES).join("stories260K/config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["rms_norm_eps"] = serde_json::json!(-1);
    let inv = Inventory::link(vec![
        fixture("stories260K/model.safetensors", "s/model.safetensors"),
        bytes("s/config.json", config.to_string().into_bytes()),
    ]);
    let model = &inv.files[0];
    let Some(Recognition::Unknown { reason, .. }) = &model.recognition else {
        panic!("{:?}", model.architecture)
    };
    assert!(
        reason.contains("config.json field `rms_norm_eps` is -1, expected a finite number ≥ 0"),
        "{reason}"
    );
}

/// A folder of two studies: the 4-layer byte-level B1 (vocabulary 256) with
/// the eval batch at the root, stories260K (vocabulary 512) with its own
/// batch in `s/`, and a deliberately wrong batch beside B1.
#[test]
fn batches_go_to_their_own_model_and_misfits_name_the_batch() {
    let ids_to_511: Vec<u32> = (0..128).map(|i| (i * 4) as u32 % 512).collect();
    let own = serde_json::json!({ "input_ids": [ids_to_511.clone()] }).to_string();
    let bad = serde_json::json!({ "input_ids": [[1, 2, 300, 4]] }).to_string();
    let inv = Inventory::link(vec![
        fixture("eval_tokens.safetensors", "eval_tokens.safetensors"),
        fixture("heldout_tokens.safetensors", "heldout_tokens.safetensors"),
        fixture(
            "runs/B1/ckpt_tokens_327680.safetensors",
            "B1/ckpt_tokens_327680.safetensors",
        ),
        bytes("B1/eval_wrong.json", bad.into_bytes()),
        fixture("stories260K/model.safetensors", "s/model.safetensors"),
        fixture("stories260K/config.json", "s/config.json"),
        bytes("s/eval_tokens.json", own.into_bytes()),
    ]);
    let index = |p: &str| {
        inv.files
            .iter()
            .position(|f| f.path == p)
            .unwrap_or_else(|| panic!("{p}"))
    };
    let matches = match_batches(&inv);
    let of = |model: &str| {
        matches
            .iter()
            .find(|m| m.model == index(model))
            .expect("a match per model")
    };

    let s = of("s/model.safetensors");
    assert_eq!(
        s.eval,
        Some(index("s/eval_tokens.json")),
        "stories260K takes the batch in its own folder"
    );
    assert_eq!(s.heldout, Some(index("heldout_tokens.safetensors")));

    let b1 = of("B1/ckpt_tokens_327680.safetensors");
    assert_eq!(
        b1.eval,
        Some(index("eval_tokens.safetensors")),
        "the nearer batch does not fit B1"
    );
    assert!(
        b1.warnings.iter().any(|w| w.contains("nearer eval batch not used: token batch B1/eval_wrong.json: token id 300 at row 0, column 2 is not below the vocabulary size 256")),
        "{:?}",
        b1.warnings
    );
    // The misfit names the batch file, and says whose vocabulary.
    let Some(Recognition::Known(arch)) =
        &inv.files[index("B1/ckpt_tokens_327680.safetensors")].recognition
    else {
        panic!()
    };
    let batch = TokenBatch {
        batch: 1,
        seq_len: 4,
        ids: vec![1, 2, 300, 4],
    };
    assert_eq!(
        misfit("B1/eval_wrong.json", &batch, arch).unwrap(),
        "token batch B1/eval_wrong.json: token id 300 at row 0, column 2 is not below the vocabulary size 256 of this model"
    );
}

/// A batch longer than a model's context (issue 19): B1's config says `max_seq_len` 128
/// (its RoPE cache), stories260K's `max_position_embeddings` 512. A nearer batch of 129-token
/// rows is passed over for B1 with a warning that names it and both lengths; the same batch
/// fits stories260K. A model whose config states no context takes any length.
#[test]
fn a_batch_longer_than_the_context_does_not_fit() {
    let row = |n: usize| -> Vec<u32> { (0..n as u32).map(|i| i % 200).collect() };
    let long = serde_json::json!({ "input_ids": [row(129)] }).to_string();
    let inv = Inventory::link(vec![
        fixture("eval_tokens.safetensors", "eval_tokens.safetensors"),
        fixture(
            "runs/B1/ckpt_tokens_327680.safetensors",
            "B1/ckpt_tokens_327680.safetensors",
        ),
        bytes("B1/eval_long.json", long.clone().into_bytes()),
        fixture("stories260K/model.safetensors", "s/model.safetensors"),
        fixture("stories260K/config.json", "s/config.json"),
        bytes("s/eval_long.json", long.into_bytes()),
    ]);
    let arch = |p: &str| match inv
        .files
        .iter()
        .find(|f| f.path == p)
        .and_then(|f| f.recognition.as_ref())
    {
        Some(Recognition::Known(a)) => a.clone(),
        other => panic!("{p}: {other:?}"),
    };
    let b1 = arch("B1/ckpt_tokens_327680.safetensors");
    let stories = arch("s/model.safetensors");
    assert_eq!(b1.context, Some(128), "the reference trainer's max_seq_len");
    assert_eq!(stories.context, Some(512), "max_position_embeddings");
    assert!(
        b1.summary().ends_with("vocab 256 · context 128"),
        "{}",
        b1.summary()
    );

    let batch = TokenBatch {
        batch: 1,
        seq_len: 129,
        ids: row(129),
    };
    assert_eq!(
        misfit("B1/eval_long.json", &batch, &b1).unwrap(),
        "token batch B1/eval_long.json: its sequences are 129 tokens long, over the context size 128 of this model"
    );
    assert_eq!(misfit("s/eval_long.json", &batch, &stories), None);
    let exact = TokenBatch {
        batch: 1,
        seq_len: 128,
        ids: row(128),
    };
    assert_eq!(misfit("x.json", &exact, &b1), None, "128 tokens fit");
    let mut unsaid = b1.clone();
    unsaid.context = None;
    assert_eq!(misfit("B1/eval_long.json", &batch, &unsaid), None);

    let runs = run_batches(&inv, &Default::default());
    let of = |run: &str| runs.iter().find(|r| r.run == run).unwrap();
    let b1_batches = of("B1");
    assert_eq!(
        b1_batches.eval.as_ref().unwrap().path,
        "eval_tokens.safetensors",
        "the nearer, longer batch is passed over"
    );
    assert!(
        b1_batches.warnings.iter().any(|w| w
            == "nearer eval batch not used: token batch B1/eval_long.json: its sequences are 129 tokens long, over the context size 128 of this model"),
        "{:?}",
        b1_batches.warnings
    );
    let stories_run = runs
        .iter()
        .find(|r| {
            r.eval
                .as_ref()
                .is_some_and(|b| b.path == "s/eval_long.json")
        })
        .expect("stories260K takes its own 129-token batch");
    assert!(
        !stories_run.warnings.iter().any(|w| w.contains("context")),
        "{:?}",
        stories_run.warnings
    );
    // A batch that no model can take says so on its own row, with the context it exceeds.
    let too_long_for_all = serde_json::json!({ "input_ids": [row(600)] }).to_string();
    let inv = Inventory::link(vec![
        fixture("stories260K/model.safetensors", "s/model.safetensors"),
        fixture("stories260K/config.json", "s/config.json"),
        bytes("s/eval_600.json", too_long_for_all.into_bytes()),
    ]);
    let notes = inv.files[2].all_messages();
    assert!(
        notes
            .iter()
            .any(|n| n
                == "its sequences are 600 tokens long, over the context size 512 (model of s)"),
        "{notes:?}"
    );
}

/// Per run, with the user's choices: the runs panel's and the captions' view
/// of the same matching.
#[test]
fn run_batches_take_choices_that_fit_and_captions_name_them() {
    let bad = serde_json::json!({ "input_ids": [[1, 2, 300, 4]] }).to_string();
    let other = serde_json::json!({ "input_ids": [[1, 2, 3, 4], [5, 6, 7, 8]] }).to_string();
    let inv = Inventory::link(vec![
        fixture("eval_tokens.safetensors", "eval_tokens.safetensors"),
        fixture("heldout_tokens.safetensors", "heldout_tokens.safetensors"),
        fixture(
            "runs/B1/ckpt_tokens_327680.safetensors",
            "B1/ckpt_tokens_327680.safetensors",
        ),
        bytes("B1/eval_wrong.json", bad.into_bytes()),
        bytes("eval_other.json", other.into_bytes()),
    ]);
    let auto = run_batches(&inv, &Default::default());
    assert_eq!(auto.len(), 1);
    let b1 = &auto[0];
    assert_eq!(b1.run, "B1");
    // eval_tokens and eval_other are equally near: a visible tie, never silent.
    assert_eq!(b1.eval.as_ref().unwrap().path, "eval_other.json");
    assert!(
        b1.warnings.iter().any(
            |w| w.contains("ambiguous eval batch: eval_other.json and eval_tokens.safetensors")
        ),
        "{:?}",
        b1.warnings
    );
    assert_eq!(
        b1.heldout.as_ref().unwrap().path,
        "heldout_tokens.safetensors"
    );
    assert_eq!(
        (
            b1.heldout.as_ref().unwrap().batch,
            b1.heldout.as_ref().unwrap().seq_len
        ),
        (8, 128)
    );

    // The user's choice settles the tie; a choice that does not fit is refused aloud.
    let mut choices = std::collections::BTreeMap::new();
    choices.insert(
        "B1".to_string(),
        BatchChoice {
            eval: Some("eval_tokens.safetensors".into()),
            heldout: None,
        },
    );
    let chosen = run_batches(&inv, &choices);
    let eval = chosen[0].eval.clone().unwrap();
    assert_eq!(eval.path, "eval_tokens.safetensors");
    assert!(
        !chosen[0]
            .warnings
            .iter()
            .any(|w| w.contains("ambiguous eval")),
        "{:?}",
        chosen[0].warnings
    );
    choices.insert(
        "B1".to_string(),
        BatchChoice {
            eval: Some("B1/eval_wrong.json".into()),
            heldout: None,
        },
    );
    let refused = run_batches(&inv, &choices);
    assert!(
        refused[0].warnings.iter().any(|w| w.starts_with(
            "chosen eval batch not used: token batch B1/eval_wrong.json: token id 300"
        )),
        "{:?}",
        refused[0].warnings
    );
    assert_ne!(refused[0].eval.as_ref().unwrap().path, "B1/eval_wrong.json");

    // The digest is the batch content's SHA-256 (hex) as the captions cite it.
    assert_eq!(eval.digest.len(), 64);
    let mut spec =
        rankscope_core::figures::build::layer_bars("K PR", &[], "K PR on the eval batch", vec![]);
    name_batches(&mut spec, &chosen, &["B1".to_string()], true);
    let short = &eval.digest[..12];
    assert_eq!(
        spec.caption,
        format!("K PR on the eval batch. Eval batch eval_tokens.safetensors (sha256 {short}, 4×128), held-out batch heldout_tokens.safetensors (sha256 {}, 8×128).", &chosen[0].heldout.as_ref().unwrap().digest[..12])
    );
    // The batch files, as files, each once: the caption already names them in words.
    assert_eq!(
        spec.sources,
        ["eval_tokens.safetensors", "heldout_tokens.safetensors"]
    );
    name_batches(&mut spec, &chosen, &["B1".to_string()], false);
    assert_eq!(spec.sources.len(), 2);
}

/// A source that says it is huge and counts what is read from it.
struct Huge {
    head: Vec<u8>,
    size: u64,
    most_read: Cell<usize>,
}

impl ByteSource for Huge {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.most_read.set(self.most_read.get().max(len));
        let end = offset as usize + len;
        if end > self.head.len() {
            return Err(std::io::Error::other("the test source holds only its head"));
        }
        Ok(self.head[offset as usize..end].to_vec())
    }
}

#[test]
fn oversized_sessions_are_refused_before_reading() {
    let head = br#"{"format":"rankscope-session","version":1,"app_version":"0.1.0","files":[{"name":"a","size":1}"#.to_vec();
    for size in [1_100_000_000u64, 2_500_000_000] {
        let src = Huge {
            head: head
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b' ', SESSION_HEAD))
                .collect(),
            size,
            most_read: Cell::new(0),
        };
        let got = block_on(read_session(&src));
        assert_eq!(got, Some(Err(SessionError::TooBig(size))));
        assert!(
            src.most_read.get() <= SESSION_HEAD,
            "read {} bytes",
            src.most_read.get()
        );
        let msg = SessionError::TooBig(size).to_string();
        assert!(msg.contains(&format!("{size} bytes; session files over {MAX_SESSION_BYTES} bytes are refused (it was not read)")), "{msg}");
    }
}

#[test]
fn loss_captions_do_not_count_nan_as_drawn() {
    let text = b"{\"step\": 1, \"loss\": 3.0}\n{\"step\": 2, \"loss\": NaN}\n{\"step\": 3, \"loss\": 2.0}\n{\"step\": 4, \"loss\": Infinity}\n";
    let series = logs::parse("metrics.jsonl", text).unwrap().remove(0);
    let runs = vec![LogRun {
        name: "a".into(),
        color: 0,
        source: "metrics.jsonl".into(),
        series,
    }];
    let spec = loss_curve_figure(
        &runs,
        &LossCurveOptions {
            ema_beta: 0.0,
            ..LossCurveOptions::default()
        },
    )
    .unwrap();
    assert!(
        spec.caption
            .contains("2 of 2 logged points drawn; 2 non-finite value(s) (NaN/∞) not drawn."),
        "{}",
        spec.caption
    );
}
