//! The user's two column-wise JSON files (github.com/vukrosic/attention-keys-analysis).
//!
//! **`results.json`** (`research/qk_norm_25m_study.py`, see
//! `shared/fixtures/README.md`): `{tag, tokens[], loss[], val_loss[],
//! mean_pr[], layer_pr{"0": […]}, gamma_cv{…}, gamma_final{…}}`. One row per
//! checkpoint; x = `tokens`; metrics `loss`, `val_loss`, `mean_pr` (and any
//! other top-level number array), `layer_pr/0`…, `gamma_cv/0`…; `gamma_final`
//! and other scalars go to `constants`; `tag` is the run name. `null` is
//! missing. Every array must have as many entries as `tokens`.
//!
//! **`metrics.json`** (written by the user's trainer; example in that repo:
//! `plots/metrics_1000000_20260218_135244.json`):
//! `{"final_metrics": {val_loss, val_accuracy, val_perplexity, train_loss},
//! "setup_time_seconds", "active_training_time_seconds", "total_wall_time_seconds",
//! "total_time_minutes", "actual_steps", "tokens_seen", "train_tokens",
//! "history": {"steps": [], "val_losses": [], "val_accuracies": [],
//! "val_perplexities": [], "elapsed_times": [], "learning_rates": []}}`.
//! One row per entry of `history.steps`; the plural history names become the
//! singular metric names the rest of rankscope uses (`val_losses` → `val_loss`,
//! `learning_rates` → `lr`, …; other arrays keep their names); everything
//! outside `history` goes to `constants`. A history array of another length
//! than `steps` is left out with a warning (the trainer's other files log
//! training losses on a finer grid).

use super::jsonl::json_kind;
use super::{json_constant, json_number, parse_json_lenient, utf8, LogError, LogFormat, Series};
use serde_json::{Map, Value};

/// Whether top-level keys are those of a `results.json`.
pub(crate) fn is_results_keys<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| matches!(k, "layer_pr" | "mean_pr" | "gamma_final" | "gamma_cv"))
}

/// Whether top-level keys are those of a `metrics.json`.
pub(crate) fn is_metrics_keys<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| matches!(k, "history" | "final_metrics"))
}

fn read_object(bytes: &[u8], expected: &str) -> Result<Map<String, Value>, LogError> {
    let text = utf8(bytes)?;
    match parse_json_lenient(text).map_err(|e| LogError::Json(e.to_string()))? {
        Value::Object(o) => Ok(o),
        other => Err(LogError::JsonShape(format!(
            "expected an object {expected}, found {}",
            json_kind(&other)
        ))),
    }
}

/// One JSON array as metric values: numbers are values, null (and anything else) missing.
fn number_array(key: &str, v: &Value) -> Result<Vec<Option<f64>>, LogError> {
    match v {
        Value::Array(a) => Ok(a.iter().map(json_number).collect()),
        other => Err(LogError::JsonShape(format!(
            "\"{key}\" should be an array, found {}",
            json_kind(other)
        ))),
    }
}

/// Reads a study `results.json`.
pub fn parse_results(bytes: &[u8]) -> Result<Series, LogError> {
    const SHAPE: &str = "{\"tag\", \"tokens\": […], \"loss\": […], \"layer_pr\": {…}, …}";
    let obj = read_object(bytes, SHAPE)?;
    let tokens_value = obj
        .get("tokens")
        .ok_or_else(|| LogError::JsonShape(format!("no \"tokens\" array; expected {SHAPE}")))?;
    let tokens = number_array("tokens", tokens_value)?;
    let n = tokens.len();
    if n == 0 {
        return Err(LogError::NoRows(" (\"tokens\" is empty)"));
    }
    let mut s = Series::new(LogFormat::StudyResults);
    s.step = vec![None; n];
    s.tokens = tokens;
    let add = |s: &mut Series, key: String, v: &Value| -> Result<(), LogError> {
        let col = number_array(&key, v)?;
        if col.len() != n {
            return Err(LogError::UnequalLengths {
                key,
                found: col.len(),
                reference: "tokens",
                expected: n,
            });
        }
        s.metrics.insert(key, col);
        Ok(())
    };
    for (key, v) in &obj {
        match (key.as_str(), v) {
            ("tokens", _) => {}
            ("tag", Value::String(tag)) => {
                s.run = Some(tag.clone());
                s.constants.insert(key.clone(), v.clone());
            }
            ("gamma_final", _) => {
                s.constants.insert(key.clone(), json_constant(v));
            }
            (_, Value::Array(_)) => add(&mut s, key.clone(), v)?,
            // Per-layer curves: {"0": […], "1": […]}.
            (_, Value::Object(layers)) if layers.values().all(Value::is_array) => {
                for (layer, col) in layers {
                    add(&mut s, format!("{key}/{layer}"), col)?;
                }
            }
            _ => {
                s.constants.insert(key.clone(), json_constant(v));
            }
        }
    }
    if s.metrics.is_empty() {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(LogError::NoNumeric {
            columns: keys.join(", "),
        });
    }
    Ok(s)
}

