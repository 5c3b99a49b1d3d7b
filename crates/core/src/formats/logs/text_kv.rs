//! Plain-text logs of `key:value` (or `key=value`) tokens separated by spaces.
//!
//! - modded-nanogpt: `step:250/1390 val_loss:4.4525 train_time:7953ms step_avg:31.81ms`;
//!   `S/TOTAL` gives the step and the constant `total_steps` (any other
//!   `key:A/B` gives A and the constant `key_total`).
//! - llm.c: `s:0 trl:10.98 lr:0.0006 norm:1.2`, `s:0 tel:10.9` (names kept as written).
//! - Units are stripped from the value and kept in the name:
//!   `train_time:7953ms` → `train_time_ms` = 7953; likewise `s`, `us`, `min`, `h`, `%` (`_pct`).
//! - `step`, `s`, `iter`, `iteration`, `global_step`, `_step` are the step;
//!   `tokens`, `tokens_seen`, `num_tokens` the token count.
//! - A line is a record when it has at least two numeric pairs; other lines
//!   (prose, config dumps, a single `lr=0.1`) are skipped. One row per record
//!   line, so a train line and a val line of the same step are two rows, each
//!   missing the other's values.

use super::{utf8, LogError, LogFormat, RowBuilder, Series};

/// Keys read as the step.
const STEP_KEYS: [&str; 6] = ["step", "s", "iter", "iteration", "global_step", "_step"];
/// Keys read as the token count.
const TOKEN_KEYS: [&str; 3] = ["tokens", "tokens_seen", "num_tokens"];
/// Unit suffixes stripped from values, and what the metric name gets instead.
/// Longest first so that `ms` wins over `s`.
const UNITS: [(&str, &str); 6] = [
    ("min", "_min"),
    ("ms", "_ms"),
    ("us", "_us"),
    ("s", "_s"),
    ("h", "_h"),
    ("%", "_pct"),
];

/// One numeric pair of a line.
#[derive(Debug, Clone, PartialEq)]
struct Pair<'a> {
    key: &'a str,
    /// The unit suffix for the metric name (`_ms`), or "".
    unit: &'static str,
    value: f64,
    /// `B` of `A/B`.
    total: Option<f64>,
}

/// Whether `line` is a record: two or more numeric `key:value` pairs.
pub fn is_kv_line(line: &str) -> bool {
    pairs(line).nth(1).is_some()
}

fn pairs(line: &str) -> impl Iterator<Item = Pair<'_>> {
    line.split_ascii_whitespace().filter_map(parse_token)
}

fn parse_token(token: &str) -> Option<Pair<'_>> {
    let token = token.trim_end_matches([',', ';']);
    let sep = token.find([':', '='])?;
    let (key, value) = (&token[..sep], &token[sep + 1..]);
    if !is_key(key) || value.is_empty() {
        return None;
    }
    if let Some((a, b)) = value.split_once('/') {
        let (a, b) = (parse_number(a)?, parse_number(b)?);
        return Some(Pair {
            key,
            unit: "",
            value: a,
            total: Some(b),
        });
    }
    if let Some(v) = parse_number(value) {
        return Some(Pair {
            key,
            unit: "",
            value: v,
            total: None,
        });
    }
    UNITS.iter().find_map(|(suffix, unit)| {
        let v = parse_number(value.strip_suffix(suffix)?)?;
        Some(Pair {
            key,
            unit,
            value: v,
            total: None,
        })
    })
}

/// Identifier-like: a letter or `_` first, then letters, digits, `_ . / -`.
fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
}

/// A decimal number, or `nan`/`inf` in any case; not Rust's other spellings.
fn parse_number(s: &str) -> Option<f64> {
    let first = s.chars().next()?;
    let numeric_start = first.is_ascii_digit() || matches!(first, '-' | '+' | '.');
    let special = matches!(
        s.to_ascii_lowercase().trim_start_matches(['-', '+']),
        "nan" | "inf" | "infinity"
    );
    if numeric_start || special {
        s.parse().ok()
    } else {
        None
    }
}

/// Reads a text key:value log.
pub fn parse(bytes: &[u8]) -> Result<Series, LogError> {
    let text = utf8(bytes)?;
    let mut rows = RowBuilder::new(LogFormat::TextKv, bytes.len());
    let mut name = String::new();
    let mut total_warned = false;
    for line in text.lines() {
        if !is_kv_line(line) {
            continue;
        }
        rows.start_row();
        let (mut has_step, mut has_tokens) = (false, false);
        for p in pairs(line) {
            if !has_step && STEP_KEYS.contains(&p.key) && p.unit.is_empty() {
                has_step = true;
                rows.set_step(p.value);
            } else if !has_tokens && TOKEN_KEYS.contains(&p.key) && p.unit.is_empty() {
                has_tokens = true;
                rows.set_tokens(p.value);
            } else {
                name.clear();
                name.push_str(p.key);
                name.push_str(p.unit);
                rows.set(&name, p.value);
            }
            if let Some(total) = p.total {
                let key = if STEP_KEYS.contains(&p.key) {
                    "total_steps".to_owned()
                } else {
                    format!("{}_total", p.key)
                };
                let constants = rows.constants();
                let value = serde_json::Number::from_f64(total).map(serde_json::Value::Number);
                match constants.get(&key) {
                    None => {
                        if let Some(v) = value {
                            constants.insert(key, v);
                        }
                    }
                    Some(old) if old.as_f64() != Some(total) && !total_warned => {
                        total_warned = true;
                        let msg = format!("{key} changes from {old} to {total}: kept the first");
                        rows.warn(msg);
                    }
                    Some(_) => {}
                }
            }
        }
    }
    if rows.rows() == 0 {
        return Err(LogError::NoKeyValueLines);
    }
    let mut s = rows.finish("")?;
    // `S/TOTAL` with integral numbers reads better as an integer constant.
    for v in s.constants.values_mut() {
        if let Some(f) = v.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = serde_json::Value::from(f as i64);
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modded_nanogpt_line() {
        let s =
            parse(b"step:250/1390 val_loss:4.4525 train_time:7953ms step_avg:31.81ms\n").unwrap();
        assert_eq!(s.step, [Some(250.0)]);
        assert_eq!(s.constants["total_steps"], 1390);
        assert_eq!(
            s.metric_names(),
            ["step_avg_ms", "train_time_ms", "val_loss"]
        );
        assert_eq!(s.metric("train_time_ms").unwrap(), [Some(7953.0)]);
    }

    #[test]
    fn prose_and_single_pairs_are_skipped() {
        assert!(!is_kv_line("Note: the run uses lr=0.1"));
        assert!(!is_kv_line("Namespace(lr=0.001, wd=0.1)"));
        assert!(is_kv_line("s:0 trl:10.98"));
        assert!(matches!(
            parse(b"hello world\nlr=0.1\n"),
            Err(LogError::NoKeyValueLines)
        ));
    }
}
