//! Hugging Face Llama layout (also Mistral, Qwen2/Qwen3 and llama2.c's
//! `hf_export`): `model.layers.{l}.self_attn.{q,k,v,o}_proj.weight` stored
//! `[out, in]`, optional per-head `self_attn.{q,k}_norm.weight [head_dim]`
//! (Qwen3), optional projection biases (Qwen2's q/k/v; `attention_bias`,
//! `mlp_bias`), SwiGLU `mlp.{gate,up,down}_proj`, rotate-half RoPE, and a
//! sliding window where the config asks for one (Mistral; Qwen2/3 with
//! `use_sliding_window`). The base model saved alone (`LlamaModel`,
//! `Qwen2Model`, …) has the same names without `model.`.
//!
//! `lm_head.weight` absent means tied to `model.embed_tokens.weight`.
//! Sizes come from the config (`num_attention_heads`, `num_key_value_heads`,
//! `head_dim`, …); without one, from the q_norm/k_norm shape; else unknown.

use super::config::{agree, Config};
use super::lookup::{matrix, mul, vector, Lookup};
use super::rope::{hf_rope, RopeSettings, DEFAULT_THETA};
use super::{
    Activation, Architecture, BiasLoc, Family, LayerBiases, LayerTensors, NormKind, Rope,
    RopeScaling, WeightLoc, HEADS_UNKNOWN,
};

/// `LlamaConfig.rms_norm_eps` default.
const DEFAULT_EPS: f64 = 1e-6;

/// Whether the names look like this family (any `[model.]layers.{l}.self_attn.q_proj.weight`).
pub(super) fn matches(t: &Lookup) -> bool {
    t.names().any(|n| {
        let n = n.strip_prefix("model.").unwrap_or(n);
        n.starts_with("layers.") && n.ends_with(".self_attn.q_proj.weight")
    })
}

/// `"model."` when the names carry it (a `…ForCausalLM`), else `""` (the base model alone).
fn stem(t: &Lookup) -> &'static str {
    if t.names().any(|n| n.starts_with("model.layers.")) {
        "model."
    } else {
        ""
    }
}

/// Extras a Llama-like block may carry: projection biases (Qwen2) and the rotary buffer.
fn allowed_extra(name: &str) -> bool {
    name.ends_with("_proj.bias") || name.ends_with("rotary_emb.inv_freq")
}