/// `history` names → the metric names used elsewhere.
const HISTORY_RENAMES: [(&str, &str); 8] = [
    ("val_losses", "val_loss"),
    ("train_losses", "train_loss"),
    ("losses", "loss"),
    ("val_accuracies", "val_accuracy"),
    ("val_perplexities", "val_perplexity"),
    ("train_perplexities", "train_perplexity"),
    ("learning_rates", "lr"),
    ("elapsed_times", "elapsed_time"),
];

/// Reads a training `metrics.json`.
pub fn parse_metrics(bytes: &[u8]) -> Result<Series, LogError> {
    const SHAPE: &str =
        "{\"final_metrics\": {…}, \"history\": {\"steps\": […], \"val_losses\": […], …}}";
    let obj = read_object(bytes, SHAPE)?;
    let history = match obj.get("history") {
        Some(Value::Object(h)) => h,
        Some(other) => {
            return Err(LogError::JsonShape(format!(
                "\"history\" should be an object, found {}",
                json_kind(other)
            )))
        }
        None => {
            return Err(LogError::JsonShape(format!(
                "no \"history\" object; expected {SHAPE}"
            )))
        }
    };
    let mut s = Series::new(LogFormat::StudyMetrics);
    for (key, v) in &obj {
        if key != "history" {
            s.constants.insert(key.clone(), json_constant(v));
        }
    }
    let steps_key = ["steps", "step"]
        .into_iter()
        .find(|k| history.contains_key(*k));
    let tokens_key = ["tokens", "tokens_seen"]
        .into_iter()
        .find(|k| history.contains_key(*k));
    let (reference, n) = match steps_key {
        Some(k) => (k, number_array(k, &history[k])?.len()),
        None => {
            // No steps: the longest array sets the rows.
            let n = history
                .values()
                .filter_map(|v| v.as_array().map(Vec::len))
                .max()
                .unwrap_or(0);
            ("the longest array", n)
        }
    };
    if n == 0 {
        return Err(LogError::NoRows(" (\"history\" has no entries)"));
    }
    s.step = match steps_key {
        Some(k) => number_array(k, &history[k])?,
        None => vec![None; n],
    };
    s.tokens = match tokens_key {
        Some(k) => number_array(k, &history[k])
            .ok()
            .filter(|t| t.len() == n)
            .unwrap_or_else(|| vec![None; n]),
        None => vec![None; n],
    };
    for (key, v) in history {
        if Some(key.as_str()) == steps_key || Some(key.as_str()) == tokens_key {
            continue;
        }
        let Value::Array(_) = v else { continue };
        let col = number_array(key, v)?;
        if col.len() != n {
            s.warnings.push(format!(
                "history.{key} has {} values but {reference} has {n}: left out",
                col.len()
            ));
            continue;
        }
        if col.iter().all(Option::is_none) {
            continue;
        }
        let name = HISTORY_RENAMES
            .iter()
            .find(|(from, _)| from == key)
            .map_or(key.as_str(), |(_, to)| to);
        s.metrics.insert(name.to_owned(), col);
    }
    if s.metrics.is_empty() {
        let keys: Vec<&str> = history.keys().map(String::as_str).collect();
        return Err(LogError::NoNumeric {
            columns: keys.join(", "),
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_json_in_the_users_shape() {
        let text = r#"{"final_metrics": {"val_loss": 6.4}, "actual_steps": 489,
            "history": {"steps": [0, 50, 489], "val_losses": [11.2, 8.5, 6.4],
            "learning_rates": [0.0, 0.0118, 0.0012], "train_losses": [1, 2]}}"#;
        let s = parse_metrics(text.as_bytes()).unwrap();
        assert_eq!(s.step, [Some(0.0), Some(50.0), Some(489.0)]);
        assert_eq!(s.metric_names(), ["lr", "val_loss"]);
        assert_eq!(s.constants["actual_steps"], 489);
        assert_eq!(
            s.warnings,
            ["history.train_losses has 2 values but steps has 3: left out"]
        );
    }

    #[test]
    fn results_unequal_lengths_name_the_key() {
        let text = r#"{"tag": "X", "tokens": [0, 1], "loss": [null, 2], "layer_pr": {"0": [1, 2], "1": [1]}}"#;
        let e = parse_results(text.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"layer_pr/1\" has 1 values but \"tokens\" has 2"
        );
    }
}
