//! GPT-2 (OpenAI / Hugging Face `GPT2Model`, optionally under `transformer.`
//! as `GPT2LMHeadModel` stores it): `h.{l}.attn.c_attn.weight [d, 3·d]` is a
//! Conv1D stored `[in, out]`, so Q, K, V are column blocks and each
//! `[out, in]` matrix is the transpose of its block ([`WeightLoc::Cols`]).
//! LayerNorm with biases, learned positions `wpe`, no RoPE, n_kv = n_heads,
//! MLP `c_proj(act(c_fc(x)))` (Conv1D too) with `activation_function`, all with biases.
//! The head count is in the config (`n_head`) only: it cannot be told from shapes.

use super::config::{agree, Config};
use super::lookup::{matrix, mul, vector, Lookup};
use super::{
    Activation, Architecture, BiasLoc, Family, LayerBiases, LayerTensors, NormKind, Rope,
    RopeScaling, WeightLoc, HEADS_UNKNOWN,
};

/// `GPT2Config.layer_norm_epsilon` default.
const DEFAULT_EPS: f64 = 1e-5;

/// `"transformer."` when the names carry it, else `""`.
fn stem(t: &Lookup) -> &'static str {
    if t.names().any(|n| n.starts_with("transformer.h.")) {
        "transformer."
    } else {
        ""
    }
}

/// Whether the names look like this family (any `[transformer.]h.{l}.attn.c_attn.weight`).
pub(super) fn matches(t: &Lookup) -> bool {
    t.names().any(|n| {
        let n = n.strip_prefix("transformer.").unwrap_or(n);
        n.starts_with("h.") && n.ends_with(".attn.c_attn.weight")
    })
}

/// Biases and the causal-mask buffers (`attn.bias`, `attn.masked_bias`) of old checkpoints.
fn allowed_extra(name: &str) -> bool {
    name.ends_with(".bias")
}

pub(super) fn recognise(t: &mut Lookup, config: Option<&Config>) -> Result<Architecture, String> {
    let stem = stem(t);
    let layers_prefix = format!("{stem}h.");
    let n_layers = t.layer_count(&layers_prefix)?;
    let wte = t.require_any(&format!("{stem}wte.weight"), "token embedding")?;
    let (vocab, d_model) = matrix(&wte)?;
    let three_d = mul(3, d_model, "3·d_model")?;

    let c_attn0 = t.require_any(
        &format!("{layers_prefix}0.attn.c_attn.weight"),
        "fused q/k/v projection",
    )?;
    if c_attn0.shape != [d_model, three_d] {
        return Err(format!(
            "tensor `{}` has shape {:?}, expected [{d_model}, {three_d}]",
            c_attn0.name, c_attn0.shape
        ));
    }
    let Some(c) = config else {
        return Err(HEADS_UNKNOWN.to_string());
    };
    let Some(n_heads) = c.usize(&["n_head", "num_attention_heads"])? else {
        return Err(HEADS_UNKNOWN.to_string());
    };
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(format!(
            "{} says n_head {n_heads}, which does not divide n_embd {d_model}",
            c.source
        ));
    }
    let d_k = d_model / n_heads;

    let c_fc0 = t.require_any(
        &format!("{layers_prefix}0.mlp.c_fc.weight"),
        "MLP input projection",
    )?;
    let (_, d_ff) = matrix(&c_fc0)?;
    agree(
        c,
        "n_layer",
        c.usize(&["n_layer", "num_hidden_layers"])?,
        n_layers,
        "the layer count",
    )?;
    agree(
        c,
        "n_embd",
        c.usize(&["n_embd", "hidden_size"])?,
        d_model,
        &format!("`{}`", wte.name),
    )?;
    agree(
        c,
        "vocab_size",
        c.usize(&["vocab_size"])?,
        vocab,
        &format!("`{}`", wte.name),
    )?;
    agree(
        c,
        "n_inner",
        c.usize(&["n_inner"])?,
        d_ff,
        &format!("`{}`", c_fc0.name),
    )?;
    let config_tied = c.bool(&["tie_word_embeddings"])?;

    let mut layers = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let block = format!("{layers_prefix}{l}.");
        let c_attn = t.require(&format!("{block}attn.c_attn.weight"), &[d_model, three_d])?;
        let c_proj = t.require(&format!("{block}attn.c_proj.weight"), &[d_model, d_model])?;
        let cols = |tensor: &String, start: usize| WeightLoc::Cols {
            tensor: tensor.clone(),
            start,
            end: start + d_model,
        };
        layers.push(LayerTensors {
            w_q: cols(&c_attn, 0),
            w_k: cols(&c_attn, d_model),
            w_v: cols(&c_attn, 2 * d_model),
            w_o: cols(&c_proj, 0),
            q_norm: None,
            k_norm: None,
            attn_norm: Some(t.require(&format!("{block}ln_1.weight"), &[d_model])?),
            mlp_norm: Some(t.require(&format!("{block}ln_2.weight"), &[d_model])?),
            mlp: vec![
                t.require(&format!("{block}mlp.c_fc.weight"), &[d_model, d_ff])?,
                t.require(&format!("{block}mlp.c_proj.weight"), &[d_ff, d_model])?,
            ],
            other: t.layer_extras(&block, allowed_extra)?,
            biases: layer_biases(t, &block, d_model, d_ff)?,
            window: None,
        });
    }

    let wpe = t.require_any(&format!("{stem}wpe.weight"), "position embedding")?;
    // The learned positions bound the context, whatever the config says.
    let (n_positions, wpe_cols) = matrix(&wpe)?;
    if wpe_cols != d_model {
        return Err(format!(
            "tensor `{}` has shape {:?}, expected [n_positions, {d_model}]",
            wpe.name, wpe.shape
        ));
    }
    let final_norm = Some(t.require(&format!("{stem}ln_f.weight"), &[d_model])?);
    let mut other = Vec::new();
    let mut final_norm_bias = None;
    if let Some(bias) = t.get(&format!("{stem}ln_f.bias")) {
        if vector(&bias)? != d_model {
            return Err(format!(
                "tensor `{}` has shape {:?}, expected [{d_model}]",
                bias.name, bias.shape
            ));
        }
        other.push(bias.name.clone());
        final_norm_bias = Some(bias.name);
    }
    let (activation, no_forward_pass) = pass_settings(c)?;
    let (lm_head, tied_lm_head) = match t.optional("lm_head.weight", &[vocab, d_model])? {
        Some(name) => (name, config_tied != Some(false)),
        None => (wte.name.clone(), true),
    };

    Ok(Architecture {
        family: Family::Gpt2,
        n_layers,
        d_model,
        n_heads,
        n_kv_heads: n_heads,
        d_k,
        d_ff,
        vocab,
        context: Some(n_positions),
        qk_norm: false,
        rope: Rope::None,
        rope_theta: 0.0,
        rope_scaling: RopeScaling::None,
        norm_eps: c.norm_eps(&["layer_norm_epsilon"])?.unwrap_or(DEFAULT_EPS),
        norm: NormKind::Layer,
        activation,
        tied_lm_head,
        embedding: wte.name,
        lm_head,
        final_norm,
        position_embedding: Some(wpe.name),
        final_norm_bias,
        no_forward_pass,
        layers,
        prefix_removed: None,
        source_of_heads: c.source.to_string(),
        other,
        unused: Vec::new(),
    })
}

