//! What a run's own files say about how it was trained — QK-norm, optimizer, learning rates
//! and data — for the runs panel, so the reader sees the condition of each run beside its name
//! (the plan's runs differ in exactly these: A1/A2 by QK-norm, A/B by optimizer, C1/C2 by data).
//!
//! Sources, in this order (the first that says a thing wins; a later one that says otherwise
//! is a disagreement the panel shows): the recognised architecture (QK-norm from the tensors
//! themselves), each checkpoint's own config (safetensors `__metadata__["config"]`, or the
//! pickled config of a PyTorch checkpoint, which the reader stores there too), the
//! `config.json` beside it, then the run logs' run-level constants (a JSONL header line,
//! results.json scalars, a text log's `key: value` lines). Nothing is guessed from names: a run
//! whose files say nothing shows nothing.

use super::{Content, FileEntry, RunGroup};
use crate::model::arch::Recognition;
use serde::Serialize;
use serde_json::{Map, Value};

/// One thing the files say, with the file that says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    /// As shown: `Muon + AdamW`, `standard`, `muon_lr 0.024, adamw_lr 0.006`.
    pub value: String,
    /// Where it was read: `runs/A1/metrics.jsonl (log header)`.
    pub source: String,
}

/// What the files say about one run (each `None` when none of them says).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunFacts {
    /// `QK-norm` or `no QK-norm`.
    pub qk_norm: Option<Fact>,
    pub optimizer: Option<Fact>,
    /// The learning rates a config or header states (peak / base values, by their keys).
    pub lr: Option<Fact>,
    /// The training data: a dataset, corpus or data path.
    pub data: Option<Fact>,
    /// Two sources that say different things about the same fact, one line each.
    pub disagreements: Vec<String>,
}

/// Keys naming an optimizer by a string (or an object with a `name` / `type`).
const OPTIMIZER_KEYS: &[&str] = &["optimizer", "optimizer_name", "optimizer_type", "optim"];
/// Keys of learning rates, in the order they are listed.
const LR_KEYS: &[&str] = &[
    "lr",
    "learning_rate",
    "max_lr",
    "base_lr",
    "muon_lr",
    "adamw_lr",
    "adam_lr",
    "embed_lr",
    "matrix_lr",
];
/// Keys naming the training data.
const DATA_KEYS: &[&str] = &[
    "dataset",
    "dataset_name",
    "data",
    "corpus",
    "train_data",
    "data_path",
    "data_dir",
    "train_files",
    "input_bin",
];
/// Keys stating QK-norm in a config or header.
const QK_NORM_KEYS: &[&str] = &["use_qk_norm", "qk_norm", "qk_layernorm"];
/// A value longer than this is cut (a data path can be long); the source keeps the file.
const MAX_VALUE_CHARS: usize = 80;

/// The facts of `run`, whose checkpoints and logs index `files` (see the module docs for the
/// order of the sources). [`super::Inventory::link`] sets every run's [`RunGroup::facts`].
pub fn run_facts(files: &[FileEntry], run: &RunGroup) -> RunFacts {
    let mut facts = RunFacts::default();
    // The architecture of the run's last recognised checkpoint: QK-norm from its tensors.
    if let Some((path, arch)) =
        run.checkpoints
            .iter()
            .rev()
            .find_map(|c| match &files.get(c.file)?.recognition {
                Some(Recognition::Known(a)) => Some((c.path.as_str(), a)),
                _ => None,
            })
    {
        let value = if arch.qk_norm {
            "QK-norm"
        } else {
            "no QK-norm"
        };
        facts.qk_norm = Some(Fact {
            value: value.into(),
            source: format!("{path} (its tensors)"),
        });
    }
    for (source, object) in sources(files, run) {
        let said = Said::read(&object);
        merge(
            &mut facts.qk_norm,
            said.qk_norm,
            &source,
            "QK-norm",
            &mut facts.disagreements,
        );
        merge(
            &mut facts.optimizer,
            said.optimizer,
            &source,
            "optimizer",
            &mut facts.disagreements,
        );
        merge(
            &mut facts.data,
            said.data,
            &source,
            "data",
            &mut facts.disagreements,
        );
        // Learning rates are written many ways (per optimizer, per group, as a schedule's base):
        // the first source that states any is shown, and no two sources are compared.
        if facts.lr.is_none() {
            facts.lr = said.lr.map(|value| Fact {
                value,
                source: source.clone(),
            });
        }
    }
    facts
}

