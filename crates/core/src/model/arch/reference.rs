//! The user's MinimalLLM (`shared/fixtures/README.md`, "Model conventions").
//!
//! `transformer_blocks.{l}.attention.qkvo_proj [q+k+v+o, d_model]`: Q rows
//! `0..q`, K `q..q+k`, V `q+k..q+2k`, O `q+2k..`. The output block is applied
//! as `attn @ O^T` and must map back to `d_model`, so q = o = d_model and
//! k = v = (rows − 2·d_model) / 2; only the head split is unknown from shapes,
//! and it comes from the config or from the `[d_k]` shape of `q_norm`/`k_norm`.
//!
//! The head is tied to the embedding and stored once, under
//! `token_embedding.weight` or (safetensors' `save_model` keeps the
//! alphabetically first alias) `lm_head.weight`; either is accepted. When both
//! are stored with equal shapes they are reported untied — two stored tensors
//! may differ — unless the config says `tie_word_embeddings` / `tie_weights`.

use super::config::{agree, Config};
use super::lookup::{matrix, mul, vector, Lookup};
use super::{
    Activation, Architecture, Family, LayerBiases, LayerTensors, NormKind, Rope, RopeScaling,
    WeightLoc, HEADS_UNKNOWN,
};

const BLOCKS: &str = "transformer_blocks.";
/// RMSNorm eps = None in the user's code: `torch.finfo(torch.float32).eps`.
const DEFAULT_EPS: f64 = f32::EPSILON as f64;
const DEFAULT_THETA: f64 = 10_000.0;

/// Whether the names look like this family (any `transformer_blocks.{l}.attention.qkvo_proj`).
pub(super) fn matches(t: &Lookup) -> bool {
    t.names().any(|n| {
        n.starts_with(BLOCKS)
            && (n.ends_with(".attention.qkvo_proj") || n.ends_with(".attention.qkvo_proj.weight"))
    })
}

/// The canonical name of layer `l`'s merged projection (stored with or without `.weight`).
fn qkvo_name(t: &Lookup, l: usize) -> String {
    let bare = format!("{BLOCKS}{l}.attention.qkvo_proj");
    let with_weight = format!("{bare}.weight");
    if !t.has(&bare) && t.has(&with_weight) {
        with_weight
    } else {
        bare
    }
}

