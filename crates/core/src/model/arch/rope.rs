//! RoPE settings of a Hugging Face config: the base θ and the frequency scaling, read as
//! transformers 5 reads them (`RotaryEmbeddingConfigMixin.standardize_rope_params` and
//! the `_compute_*_parameters` functions of `modeling_rope_utils.py`), for every
//! Llama-like family (Llama, Mistral, Qwen2, Qwen3).
//!
//! The parameters sit in `rope_parameters` (transformers ≥ 5) or `rope_scaling` (older
//! configs, which transformers prefers when both are present), with `rope_theta` inside
//! them or at the top level. A scaling the pass does not implement (`longrope`,
//! `proportional`, per-layer-type parameters, a partial rotary factor) or one whose
//! parameters are missing or out of range is a reason for
//! [`super::Architecture::no_forward_pass`], not a failed recognition: weight spectra need no RoPE.

use super::config::Config;
use super::RopeScaling;

/// `LlamaConfig.default_theta`.
pub(super) const DEFAULT_THETA: f64 = 10_000.0;

/// θ, the scaling, and why the forward pass cannot apply the config's RoPE (if it cannot).
pub(super) struct RopeSettings {
    pub theta: f64,
    pub scaling: RopeScaling,
    pub unsupported: Vec<String>,
}

/// Reads the RoPE settings of `c` for heads of `d_k` dimensions. `Err` only for a θ that is
/// not a finite positive number (as for any model size the config gets wrong).
pub(super) fn hf_rope(c: &Config, d_k: usize) -> Result<RopeSettings, String> {
    // transformers: `rope_parameters = rope_scaling or rope_parameters`.
    let dict = if c.value("rope_scaling").is_some_and(|v| v.is_object()) {
        "rope_scaling"
    } else {
        "rope_parameters"
    };
    let key = |k: &str| format!("{dict}.{k}");
    let theta = c
        .rope_theta(&[&key("rope_theta"), "rope_theta"])?
        .unwrap_or(DEFAULT_THETA);
    let partial = c
        .f64(&[&key("partial_rotary_factor"), "partial_rotary_factor"])
        .unwrap_or(None);
    let kind = c.string(&[&key("rope_type"), &key("type")]);
    let nested = c
        .value(dict)
        .and_then(|v| v.as_object())
        .is_some_and(|o| o.values().any(|v| v.is_object()));
    let scaling = match kind {
        Err(e) => Err(e),
        Ok(None) if nested => Err(format!(
            "{} gives RoPE parameters per layer type, which is not implemented",
            c.source
        )),
        Ok(None) => Ok(RopeScaling::None),
        Ok(Some(kind)) => scaling_of(c, &kind, &key, d_k),
    };
    let mut unsupported = Vec::new();
    let scaling = scaling.unwrap_or_else(|why| {
        unsupported.push(why);
        RopeScaling::None
    });
    if let Some(p) = partial.filter(|&p| p != 1.0) {
        unsupported.push(format!(
            "{} partial_rotary_factor {p} is not implemented",
            c.source
        ));
    }
    Ok(RopeSettings {
        theta,
        scaling,
        unsupported,
    })
}

/// The scaling `kind` names, with its parameters; `Err` says why the pass cannot apply it.
fn scaling_of(
    c: &Config,
    kind: &str,
    key: &dyn Fn(&str) -> String,
    d_k: usize,
) -> Result<RopeScaling, String> {
    let src = c.source;
    let number = |name: &str| -> Result<Option<f64>, String> {
        match c.f64(&[&key(name)])? {
            Some(v) if !v.is_finite() => Err(format!(
                "{src} RoPE scaling `{kind}` has {name} {v}, expected a finite number"
            )),
            other => Ok(other),
        }
    };
    let required = |name: &str| -> Result<f64, String> {
        number(name)?.ok_or_else(|| format!("{src} RoPE scaling `{kind}` lacks `{name}`"))
    };
    let positive = |name: &str, v: f64| -> Result<f64, String> {
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!(
                "{src} RoPE scaling `{kind}` has {name} {v}, expected a number > 0"
            ))
        }
    };
    // transformers: a top-level `original_max_position_embeddings` (Phi-3 style) wins over the
    // one in the RoPE parameters; without either, `max_position_embeddings`.
    let original = || -> Result<usize, String> {
        let top = c.usize(&["original_max_position_embeddings"])?;
        let inner = c.usize(&[&key("original_max_position_embeddings")])?;
        let max = c.usize(&["max_position_embeddings"])?;
        match top.or(inner).or(max) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{src} RoPE scaling `{kind}` needs original_max_position_embeddings (or max_position_embeddings) > 0"
            )),
        }
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: positive("factor", required("factor")?)?,
        }),
        "dynamic" => {
            if d_k <= 2 {
                return Err(format!(
                    "{src} RoPE scaling `dynamic` needs head_dim > 2 (it is {d_k})"
                ));
            }
            let max_positions = c.usize(&["max_position_embeddings"])?.filter(|&n| n > 0);
            Ok(RopeScaling::Dynamic {
                factor: positive("factor", required("factor")?)?,
                max_positions: max_positions.ok_or_else(|| {
                    format!("{src} RoPE scaling `dynamic` needs max_position_embeddings > 0")
                })?,
            })
        }
        "llama3" => {
            let low = required("low_freq_factor")?;
            let high = required("high_freq_factor")?;
            if !(low > 0.0 && high > low) {
                return Err(format!(
                    "{src} RoPE scaling `llama3` has low_freq_factor {low} and high_freq_factor {high}, expected 0 < low < high"
                ));
            }
            Ok(RopeScaling::Llama3 {
                factor: positive("factor", required("factor")?)?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_positions: original()?,
            })
        }
        "yarn" => {
            let original_max_positions = original()?;
            // transformers: without `factor`, max_position_embeddings / original.
            let factor = match number("factor")? {
                Some(f) => f,
                None => {
                    let max = c.usize(&["max_position_embeddings"])?.ok_or_else(|| {
                        format!("{src} RoPE scaling `yarn` has neither factor nor max_position_embeddings")
                    })?;
                    max as f64 / original_max_positions as f64
                }
            };
            let factor = positive("factor", factor)?;
            let mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match number("attention_factor")? {
                Some(a) => a,
                None => match (number("mscale")?, number("mscale_all_dim")?) {
                    // transformers tests their truthiness: 0 counts as absent.
                    (Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
                        mscale(factor, m) / mscale(factor, all)
                    }
                    _ => mscale(factor, 1.0),
                },
            };
            // `rope_parameters.get("beta_fast") or 32`: 0 counts as absent too.
            let beta = |name: &str, default: f64| -> Result<f64, String> {
                Ok(number(name)?.filter(|&b| b != 0.0).unwrap_or(default))
            };
            Ok(RopeScaling::Yarn {
                factor,
                original_max_positions,
                beta_fast: beta("beta_fast", 32.0)?,
                beta_slow: beta("beta_slow", 1.0)?,
                truncate: c.bool(&[&key("truncate")])?.unwrap_or(true),
                attention_factor,
            })
        }
        other => Err(format!(
            "{src} asks for RoPE scaling `{other}`, which is not implemented (implemented: linear, dynamic, llama3, yarn)"
        )),
    }
}