/// The block's biases (each optional; a present one must have its shape):
/// `attn.c_attn.bias [3·d]` split into q, k, v; `attn.c_proj.bias`; `ln_{1,2}.bias`;
/// `mlp.c_fc.bias [d_ff]`, `mlp.c_proj.bias [d]`.
fn layer_biases(
    t: &mut Lookup,
    block: &str,
    d_model: usize,
    d_ff: usize,
) -> Result<LayerBiases, String> {
    let mut whole = |name: &str, len: usize| -> Result<Option<String>, String> {
        t.optional(&format!("{block}{name}.bias"), &[len])
    };
    let part = |tensor: &Option<String>, start: usize, len: usize| {
        tensor.as_ref().map(|tensor| BiasLoc {
            tensor: tensor.clone(),
            start,
            end: start + len,
        })
    };
    let c_attn = whole("attn.c_attn", 3 * d_model)?;
    let c_proj = whole("attn.c_proj", d_model)?;
    let c_fc = whole("mlp.c_fc", d_ff)?;
    let mlp_proj = whole("mlp.c_proj", d_model)?;
    Ok(LayerBiases {
        q: part(&c_attn, 0, d_model),
        k: part(&c_attn, d_model, d_model),
        v: part(&c_attn, 2 * d_model, d_model),
        o: part(&c_proj, 0, d_model),
        attn_norm: whole("ln_1", d_model)?,
        mlp_norm: whole("ln_2", d_model)?,
        mlp: vec![part(&c_fc, 0, d_ff), part(&mlp_proj, 0, d_model)],
    })
}

/// `activation_function` (default `gelu_new`), and why the forward pass cannot
/// run the model, if the config asks for what it does not implement.
fn pass_settings(c: &Config) -> Result<(Activation, Option<String>), String> {
    let mut why = Vec::new();
    let name = c
        .string(&["activation_function"])?
        .unwrap_or_else(|| "gelu_new".to_string());
    let activation = Activation::from_hf_name(&name).unwrap_or_else(|| {
        why.push(format!(
            "{} activation_function `{name}` has no kernel",
            c.source
        ));
        Activation::GeluTanh
    });
    if c.bool(&["scale_attn_by_inverse_layer_idx"])? == Some(true) {
        why.push(format!(
            "{} scale_attn_by_inverse_layer_idx is not implemented",
            c.source
        ));
    }
    if c.bool(&["scale_attn_weights"])? == Some(false) {
        why.push(format!(
            "{} scale_attn_weights false is not implemented",
            c.source
        ));
    }
    Ok((activation, (!why.is_empty()).then(|| why.join("; "))))
}