pub(super) fn recognise(t: &mut Lookup, config: Option<&Config>) -> Result<Architecture, String> {
    let stem = stem(t);
    let layers_prefix = format!("{stem}layers.");
    let layers_prefix = layers_prefix.as_str();
    let n_layers = t.layer_count(layers_prefix)?;
    let embed = t.require_any(&format!("{stem}embed_tokens.weight"), "token embedding")?;
    let (vocab, d_model) = matrix(&embed)?;

    let attn0 = format!("{layers_prefix}0.self_attn.");
    let q0 = t.require_any(&format!("{attn0}q_proj.weight"), "query projection")?;
    let k0 = t.require_any(&format!("{attn0}k_proj.weight"), "key projection")?;
    let (q_rows, q_cols) = matrix(&q0)?;
    let (k_rows, k_cols) = matrix(&k0)?;
    if q_cols != d_model {
        return Err(format!(
            "tensor `{}` has shape [{q_rows}, {q_cols}], expected [{q_rows}, {d_model}]",
            q0.name
        ));
    }
    if k_cols != d_model {
        return Err(format!(
            "tensor `{}` has shape [{k_rows}, {k_cols}], expected [{k_rows}, {d_model}]",
            k0.name
        ));
    }

    let q_norm0 = format!("{attn0}q_norm.weight");
    let k_norm0 = format!("{attn0}k_norm.weight");
    let qk_norm = t.has(&q_norm0) || t.has(&k_norm0);
    let config_heads = match config {
        Some(c) => c
            .usize(&["num_attention_heads", "n_heads"])?
            .map(|h| (c, h)),
        None => None,
    };
    let (n_heads, n_kv_heads, d_k, source_of_heads) = if let Some((c, n_heads)) = config_heads {
        let n_kv = c
            .usize(&["num_key_value_heads", "n_kv_heads"])?
            .unwrap_or(n_heads);
        let d_k = match c.usize(&["head_dim"])? {
            Some(d_k) => d_k,
            None if n_heads > 0 && d_model % n_heads == 0 => d_model / n_heads,
            None => return Err(format!("{} says num_attention_heads {n_heads}, which does not divide hidden size {d_model}", c.source)),
        };
        let said_q = mul(n_heads, d_k, "num_attention_heads·head_dim")?;
        let said_k = mul(n_kv, d_k, "num_key_value_heads·head_dim")?;
        if said_q != q_rows {
            return Err(format!(
                "{} says num_attention_heads {n_heads} × head_dim {d_k} = {said_q} query rows, but `{}` has shape [{q_rows}, {q_cols}]",
                c.source, q0.name
            ));
        }
        if said_k != k_rows {
            return Err(format!(
                "{} says num_key_value_heads {n_kv} × head_dim {d_k} = {said_k} key rows, but `{}` has shape [{k_rows}, {k_cols}]",
                c.source, k0.name
            ));
        }
        (n_heads, n_kv, d_k, c.source.to_string())
    } else if qk_norm {
        let (which, canonical) = if t.has(&q_norm0) {
            ("q_norm", &q_norm0)
        } else {
            ("k_norm", &k_norm0)
        };
        let norm = t.require_any(canonical, which)?;
        let d_k = vector(&norm)?;
        if d_k == 0 || q_rows % d_k != 0 || k_rows % d_k != 0 {
            return Err(format!(
                "tensor `{}` has shape [{d_k}], which does not divide the {q_rows} query rows and {k_rows} key rows",
                norm.name
            ));
        }
        (q_rows / d_k, k_rows / d_k, d_k, format!("{which} shape"))
    } else {
        return Err(HEADS_UNKNOWN.to_string());
    };
    if n_kv_heads == 0 || d_k == 0 || n_heads % n_kv_heads != 0 {
        return Err(format!(
            "{n_heads} query heads cannot share {n_kv_heads} kv-heads evenly (head_dim {d_k})"
        ));
    }

    let gate0 = t.require_any(
        &format!("{layers_prefix}0.mlp.gate_proj.weight"),
        "MLP gate projection",
    )?;
    let (d_ff, _) = matrix(&gate0)?;

    let config_tied = match config {
        Some(c) => {
            agree(
                c,
                "num_hidden_layers",
                c.usize(&["num_hidden_layers", "n_layers"])?,
                n_layers,
                "the layer count",
            )?;
            agree(
                c,
                "hidden_size",
                c.usize(&["hidden_size", "d_model"])?,
                d_model,
                &format!("`{}`", embed.name),
            )?;
            agree(
                c,
                "vocab_size",
                c.usize(&["vocab_size"])?,
                vocab,
                &format!("`{}`", embed.name),
            )?;
            agree(
                c,
                "intermediate_size",
                c.usize(&["intermediate_size", "d_ff"])?,
                d_ff,
                &format!("`{}`", gate0.name),
            )?;
            c.bool(&["tie_word_embeddings"])?
        }
        None => None,
    };
    let (lm_head, tied_lm_head) = match t.optional("lm_head.weight", &[vocab, d_model])? {
        Some(name) => (name, config_tied == Some(true)),
        None if config_tied == Some(false) => {
            return Err(format!(
                "tensor `{}` is missing (expected shape [{vocab}, {d_model}]): the config says tie_word_embeddings false",
                t.display("lm_head.weight")
            ))
        }
        None => (embed.name.clone(), true),
    };

    let windows = match config {
        Some(c) => sliding_windows(c, n_layers)?,
        None => Vec::new(),
    };
    let (activation, mut unsupported) = match config {
        Some(c) => pass_settings(c)?,
        None => (Activation::Silu, Vec::new()),
    };
    let rope = match config {
        Some(c) => hf_rope(c, d_k)?,
        None => RopeSettings {
            theta: DEFAULT_THETA,
            scaling: RopeScaling::None,
            unsupported: Vec::new(),
        },
    };
    unsupported.extend(rope.unsupported);
    let no_forward_pass = (!unsupported.is_empty()).then(|| unsupported.join("; "));
    let mut layers = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let block = format!("{layers_prefix}{l}.");
        let whole = |tensor: String| WeightLoc::Whole { tensor };
        let w_q = whole(t.require(
            &format!("{block}self_attn.q_proj.weight"),
            &[q_rows, d_model],
        )?);
        let w_k = whole(t.require(
            &format!("{block}self_attn.k_proj.weight"),
            &[k_rows, d_model],
        )?);
        let w_v = whole(t.require(
            &format!("{block}self_attn.v_proj.weight"),
            &[k_rows, d_model],
        )?);
        let w_o = whole(t.require(
            &format!("{block}self_attn.o_proj.weight"),
            &[d_model, q_rows],
        )?);
        let q = format!("{block}self_attn.q_norm.weight");
        let k = format!("{block}self_attn.k_norm.weight");
        let (q_norm, k_norm) = if qk_norm {
            (Some(t.require(&q, &[d_k])?), Some(t.require(&k, &[d_k])?))
        } else if t.has(&q) || t.has(&k) {
            return Err(format!(
                "layer {l} has a q_norm/k_norm but layer 0 has none"
            ));
        } else {
            (None, None)
        };
        layers.push(LayerTensors {
            w_q,
            w_k,
            w_v,
            w_o,
            q_norm,
            k_norm,
            attn_norm: Some(t.require(&format!("{block}input_layernorm.weight"), &[d_model])?),
            mlp_norm: Some(t.require(
                &format!("{block}post_attention_layernorm.weight"),
                &[d_model],
            )?),
            mlp: vec![
                t.require(&format!("{block}mlp.gate_proj.weight"), &[d_ff, d_model])?,
                t.require(&format!("{block}mlp.up_proj.weight"), &[d_ff, d_model])?,
                t.require(&format!("{block}mlp.down_proj.weight"), &[d_model, d_ff])?,
            ],
            other: t.layer_extras(&block, allowed_extra)?,
            biases: layer_biases(t, &block, [q_rows, k_rows, d_model, d_ff])?,
            window: windows.get(l).copied().flatten(),
        });
    }
    let final_norm = Some(t.require(&format!("{stem}norm.weight"), &[d_model])?);

    let norm_eps = match config {
        Some(c) => c.norm_eps(&["rms_norm_eps"])?.unwrap_or(DEFAULT_EPS),
        None => DEFAULT_EPS,
    };

    let context = match config {
        Some(c) => c.context()?,
        None => None,
    };

    Ok(Architecture {
        family: Family::Llama,
        n_layers,
        d_model,
        n_heads,
        n_kv_heads,
        d_k,
        d_ff,
        vocab,
        context,
        qk_norm,
        rope: Rope::RotateHalf,
        rope_theta: rope.theta,
        rope_scaling: rope.scaling,
        norm_eps,
        norm: NormKind::Rms,
        activation,
        tied_lm_head,
        embedding: embed.name,
        lm_head,
        final_norm,
        position_embedding: None,
        final_norm_bias: None,
        no_forward_pass,
        layers,
        prefix_removed: None,
        source_of_heads,
        other: Vec::new(),
        unused: Vec::new(),
    })
}