pub(super) fn recognise(t: &mut Lookup, config: Option<&Config>) -> Result<Architecture, String> {
    let n_layers = t.layer_count(BLOCKS)?;

    // Embedding and head.
    let embedding = t.get("token_embedding.weight");
    let head = t.get("lm_head.weight");
    let config_tied = match config {
        Some(c) => c.bool(&["tie_word_embeddings", "tie_weights"])?,
        None => None,
    };
    let (table, lm_head, tied_lm_head) = match (embedding, head) {
        (Some(e), None) => {
            let name = e.name.clone();
            (e, name, true)
        }
        (None, Some(h)) => {
            let name = h.name.clone();
            (h, name, true)
        }
        (Some(e), Some(h)) => {
            if e.shape != h.shape {
                return Err(format!(
                    "tensor `{}` has shape {:?}, expected {:?} like `{}`",
                    h.name, h.shape, e.shape, e.name
                ));
            }
            (e, h.name, config_tied == Some(true))
        }
        (None, None) => {
            return Err(format!(
                "tensor `{}` is missing (and no `{}` holds the tied embedding)",
                t.display("token_embedding.weight"),
                t.display("lm_head.weight")
            ))
        }
    };
    let (vocab, d_model) = matrix(&table)?;

    // The merged projection of layer 0 fixes the K/V rows.
    let qkvo0 = t.require_any(&qkvo_name(t, 0), "merged q/k/v/o projection")?;
    let (rows, cols) = matrix(&qkvo0)?;
    let two_d = mul(2, d_model, "2·d_model")?;
    if cols != d_model || rows <= two_d || (rows - two_d) % 2 != 0 {
        return Err(format!(
            "tensor `{}` has shape [{rows}, {cols}], expected [2·{d_model} + 2·k, {d_model}] (q = o = d_model rows, k = v rows)",
            qkvo0.name
        ));
    }
    let kv_rows = (rows - two_d) / 2;

    // Heads: config, else the per-head norm's shape, else unknown.
    let q_norm0 = format!("{BLOCKS}0.attention.q_norm.weight");
    let k_norm0 = format!("{BLOCKS}0.attention.k_norm.weight");
    let qk_norm = t.has(&k_norm0) || t.has(&q_norm0);
    let config_heads = match config {
        Some(c) => c
            .usize(&["n_heads", "num_attention_heads"])?
            .map(|h| (c, h)),
        None => None,
    };
    let (n_heads, n_kv_heads, d_k, source_of_heads) = if let Some((c, n_heads)) = config_heads {
        let n_kv = c
            .usize(&["n_kv_heads", "num_key_value_heads"])?
            .unwrap_or(n_heads);
        let d_k = match c.usize(&["d_k", "head_dim"])? {
            Some(d_k) => d_k,
            None if n_heads > 0 && d_model % n_heads == 0 => d_model / n_heads,
            None => {
                return Err(format!(
                    "{} says n_heads {n_heads}, which does not divide d_model {d_model}",
                    c.source
                ))
            }
        };
        let said_rows = mul(2, mul(n_heads, d_k, "n_heads·d_k")?, "q rows")?
            .checked_add(mul(2, mul(n_kv, d_k, "n_kv_heads·d_k")?, "k rows")?)
            .ok_or("qkvo rows overflow")?;
        if mul(n_heads, d_k, "n_heads·d_k")? != d_model || said_rows != rows {
            return Err(format!(
                "{} says n_heads {n_heads}, n_kv_heads {n_kv}, d_k {d_k} (qkvo_proj [{said_rows}, {}]), but `{}` has shape [{rows}, {cols}] with d_model {d_model}",
                c.source,
                mul(n_heads, d_k, "n_heads·d_k")?,
                qkvo0.name
            ));
        }
        (n_heads, n_kv, d_k, c.source.to_string())
    } else if qk_norm {
        let (which, canonical) = if t.has(&k_norm0) {
            ("k_norm", &k_norm0)
        } else {
            ("q_norm", &q_norm0)
        };
        let norm = t.require_any(canonical, which)?;
        let d_k = vector(&norm)?;
        if d_k == 0 || d_model % d_k != 0 || kv_rows % d_k != 0 {
            return Err(format!(
                "tensor `{}` has shape [{d_k}], which divides neither d_model {d_model} nor the {kv_rows} key rows of `{}`",
                norm.name, qkvo0.name
            ));
        }
        (d_model / d_k, kv_rows / d_k, d_k, format!("{which} shape"))
    } else {
        return Err(HEADS_UNKNOWN.to_string());
    };
    if n_kv_heads == 0 || d_k == 0 || n_heads % n_kv_heads != 0 {
        return Err(format!(
            "{n_heads} query heads cannot share {n_kv_heads} kv-heads evenly (d_k {d_k})"
        ));
    }

    let up0 = t.require_any(
        &format!("{BLOCKS}0.feed_forward.up_proj.weight"),
        "MLP up projection",
    )?;
    let (d_ff, _) = matrix(&up0)?;

    if let Some(c) = config {
        agree(
            c,
            "n_layers",
            c.usize(&["n_layers", "num_hidden_layers"])?,
            n_layers,
            "the layer count",
        )?;
        agree(
            c,
            "d_model",
            c.usize(&["d_model", "hidden_size"])?,
            d_model,
            &format!("`{}`", table.name),
        )?;
        agree(
            c,
            "vocab_size",
            c.usize(&["vocab_size"])?,
            vocab,
            &format!("`{}`", table.name),
        )?;
        agree(
            c,
            "d_ff",
            c.usize(&["d_ff", "intermediate_size"])?,
            d_ff,
            &format!("`{}`", up0.name),
        )?;
        if let Some(use_qk_norm) = c.bool(&["use_qk_norm"])? {
            if use_qk_norm != qk_norm {
                return Err(format!(
                    "{} says use_qk_norm {use_qk_norm}, but `{}` is {}",
                    c.source,
                    t.display(&k_norm0),
                    if qk_norm { "present" } else { "absent" }
                ));
            }
        }
    }

    let mut layers = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let block = format!("{BLOCKS}{l}.");
        let qkvo = t.require(&qkvo_name(t, l), &[rows, d_model])?;
        let (q_norm, k_norm) = {
            let q = format!("{block}attention.q_norm.weight");
            let k = format!("{block}attention.k_norm.weight");
            if qk_norm {
                (Some(t.require(&q, &[d_k])?), Some(t.require(&k, &[d_k])?))
            } else if t.has(&q) || t.has(&k) {
                return Err(format!(
                    "layer {l} has a q_norm/k_norm but layer 0 has none"
                ));
            } else {
                (None, None)
            }
        };
        let rows_of = |start: usize, len: usize| WeightLoc::Rows {
            tensor: qkvo.clone(),
            start,
            end: start + len,
        };
        layers.push(LayerTensors {
            w_q: rows_of(0, d_model),
            w_k: rows_of(d_model, kv_rows),
            w_v: rows_of(d_model + kv_rows, kv_rows),
            w_o: rows_of(d_model + 2 * kv_rows, d_model),
            q_norm,
            k_norm,
            attn_norm: Some(t.require(&format!("{block}norm1.weight"), &[d_model])?),
            mlp_norm: Some(t.require(&format!("{block}norm2.weight"), &[d_model])?),
            mlp: vec![
                t.require(
                    &format!("{block}feed_forward.up_proj.weight"),
                    &[d_ff, d_model],
                )?,
                t.require(
                    &format!("{block}feed_forward.down_proj.weight"),
                    &[d_model, d_ff],
                )?,
            ],
            other: t.layer_extras(&block, |_| false)?,
            biases: LayerBiases::default(),
            window: None,
        });
    }
    let final_norm = Some(t.require("norm.weight", &[d_model])?);

    let (rope_theta, norm_eps) = match config {
        Some(c) => (
            c.rope_theta(&["rope_theta", "rope_base"])?
                .unwrap_or(DEFAULT_THETA),
            c.norm_eps(&["norm_eps", "rms_norm_eps", "eps"])?
                .unwrap_or(DEFAULT_EPS),
        ),
        None => (DEFAULT_THETA, DEFAULT_EPS),
    };

    // The user's RoPE caches `max_seq_len` positions: a longer sequence has none.
    let context = match config {
        Some(c) => c.context()?,
        None => None,
    };

    Ok(Architecture {
        family: Family::Reference,
        n_layers,
        d_model,
        n_heads,
        n_kv_heads,
        d_k,
        d_ff,
        vocab,
        context,
        qk_norm,
        rope: Rope::InterleavedPairs,
        rope_theta,
        rope_scaling: RopeScaling::None,
        norm_eps,
        norm: NormKind::Rms,
        activation: Activation::ReluSquared,
        tied_lm_head,
        embedding: table.name,
        lm_head,
        final_norm,
        position_embedding: None,
        final_norm_bias: None,
        no_forward_pass: None,
        layers,
        prefix_removed: None,
        source_of_heads,
        other: Vec::new(),
        unused: Vec::new(),
    })
}
