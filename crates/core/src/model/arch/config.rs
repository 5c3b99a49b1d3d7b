//! A model config (the checkpoint's `config` metadata or `config.json`) read
//! field by field, so each family names the keys it understands.

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed JSON config object and where it came from.
pub(super) struct Config {
    value: Value,
    /// "metadata config" or "config.json".
    pub source: &'static str,
}

impl Config {
    /// The checkpoint's own `__metadata__["config"]` (a JSON object encoded as
    /// a string, as the reference trainer writes it) when it parses as an
    /// object, else `config.json` when it is an object. The file's own config
    /// comes first: a `config.json` may sit beside a checkpoint of another run.
    pub fn pick(
        metadata: &BTreeMap<String, String>,
        config_json: Option<&Value>,
    ) -> Option<Config> {
        let embedded = metadata
            .get("config")
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object)
            .map(|value| Config {
                value,
                source: "metadata config",
            });
        embedded.or_else(|| {
            config_json.filter(|v| v.is_object()).map(|v| Config {
                value: v.clone(),
                source: if is_meta_params(v) {
                    "params.json"
                } else {
                    "config.json"
                },
            })
        })
    }

    /// The first of `keys` present (and not null), as a non-negative integer.
    pub fn usize(&self, keys: &[&str]) -> Result<Option<usize>, String> {
        let Some((key, value)) = self.first(keys) else {
            return Ok(None);
        };
        value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{} field `{key}` is {value}, expected a non-negative integer",
                    self.source
                )
            })
    }

    /// The first of `keys` present, as a number. A key may be a path `a.b`.
    pub fn f64(&self, keys: &[&str]) -> Result<Option<f64>, String> {
        let Some((key, value)) = self.first(keys) else {
            return Ok(None);
        };
        value.as_f64().map(Some).ok_or_else(|| {
            format!(
                "{} field `{key}` is {value}, expected a number",
                self.source
            )
        })
    }

    /// [`Self::f64`] for a normalisation's ε: finite and ≥ 0. A negative ε
    /// (`norm_eps: -1`) would make every normalised activation NaN, and the
    /// failure would surface far away as "non-finite K entries".
    pub fn norm_eps(&self, keys: &[&str]) -> Result<Option<f64>, String> {
        self.checked(
            keys,
            |v| v.is_finite() && v >= 0.0,
            "a finite number ≥ 0 (the normalisation's ε)",
        )
    }

    /// [`Self::f64`] for RoPE's base θ: finite and > 0.
    pub fn rope_theta(&self, keys: &[&str]) -> Result<Option<f64>, String> {
        self.checked(
            keys,
            |v| v.is_finite() && v > 0.0,
            "a finite number > 0 (RoPE's base θ)",
        )
    }

    fn checked(
        &self,
        keys: &[&str],
        ok: fn(f64) -> bool,
        expected: &str,
    ) -> Result<Option<f64>, String> {
        match self.f64(keys)? {
            Some(v) if !ok(v) => {
                let key = self.first(keys).map_or("?", |(k, _)| k);
                Err(format!(
                    "{} field `{key}` is {v}, expected {expected}",
                    self.source
                ))
            }
            other => Ok(other),
        }
    }

    /// The longest sequence the model takes, as its config states it (Hugging Face
    /// `max_position_embeddings` / `n_positions`, nanoGPT `block_size`, the reference
    /// trainer's `max_seq_len`); `None` when the config does not say. A 0 says nothing
    /// usable and is read as not said.
    pub fn context(&self) -> Result<Option<usize>, String> {
        Ok(self
            .usize(&[
                "max_position_embeddings",
                "n_positions",
                "block_size",
                "max_seq_len",
                "n_ctx",
            ])?
            .filter(|&n| n > 0))
    }

    /// The first of `keys` present, as a boolean.
    pub fn bool(&self, keys: &[&str]) -> Result<Option<bool>, String> {
        let Some((key, value)) = self.first(keys) else {
            return Ok(None);
        };
        value.as_bool().map(Some).ok_or_else(|| {
            format!(
                "{} field `{key}` is {value}, expected true or false",
                self.source
            )
        })
    }

    /// The first of `keys` present, as a string.
    pub fn string(&self, keys: &[&str]) -> Result<Option<String>, String> {
        let Some((key, value)) = self.first(keys) else {
            return Ok(None);
        };
        value.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
            format!(
                "{} field `{key}` is {value}, expected a string",
                self.source
            )
        })
    }

    /// The first of `keys` present, as a list of strings.
    pub fn strings(&self, keys: &[&str]) -> Result<Option<Vec<String>>, String> {
        let Some((key, value)) = self.first(keys) else {
            return Ok(None);
        };
        let bad = || format!("{} field `{key}` is not a list of strings", self.source);
        let items = value.as_array().ok_or_else(bad)?;
        items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The value at `key` (a path `a.b`), if present and not null.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.first(&[key]).map(|(_, v)| v)
    }

    fn first<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, &Value)> {
        keys.iter().find_map(|key| {
            let mut value = &self.value;
            for part in key.split('.') {
                value = value.get(part)?;
            }
            (!value.is_null()).then_some((*key, value))
        })
    }
}

/// Meta's `params.json` (`dim`, `n_layers`, `n_heads`), rather than a Hugging Face `config.json`.
pub fn is_meta_params(v: &Value) -> bool {
    ["dim", "n_layers", "n_heads"]
        .iter()
        .all(|k| v.get(k).is_some())
}

/// Checks a config value against the number the shapes give; `Err` names both.
pub(super) fn agree(
    config: &Config,
    field: &str,
    said: Option<usize>,
    found: usize,
    evidence: &str,
) -> Result<(), String> {
    match said {
        Some(said) if said != found => Err(format!(
            "{} says {field} {said}, but {evidence} gives {found}",
            config.source
        )),
        _ => Ok(()),
    }
}