/// The window of each layer, `n_layers` long, from the config, as transformers
/// 5 decides it: `LlamaModel` has no window (a stray `sliding_window` is
/// ignored); `MistralModel` applies `sliding_window` to every layer (it ignores
/// `layer_types`); otherwise `layer_types` (`"sliding_attention"` /
/// `"full_attention"`) when given, else Qwen2/3's `use_sliding_window` (false:
/// no window; true: layers from `max_window_layers` on), else `sliding_window`
/// for every layer.
fn sliding_windows(c: &Config, n_layers: usize) -> Result<Vec<Option<usize>>, String> {
    let window = c.usize(&["sliding_window"])?;
    let model_type = c.string(&["model_type"])?;
    match model_type.as_deref() {
        Some("llama") => return Ok(vec![None; n_layers]),
        Some("mistral") => return Ok(vec![window.filter(|&w| w > 0); n_layers]),
        _ => {}
    }
    if let Some(types) = c.strings(&["layer_types"])? {
        if types.len() != n_layers {
            return Err(format!(
                "{} lists {} layer_types for {n_layers} layers",
                c.source,
                types.len()
            ));
        }
        return types
            .iter()
            .map(|kind| match kind.as_str() {
                "full_attention" => Ok(None),
                "sliding_attention" => match window {
                    Some(w) if w > 0 => Ok(Some(w)),
                    _ => Err(format!(
                        "{} has a sliding_attention layer but no sliding_window size",
                        c.source
                    )),
                },
                other => Err(format!(
                    "{} layer_types has `{other}`; known: full_attention, sliding_attention",
                    c.source
                )),
            })
            .collect();
    }
    let Some(w) = window.filter(|&w| w > 0) else {
        return Ok(vec![None; n_layers]);
    };
    match c.bool(&["use_sliding_window"])? {
        Some(false) => Ok(vec![None; n_layers]),
        Some(true) => {
            let first = c.usize(&["max_window_layers"])?.unwrap_or(0);
            Ok((0..n_layers).map(|l| (l >= first).then_some(w)).collect())
        }
        None => Ok(vec![Some(w); n_layers]),
    }
}

