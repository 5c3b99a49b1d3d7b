//! JSON lines: one JSON object per line, one row per object.
//!
//! - `step` (or `iter`, `iteration`, `global_step`, `_step`, first found in
//!   that order) is the row's step; `tokens` (or `tokens_seen`, `num_tokens`)
//!   its token count.
//! - Every other number is a metric; nested objects are flattened with `/`
//!   (`{"train": {"loss": 2}}` → `train/loss`). Strings and null are missing;
//!   booleans and arrays are ignored. `NaN`/`Infinity` (Python's `json`) are values.
//! - A line with `"header": true` holds run constants, not a row.
//! - Blank lines are skipped. A malformed line is an error naming it, except
//!   the last line of a file that does not end in a newline: a log read while
//!   the run still writes it. Its rows before are kept, with a warning.

use super::{
    json_constant, json_number, parse_json_lenient, utf8, LogError, LogFormat, RowBuilder, Series,
};

/// Keys read as the step, in order of preference.
pub const STEP_KEYS: [&str; 5] = ["step", "global_step", "_step", "iter", "iteration"];
/// Keys read as the token count, in order of preference.
pub const TOKEN_KEYS: [&str; 3] = ["tokens", "tokens_seen", "num_tokens"];

/// Reads a JSON-lines log.
pub fn parse(bytes: &[u8]) -> Result<Series, LogError> {
    let text = utf8(bytes)?;
    let mut rows = RowBuilder::new(LogFormat::Jsonl, bytes.len());
    let ends_with_newline = text.ends_with('\n');
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value = match parse_json_lenient(line) {
            Ok(v) => v,
            Err(e) => {
                let is_last = lines.clone().all(|(_, l)| l.trim().is_empty());
                if is_last && !ends_with_newline && rows.rows() > 0 {
                    let kept = rows.rows();
                    rows.warn(format!(
                        "line {} is cut mid-write (the run may still be writing the log); kept the {kept} rows before it",
                        i + 1
                    ));
                    break;
                }
                return Err(LogError::JsonLine {
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        };
        let serde_json::Value::Object(obj) = value else {
            return Err(LogError::NotAnObject {
                line: i + 1,
                found: json_kind(&value),
            });
        };
        if obj.get("header") == Some(&serde_json::Value::Bool(true)) {
            let constants = rows.constants();
            for (k, v) in &obj {
                if k != "header" {
                    constants.insert(k.clone(), json_constant(v));
                }
            }
            continue;
        }
        rows.start_row();
        let step_key = pick(&obj, &STEP_KEYS);
        let token_key = pick(&obj, &TOKEN_KEYS);
        if let Some((_, v)) = step_key {
            rows.set_step(v);
        }
        if let Some((_, v)) = token_key {
            rows.set_tokens(v);
        }
        let skip = [step_key.map(|(k, _)| k), token_key.map(|(k, _)| k)];
        let mut path = String::new();
        for (k, v) in &obj {
            if skip.contains(&Some(k.as_str())) {
                continue;
            }
            add_value(&mut rows, &mut path, k, v);
        }
    }
    rows.finish(" (only a header line, or only blank lines)")
}

/// The first of `keys` that holds a number.
fn pick<'k>(
    obj: &serde_json::Map<String, serde_json::Value>,
    keys: &[&'k str],
) -> Option<(&'k str, f64)> {
    keys.iter()
        .find_map(|k| Some((*k, json_number(obj.get(*k)?)?)))
}

/// Adds `key = v` (flattening objects) to the open row.
fn add_value(rows: &mut RowBuilder, path: &mut String, key: &str, v: &serde_json::Value) {
    let start = path.len();
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(key);
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                add_value(rows, path, k, v);
            }
        }
        serde_json::Value::Bool(_) | serde_json::Value::Array(_) => {}
        _ => match json_number(v) {
            Some(x) => rows.set(path, x),
            None => rows.see(path),
        },
    }
    path.truncate(start);
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_header_and_missing() {
        let text = "{\"header\": true, \"n_params\": 10}\n\n{\"iter\": 1, \"loss\": 2.5, \"note\": \"x\", \"ok\": true}\n{\"iter\": 2, \"loss\": NaN, \"val\": {\"loss\": 3}}\n";
        let s = parse(text.as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.step, [Some(1.0), Some(2.0)]);
        assert_eq!(s.constants["n_params"], 10);
        assert_eq!(s.metric_names(), ["loss", "val/loss"]);
        assert!(s.metric("loss").unwrap()[1].unwrap().is_nan());
        assert_eq!(s.metric("val/loss").unwrap(), [None, Some(3.0)]);
    }

    #[test]
    fn cut_last_line_is_a_warning() {
        let s = parse(b"{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"lo").unwrap();
        assert_eq!(s.len(), 1);
        assert!(
            s.warnings[0].contains("line 2 is cut mid-write"),
            "{:?}",
            s.warnings
        );
        let e = parse(b"{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"lo\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: not valid JSON"), "{e}");
    }
}