/// Sets `slot` from the first source that says it; a later source that says otherwise (ignoring
/// case) is recorded as a disagreement, naming both files.
fn merge(
    slot: &mut Option<Fact>,
    said: Option<String>,
    source: &str,
    what: &str,
    disagreements: &mut Vec<String>,
) {
    let Some(value) = said else { return };
    match slot {
        None => {
            *slot = Some(Fact {
                value,
                source: source.to_owned(),
            })
        }
        Some(first) if !first.value.eq_ignore_ascii_case(&value) => {
            let line = format!(
                "{what}: {} says {}, {source} says {value}",
                first.source, first.value
            );
            if !disagreements.contains(&line) {
                disagreements.push(line);
            }
        }
        Some(_) => {}
    }
}

/// The JSON objects that may state the run's settings, each with a label naming its file.
fn sources(files: &[FileEntry], run: &RunGroup) -> Vec<(String, Map<String, Value>)> {
    let mut out = Vec::new();
    // The last checkpoint first: the state the run ended in.
    for c in run.checkpoints.iter().rev() {
        let Some(f) = files.get(c.file) else { continue };
        if let Content::Checkpoint { header, .. } = &f.content {
            if let Some(Value::Object(m)) = header
                .metadata
                .get("config")
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
            {
                out.push((format!("{} (its config)", c.path), m));
            }
        }
        let dir = super::naming::parent_dir(&c.path);
        for g in files {
            if let Content::ModelConfig(Value::Object(m)) = &g.content {
                if super::naming::parent_dir(&g.path) == dir
                    && !out.iter().any(|(s, _)| s.starts_with(&g.path))
                {
                    out.push((g.path.clone(), m.clone()));
                }
            }
        }
    }
    for f in files.iter().filter(|f| run.logs.contains(&f.path)) {
        if let Content::RunLog(series) = &f.content {
            for s in series {
                if !s.constants.is_empty() {
                    let m: Map<String, Value> = s
                        .constants
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    out.push((format!("{} (log header)", f.path), m));
                }
            }
        }
    }
    out
}

/// What one source object says.
struct Said {
    qk_norm: Option<String>,
    optimizer: Option<String>,
    lr: Option<String>,
    data: Option<String>,
}

impl Said {
    fn read(m: &Map<String, Value>) -> Said {
        let qk_norm = QK_NORM_KEYS
            .iter()
            .find_map(|k| m.get(*k)?.as_bool())
            .map(|on| if on { "QK-norm" } else { "no QK-norm" }.to_string());
        Said {
            qk_norm,
            optimizer: optimizer(m),
            lr: learning_rates(m),
            data: DATA_KEYS.iter().find_map(|k| text(m.get(*k)?)),
        }
    }
}

/// The optimizer: a name (`optimizer: "adamw"`, or `{name: …}`), a list (`optimizers:
/// ["Muon", "AdamW"]`, joined with `+`), else the user's trainer's `use_muon` switch (Muon on
/// the 2-D weights and AdamW on the rest, or pure AdamW: `shared/fixtures/README.md`).
fn optimizer(m: &Map<String, Value>) -> Option<String> {
    let named = OPTIMIZER_KEYS.iter().find_map(|k| match m.get(*k)? {
        Value::Object(o) => ["name", "type", "_target_"]
            .iter()
            .find_map(|n| text(o.get(*n)?)),
        v => text(v),
    });
    let listed = || {
        let list = m.get("optimizers")?.as_array()?;
        let names: Vec<String> = list.iter().filter_map(text).collect();
        (!names.is_empty() && names.len() == list.len()).then(|| names.join(" + "))
    };
    let switch = || {
        m.get("use_muon")?.as_bool().map(|muon| {
            if muon {
                "Muon + AdamW".to_string()
            } else {
                "AdamW".to_string()
            }
        })
    };
    named.or_else(listed).or_else(switch)
}