/// The MLP activation (`hidden_act`), and why the forward pass cannot run the
/// model if that activation has no kernel (RoPE settings: [`hf_rope`]). Recognition
/// still succeeds: weight spectra need no forward pass.
fn pass_settings(c: &Config) -> Result<(Activation, Vec<String>), String> {
    let mut why = Vec::new();
    let activation = match c.string(&["hidden_act", "hidden_activation"])? {
        None => Activation::Silu,
        Some(name) => Activation::from_hf_name(&name).unwrap_or_else(|| {
            why.push(format!("{} hidden_act `{name}` has no kernel", c.source));
            Activation::Silu
        }),
    };
    Ok((activation, why))
}

/// The block's projection biases, each optional (Qwen2 has q/k/v; Llama's
/// `attention_bias` adds o, `mlp_bias` the MLP's); a present one must have its shape.
fn layer_biases(
    t: &mut Lookup,
    block: &str,
    [q_rows, k_rows, d_model, d_ff]: [usize; 4],
) -> Result<LayerBiases, String> {
    let mut bias = |name: &str, len: usize| -> Result<Option<BiasLoc>, String> {
        Ok(t.optional(&format!("{block}{name}.bias"), &[len])?
            .map(|tensor| BiasLoc {
                tensor,
                start: 0,
                end: len,
            }))
    };
    Ok(LayerBiases {
        q: bias("self_attn.q_proj", q_rows)?,
        k: bias("self_attn.k_proj", k_rows)?,
        v: bias("self_attn.v_proj", k_rows)?,
        o: bias("self_attn.o_proj", d_model)?,
        attn_norm: None,
        mlp_norm: None,
        mlp: vec![
            bias("mlp.gate_proj", d_ff)?,
            bias("mlp.up_proj", d_ff)?,
            bias("mlp.down_proj", d_model)?,
        ],
    })
}