/// The learning rates a source states: `muon_lr 0.024, adamw_lr 0.006`, or a header's
/// `base_lrs` beside its `optimizers` (`Muon 0.024, AdamW 0.006`).
fn learning_rates(m: &Map<String, Value>) -> Option<String> {
    // The user's trainer keeps `muon_lr` in its config when `use_muon` is off: it is not used.
    let muon_off = m.get("use_muon").and_then(Value::as_bool) == Some(false);
    let keyed: Vec<String> = LR_KEYS
        .iter()
        .filter(|k| !(muon_off && **k == "muon_lr"))
        .filter_map(|k| {
            // As the file writes it (JSON numbers print in their shortest form): no rounding.
            let v = m.get(*k).filter(|v| v.is_number())?;
            Some(format!("{k} {v}"))
        })
        .collect();
    if !keyed.is_empty() {
        return Some(keyed.join(", "));
    }
    // `base_lrs`: one list per optimizer (one value per parameter group).
    let groups = m.get("base_lrs")?.as_array()?;
    let names: Vec<String> = m
        .get("optimizers")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(text).collect())
        .unwrap_or_default();
    let parts: Vec<String> = groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let values: Vec<String> = match g {
                Value::Array(vs) => vs
                    .iter()
                    .filter(|v| v.is_number())
                    .map(Value::to_string)
                    .collect(),
                v if v.is_number() => vec![v.to_string()],
                _ => Vec::new(),
            };
            if values.is_empty() {
                return None;
            }
            let name = names
                .get(i)
                .filter(|_| names.len() == groups.len())
                .cloned()
                .unwrap_or_else(|| format!("group {i}"));
            Some(format!("{name} {}", values.join("/")))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A string value (or a number, as text), trimmed and cut to [`MAX_VALUE_CHARS`]; `None` for
/// anything else or an empty string.
fn text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if s.is_empty() {
        return None;
    }
    Some(if s.chars().count() > MAX_VALUE_CHARS {
        let mut cut: String = s.chars().take(MAX_VALUE_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn optimizer_from_name_list_or_switch() {
        assert_eq!(
            optimizer(&obj(json!({"optimizer": "adamw"}))).as_deref(),
            Some("adamw")
        );
        assert_eq!(
            optimizer(&obj(json!({"optimizer": {"name": "Lion", "lr": 1e-4}}))).as_deref(),
            Some("Lion")
        );
        assert_eq!(
            optimizer(&obj(
                json!({"optimizers": ["Muon", "AdamW"], "use_muon": false})
            ))
            .as_deref(),
            Some("Muon + AdamW"),
            "a list names them better than the switch"
        );
        assert_eq!(
            optimizer(&obj(json!({"use_muon": false}))).as_deref(),
            Some("AdamW")
        );
        assert_eq!(optimizer(&obj(json!({"use_muon": "yes"}))), None);
        assert_eq!(optimizer(&obj(json!({"lr": 0.1}))), None);
    }

    #[test]
    fn learning_rates_by_key_or_per_optimizer() {
        assert_eq!(
            learning_rates(&obj(json!({"muon_lr": 0.024, "adamw_lr": 0.006}))).as_deref(),
            Some("muon_lr 0.024, adamw_lr 0.006")
        );
        assert_eq!(
            learning_rates(&obj(
                json!({"optimizers": ["Muon", "AdamW"], "base_lrs": [[0.024], [0.006, 0.003]]})
            ))
            .as_deref(),
            Some("Muon 0.024, AdamW 0.006/0.003")
        );
        assert_eq!(
            learning_rates(&obj(json!({"base_lrs": [0.1]}))).as_deref(),
            Some("group 0 0.1")
        );
        assert_eq!(learning_rates(&obj(json!({"lr": "fast"}))), None);
        assert_eq!(
            learning_rates(&obj(
                json!({"use_muon": false, "muon_lr": 0.024, "adamw_lr": 0.006})
            ))
            .as_deref(),
            Some("adamw_lr 0.006"),
            "an unused Muon rate is not shown"
        );
    }

    #[test]
    fn data_and_qk_norm_and_long_values() {
        let said = Said::read(&obj(json!({"corpus": "standard", "use_qk_norm": false})));
        assert_eq!(said.data.as_deref(), Some("standard"));
        assert_eq!(said.qk_norm.as_deref(), Some("no QK-norm"));
        let long = "d/".repeat(100);
        let cut = text(&json!(long)).unwrap();
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(text(&json!("  ")), None);
    }

    #[test]
    fn the_first_source_wins_and_a_contradiction_is_kept() {
        let mut slot = None;
        let mut d = Vec::new();
        merge(
            &mut slot,
            Some("Muon + AdamW".into()),
            "a (its config)",
            "optimizer",
            &mut d,
        );
        merge(
            &mut slot,
            Some("muon + adamw".into()),
            "b (log header)",
            "optimizer",
            &mut d,
        );
        assert!(d.is_empty(), "same up to case");
        merge(
            &mut slot,
            Some("AdamW".into()),
            "b (log header)",
            "optimizer",
            &mut d,
        );
        assert_eq!(slot.unwrap().source, "a (its config)");
        assert_eq!(
            d,
            ["optimizer: a (its config) says Muon + AdamW, b (log header) says AdamW"]
        );
    }
}
